"""`calibrator`: the serving calibration (calibrator, OOD detector, routing policy) per training seed.

The calibration is the one `manga-intent train` fits (`calibrator_fit.fit_serving_calibration`, on the
validation split and the validation OOD pool); `trained_model` writes it into the model directory through
the same `run_training` the CLI calls, and this asset takes it from there (refitting only for a model
directory without one). Everything shown here is then scored on data that chose nothing: the test split and
the held-out half of the OOD set.
"""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np

from manga_assets.manifests import Calibration, DatasetSnapshot, TrainedModel
from manga_assets.metadata import markdown_table, md
from manga_assets.partitions import seed_partitions
from manga_assets.snapshots import dataset_splits, read_snapshot
from manga_intent.calibrator_fit import (
    ServingCalibration,
    eager_outputs,
    fit_serving_calibration_from_outputs,
    public,
    score_outputs,
    shipped_ood_pools,
)
from manga_intent.model_io import load_trained
from manga_intent.ood import MAX_IN_DOMAIN_FLAG_RATE, fit_feature_stats, fit_ood_detector, ood_report
from manga_intent.plots import markdown_image, reliability_diagram_png, risk_coverage_png
from manga_intent.routing import DEFAULT_OOD_PRIOR, DEFAULT_TARGET_RISK, summary_table
from manga_intent.shipped_data import ood_heldout_pool
from resources.storage import ArtifactStore


class CalibratorConfig(dg.Config):
    max_in_domain_flag_rate: float = MAX_IN_DOMAIN_FLAG_RATE
    """The OOD threshold may send at most this share of in-domain validation messages to the fallback."""
    target_risk: float = DEFAULT_TARGET_RISK
    """Routed messages may be wrong at most this often on the validation mix (fits `clarify_below`)."""
    ood_prior: float = DEFAULT_OOD_PRIOR
    """Share of out-of-scope traffic the joint confidence and the risk-coverage mix assume."""
    refit: bool = False
    """Refit on validation here instead of taking the calibration `trained_model` fitted (same function)."""


def _heldout_detector_table(splits, labels, train, val, pool, test, held, fitted) -> list[dict]:
    """The single-score detectors, fitted like the served one (validation pool; statistics from the real
    training split), scored on the held-out OOD half: what the choice was up against. `train`, `val`,
    `pool`, `test` and `held` are the model's outputs on those rows, which the asset computes once."""
    index = {label: i for i, label in enumerate(labels)}
    stats = None
    if train.features is not None:
        stats = fit_feature_stats(
            train.features, np.array([index[e.label] for e in splits.train]), len(labels)
        )
    selection = fit_ood_detector(
        val_logits=val.logits,
        pool_logits=pool.logits,
        val_features=val.features,
        pool_features=pool.features,
        stats=stats,
    )
    rows = []
    for kind, detector in selection.candidates.items():
        if kind.startswith("combined:") or kind == fitted.detector.kind:
            continue
        report = ood_report(
            detector.score(test.logits, test.features),
            detector.score(held.logits, held.features),
            detector.threshold,
        )
        val_row = next(r for r in selection.table if r["detector"] == kind)
        rows.append(
            {
                "detector": kind,
                "val AUROC": val_row["auroc"],
                "held-out AUROC": report["auroc"],
                "AUPR": report["aupr"],
                "FPR@95%TPR": report["fpr_at_95_tpr"],
                "TPR @ op": report["tpr_at_threshold"],
                "test flag rate": report["in_domain_flag_rate"],
            }
        )
    return rows


