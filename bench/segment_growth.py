"""JP-EN and jargon: segment accuracy before and after growing their share of the training data.

  python bench/segment_growth.py [--extra 480] [--seed 123]

"before": recipe v2 on the seed corpus's training split. "after": the same plus `--extra` generated rows
whose segment mix is JP-EN/jargon heavy (jp_en 0.5, jargon 0.4; generator seed 97, training split only).
Both are scored per segment on the seed corpus's validation split; the golden set is printed last as a
final report only (it chooses nothing: the mix was fixed before this ran).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.label_sets import REPO, label_set  # noqa: E402
from manga_intent.coverage import tokenizer_coverage  # noqa: E402
from manga_intent.data import Example, load_jsonl  # noqa: E402
from manga_intent.train_and_evaluate import evaluate_examples  # noqa: E402
from manga_intent.training import TrainConfig, train_classifier  # noqa: E402

MIX = {"jp_en": 0.5, "jargon": 0.4, "slang": 0.1, "typo": 0.05}


def generated(n: int, labels) -> list[Example]:
    from manga_intent.synthetic import generate_synthetic

    return [
        Example(r["text"], r["label"], meta={"segment": r["segment"], "source": "synthetic"})
        for r in generate_synthetic(n, seed=97, segment_mix=MIX)
        if r["label"] in labels
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", type=int, default=480)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    splits, labels = label_set("seed")
    golden = load_jsonl(REPO / "data" / "golden" / "golden.jsonl").examples
    extra = generated(args.extra, set(labels))
    config = TrainConfig(init_seed=args.seed, sampler_seed=args.seed)
    out = {}
    for name, train in (("before", splits.train), ("after", [*splits.train, *extra])):
        result = train_classifier(train, splits.val, labels, config, progress=False)
        rows = {}
        for part_name, part in (("val", splits.val), ("golden (final report)", golden)):
            report = evaluate_examples(result.model, result.tokenizer, part, labels, rare_labels=[], n_boot=0)
            rows[part_name] = {
                "accuracy": report["accuracy"],
                **{s: v["accuracy"] for s, v in report["segment_accuracy"].items()},
            }
        out[name] = rows
        coverage = tokenizer_coverage(result.tokenizer, train)
        print(
            f"{name}: {len(train)} training rows; JP-EN share {coverage.get('jp_en', {}).get('messages', 0) / len(train):.3f}"
            f", jargon share {coverage.get('jargon', {}).get('messages', 0) / len(train):.3f}",
            flush=True,
        )
    for part_name in ("val", "golden (final report)"):
        segments = list(out["before"][part_name])
        print(f"\n{part_name}:\n| segment | before | after |\n|---|---|---|")
        for s in segments:
            print(
                f"| {s} | {out['before'][part_name][s]:.3f} | {out['after'][part_name].get(s, float('nan')):.3f} |"
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
