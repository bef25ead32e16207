"""Dataset snapshots: labelled rows written to / read from the artifact store as JSONL behind a URI."""

import json
import tempfile
from pathlib import Path

from manga_intent.data import SPLIT_SEED, DataSplits, Example, load_jsonl, make_splits
from resources.storage import ArtifactStore


def write_snapshot(store: ArtifactStore, examples: list[Example], key: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for e in examples:
                split = {"split": e.split} if e.split else {}  # fixed splits travel with the rows
                fh.write(
                    json.dumps({"text": e.text, "label": e.label, **split, **e.meta}, ensure_ascii=False)
                    + "\n"
                )
        return store.put_file(path, key)


def read_snapshot(store: ArtifactStore, uri: str, allow_empty: bool = False) -> list[Example]:
    """Rows of a snapshot; `allow_empty` for sets that may legitimately be empty (all synthetic flagged)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = store.get_file(uri, Path(tmp) / "rows.jsonl")
        if allow_empty and not path.read_text(encoding="utf-8").strip():
            return []
        return load_jsonl(path).examples


def dataset_splits(examples: list[Example]) -> DataSplits:
    """The fixed train/val/test split every training seed shares (split seed `SPLIT_SEED`)."""
    return make_splits(examples, seed=SPLIT_SEED)
