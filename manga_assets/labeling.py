"""Labelling assets: `labeling_batch` and `audit_batch` (prediction log → Label Studio), `human_labels`
(Label Studio → training data) and `audit_labels` (the random slice's labels → unbiased monitoring).
"""

import json
import tempfile
from collections import Counter
from pathlib import Path

import dagster as dg

from labeling.client import LabelStudioUnavailable
from labeling.importer import import_once
from labeling.label_config import OUT_OF_SCOPE
from labeling.votes import aggregate_annotations
from manga_assets.manifests import AuditExport, HumanLabelsExport
from manga_assets.metadata import markdown_table, md
from manga_intent.active_learning import STRATEGIES, select_batch
from manga_intent.audit import in_audit_slice, segments_of
from manga_intent.data import normalized_key
from manga_intent.poisoning import cap_per_source, screen_injections
from resources.label_studio import LabelStudioResource
from resources.prediction_log import PredictionLogResource
from resources.storage import ArtifactStore


class LabelingBatchConfig(dg.Config):
    k: int = 200
    strategy: str = "margin"
    """margin (breaking ties, default), least_confidence or entropy."""
    recent: int = 20_000
    """Consider the most recent N predictions (read newest-first by the log, never a full scan)."""
    segment: str = ""
    """Only messages of this segment (e.g. `language:jp_en`): the decision tree's targeted re-label sweep."""
    max_client_share: float = 0.05
    """No client may supply more than this share of the candidate pool."""


def _guarded_candidates(context, rows: list[dict], max_client_share: float) -> tuple[list[dict], dict]:
    """Per-client cap, then drop injected instructions; returns (candidates, counts for metadata)."""
    capped = cap_per_source(rows, max_client_share, max(len(rows), 1))
    screened = screen_injections(capped.rows)
    if screened.dropped:
        context.log.warning(
            f"{len(screened.dropped)} message(s) flagged as injected instructions, not labelled"
        )
    counts = {
        "capped_per_client": dict(capped.capped),
        "flagged_injections": len(screened.dropped),
        "flag_reasons": dict(screened.reasons),
    }
    return screened.kept, counts


def _import_or_fail(client, ledger, rows: list[dict], purpose: str, run_id: str):
    """`import_once`, with Label Studio being unavailable (unreachable, 401, 5xx) a clear failure of the run:
    nothing was imported and this run's reservations were released, so a later run imports these messages."""
    try:
        return import_once(client, ledger, rows, purpose=purpose, run_id=run_id)
    except LabelStudioUnavailable as exc:
        raise dg.Failure(
            f"{exc}; nothing imported, {len(rows)} message(s) left for the next run",
            metadata={"selected": len(rows), "purpose": purpose},
        ) from None


