"""`neuron_artifact` (the compiled serving artifact) and `golden_gate`, the check that crowns champions."""

import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np

from manga_assets.common import markdown_table, md
from manga_assets.partitions import seed_partitions
from manga_assets.shipped_data import GOLDEN, read_rows
from manga_intent.compiled import CompiledClassifier, compile_classifier, latency_profile, parity_max_abs_diff
from manga_intent.gate import REGRESSION_METHOD, evaluate_gate, per_intent_regressions
from manga_intent.labels import SEED_TRAFFIC_SHARES
from manga_intent.metrics import classification_report, rare_labels_from_shares
from manga_intent.model_io import load_trained
from resources.gate import GateSettings
from resources.mlflow_tracking import MlflowRegistry
from resources.model_settings import CompileSettings
from resources.storage import ArtifactStore


def golden_rows(settings: GateSettings) -> list[dict]:
    return read_rows(Path(settings.golden_path) if settings.golden_path else GOLDEN.path)


@dg.asset(group_name="serving", partitions_def=seed_partitions, kinds={"onnx", "neuron"})
def neuron_artifact(
    context: dg.AssetExecutionContext, trained_model: dict, calibrator: dict, artifact_store: ArtifactStore,
    compile_settings: CompileSettings, gate_settings: GateSettings, mlflow_registry: MlflowRegistry,
) -> dg.Output[dict]:
    """Neuron-traced graphs on an inf2/trn1 machine, an ONNX Runtime artifact elsewhere — same loader.

    Fails when compiled logits drift from eager logits by more than the parity tolerance. Registers
    the artifact as a new MLflow model version whose gate status is pending.
    """
    texts = [row["text"] for row in golden_rows(gate_settings)]
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, card = load_trained(artifact_store.get_dir(trained_model["model_uri"], Path(tmp) / "eager"))
        out = Path(tmp) / "compiled"
        manifest = compile_classifier(
            model, tokenizer, out, labels=card["labels"], temperature=calibrator["temperature"],
            ood_threshold=calibrator["ood_threshold"], max_length=card["recipe"]["max_length"],
            backend=compile_settings.backend, sequence_buckets=compile_settings.sequence_buckets,
        )
        compiled = CompiledClassifier(out)
        parity = parity_max_abs_diff(compiled, model, texts)
        if parity > compile_settings.parity_tolerance:
            raise dg.Failure(f"compiled logits differ from eager by {parity:.2e} > {compile_settings.parity_tolerance}",
                             metadata={"max_abs_logit_diff": parity})
        latency = latency_profile(compiled, texts, warmup=compile_settings.latency_warmup)
        uri = artifact_store.put_dir(out, f"compiled/{context.run_id}/seed={trained_model['seed']}")
    version = mlflow_registry.register_candidate(
        trained_model["mlflow_run_id"], uri,
        {"seed": str(trained_model["seed"]), "backend": manifest["backend"], "model_uri": trained_model["model_uri"],
         "dagster_run_id": context.run_id,
         "train_label_shares": json.dumps(trained_model.get("train_label_shares", {}))},
    )
    context.log.info(f"{manifest['backend']} artifact: parity {parity:.2e}, P95 {latency['p95_ms']:.2f} ms, "
                     f"registered as version {version}")
    result = {"artifact_uri": uri, "backend": manifest["backend"], "model_version": version, "latency": latency,
              "parity_max_abs_diff": parity, "seed": trained_model["seed"]}
    return dg.Output(result, metadata={
        "artifact_uri": uri, "backend": manifest["backend"], "mlflow_model_version": version,
        "max_abs_logit_diff_vs_eager": parity,
        "latency_p50_ms": latency["p50_ms"], "latency_p95_ms": latency["p95_ms"], "latency_p99_ms": latency["p99_ms"],
        "latency_messages": latency["n"], "manifest": dg.MetadataValue.json(result),
    })