@dg.asset(group_name="training", partitions_def=seed_partitions, kinds={"python"})
def calibrator(
    context: dg.AssetExecutionContext,
    config: CalibratorConfig,
    trained_model: TrainedModel,
    intent_dataset: DatasetSnapshot,
    artifact_store: ArtifactStore,
) -> dg.Output[Calibration]:
    """Calibrator + OOD detector + route/clarify/fallback policy, fitted on validation, scored held out.

    Metadata: the calibrator families and detectors compared on validation (what chose them), then test-split
    ECE/class-wise ECE with the reliability diagram, the held-out OOD half per detector and per category,
    and the risk-coverage curve of the routing policy on a test + held-out OOD mix.
    """
    splits = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri))
    heldout_rows = ood_heldout_pool()
    ood_val_texts = shipped_ood_pools().val_texts
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = artifact_store.get_dir(trained_model.model_uri, Path(tmp) / "model")
        model, tokenizer, card = load_trained(model_dir)
        labels, max_length = card["labels"], card["recipe"]["max_length"]
        index = {label: i for i, label in enumerate(labels)}

        def run(texts):
            return eager_outputs(model, tokenizer, texts, max_length=max_length)

        train_out, val_out = run([e.text for e in splits.train]), run([e.text for e in splits.val])
        pool_out = run(ood_val_texts)
        if ServingCalibration.exists(model_dir) and not config.refit:
            fitted, source = ServingCalibration.load(model_dir), "fitted by trained_model (run_training)"
        else:
            fitted = fit_serving_calibration_from_outputs(
                labels,
                train=train_out,
                train_labels=np.array([index[e.label] for e in splits.train]),
                val=val_out,
                val_labels=np.array([index[e.label] for e in splits.val]),
                ood_val=pool_out,
                max_in_domain_flag_rate=config.max_in_domain_flag_rate,
                target_risk=config.target_risk,
                ood_prior=config.ood_prior,
            )
            source = "fitted here on validation"
        test_out, held_out = run([e.text for e in splits.test]), run([r["text"] for r in heldout_rows])
        report = score_outputs(
            fitted,
            test_out,
            np.array([index[e.label] for e in splits.test]),
            labels,
            ood=held_out,
            ood_categories=[r["category"] for r in heldout_rows],
        )
        served = {
            "detector": f"{fitted.detector.kind} (served)",
            "val AUROC": next(r["auroc"] for r in fitted.detector_selection["table"] if r["chosen"]),
            "held-out AUROC": report["ood"]["auroc"],
            "AUPR": report["ood"]["aupr"],
            "FPR@95%TPR": report["ood"]["fpr_at_95_tpr"],
            "TPR @ op": report["ood"]["tpr_at_threshold"],
            "test flag rate": report["ood"]["in_domain_flag_rate"],
        }
        detectors = [
            served,
            *_heldout_detector_table(
                splits, labels, train_out, val_out, pool_out, test_out, held_out, fitted
            ),
        ]
        out = Path(tmp) / "calibration"
        out.mkdir()
        fitted.save(out)
        uri = artifact_store.put_dir(out, f"calibration/{context.run_id}/seed={trained_model.seed}")
    ood, risk = report["ood"], report["risk_coverage"]
    manifest = Calibration(
        temperature=fitted.temperature,
        ood_threshold=fitted.detector.threshold,
        seed=trained_model.seed,
        validation_fit=public(fitted.validation),
        test={
            k: report[k]
            for k in ("ece", "ece_uncalibrated", "classwise_ece", "nll", "nll_uncalibrated", "accuracy")
        },
        ood_fit={"detector_selection": fitted.detector_selection["table"]},
        ood_heldout={
            k: ood[k] for k in ("auroc", "aupr", "fpr_at_95_tpr", "tpr_at_threshold", "in_domain_flag_rate")
        },
        calibration_uri=uri,
        calibrator=fitted.calibrator.as_dict(),
        ood_detector=fitted.detector.kind,
        routing=fitted.policy.as_dict(),
    )
    reliability = reliability_diagram_png(
        {
            "before (T=1)": report["reliability_uncalibrated"],
            f"after ({fitted.calibrator.family})": report["reliability"],
        },
        f"test split, seed {trained_model.seed}",
    )
    curves = risk_coverage_png(
        {
            "joint confidence, test + held-out OOD (5% mix)": risk["_curve"],
            "calibrated top probability, test only": risk["_in_domain_curve"],
        },
        {f"policy (clarify < {fitted.policy.clarify_below:.2f})": (risk["coverage"], risk["selective_risk"])},
        f"route / clarify / fallback, seed {trained_model.seed}",
    )
    per_category = [{"category": c, **v} for c, v in ood["per_category"].items()]
    calibrators = fitted.calibrator_choice.get("table", [])
    context.log.info(
        f"{source}: {fitted.calibrator.family} calibrator, test ECE {report['ece_uncalibrated']:.4f} -> "
        f"{report['ece']:.4f}; OOD {fitted.detector.kind}: held-out AUROC {ood['auroc']:.3f}, TPR "
        f"{ood['tpr_at_threshold']:.3f} at {ood['in_domain_flag_rate']:.3f} test flags; AURC {risk['aurc_joint']:.4f}"
    )
    return dg.Output(
        manifest,
        metadata={
            "calibration_uri": uri,
            "source": source,
            "calibrator_family": fitted.calibrator.family,
            "temperature": fitted.temperature,
            "test_ece_before": report["ece_uncalibrated"],
            "test_ece_after": report["ece"],
            "test_ece_noise_floor (a perfectly calibrated model, mean / p95)": md(
                f"{report['ece_noise_floor']['mean']:.4f} / {report['ece_noise_floor']['p95']:.4f} "
                f"on {report['ece_noise_floor']['n']} messages"
            ),
            "test_classwise_ece_after": report["classwise_ece"],
            "test_nll_before": report["nll_uncalibrated"],
            "test_nll_after": report["nll"],
            "calibrator_choice (validation, CV NLL)": md(markdown_table(calibrators)),
            "reliability_diagram": md(markdown_image(reliability, "reliability diagram")),
            "ood_detector": fitted.detector.kind,
            "ood_threshold": fitted.detector.threshold,
            "detector_choice (validation pool)": md(markdown_table(fitted.detector_selection["table"])),
            "detectors_heldout": md(markdown_table(detectors)),
            "ood_auroc_heldout": ood["auroc"],
            "ood_tpr_heldout": ood["tpr_at_threshold"],
            "ood_aupr_heldout": ood["aupr"],
            "ood_fpr_at_95_tpr_heldout": ood["fpr_at_95_tpr"],
            "ood_in_domain_flag_rate_test": ood["in_domain_flag_rate"],
            "ood_per_category_heldout": md(markdown_table(per_category)),
            "clarify_below": fitted.policy.clarify_below,
            "routing (test + held-out OOD)": md(markdown_table(summary_table(risk, fitted.policy))),
            "risk_coverage_points": md(markdown_table(risk["curve_points"])),
            "aurc_joint": risk["aurc_joint"],
            "risk_coverage_plot": md(markdown_image(curves, "risk-coverage curve")),
            "manifest": dg.MetadataValue.json(manifest.as_dict()),
        },
    )
