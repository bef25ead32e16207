"""The monitoring baseline every champion carries, and the decision tree's remedies as assets.

`monitoring_baseline` (part of every retrain) measures the new model the way monitoring will later
measure production — predicted-intent shares, accuracy per seed segment, ECE, OOD precision, multi-intent
recall on its validation split, single and batched P95 latency and a tokenizer fingerprint of its compiled
artifact — and stores them as the `monitoring_baseline` tag of its registry version. The remedies each
load → call one core function → store: `calibrator_refit` (temperature refit on the last 14 days of audit
labels; hot swap through the registry tag the service follows), `serving_tuning`,
`intent_discovery` and `multi_intent_pairs` (review batches into Label Studio). `golden_set_audit` is a
gate report and lives beside the gate's other golden readers (`manga_assets.golden_set_audit`).
"""

import json
import tempfile
import time
from pathlib import Path

import dagster as dg

from labeling.importer import import_once
from manga_assets.labeling import latest_manifest
from manga_assets.manifests import AuditExport, Calibration, CompiledModel, DatasetSnapshot, TrainedModel
from manga_assets.metadata import markdown_table, md
from manga_assets.partitions import seed_partitions
from manga_assets.snapshots import dataset_splits, read_snapshot
from manga_intent.audit import audit_metrics
from manga_intent.compiled import CompiledClassifier
from manga_intent.data import normalized_key
from manga_intent.drift_test import predicted_shares
from manga_intent.poisoning import screen_injections
from manga_intent.remedies import (
    discovery_candidates,
    latency_p95_ms,
    pair_candidates,
    refit_temperature,
    tokenizer_fingerprint,
)
from manga_intent.shipped_data import ood_fitting_pool
from manga_intent.taxonomy import INTENTS
from resources.label_studio import LabelStudioResource
from resources.mlflow_registry import MlflowRegistry
from resources.prediction_log import PredictionLogResource
from resources.storage import ArtifactStore

BASELINE_TAG = "monitoring_baseline"
TEMPERATURE_TAG = "temperature_override"


def _rate_value(rate) -> float:
    return rate.value if rate is not None and rate.n else float("nan")


def _items(model: CompiledClassifier, examples) -> list[dict]:
    predictions = model.classify([e.text for e in examples], top_k=len(model.labels))
    items = []
    for example, p in zip(examples, predictions):
        runner = p.top[1] if len(p.top) > 1 else None
        items.append(
            {
                "text": example.text,
                "label": example.label,
                "secondary": example.meta.get("secondary"),
                "intent": p.intent,
                "confidence": p.confidence,
                "is_ood": p.is_ood,
                "secondary_intent": runner["intent"] if runner and runner["confidence"] >= 0.25 else None,
                "channel": example.meta.get("channel"),
            }
        )
    return items


@dg.asset(group_name="monitoring", partitions_def=seed_partitions, kinds={"python", "mlflow"})
def monitoring_baseline(
    context: dg.AssetExecutionContext,
    neuron_artifact: CompiledModel,
    calibrator: Calibration,
    intent_dataset: DatasetSnapshot,
    trained_model: TrainedModel,
    artifact_store: ArtifactStore,
    mlflow_registry: MlflowRegistry,
) -> dg.MaterializeResult:
    """The champion-to-be on its validation split, measured as monitoring measures production."""
    splits = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri))
    with tempfile.TemporaryDirectory() as tmp:
        model = CompiledClassifier(artifact_store.get_dir(neuron_artifact.artifact_uri, Path(tmp)))
        items = _items(model, splits.val)
        ood_texts = [r["text"] for r in ood_fitting_pool()]
        ood_flags = [p.is_ood for p in model.classify(ood_texts)]
        texts = [e.text for e in splits.val][:64]
        batched = latency_p95_ms(model.classify, texts, 16)
        fingerprint = tokenizer_fingerprint(model.tokenizer)
    metrics = audit_metrics(items)
    in_domain_flags = sum(i["is_ood"] for i in items)
    flagged = in_domain_flags + sum(ood_flags)
    baseline = {
        "model_version": neuron_artifact.model_version,
        "val_predicted_shares": predicted_shares([i["intent"] for i in items if not i["is_ood"]], INTENTS),
        "accuracy": _rate_value(metrics["accuracy"]),
        "segment_accuracy": {s: r.value for s, r in metrics["segment_accuracy"].items() if r.n >= 10},
        "ece": metrics["ece"],
        "ood_precision": sum(ood_flags) / flagged if flagged else 1.0,
        "multi_intent_recall": _rate_value(metrics["multi_intent_recall"]),
        "p95_latency_ms": neuron_artifact.latency["p95_ms"],
        "p95_batched_latency_ms": batched,
        "tokenizer_fingerprint": fingerprint,
        "temperature": calibrator.temperature,
        "validation_rows": len(items),
    }
    mlflow_registry.client().set_model_version_tag(
        mlflow_registry.model_name, neuron_artifact.model_version, BASELINE_TAG, json.dumps(baseline)
    )
    return dg.MaterializeResult(
        metadata={
            "baseline": dg.MetadataValue.json(baseline),
            "segments": md(
                markdown_table(
                    [
                        {"segment": s, "val_accuracy": v}
                        for s, v in sorted(baseline["segment_accuracy"].items())
                    ],
                    floats=3,
                )
            ),
        }
    )


