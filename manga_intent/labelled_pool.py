"""The labelled pool: every source file validated, then human labels merged over corpus labels.

Human labels win over corpus labels for the same message (matched by normalised text) and new messages are
appended; every row keeps its provenance, and a relabelled row remembers its previous label.

Splits are fixed on the corpus alone (`with_fixed_splits`) and written into every row: a human label never
moves a corpus row between train, validation and test (so test numbers stay comparable across retrains, and
the seed corpus's training split — what the synthetic set's consensus folds learn from — is exactly the corpus
part of every later dataset's training split). New messages from people join the training split: they are
sampled by active learning, not drawn like the corpus, and would bias a held-out split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from manga_intent.data import Example, load_jsonl, make_splits, normalized_key


def load_labelled_files(
    files: Sequence[Path],
    *,
    allowed_labels: Iterable[str],
    quarantine: bool,
) -> tuple[list[Example], dict[str, int]]:
    """Validated rows of every file (tagged with `source_file` and `provenance`), and quarantine counts."""
    if not files:
        raise FileNotFoundError("the dataset source holds no *.jsonl files")
    allowed = list(allowed_labels)
    examples: list[Example] = []
    quarantined: Counter = Counter()
    for path in files:
        loaded = load_jsonl(path, allowed_labels=allowed, quarantine=quarantine)
        examples += [
            Example(
                e.text,
                e.label,
                None,
                e.line,
                {**e.meta, "source_file": path.name, "provenance": e.meta.get("provenance", "corpus")},
            )
            for e in loaded.examples
        ]
        quarantined.update(loaded.quarantine_counts)
    return examples, dict(quarantined)


def with_fixed_splits(corpus: Sequence[Example], *, seed: int) -> list[Example]:
    """The corpus with each row's stratified split (seeded) written into it, in the corpus's order."""
    parts = make_splits(corpus, seed=seed)
    split_of = {
        id(e): name
        for name, rows in (("train", parts.train), ("val", parts.val), ("test", parts.test))
        for e in rows
    }
    missing = [e.line for e in corpus if id(e) not in split_of]
    if missing:
        raise ValueError(f"rows at lines {missing[:5]} fell outside every split")  # make_splits' contract
    return [replace(e, split=split_of[id(e)]) for e in corpus]


def with_targeted_rows(corpus: Sequence[Example], targeted: Sequence[Example]) -> list[Example]:
    """The split corpus plus targeted rows (written for an intent the corpus under-covers), all in training.

    They stay out of validation and test, so every number measured there is still on the corpus at its
    traffic shares, and out of the corpus's stratified split, so its rows keep their fixed splits. A
    targeted message that is already in the corpus is an error, not a silent duplicate.
    """
    keys = {normalized_key(e.text): e for e in corpus}
    clashes = [e.text for e in targeted if normalized_key(e.text) in keys]
    if clashes:
        raise ValueError(f"{len(clashes)} targeted rows repeat corpus messages, e.g. {clashes[:3]}")
    added = [replace(e, split="train", meta={**e.meta, "provenance": "targeted"}) for e in targeted]
    return [*corpus, *added]


def merge_human_labels(
    examples: Sequence[Example],
    human: Sequence[Example],
    *,
    source_name: str = "human_labels",
) -> tuple[list[Example], dict[str, int]]:
    """Corpus rows with human labels applied; counts of human rows, relabelled, confirmed and added messages."""
    counts = {"human_rows": 0, "relabelled": 0, "confirmed": 0, "added": 0}
    by_key = {normalized_key(e.text): i for i, e in enumerate(examples)}
    merged = list(examples)
    new_split = "train" if any(e.split for e in examples) else None  # fixed splits: new messages train
    for row in human:
        counts["human_rows"] += 1
        meta = {**row.meta, "provenance": "human", "source_file": source_name}
        key = normalized_key(row.text)
        if key in by_key:
            old = merged[by_key[key]]
            counts["relabelled" if old.label != row.label else "confirmed"] += 1
            merged[by_key[key]] = Example(  # a corrected label stays in its row's split
                old.text, row.label, old.split, old.line, {**old.meta, **meta, "previous_label": old.label}
            )
        else:
            by_key[key] = len(merged)
            merged.append(Example(row.text, row.label, new_split, row.line, meta))
            counts["added"] += 1
    return merged, counts
