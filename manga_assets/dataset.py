"""`intent_dataset`: the validated labelled pool, merged with human labels, as a versioned snapshot."""

import tempfile
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
from dagster_aws.s3 import S3Resource

from manga_assets.common import markdown_table, md, write_snapshot
from manga_assets.shipped_data import SEED_CORPUS
from manga_intent.data import Example, data_hash, load_jsonl, normalized_key
from manga_intent.labels import INTENTS
from resources.paths import manga_home
from resources.storage import ArtifactStore


class IntentDatasetConfig(dg.Config):
    source_uri: str = str(SEED_CORPUS.path.parent)
    """A JSONL file, a local directory of *.jsonl, or s3://bucket/prefix (read with the `s3` resource)."""
    human_labels_dir: str = ""
    """Exported human labels (*.jsonl); default $MANGA_HOME/human_labels. Missing directory = none yet."""
    quarantine: bool = True
    """Set invalid rows aside and count them (True) or fail the run naming them (False)."""


def _local_files(source: str) -> list[Path]:
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(path.glob("*.jsonl"))
    raise FileNotFoundError(f"dataset source {source} does not exist")


def _s3_files(source: str, s3: S3Resource, into: Path) -> list[Path]:
    parsed = urlparse(source)
    client = s3.get_client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=parsed.path.lstrip("/"))
    keys = sorted(obj["Key"] for page in pages for obj in page.get("Contents", []) if obj["Key"].endswith(".jsonl"))
    files = []
    for i, key in enumerate(keys):
        target = into / f"{i:04d}_{Path(key).name}"
        client.download_file(parsed.netloc, key, str(target))
        files.append(target)
    return files


def load_source(source: str, s3: S3Resource, quarantine: bool) -> tuple[list[Example], dict[str, int], list[str]]:
    """Validated rows from every file of the source, quarantine counts, and the files read."""
    with tempfile.TemporaryDirectory() as tmp:
        files = _s3_files(source, s3, Path(tmp)) if source.startswith("s3://") else _local_files(source)
        if not files:
            raise FileNotFoundError(f"dataset source {source} holds no *.jsonl files")
        examples, quarantined = [], Counter()
        for path in files:
            loaded = load_jsonl(path, allowed_labels=INTENTS, quarantine=quarantine)
            examples += [Example(e.text, e.label, None, e.line, {**e.meta, "source_file": path.name,
                                                                   "provenance": e.meta.get("provenance", "corpus")})
                         for e in loaded.examples]
            quarantined.update(loaded.quarantine_counts)
        return examples, dict(quarantined), [str(f.name) for f in files]


def merge_human_labels(examples: list[Example], labels_dir: Path) -> tuple[list[Example], dict[str, int]]:
    """Human labels win over corpus labels for the same message; new messages are appended."""
    files = sorted(labels_dir.glob("*.jsonl")) if labels_dir.is_dir() else []
    counts = {"human_rows": 0, "relabelled": 0, "confirmed": 0, "added": 0}
    if not files:
        return examples, counts
    by_key = {normalized_key(e.text): i for i, e in enumerate(examples)}
    merged = list(examples)
    for path in files:
        if not path.read_text(encoding="utf-8").strip():
            continue  # an export with no labels yet
        loaded = load_jsonl(path, allowed_labels=INTENTS)  # a bad human-label file fails loudly
        for row in loaded.examples:
            counts["human_rows"] += 1
            meta = {**row.meta, "provenance": "human", "source_file": path.name}
            key = normalized_key(row.text)
            if key in by_key:
                old = merged[by_key[key]]
                counts["relabelled" if old.label != row.label else "confirmed"] += 1
                merged[by_key[key]] = Example(old.text, row.label, None, old.line,
                                              {**old.meta, **meta, "previous_label": old.label})
            else:
                by_key[key] = len(merged)
                merged.append(Example(row.text, row.label, None, row.line, meta))
                counts["added"] += 1
    return merged, counts


@dg.asset(group_name="data", kinds={"python", "jsonl"}, deps=["human_labels"])
def intent_dataset(
    context: dg.AssetExecutionContext, config: IntentDatasetConfig, artifact_store: ArtifactStore, s3: S3Resource,
) -> dg.Output[dict]:
    """Validated labelled messages from the configured source plus human labels, snapshotted by content hash.

    Invalid rows are quarantined and counted (or fail the run when `quarantine` is off); nothing is
    silently dropped. The snapshot's URI travels downstream; the data version is its content hash.
    """
    examples, quarantined, files = load_source(config.source_uri, s3, config.quarantine)
    labels_dir = Path(config.human_labels_dir) if config.human_labels_dir else manga_home() / "human_labels"
    examples, human = merge_human_labels(examples, labels_dir)
    version = data_hash(examples)
    uri = write_snapshot(artifact_store, examples, f"datasets/intent_dataset/{version.split(':')[1][:16]}.jsonl")
    counts = Counter(e.label for e in examples)
    provenance = Counter(e.meta.get("provenance", "corpus") for e in examples)
    rows = [{"intent": i, "rows": counts[i], "share": counts[i] / len(examples)} for i in INTENTS]
    context.log.info(f"{len(examples)} rows ({dict(provenance)}), {sum(quarantined.values())} quarantined")
    manifest = {"uri": uri, "data_version": version, "rows": len(examples)}
    return dg.Output(
        manifest,
        data_version=dg.DataVersion(version),
        metadata={
            "rows": len(examples),
            "quarantined_rows": sum(quarantined.values()),
            "quarantine_reasons": dg.MetadataValue.json(quarantined),
            "provenance": dg.MetadataValue.json(dict(provenance)),
            "human_labels": dg.MetadataValue.json(human),
            "data_version": version,
            "snapshot_uri": dg.MetadataValue.url(uri) if uri.startswith("file://") else uri,
            "source": config.source_uri,
            "source_files": dg.MetadataValue.json(files),
            "per_intent": md(markdown_table(rows, floats=3)),
        },
    )
