"""Dataset snapshots: labelled rows written to / read from the artifact store as JSONL behind a URI."""

import json
import tempfile
from pathlib import Path

from manga_assets.manifests import SyntheticSet
from manga_intent.data import SPLIT_SEED, DataSplits, Example, load_jsonl, make_splits
from manga_intent.synthetic.mix import cap_synthetic_rows, check_mix
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


def synthetic_training_rows(
    store: ArtifactStore,
    synthetic_set: SyntheticSet,
    *,
    n_real: int,
    max_share: float,
    balance: str,
    seed: int,
) -> list[Example]:
    """The synthetic set's kept rows a training run adds: at most `max_share` of its training rows (0: none,
    never read; 1: all). `trained_model` and `hpo_study` both take them from here, so a study searches the
    data the model trains on."""
    check_mix(max_share, balance)  # a bad share or balance fails here, before any training
    if max_share == 0:
        return []
    kept = read_snapshot(store, synthetic_set.kept_uri, allow_empty=True)
    return cap_synthetic_rows(kept, n_real=n_real, max_share=max_share, seed=seed, balance=balance)
