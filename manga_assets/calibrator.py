"""`calibrator`: temperature scaling and the energy-score OOD threshold, per training seed."""

import tempfile
from pathlib import Path

import dagster as dg

from manga_assets.manifests import Calibration, DatasetSnapshot, TrainedModel
from manga_assets.metadata import markdown_table, md
from manga_assets.partitions import seed_partitions
from manga_assets.snapshots import dataset_splits, read_snapshot
from manga_intent.calibrator_fit import fit_calibrator
from manga_intent.model_io import load_trained
from manga_intent.ood import MAX_IN_DOMAIN_FLAG_RATE
from manga_intent.plots import markdown_image, reliability_diagram_png
from manga_intent.shipped_data import ood_fitting_pool, ood_heldout_pool
from resources.storage import ArtifactStore


class CalibratorConfig(dg.Config):
    max_in_domain_flag_rate: float = MAX_IN_DOMAIN_FLAG_RATE
    """The OOD threshold may send at most this share of in-domain validation messages to the fallback."""


@dg.asset(group_name="training", partitions_def=seed_partitions, kinds={"python"})
def calibrator(
    context: dg.AssetExecutionContext,
    config: CalibratorConfig,
    trained_model: TrainedModel,
    intent_dataset: DatasetSnapshot,
    artifact_store: ArtifactStore,
) -> dg.Output[Calibration]:
    """Fit T by validation NLL, then the OOD threshold on validation + the fitting half of the OOD set.

    ECE/NLL before and after are measured on the test split; OOD TPR and AUROC on the test split
    against the held-out half of the OOD set, so neither number is scored on fit data.
    """
    splits = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri))
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, card = load_trained(artifact_store.get_dir(trained_model.model_uri, Path(tmp)))
        fit = fit_calibrator(
            model,
            tokenizer,
            card["labels"],
            val=splits.val,
            test=splits.test,
            ood_fit_texts=[r["text"] for r in ood_fitting_pool()],
            ood_heldout_texts=[r["text"] for r in ood_heldout_pool()],
            max_in_domain_flag_rate=config.max_in_domain_flag_rate,
            max_length=card["recipe"]["max_length"],
        )
    manifest = Calibration(seed=trained_model.seed, **fit.as_dict())
    png = reliability_diagram_png(
        {"before (T=1)": fit.reliability_before, f"after (T={fit.temperature:.3f})": fit.reliability_after},
        f"test split, seed {trained_model.seed}",
    )
    context.log.info(
        f"T={fit.temperature:.3f}; test ECE {fit.test['ece_before']:.4f} -> {fit.test['ece_after']:.4f}; "
        f"OOD AUROC (held out) {fit.ood_heldout['auroc_energy']:.3f}"
    )
    return dg.Output(
        manifest,
        metadata={
            "temperature": fit.temperature,
            "test_ece_before": fit.test["ece_before"],
            "test_ece_after": fit.test["ece_after"],
            "test_nll_before": fit.test["nll_before"],
            "test_nll_after": fit.test["nll_after"],
            "calibration": md(markdown_table(fit.table())),
            "reliability_diagram": md(markdown_image(png, "reliability diagram")),
            "ood_energy_threshold": fit.ood_threshold,
            "ood_in_domain_flag_rate_val": fit.ood_fit.in_domain_flag_rate,
            "ood_tpr_heldout": fit.ood_heldout["ood_tpr"],
            "ood_auroc_heldout": fit.ood_heldout["auroc_energy"],
            "ood_auroc_msp_fit": fit.ood_fit.auroc_msp,
            "manifest": dg.MetadataValue.json(manifest.as_dict()),
        },
    )
