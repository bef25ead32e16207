"""`labeling_batch` (prediction log → Label Studio) and `human_labels` (Label Studio → training data)."""

import json
import tempfile
from collections import Counter
from pathlib import Path

import dagster as dg

from labeling.client import LabelStudioUnavailable
from labeling.label_config import OUT_OF_SCOPE
from labeling.tasks import label_studio_tasks
from labeling.votes import aggregate_annotations
from manga_assets.manifests import HumanLabelsExport
from manga_assets.metadata import markdown_table, md
from manga_intent.active_learning import STRATEGIES, select_batch
from resources.label_studio import LabelStudioResource
from resources.prediction_log import PredictionLogResource
from resources.storage import ArtifactStore


class LabelingBatchConfig(dg.Config):
    k: int = 200
    strategy: str = "margin"
    """margin (breaking ties, default), least_confidence or entropy."""
    recent: int = 20_000
    """Consider the most recent N predictions."""


@dg.asset(group_name="labeling", kinds={"labelstudio"})
def labeling_batch(
    context: dg.AssetExecutionContext,
    config: LabelingBatchConfig,
    prediction_log: PredictionLogResource,
    label_studio: LabelStudioResource,
) -> dg.MaterializeResult:
    """The K most informative logged messages, balanced over confusions, imported with the model's guess.

    Messages already in the project (same normalised text) are never imported again.
    """
    if config.strategy not in STRATEGIES:
        raise dg.Failure(f"unknown strategy {config.strategy!r}; choose from {STRATEGIES}")
    rows = prediction_log.open().read_since(0)[-config.recent :]
    client = label_studio.get_client()
    project_id = client.ensure_project()
    existing = client.existing_message_keys(project_id)
    batch = select_batch(rows, config.k, strategy=config.strategy, exclude_keys=existing)
    task_ids = client.import_tasks(project_id, label_studio_tasks(batch))
    groups = Counter(row["group"] for row in batch)
    context.log.info(
        f"imported {len(task_ids)} tasks into project {project_id} ({len(existing)} were already there)"
    )
    return dg.MaterializeResult(
        metadata={
            "imported": len(task_ids),
            "candidates": len(rows),
            "already_in_project": len(existing),
            "strategy": config.strategy,
            "project": dg.MetadataValue.url(client.project_url(project_id)),
            "confusion_groups": md(
                markdown_table([{"predicted|runner-up": g, "messages": n} for g, n in groups.most_common()])
            ),
            "sample": md(
                markdown_table(
                    [
                        {
                            "text": r["text"][:80],
                            "predicted": r["intent"],
                            "confidence": r["confidence"],
                            "uncertainty": r["uncertainty"],
                        }
                        for r in batch[:10]
                    ],
                    floats=3,
                )
            ),
        }
    )


def latest_human_labels_export(instance: dg.DagsterInstance) -> HumanLabelsExport | None:
    """The export recorded by the newest `human_labels` materialization (None before the first)."""
    records = instance.fetch_materializations(dg.AssetKey("human_labels"), limit=1).records
    metadata = records[0].asset_materialization.metadata if records else {}
    return HumanLabelsExport.from_dict(metadata["manifest"].value) if "manifest" in metadata else None


def _put_jsonl(store: ArtifactStore, rows: list[dict], key: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return store.put_file(path, key)


@dg.asset(group_name="labeling", kinds={"labelstudio", "jsonl"})
def human_labels(
    context: dg.AssetExecutionContext,
    label_studio: LabelStudioResource,
    artifact_store: ArtifactStore,
) -> dg.MaterializeResult:
    """Completed Label Studio annotations → one label per message by majority vote, with provenance.

    The agreed labels are written to the artifact store and their URI recorded in this materialization's
    `manifest`, which `intent_dataset` reads; ties and out-of-scope answers go to a review file instead.
    Label Studio down → the previous export is passed on (no label lost) and the materialization says so.
    """
    client = label_studio.get_client()
    try:
        client.ping()
        annotations = client.completed_annotations(client.ensure_project())
    except LabelStudioUnavailable as exc:
        previous = latest_human_labels_export(context.instance) or HumanLabelsExport(uri=None, labels=0)
        kept = HumanLabelsExport(**{**previous.as_dict(), "source": "previous export"})
        context.log.warning(f"{exc}; keeping the previous export ({kept.labels} labels)")
        return dg.MaterializeResult(
            metadata={
                "label_studio": f"unreachable: {exc}",
                "labels_kept_from_last_export": kept.labels,
                "manifest": dg.MetadataValue.json(kept.as_dict()),
            },
        )
    agreed, review = aggregate_annotations(annotations, OUT_OF_SCOPE)
    newest = max((a["annotation_id"] for a in annotations), default=0)
    export = HumanLabelsExport(
        uri=_put_jsonl(artifact_store, agreed, f"human_labels/label_studio-upto-{newest}.jsonl"),
        labels=len(agreed),
        max_annotation_id=newest,
        review_uri=_put_jsonl(artifact_store, review, f"human_labels/review-upto-{newest}.jsonl"),
    )
    per_intent = Counter(r["label"] for r in agreed)
    context.log.info(
        f"{len(agreed)} agreed labels, {len(review)} for review, from {len(annotations)} annotations"
    )
    return dg.MaterializeResult(
        metadata={
            "labelled_messages": len(agreed),
            "annotations": len(annotations),
            "disagreements": sum(r["disagreement"] for r in agreed) + sum(r["disagreement"] for r in review),
            "ties_or_out_of_scope": len(review),
            "export": export.uri,
            "review": export.review_uri,
            "max_annotation_id": newest,
            "per_intent": md(
                markdown_table([{"intent": k, "labels": v} for k, v in per_intent.most_common()])
            ),
            "manifest": dg.MetadataValue.json(export.as_dict()),
        },
    )
