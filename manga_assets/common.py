"""Helpers shared by the assets: dataset snapshots, the fixed split, metadata tables."""

import json
import tempfile
from pathlib import Path

import dagster as dg

from manga_intent.data import DataSplits, Example, make_splits
from resources.storage import ArtifactStore

#: The split seed stays fixed across training seeds so a sweep compares models on the same test set.
SPLIT_SEED = 42


def write_snapshot(store: ArtifactStore, examples: list[Example], key: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for e in examples:
                fh.write(json.dumps({"text": e.text, "label": e.label, **e.meta}, ensure_ascii=False) + "\n")
        return store.put_file(path, key)


def read_snapshot(store: ArtifactStore, uri: str, allow_empty: bool = False) -> list[Example]:
    """Rows of a snapshot; `allow_empty` for sets that may legitimately be empty (all synthetic flagged)."""
    from manga_intent.data import load_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        path = store.get_file(uri, Path(tmp) / "rows.jsonl")
        if allow_empty and not path.read_text(encoding="utf-8").strip():
            return []
        return load_jsonl(path).examples


def real_splits(examples: list[Example]) -> DataSplits:
    return make_splits(examples, seed=SPLIT_SEED)


def markdown_table(rows: list[dict], columns: list[str] | None = None, floats: int = 4) -> str:
    if not rows:
        return "_empty_"
    columns = columns or list(rows[0])

    def fmt(value):
        if isinstance(value, float):
            return f"{value:.{floats}f}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def per_intent_table(report: dict) -> str:
    rows = [{"intent": label, **values} for label, values in report["per_intent"].items()]
    return markdown_table(rows, ["intent", "precision", "recall", "f1", "support"], floats=3)


def md(text: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(text)
