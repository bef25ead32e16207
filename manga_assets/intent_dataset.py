"""`intent_dataset`: the seed corpus merged with human labels, as a versioned snapshot."""

import tempfile
from collections import Counter
from pathlib import Path

import dagster as dg

from manga_assets.labeling import human_labels, latest_human_labels_export
from manga_assets.manifests import DatasetSnapshot, HumanLabelsExport
from manga_assets.metadata import markdown_table, md
from manga_assets.snapshots import read_snapshot, write_snapshot
from manga_intent.data import data_hash, load_jsonl
from manga_intent.labelled_pool import merge_human_labels
from manga_intent.taxonomy import INTENTS
from resources.storage import ArtifactStore

CODE_VERSION = "intent-dataset-2"


def _human_rows(store: ArtifactStore, export: HumanLabelsExport | None, into: Path) -> list:
    if export is None or export.uri is None:
        return []
    path = store.get_file(export.uri, into / "human_labels.jsonl")
    if not path.read_text(encoding="utf-8").strip():
        return []
    return load_jsonl(path, allowed_labels=INTENTS).examples  # a bad human-label file fails loudly


@dg.asset(group_name="data", kinds={"python", "jsonl"}, deps=[human_labels], code_version=CODE_VERSION)
def intent_dataset(
    context: dg.AssetExecutionContext,
    seed_corpus: DatasetSnapshot,
    artifact_store: ArtifactStore,
) -> dg.Output[DatasetSnapshot]:
    """The seed corpus plus human labels, snapshotted by content hash (the data version downstream sees).

    Human labels are the export named by the newest `human_labels` materialization, read from the artifact
    store (none before the first export, so the dataset can be materialized on its own). A human label for
    a corpus message replaces its label in place (same split); a new message joins the training split.
    """
    corpus = read_snapshot(artifact_store, seed_corpus.uri)
    with tempfile.TemporaryDirectory() as tmp:
        export = latest_human_labels_export(context.instance)
        examples, human = merge_human_labels(corpus, _human_rows(artifact_store, export, Path(tmp)))
    version = data_hash(examples)
    uri = write_snapshot(
        artifact_store, examples, f"datasets/intent_dataset/{version.split(':')[1][:16]}.jsonl"
    )
    counts = Counter(e.label for e in examples)
    provenance = Counter(e.meta.get("provenance", "corpus") for e in examples)
    splits = Counter(e.split for e in examples)
    rows = [{"intent": i, "rows": counts[i], "share": counts[i] / len(examples)} for i in INTENTS]
    context.log.info(f"{len(examples)} rows ({dict(provenance)}), splits {dict(splits)}")
    return dg.Output(
        DatasetSnapshot(uri=uri, data_version=version, rows=len(examples)),
        data_version=dg.DataVersion(version),
        metadata={
            "rows": len(examples),
            "provenance": dg.MetadataValue.json(dict(provenance)),
            "splits": dg.MetadataValue.json({str(k): v for k, v in splits.items()}),
            "human_labels": dg.MetadataValue.json(human),
            "data_version": version,
            "seed_corpus_version": seed_corpus.data_version,
            "snapshot_uri": dg.MetadataValue.url(uri) if uri.startswith("file://") else uri,
            "per_intent": md(markdown_table(rows, floats=3)),
        },
    )
