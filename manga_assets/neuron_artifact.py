"""`neuron_artifact`: the compiled serving artifact (Neuron graphs or ONNX Runtime), registered for the gate."""

import json
import tempfile
from pathlib import Path

import dagster as dg

from manga_assets.manifests import Calibration, CompiledModel, DatasetSnapshot, TrainedModel
from manga_assets.metadata import markdown_table, md
from manga_assets.partitions import seed_partitions
from manga_assets.snapshots import dataset_splits, read_snapshot
from manga_intent.calibrator_fit import ServingCalibration, shipped_ood_pools
from manga_intent.compiled import ParityError, build_artifact, served_graph
from manga_intent.model_io import load_trained
from resources.mlflow_registry import MlflowRegistry
from resources.model_settings import CompileSettings
from resources.storage import ArtifactStore


@dg.asset(group_name="serving", partitions_def=seed_partitions, kinds={"onnx", "neuron"})
def neuron_artifact(
    context: dg.AssetExecutionContext,
    trained_model: TrainedModel,
    calibrator: Calibration,
    intent_dataset: DatasetSnapshot,
    artifact_store: ArtifactStore,
    compile_settings: CompileSettings,
    mlflow_registry: MlflowRegistry,
) -> dg.Output[CompiledModel]:
    """Neuron-traced graphs on an inf2/trn1 machine, an ONNX Runtime artifact elsewhere — same loader.

    Fails when compiled logits drift from eager logits by more than the parity tolerance, checked (with a
    first latency profile) on the dataset's validation and test messages — never the golden set, which only
    the gate reads. With `quantize="auto"` an int8 graph is added and served only if it agrees with fp32 on
    the validation split, keeps the calibrated ECE, and keeps the OOD flag of the OOD validation pool the
    calibrator chose its detector on (ranking sensitive layers on the training split); the metadata shows
    every candidate and why the served graph was chosen. Registers the artifact as a new
    MLflow pyfunc model version whose gate status is pending.
    """
    splits = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri))
    texts = [e.text for e in splits.val + splits.test]
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, card = load_trained(
            artifact_store.get_dir(trained_model.model_uri, Path(tmp) / "eager")
        )
        serving = None  # the calibrator, OOD detector and routing policy go into the artifact
        if calibrator.calibration_uri:
            serving = ServingCalibration.load(
                artifact_store.get_dir(calibrator.calibration_uri, Path(tmp) / "calibration")
            )
        out = Path(tmp) / "compiled"
        try:
            built = build_artifact(
                model,
                tokenizer,
                out,
                labels=card["labels"],
                temperature=None if serving else calibrator.temperature,
                ood_threshold=None if serving else calibrator.ood_threshold,
                calibration=serving,
                check_texts=texts,
                max_length=card["recipe"]["max_length"],
                backend=compile_settings.backend,
                sequence_buckets=compile_settings.sequence_buckets,
                parity_tolerance=compile_settings.parity_tolerance,
                latency_warmup=compile_settings.latency_warmup,
                quantize=compile_settings.quantize,
                validation=[(e.text, e.label) for e in splits.val],
                calibration_texts=[e.text for e in splits.train],
                out_of_scope_texts=shipped_ood_pools().val_texts,  # as the calibrator chose its detector on
                quantization_guard=compile_settings.quantization_guard(),
            )
        except ParityError as exc:
            raise dg.Failure(str(exc), metadata={"max_abs_logit_diff": exc.max_abs_diff}) from None
        uri = artifact_store.put_dir(out, f"compiled/{context.run_id}/seed={trained_model.seed}")
        backend, latency = built.manifest["backend"], built.latency
        version = mlflow_registry.register_candidate(
            trained_model.mlflow_run_id,
            str(out),
            {
                "seed": str(trained_model.seed),
                "backend": backend,
                "data_version": trained_model.data_version,
                "dataset_uri": intent_dataset.uri,
                "synthetic_uri": trained_model.synthetic_uri,
                "model_uri": trained_model.model_uri,
                "artifact_uri": uri,
                "dagster_run_id": context.run_id,
                "train_label_shares": json.dumps(trained_model.train_label_shares),
                "serving_graph": served_graph(built.manifest),
            },
        )
    context.log.info(
        f"{backend} artifact: parity {built.parity_max_abs_diff:.2e}, P95 {latency['p95_ms']:.2f} ms, "
        f"registered as version {version}"
    )
    result = CompiledModel(
        artifact_uri=uri,
        backend=backend,
        model_version=version,
        seed=trained_model.seed,
        latency=latency,
        parity_max_abs_diff=built.parity_max_abs_diff,
        serving_graph=served_graph(built.manifest),
        quantization=built.quantization or {},
    )
    return dg.Output(
        result,
        metadata={
            "artifact_uri": uri,
            "backend": backend,
            "mlflow_model_version": version,
            "registered_model": f"models:/{mlflow_registry.model_name}/{version}",
            "max_abs_logit_diff_vs_eager": built.parity_max_abs_diff,
            "checked_on": f"{len(texts)} validation + test messages (not the golden set)",
            "latency_p50_ms": latency["p50_ms"],
            "latency_p95_ms": latency["p95_ms"],
            "latency_p99_ms": latency["p99_ms"],
            "latency_messages": latency["n"],
            **quantization_metadata(built.quantization),
            "ood_detector": built.manifest.get("serving_calibration", {}).get("ood_detector", "energy"),
            "manifest": dg.MetadataValue.json(result.as_dict()),
        },
    )


