"""`golden_gate`: the blocking check on `neuron_artifact` that decides which model becomes the champion."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np

from manga_assets.manifests import CompiledModel
from manga_assets.metadata import markdown_table, md
from manga_assets.neuron_artifact import neuron_artifact
from manga_assets.partitions import seed_partitions
from manga_intent.compiled import CompiledClassifier
from manga_intent.gate import REGRESSION_METHOD, judge_candidate
from manga_intent.metrics import rare_labels_from_shares
from manga_intent.taxonomy import SEED_TRAFFIC_SHARES
from resources.gate_settings import GateSettings
from resources.mlflow_registry import MlflowRegistry
from resources.storage import ArtifactStore


def golden_probabilities(compiled: CompiledClassifier, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    index = {label: i for i, label in enumerate(compiled.labels)}
    y_true = np.array([index[row["label"]] for row in rows])
    return y_true, compiled.probabilities([row["text"] for row in rows])


@dg.asset_check(asset=neuron_artifact, blocking=True, partitions_def=seed_partitions)
def golden_gate(
    context: dg.AssetCheckExecutionContext,
    neuron_artifact: CompiledModel,
    artifact_store: ArtifactStore,
    gate_settings: GateSettings,
    mlflow_registry: MlflowRegistry,
) -> dg.AssetCheckResult:
    """Evaluate the calibrated, compiled model on the golden set; only a pass moves the `champion` alias.

    Fails unless accuracy, rare-class accuracy and P95 latency meet the thresholds and no intent is
    significantly worse than the current champion's (exact McNemar per intent, Holm-adjusted). A
    failing model is tagged `gate=rejected` with its reasons; the champion stays where it was.
    """
    rows = gate_settings.golden_rows()
    version = neuron_artifact.model_version
    with tempfile.TemporaryDirectory() as tmp:
        candidate = CompiledClassifier(
            artifact_store.get_dir(neuron_artifact.artifact_uri, Path(tmp) / "candidate")
        )
        y_true, probs = golden_probabilities(candidate, rows)
        champion = mlflow_registry.champion()
        champion_probs = None
        if champion is not None and str(champion.version) != str(version):
            reference = CompiledClassifier(artifact_store.get_dir(champion.source, Path(tmp) / "champion"))
            champion_probs = golden_probabilities(reference, rows)[1]
    judgement = judge_candidate(
        y_true,
        probs,
        candidate.labels,
        rare_labels=rare_labels_from_shares(SEED_TRAFFIC_SHARES, gate_settings.rare_share_threshold),
        p95_latency_ms=neuron_artifact.latency["p95_ms"],
        thresholds=gate_settings.thresholds(),
        champion_probs=champion_probs,
    )
    report, verdict, regressions = judgement.report, judgement.verdict, judgement.regressions
    summary = {
        "gate_accuracy": f"{report['accuracy']:.4f}",
        "gate_rare_accuracy": f"{report['rare_class_accuracy']:.4f}",
        "gate_p95_ms": f"{neuron_artifact.latency['p95_ms']:.2f}",
        "gate_compared_to": str(champion.version) if regressions is not None else "none",
    }
    if verdict.passed:
        mlflow_registry.promote(version, summary)
        context.log.info(
            f"version {version} passed the golden gate and is now {mlflow_registry.champion_alias}"
        )
    else:
        mlflow_registry.reject(version, verdict.reasons, summary)
        context.log.warning(f"version {version} rejected: {'; '.join(verdict.reasons)}")
    metadata = {
        "verdict": "passed: promoted to champion" if verdict.passed else "rejected: champion unchanged",
        "model_version": version,
        "accuracy": report["accuracy"],
        "rare_class_accuracy": report["rare_class_accuracy"],
        "accuracy_ci95": dg.MetadataValue.json(report["ci95"]["accuracy"]),
        "p95_latency_ms": neuron_artifact.latency["p95_ms"],
        "ece_calibrated": report["ece"],
        "checks": md(markdown_table(verdict.checks)),
        "regression_method": REGRESSION_METHOD,
        "reasons": dg.MetadataValue.json(verdict.reasons),
        "golden_messages": len(rows),
    }
    if regressions is not None:
        metadata["per_intent_vs_champion"] = md(markdown_table(regressions, floats=3))
        metadata["champion_version"] = str(champion.version)
    return dg.AssetCheckResult(passed=verdict.passed, metadata=metadata, severity=dg.AssetCheckSeverity.ERROR)