def champion_compiled_dir(mlflow_registry: MlflowRegistry, champion, into: Path) -> Path:
    """The champion's compiled artifact, downloaded from its registry version (checksum verified)."""
    registry = mlflow_registry.registry()
    return registry.compiled_dir(registry.download(str(champion.version), into))


def _champion_artifact(mlflow_registry: MlflowRegistry, artifact_store: ArtifactStore, into: Path):
    champion = mlflow_registry.champion()
    if champion is None:
        raise dg.Failure("no champion in the registry")
    return champion, CompiledClassifier(champion_compiled_dir(mlflow_registry, champion, into))


class CalibratorRefitConfig(dg.Config):
    days: int = 14
    """The seed: re-fit temperature on the last 14 days."""


@dg.asset(group_name="monitoring", kinds={"python", "mlflow"})
def calibrator_refit(
    context: dg.AssetExecutionContext,
    config: CalibratorRefitConfig,
    artifact_store: ArtifactStore,
    mlflow_registry: MlflowRegistry,
) -> dg.MaterializeResult:
    """E: re-fit the temperature on recent audit labels; if ECE recovers, hot-swap it (no model redeploy).

    The swap is the champion version's `temperature_override` tag, which the service applies on its next
    registry poll without reloading the model. If ECE does not recover, `recovered=False` is recorded and
    the decision sensor starts a full retrain (E → I).
    """
    export = latest_manifest(context.instance, "audit_labels", AuditExport)
    if export is None:
        raise dg.Failure("no audit_labels export yet")
    items = [
        json.loads(line)
        for line in artifact_store.get_file(export.uri, Path(tempfile.mkdtemp()) / "a.jsonl")
        .read_text()
        .splitlines()
        if line.strip()
    ]
    since = time.time() - config.days * 86400
    recent = [i for i in items if (i.get("ts") or 0) >= since] or items
    champion = mlflow_registry.champion()
    if champion is None:
        raise dg.Failure("no champion in the registry")
    baseline = json.loads(champion.tags.get(BASELINE_TAG, "{}"))
    current = float(champion.tags.get(TEMPERATURE_TAG) or baseline.get("temperature") or 1.0)
    refit = refit_temperature(recent, INTENTS, current)
    target = float(baseline.get("ece", 0.0)) + 0.01
    recovered = refit.ece_after < target
    if recovered:
        mlflow_registry.client().set_model_version_tag(
            mlflow_registry.model_name, champion.version, TEMPERATURE_TAG, f"{refit.temperature:.6f}"
        )
    context.log.info(
        f"ECE {refit.ece_before:.4f} -> {refit.ece_after:.4f} (target < {target:.4f}); "
        f"{'hot-swapped T=' + format(refit.temperature, '.4f') if recovered else 'not recovered: retrain'}"
    )
    return dg.MaterializeResult(
        metadata={
            "recovered": recovered,
            "model_version": str(champion.version),
            "refit": dg.MetadataValue.json(refit.as_dict()),
            "ece_target": target,
        }
    )