def golden_predictions(compiled: CompiledClassifier, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    index = {label: i for i, label in enumerate(compiled.labels)}
    y_true = np.array([index[row["label"]] for row in rows])
    return y_true, compiled.probabilities([row["text"] for row in rows])


@dg.asset_check(asset=neuron_artifact, blocking=True, partitions_def=seed_partitions)
def golden_gate(
    context: dg.AssetCheckExecutionContext, neuron_artifact: dict, artifact_store: ArtifactStore,
    gate_settings: GateSettings, mlflow_registry: MlflowRegistry,
) -> dg.AssetCheckResult:
    """Evaluate the calibrated, compiled model on the golden set; only a pass moves the `champion` alias.

    Fails unless accuracy, rare-class accuracy and P95 latency meet the thresholds and no intent is
    significantly worse than the current champion's (exact McNemar per intent, Holm-adjusted). A
    failing model is tagged `gate=rejected` with its reasons; the champion stays where it was.
    """
    rows = golden_rows(gate_settings)
    thresholds = gate_settings.thresholds()
    version = neuron_artifact["model_version"]
    with tempfile.TemporaryDirectory() as tmp:
        candidate = CompiledClassifier(artifact_store.get_dir(neuron_artifact["artifact_uri"], Path(tmp) / "candidate"))
        y_true, probs = golden_predictions(candidate, rows)
        rare = rare_labels_from_shares(SEED_TRAFFIC_SHARES, gate_settings.rare_share_threshold)
        report = classification_report(y_true, probs, candidate.labels, rare_labels=rare, n_boot=1000)
        champion = mlflow_registry.champion()
        regressions = None
        if champion is not None and str(champion.version) != str(version):
            reference = CompiledClassifier(artifact_store.get_dir(champion.source, Path(tmp) / "champion"))
            _, champion_probs = golden_predictions(reference, rows)
            regressions = per_intent_regressions(y_true, probs.argmax(1), champion_probs.argmax(1), candidate.labels,
                                                 thresholds.regression_alpha)
    verdict = evaluate_gate(accuracy=report["accuracy"], rare_accuracy=report["rare_class_accuracy"],
                            p95_latency_ms=neuron_artifact["latency"]["p95_ms"], thresholds=thresholds,
                            regressions=regressions)
    summary = {"gate_accuracy": f"{report['accuracy']:.4f}", "gate_rare_accuracy": f"{report['rare_class_accuracy']:.4f}",
               "gate_p95_ms": f"{neuron_artifact['latency']['p95_ms']:.2f}",
               "gate_compared_to": str(champion.version) if regressions is not None else "none"}
    if verdict.passed:
        mlflow_registry.promote(version, summary)
        context.log.info(f"version {version} passed the golden gate and is now {mlflow_registry.champion_alias}")
    else:
        mlflow_registry.reject(version, verdict.reasons, summary)
        context.log.warning(f"version {version} rejected: {'; '.join(verdict.reasons)}")
    metadata = {
        "verdict": "passed: promoted to champion" if verdict.passed else "rejected: champion unchanged",
        "model_version": version,
        "accuracy": report["accuracy"], "rare_class_accuracy": report["rare_class_accuracy"],
        "accuracy_ci95": dg.MetadataValue.json(report["ci95"]["accuracy"]),
        "p95_latency_ms": neuron_artifact["latency"]["p95_ms"], "ece_calibrated": report["ece"],
        "checks": md(markdown_table(verdict.checks)),
        "regression_method": REGRESSION_METHOD,
        "reasons": dg.MetadataValue.json(verdict.reasons),
        "golden_messages": len(rows),
    }
    if regressions is not None:
        metadata["per_intent_vs_champion"] = md(markdown_table(regressions, floats=3))
        metadata["champion_version"] = str(champion.version)
    return dg.AssetCheckResult(passed=verdict.passed, metadata=metadata,
                               severity=dg.AssetCheckSeverity.ERROR)
