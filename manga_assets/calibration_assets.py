"""`calibrator`: temperature scaling and the energy-score OOD threshold, per training seed."""

import tempfile
from pathlib import Path

import dagster as dg
import numpy as np

from manga_assets.common import markdown_table, md, read_snapshot, real_splits
from manga_assets.partitions import seed_partitions
from manga_assets.simulator import ood_fitting_pool, ood_simulation_pool
from manga_intent.calibration import fit_temperature
from manga_intent.inference import predict_logits, softmax
from manga_intent.metrics import expected_calibration_error, negative_log_likelihood, reliability_bins
from manga_intent.model_io import load_trained
from manga_intent.ood import auroc, energy_score, fit_energy_threshold
from manga_intent.plots import markdown_image, reliability_diagram_png
from resources.storage import ArtifactStore


class CalibratorConfig(dg.Config):
    max_in_domain_flag_rate: float = 0.05
    """The OOD threshold may send at most this share of in-domain validation messages to the fallback."""


def load_model_from_store(store: ArtifactStore, uri: str, into: Path):
    store.get_dir(uri, into)
    return load_trained(into)


@dg.asset(group_name="training", partitions_def=seed_partitions, kinds={"python"})
def calibrator(
    context: dg.AssetExecutionContext, config: CalibratorConfig, trained_model: dict, intent_dataset: dict,
    artifact_store: ArtifactStore,
) -> dg.Output[dict]:
    """Fit T by validation NLL, then the OOD threshold on validation + the fitting half of the OOD set.

    ECE/NLL before and after are measured on the test split; OOD TPR and AUROC on the test split
    against the held-out (simulation) half of the OOD set, so neither number is scored on fit data.
    """
    splits = real_splits(read_snapshot(artifact_store, intent_dataset["uri"]))
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, card = load_model_from_store(artifact_store, trained_model["model_uri"], Path(tmp))
        index = {label: i for i, label in enumerate(card["labels"])}
        logits = {name: predict_logits(model, tokenizer, [e.text for e in part])
                  for name, part in (("val", splits.val), ("test", splits.test))}
        labels = {name: np.array([index[e.label] for e in part]) for name, part in
                  (("val", splits.val), ("test", splits.test))}
        ood_fit = predict_logits(model, tokenizer, [r["text"] for r in ood_fitting_pool()])
        ood_held = predict_logits(model, tokenizer, [r["text"] for r in ood_simulation_pool()])
    fit = fit_temperature(logits["val"], labels["val"])
    before = softmax(logits["test"], 1.0)
    after = softmax(logits["test"], fit.temperature)
    test_scores = {"ece_before": expected_calibration_error(before, labels["test"]),
                   "ece_after": expected_calibration_error(after, labels["test"]),
                   "nll_before": negative_log_likelihood(before, labels["test"]),
                   "nll_after": negative_log_likelihood(after, labels["test"])}
    ood = fit_energy_threshold(logits["val"], ood_fit, max_in_domain_flag_rate=config.max_in_domain_flag_rate)
    held_in, held_out = energy_score(logits["test"]), energy_score(ood_held)
    ood_heldout = {"in_domain_flag_rate": float((held_in > ood.threshold).mean()),
                   "ood_tpr": float((held_out > ood.threshold).mean()), "auroc_energy": auroc(held_out, held_in)}
    png = reliability_diagram_png({"before (T=1)": reliability_bins(before, labels["test"]),
                                   f"after (T={fit.temperature:.3f})": reliability_bins(after, labels["test"])},
                                  f"test split, seed {trained_model['seed']}")
    manifest = {"temperature": fit.temperature, "ood_threshold": ood.threshold, "validation_fit": fit.as_dict(),
                "test": test_scores, "ood_fit": ood.as_dict(), "ood_heldout": ood_heldout,
                "seed": trained_model["seed"]}
    table = markdown_table([
        {"split": "validation (fit)", "ECE before": fit.ece_before, "ECE after": fit.ece_after,
         "NLL before": fit.nll_before, "NLL after": fit.nll_after},
        {"split": "test (held out)", "ECE before": test_scores["ece_before"], "ECE after": test_scores["ece_after"],
         "NLL before": test_scores["nll_before"], "NLL after": test_scores["nll_after"]},
    ])
    context.log.info(f"T={fit.temperature:.3f}; test ECE {test_scores['ece_before']:.4f} -> "
                     f"{test_scores['ece_after']:.4f}; OOD AUROC (held out) {ood_heldout['auroc_energy']:.3f}")
    return dg.Output(manifest, metadata={
        "temperature": fit.temperature,
        "test_ece_before": test_scores["ece_before"], "test_ece_after": test_scores["ece_after"],
        "test_nll_before": test_scores["nll_before"], "test_nll_after": test_scores["nll_after"],
        "calibration": md(table),
        "reliability_diagram": md(markdown_image(png, "reliability diagram")),
        "ood_energy_threshold": ood.threshold,
        "ood_in_domain_flag_rate_val": ood.in_domain_flag_rate,
        "ood_tpr_heldout": ood_heldout["ood_tpr"], "ood_auroc_heldout": ood_heldout["auroc_energy"],
        "ood_auroc_msp_fit": ood.auroc_msp,
        "manifest": dg.MetadataValue.json(manifest),
    })
