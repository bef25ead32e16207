"""`intent_dataset`: the validated labelled pool, merged with human labels, as a versioned snapshot."""

import tempfile
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
from dagster_aws.s3 import S3Resource

from manga_assets.labeling import human_labels, latest_human_labels_export
from manga_assets.manifests import DatasetSnapshot, HumanLabelsExport
from manga_assets.metadata import markdown_table, md
from manga_assets.snapshots import write_snapshot
from manga_intent.data import data_hash, load_jsonl
from manga_intent.labelled_pool import load_labelled_files, merge_human_labels
from manga_intent.shipped_data import SEED_CORPUS
from manga_intent.taxonomy import INTENTS
from resources.storage import ArtifactStore


class IntentDatasetConfig(dg.Config):
    source_uri: str = str(SEED_CORPUS.path.parent)
    """A JSONL file, a local directory of *.jsonl, or s3://bucket/prefix (read with the `s3` resource)."""
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
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=parsed.netloc, Prefix=parsed.path.lstrip("/")
    )
    keys = sorted(
        obj["Key"] for page in pages for obj in page.get("Contents", []) if obj["Key"].endswith(".jsonl")
    )
    files = []
    for i, key in enumerate(keys):
        target = into / f"{i:04d}_{Path(key).name}"
        client.download_file(parsed.netloc, key, str(target))
        files.append(target)
    return files


def _human_rows(store: ArtifactStore, export: HumanLabelsExport | None, into: Path) -> list:
    if export is None or export.uri is None:
        return []
    path = store.get_file(export.uri, into / "human_labels.jsonl")
    if not path.read_text(encoding="utf-8").strip():
        return []
    return load_jsonl(path, allowed_labels=INTENTS).examples  # a bad human-label file fails loudly


@dg.asset(group_name="data", kinds={"python", "jsonl"}, deps=[human_labels])
def intent_dataset(
    context: dg.AssetExecutionContext,
    config: IntentDatasetConfig,
    artifact_store: ArtifactStore,
    s3: S3Resource,
) -> dg.Output[DatasetSnapshot]:
    """Validated labelled messages from the configured source plus human labels, snapshotted by content hash.

    Human labels are the export named by the newest `human_labels` materialization, read from the artifact
    store (none before the first export, so the dataset can be materialized on its own).

    Invalid rows are quarantined and counted (or fail the run when `quarantine` is off); nothing is
    silently dropped. The snapshot's URI travels downstream; the data version is its content hash.
    """
    with tempfile.TemporaryDirectory() as tmp:
        source = config.source_uri
        files = _s3_files(source, s3, Path(tmp)) if source.startswith("s3://") else _local_files(source)
        if not files:
            raise FileNotFoundError(f"dataset source {source} holds no *.jsonl files")
        corpus, quarantined = load_labelled_files(files, allowed_labels=INTENTS, quarantine=config.quarantine)
        examples, human = merge_human_labels(
            corpus, _human_rows(artifact_store, latest_human_labels_export(context.instance), Path(tmp))
        )
    version = data_hash(examples)
    uri = write_snapshot(
        artifact_store, examples, f"datasets/intent_dataset/{version.split(':')[1][:16]}.jsonl"
    )
    counts = Counter(e.label for e in examples)
    provenance = Counter(e.meta.get("provenance", "corpus") for e in examples)
    rows = [{"intent": i, "rows": counts[i], "share": counts[i] / len(examples)} for i in INTENTS]
    context.log.info(f"{len(examples)} rows ({dict(provenance)}), {sum(quarantined.values())} quarantined")
    return dg.Output(
        DatasetSnapshot(uri=uri, data_version=version, rows=len(examples)),
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
            "source_files": dg.MetadataValue.json([f.name for f in files]),
            "per_intent": md(markdown_table(rows, floats=3)),
        },
    )
