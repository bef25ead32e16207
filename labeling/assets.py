"""`labeling_batch` (prediction log → Label Studio) and `human_labels` (Label Studio → training data)."""

import json
from collections import Counter, defaultdict
from pathlib import Path

import dagster as dg

from labeling.label_config import OUT_OF_SCOPE, choice_result
from labeling.votes import majority_vote
from manga_assets.common import markdown_table, md
from manga_intent.active_learning import STRATEGIES, select_batch
from resources.label_studio import LabelStudioResource, LabelStudioUnavailable
from resources.paths import manga_home
from serving.prediction_log import default_log_uri, open_prediction_log

HUMAN_LABELS_FILE = "label_studio.jsonl"


class PredictionLogResource(dg.ConfigurableResource):
    """The service's prediction log: a SQLite path or s3://bucket/prefix (default $MANGA_HOME/predictions.sqlite)."""

    uri: str = ""

    def open(self):
        return open_prediction_log(self.uri or default_log_uri())


class LabelingBatchConfig(dg.Config):
    k: int = 200
    strategy: str = "margin"
    """margin (breaking ties, default), least_confidence or entropy."""
    recent: int = 20_000
    """Consider the most recent N predictions."""


@dg.asset(group_name="labeling", kinds={"labelstudio"})
def labeling_batch(
    context: dg.AssetExecutionContext, config: LabelingBatchConfig, prediction_log: PredictionLogResource,
    label_studio: LabelStudioResource,
) -> dg.MaterializeResult:
    """The K most informative logged messages, balanced over confusions, imported with the model's guess.

    Messages already in the project (same normalised text) are never imported again.
    """
    if config.strategy not in STRATEGIES:
        raise dg.Failure(f"unknown strategy {config.strategy!r}; choose from {STRATEGIES}")
    rows = prediction_log.open().read_since(0)[-config.recent:]
    project_id = label_studio.ensure_project()
    existing = label_studio.existing_message_keys(project_id)
    batch = select_batch(rows, config.k, strategy=config.strategy, exclude_keys=existing)
    tasks = [{
        "data": {"text": row["text"], "message_key": row["message_key"], "channel": row["channel"],
                 "prediction_id": row["id"], "predicted_intent": row["intent"], "model_version": row["model_version"],
                 "uncertainty": round(row["uncertainty"], 4), "strategy": row["strategy"]},
        "predictions": [{"model_version": row["model_version"], "score": row["confidence"],
                         "result": [choice_result("intent", OUT_OF_SCOPE if row["is_ood"] else row["intent"])]}],
    } for row in batch]
    task_ids = label_studio.import_tasks(project_id, tasks)
    groups = Counter(row["group"] for row in batch)
    context.log.info(f"imported {len(task_ids)} tasks into project {project_id} ({len(existing)} were already there)")
    return dg.MaterializeResult(metadata={
        "imported": len(task_ids), "candidates": len(rows), "already_in_project": len(existing),
        "strategy": config.strategy, "project": dg.MetadataValue.url(label_studio.project_url(project_id)),
        "confusion_groups": md(markdown_table([{"predicted|runner-up": g, "messages": n}
                                               for g, n in groups.most_common()])),
        "sample": md(markdown_table([{"text": r["text"][:80], "predicted": r["intent"],
                                      "confidence": r["confidence"], "uncertainty": r["uncertainty"]}
                                     for r in batch[:10]], floats=3)),
    })


def human_labels_dir() -> Path:
    return manga_home() / "human_labels"


@dg.asset(group_name="labeling", kinds={"labelstudio", "jsonl"})
def human_labels(context: dg.AssetExecutionContext, label_studio: LabelStudioResource) -> dg.MaterializeResult:
    """Completed Label Studio annotations → one label per message by majority vote, with provenance.

    Writes the agreed labels where `intent_dataset` merges them; ties and out-of-scope answers go to
    a review file instead. Label Studio down → the previous export stays in place (no label lost)
    and the materialization says so.
    """
    out_dir = human_labels_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / HUMAN_LABELS_FILE
    try:
        label_studio.ping()
        project_id = label_studio.ensure_project()
        annotations = label_studio.completed_annotations(project_id)
    except LabelStudioUnavailable as exc:
        kept = sum(1 for _ in target.open()) if target.exists() else 0
        context.log.warning(f"{exc}; keeping the previous export ({kept} labels)")
        return dg.MaterializeResult(metadata={"label_studio": f"unreachable: {exc}", "labels_kept_from_last_export": kept})
    by_task: dict[int, list[dict]] = defaultdict(list)
    for annotation in annotations:
        by_task[annotation["task_id"]].append(annotation)
    agreed, review = [], []
    for task_id, items in sorted(by_task.items()):
        vote = majority_vote(items)
        row = {"text": items[0]["text"], "task_id": task_id, "message_key": items[0]["message_key"],
               "provenance": "human", **{k: vote[k] for k in ("votes", "annotators", "agreement", "disagreement")}}
        if vote["label"] is None or vote["label"] == OUT_OF_SCOPE:
            review.append({**row, "reason": "tie" if vote["tie"] else "out_of_scope"})
        else:
            agreed.append({**row, "label": vote["label"], "secondary": vote["secondary"]})
    tmp = target.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in agreed), encoding="utf-8")
    tmp.replace(target)  # atomic: intent_dataset never reads a half-written export
    review_dir = manga_home() / "human_review"
    review_dir.mkdir(exist_ok=True)
    (review_dir / "label_studio_review.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in review), encoding="utf-8")
    per_intent = Counter(r["label"] for r in agreed)
    context.log.info(f"{len(agreed)} agreed labels, {len(review)} for review, from {len(annotations)} annotations")
    return dg.MaterializeResult(metadata={
        "labelled_messages": len(agreed), "annotations": len(annotations),
        "disagreements": sum(r["disagreement"] for r in agreed) + sum(r["disagreement"] for r in review),
        "ties_or_out_of_scope": len(review), "export": str(target),
        "max_annotation_id": max((a["annotation_id"] for a in annotations), default=0),
        "per_intent": md(markdown_table([{"intent": k, "labels": v} for k, v in per_intent.most_common()])),
    })
