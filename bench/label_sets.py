"""The label sets every recipe default must hold on: the seed corpus, subsets with fewer intents and a
generated many-label set. Only train/val rows are ever used to choose anything.

- `seed`: the shipped seed corpus (10 intents, 1,600 rows), stratified 80/10/10 with split seed 42.
- `seed5`: the seed corpus restricted to 5 intents (two frequent, one mid, the two rare ones).
- `seed3`: 3 intents (one frequent, one mid, one rare).
- `gen80`: 2,400 generated messages, uniform over the 10 intents, labelled by intent x template
  group (template index mod 8): 80 labels of ~30 rows each, like a public 77-intent set.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.data import DataSplits, Example, infer_label_list, load_jsonl, make_splits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEED_CORPUS = REPO / "data" / "seed_corpus" / "seed_corpus.jsonl"
SUBSETS = {
    "seed5": ("product_discovery", "recommendation", "order_tracking", "checkout_help", "escalation"),
    "seed3": ("product_question", "return_request", "escalation"),
}
LABEL_SETS = ("seed", "seed5", "seed3", "gen80")


def many_label_examples(n: int = 2400, seed: int = 11, groups: int = 8) -> list[Example]:
    from manga_intent.synthetic import generate_synthetic

    rows = generate_synthetic(n, seed=seed, intent_shares={i: 0.1 for i in _intents()})
    out = []
    for r in rows:
        template = r["template_id"].split("+")[0]
        intent, index = template.rsplit(".", 1)
        out.append(
            Example(text=r["text"], label=f"{intent}.g{int(index) % groups}", meta={"segment": r["segment"]})
        )
    return out


def _intents():
    from manga_intent.taxonomy import INTENTS

    return INTENTS


def label_set(name: str) -> tuple[DataSplits, list[str]]:
    """(splits, label list) of a named label set; split seed 42 throughout."""
    if name == "gen80":
        examples = many_label_examples()
    else:
        examples = load_jsonl(SEED_CORPUS).examples
        if name in SUBSETS:
            keep = set(SUBSETS[name])
            examples = [e for e in examples if e.label in keep]
        elif name != "seed":
            raise ValueError(f"unknown label set {name!r}: one of {LABEL_SETS}")
    splits = make_splits(examples, seed=42)
    return splits, infer_label_list(examples)


def file_label_set(path: str | Path) -> tuple[DataSplits, list[str]]:
    """(splits, label list) of any labelled JSONL, split exactly as `manga-intent train` splits it: the
    file's own split column (validation carved from train when it has none), else 80/10/10 with seed 42."""
    examples = load_jsonl(path).examples
    return make_splits(examples, seed=42), infer_label_list(examples)