@dg.asset(group_name="labeling", kinds={"labelstudio"})
def labeling_batch(
    context: dg.AssetExecutionContext,
    config: LabelingBatchConfig,
    prediction_log: PredictionLogResource,
    label_studio: LabelStudioResource,
) -> dg.MaterializeResult:
    """The K most informative recent messages, balanced over confusions, imported with the model's guess.

    A message is imported at most once, even by parallel runs (ledger + task data); messages flagged as
    injected instructions never reach labellers; one client cannot fill the pool.
    """
    if config.strategy not in STRATEGIES:
        raise dg.Failure(f"unknown strategy {config.strategy!r}; choose from {STRATEGIES}")
    rows = prediction_log.open().read_recent(config.recent)
    if config.segment:
        rows = [r for r in rows if config.segment in segments_of(r["text"], r["channel"], r["intent"])]
    candidates, guard = _guarded_candidates(context, rows, config.max_client_share)
    client = label_studio.get_client()
    ledger = label_studio.get_ledger()
    exclude = ledger.keys(client.project_title)
    batch = select_batch(candidates, config.k, strategy=config.strategy, exclude_keys=exclude)
    purpose = "segment_relabel" if config.segment else "active_learning"
    result = _import_or_fail(client, ledger, batch, purpose, context.run_id)
    groups = Counter(row["group"] for row in batch)
    context.log.info(
        f"imported {result.imported} tasks into project {result.project_id}; skipped {result.skipped_in_project} "
        f"already in the project and {result.skipped_reserved} reserved by another run"
    )
    return dg.MaterializeResult(
        metadata={
            "imported": result.imported,
            "candidates": len(rows),
            "already_in_project": max(len(exclude), result.skipped_in_project),
            "reserved_by_another_run": result.skipped_reserved,
            "strategy": config.strategy,
            "segment": config.segment or "all",
            "guards": dg.MetadataValue.json(guard),
            "project": dg.MetadataValue.url(client.project_url(result.project_id)),
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


class AuditBatchConfig(dg.Config):
    share: float = 0.02
    """Share of traffic sampled at random (by request id) for human audit labels."""
    recent: int = 20_000
    max_tasks: int = 400


@dg.asset(group_name="labeling", kinds={"labelstudio"})
def audit_batch(
    context: dg.AssetExecutionContext,
    config: AuditBatchConfig,
    prediction_log: PredictionLogResource,
    label_studio: LabelStudioResource,
) -> dg.MaterializeResult:
    """A uniformly random slice of recent traffic for unbiased accuracy, imported WITHOUT the model's guess."""
    rows = [
        r
        for r in prediction_log.open().read_recent(config.recent)
        if in_audit_slice(r["request_id"], config.share)
    ]
    screened = screen_injections(rows)  # an injection is still a message nobody should be asked to act on
    picked, seen = [], set()
    for row in screened.kept:
        key = normalized_key(row["text"])
        if key and key not in seen:
            seen.add(key)
            picked.append({**row, "message_key": key})
    picked = picked[-config.max_tasks :]
    client, ledger = label_studio.get_client(), label_studio.get_ledger()
    result = _import_or_fail(client, ledger, picked, "audit", context.run_id)
    return dg.MaterializeResult(
        metadata={
            "imported": result.imported,
            "sampled": len(rows),
            "flagged_injections": len(screened.dropped),
            "share": config.share,
            "project": dg.MetadataValue.url(client.project_url(result.project_id)),
        }
    )


def latest_manifest(instance: dg.DagsterInstance, asset: str, cls):
    """The manifest recorded by an asset's newest materialization (None before the first)."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    metadata = records[0].asset_materialization.metadata if records else {}
    return cls.from_dict(metadata["manifest"].value) if "manifest" in metadata else None


def latest_human_labels_export(instance: dg.DagsterInstance) -> HumanLabelsExport | None:
    """The export recorded by the newest `human_labels` materialization (None before the first)."""
    return latest_manifest(instance, "human_labels", HumanLabelsExport)


def _put_jsonl(store: ArtifactStore, rows: list[dict], key: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return store.put_file(path, key)


def _kept_previous(context, exc) -> dg.MaterializeResult:
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


@dg.asset(group_name="labeling", kinds={"labelstudio", "jsonl"})
def human_labels(
    context: dg.AssetExecutionContext,
    label_studio: LabelStudioResource,
    artifact_store: ArtifactStore,
) -> dg.MaterializeResult:
    """Completed Label Studio annotations → one label per message by majority vote of annotators, with provenance.

    The agreed labels are written to the artifact store and their URI recorded in this materialization's
    `manifest`, which `intent_dataset` reads; ties and out-of-scope answers go to a review file instead.
    Label Studio down (or refusing the token, or failing) → the previous export is passed on. Fewer labels
    than the last export (a renamed or emptied project) → the asset FAILS with both counts, so the last good
    export stays the one training reads.
    """
    client = label_studio.get_client()
    try:
        client.ping()
        annotations = client.completed_annotations(client.ensure_project())
    except LabelStudioUnavailable as exc:
        return _kept_previous(context, exc)
    agreed, review = aggregate_annotations(annotations, OUT_OF_SCOPE)
    previous = latest_human_labels_export(context.instance)
    if previous is not None and len(agreed) < previous.labels:
        raise dg.Failure(
            f"Label Studio project {client.project_title!r} now yields {len(agreed)} agreed labels, fewer than "
            f"the {previous.labels} of the last export: refusing to shrink the training labels. The last "
            "export stays in use; check the project (renamed, emptied, or tasks deleted).",
            metadata={
                "labels_now": len(agreed),
                "labels_last_export": previous.labels,
                "last_export": previous.uri,
            },
        )
    newest = max((a["annotation_id"] for a in annotations), default=0)
    export = HumanLabelsExport(
        uri=_put_jsonl(artifact_store, agreed, f"human_labels/label_studio-upto-{newest}.jsonl"),
        labels=len(agreed),
        max_annotation_id=newest,
        review_uri=_put_jsonl(artifact_store, review, f"human_labels/review-upto-{newest}.jsonl"),
    )
    per_intent = Counter(r["label"] for r in agreed)
    annotators = {str(a["annotator"]) for a in annotations}
    context.log.info(
        f"{len(agreed)} agreed labels, {len(review)} for review, from {len(annotations)} annotations "
        f"by {len(annotators)} annotator(s)"
    )
    return dg.MaterializeResult(
        metadata={
            "labelled_messages": len(agreed),
            "annotations": len(annotations),
            "annotators": len(annotators),
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


@dg.asset(group_name="labeling", kinds={"labelstudio", "jsonl"})
def audit_labels(
    context: dg.AssetExecutionContext,
    label_studio: LabelStudioResource,
    artifact_store: ArtifactStore,
) -> dg.MaterializeResult:
    """Human labels of the random audit slice, joined with what the model answered: the decision tree's input."""
    client = label_studio.get_client()
    try:
        client.ping()
        annotations = [
            a for a in client.completed_annotations(client.ensure_project()) if a["purpose"] == "audit"
        ]
    except LabelStudioUnavailable as exc:
        raise dg.Failure(f"{exc}; the previous audit export stays in use") from None
    agreed, review = aggregate_annotations(annotations, "__never__")  # out_of_scope is a valid audit answer
    by_key = {a["message_key"]: a["task_data"] for a in annotations}
    items = []
    for row in agreed:
        data = by_key[row["message_key"]]
        items.append(
            {
                "text": row["text"],
                "label": row["label"],
                "secondary": row["secondary"],
                "intent": data["predicted_intent"],
                "confidence": data["confidence"],
                "is_ood": data["is_ood"],
                "secondary_intent": data.get("secondary_intent"),
                "probs": data.get("probs") or {},
                "channel": data.get("channel"),
                "ts": data.get("ts"),
                "model_version": data.get("model_version"),
                "prediction_id": data.get("prediction_id"),
            }
        )
    newest = max((a["annotation_id"] for a in annotations), default=0)
    export = AuditExport(
        uri=_put_jsonl(artifact_store, items, f"audit_labels/upto-{newest}.jsonl"),
        labels=len(items),
        max_annotation_id=newest,
    )
    return dg.MaterializeResult(
        metadata={
            "audited_messages": len(items),
            "ties": len(review),
            "manifest": dg.MetadataValue.json(export.as_dict()),
        }
    )