class ServingTuningConfig(dg.Config):
    batch_sizes: list[int] = [1, 2, 4, 8, 16, 32]
    budget_ms: float = 15.0
    recent: int = 500


@dg.asset(group_name="monitoring", kinds={"python"})
def serving_tuning(
    context: dg.AssetExecutionContext,
    config: ServingTuningConfig,
    artifact_store: ArtifactStore,
    mlflow_registry: MlflowRegistry,
    prediction_log: PredictionLogResource,
) -> dg.MaterializeResult:
    """N: per-message P95 of the champion's artifact at each batch size on recent traffic; the largest
    batch within the P95 budget becomes the recommended `max_batch` (timeout: its batch latency)."""
    texts = [r["text"] for r in prediction_log.open().read_recent(config.recent)] or ["where is my order"]
    with tempfile.TemporaryDirectory() as tmp:
        _, model = _champion_artifact(mlflow_registry, artifact_store, Path(tmp))
        rows = [
            {"batch_size": b, "p95_ms_per_message": latency_p95_ms(model.classify, texts[:64], b, 2)}
            for b in config.batch_sizes
        ]
    within = [r for r in rows if r["p95_ms_per_message"] * r["batch_size"] <= config.budget_ms] or rows[:1]
    best = within[-1]
    return dg.MaterializeResult(
        metadata={
            "recommended_max_batch": best["batch_size"],
            "recommended_timeout_ms": round(best["p95_ms_per_message"] * best["batch_size"], 2),
            "profile": md(markdown_table(rows, floats=3)),
        }
    )


class ReviewBatchConfig(dg.Config):
    n: int = 200
    recent: int = 20_000


def _import_review(context, label_studio: LabelStudioResource, rows: list[dict], purpose: str):
    screened = screen_injections(rows)
    keyed, seen = [], set()
    for row in screened.kept:
        key = normalized_key(row["text"])
        if key and key not in seen:
            seen.add(key)
            keyed.append({**row, "message_key": key})
    result = import_once(
        label_studio.get_client(), label_studio.get_ledger(), keyed, purpose=purpose, run_id=context.run_id
    )
    return result, len(screened.dropped)


@dg.asset(group_name="monitoring", kinds={"labelstudio", "scikitlearn"})
def intent_discovery(
    context: dg.AssetExecutionContext,
    config: ReviewBatchConfig,
    prediction_log: PredictionLogResource,
    label_studio: LabelStudioResource,
) -> dg.MaterializeResult:
    """G → P: cluster recent OOD-flagged and unsure messages; 200 candidates across clusters for human review."""
    rows = [
        r for r in prediction_log.open().read_recent(config.recent) if r["is_ood"] or r["confidence"] < 0.6
    ]
    candidates = discovery_candidates(screen_injections(rows).kept, config.n)
    result, flagged = _import_review(context, label_studio, candidates, "discovery")
    sizes = {}
    for c in candidates:
        sizes[c["cluster"]] = c["cluster_size"]
    return dg.MaterializeResult(
        metadata={
            "candidates": len(candidates),
            "imported": result.imported,
            "clusters": md(markdown_table([{"cluster": k, "messages": v} for k, v in sorted(sizes.items())])),
            "flagged_injections": flagged,
        }
    )


@dg.asset(group_name="monitoring", kinds={"labelstudio"})
def multi_intent_pairs(
    context: dg.AssetExecutionContext,
    config: ReviewBatchConfig,
    prediction_log: PredictionLogResource,
    label_studio: LabelStudioResource,
) -> dg.MaterializeResult:
    """H → Q: sample recent messages that look like two intents, balanced over pairs, for the multi-intent set."""
    candidates = pair_candidates(prediction_log.open().read_recent(config.recent), config.n)
    result, flagged = _import_review(context, label_studio, candidates, "multi_intent")
    pairs = {}
    for c in candidates:
        pairs[c["pair"]] = pairs.get(c["pair"], 0) + 1
    return dg.MaterializeResult(
        metadata={
            "candidates": len(candidates),
            "imported": result.imported,
            "pairs": md(markdown_table([{"pair": k, "messages": v} for k, v in sorted(pairs.items())])),
            "flagged_injections": flagged,
        }
    )
