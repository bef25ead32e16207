"""`python -m manga_intent.synthetic --n 10000 --seed 7 --out generated.jsonl [--vocabulary novel]`."""

import argparse
import json
import sys

from manga_intent.synthetic import VOCABULARIES, generate_synthetic


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write generated MangaAssist messages as labelled JSONL.")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocabulary", choices=VOCABULARIES, default="train")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    rows = generate_synthetic(args.n, seed=args.seed, vocabulary=args.vocabulary)
    with open(args.out, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