def quantization_metadata(report: dict | None) -> dict:
    if not report:
        return {"serving_graph": "fp32", "quantization": "off"}
    return {
        "serving_graph": report["served"],
        "quantization": report["reason"],
        "int8_agreement_with_fp32_val": report["agreement"] if report["agreement"] is not None else "n/a",
        "int8_ece_delta_val": report["ece_delta"] if report["ece_delta"] is not None else "n/a",
        "quantization_validation_messages": report["validation_messages"],
        "int8_agreement_with_fp32_pooled": (
            report["pooled_agreement"] if report.get("pooled_agreement") is not None else "n/a"
        ),
        "quantization_pooled_messages": report.get("pooled_messages", 0),
        "int8_ood_flag_agreement_pooled": _or_na(report.get("ood_flag_agreement")),
        "int8_route_agreement_pooled": _or_na(report.get("route_agreement")),
        "int8_ood_flag_agreement_out_of_scope": _or_na(report.get("out_of_scope_flag_agreement")),
        "quantization_out_of_scope_messages": report.get("out_of_scope_messages", 0),
        "quantization_candidates": md(markdown_table(_candidate_rows(report["candidates"]), floats=4)),
        "int8_layers_kept_fp32": ", ".join(report["kept_fp32"]) or "none",
        "int8_near_tie_recheck_margin": (
            report["recheck_margin"]
            if report.get("recheck_margin") is not None
            else "none: int8 answers alone"
        ),
        "int8_outlier_channels_fp32": _outlier_summary(report.get("outlier_channels") or {}),
        "int8_smoothing": _smoothing_summary(report.get("smoothing") or {}),
        "bf16": report["bf16"],
    }


def _or_na(value: float | None) -> float | str:
    """A served int8 graph's figure, or "n/a" (fp32 served, or nothing to compare)."""
    return value if value is not None else "n/a"


def _candidate_rows(candidates: list[dict]) -> list[dict]:
    """One flat row per candidate: its agreement in each serving batching as columns of their own."""
    rows = []
    for candidate in candidates:
        row = {k: v for k, v in candidate.items() if k != "by_batching"}
        for batching, scores in (candidate.get("by_batching") or {}).items():
            row[f"agreement, {batching}"] = scores["agreement"]
            row[f"pooled agreement, {batching}"] = scores["pooled_agreement"]
        rows.append(row)
    return rows


def _smoothing_summary(smoothing: dict) -> str:
    if "skipped" in smoothing:
        return f"none ({smoothing['skipped']})"
    if "alpha" not in smoothing:
        return "not tried (an earlier candidate passed)" if smoothing else "n/a"
    errors = ", ".join(f"{a}: {e:.4f}" for a, e in smoothing.get("training_error", {}).items())
    served = "in the served graph" if smoothing.get("served") else "judged, not served"
    return f"SmoothQuant alpha {smoothing['alpha']} (training error by alpha: {errors}; {served})"


def _outlier_summary(split: dict) -> str:
    if "skipped" in split:
        return f"none ({split['skipped']})"
    if not split:
        return "n/a"
    served = "in the served graph" if split.get("served") else "found, not in the served graph"
    return (
        f"{split['channels']} input channel(s) of {split['matmuls']} MatMul(s) above {split['ratio']}x "
        f"the median ({served})"
    )
