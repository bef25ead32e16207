"""The labelled pool: every source file validated, then human labels merged over corpus labels.

Human labels win over corpus labels for the same message (matched by normalised text) and new messages are
appended; every row keeps its provenance, and a relabelled row remembers its previous label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from manga_intent.data import Example, load_jsonl, normalized_key


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
    for row in human:
        counts["human_rows"] += 1
        meta = {**row.meta, "provenance": "human", "source_file": source_name}
        key = normalized_key(row.text)
        if key in by_key:
            old = merged[by_key[key]]
            counts["relabelled" if old.label != row.label else "confirmed"] += 1
            merged[by_key[key]] = Example(
                old.text, row.label, None, old.line, {**old.meta, **meta, "previous_label": old.label}
            )
        else:
            by_key[key] = len(merged)
            merged.append(Example(row.text, row.label, None, row.line, meta))
            counts["added"] += 1
    return merged, counts
