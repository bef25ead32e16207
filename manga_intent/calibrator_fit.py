"""Fit the serving calibrator of a trained model: the temperature and the OOD threshold, honestly scored.

Both are fitted on validation data only (the temperature on the validation split, the OOD threshold on the
validation split plus the fitting half of the OOD set); every reported "after" number comes from the test
split and the held-out half of the OOD set, so no figure is scored on the data that chose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from manga_intent.calibration import TemperatureFit, validation_logits_and_temperature
from manga_intent.data import Example
from manga_intent.inference import predict_logits, softmax
from manga_intent.metrics import expected_calibration_error, negative_log_likelihood, reliability_bins
from manga_intent.ood import MAX_IN_DOMAIN_FLAG_RATE, OODThreshold, auroc, energy_score, fit_energy_threshold


@dataclass(frozen=True)
class CalibratorFit:
    temperature_fit: TemperatureFit
    ood_fit: OODThreshold
    test: dict[str, float]
    """ECE/NLL on the test split before (T=1) and after calibration."""
    ood_heldout: dict[str, float]
    """In-domain flag rate on the test split, TPR and AUROC on the held-out OOD half."""
    reliability_before: list[dict]
    reliability_after: list[dict]

    @property
    def temperature(self) -> float:
        return self.temperature_fit.temperature

    @property
    def ood_threshold(self) -> float:
        return self.ood_fit.threshold

    def table(self) -> list[dict]:
        """ECE/NLL before and after, on the validation split (fit) and the test split (held out)."""
        fit = self.temperature_fit
        return [
            {
                "split": "validation (fit)",
                "ECE before": fit.ece_before,
                "ECE after": fit.ece_after,
                "NLL before": fit.nll_before,
                "NLL after": fit.nll_after,
            },
            {
                "split": "test (held out)",
                "ECE before": self.test["ece_before"],
                "ECE after": self.test["ece_after"],
                "NLL before": self.test["nll_before"],
                "NLL after": self.test["nll_after"],
            },
        ]

    def as_dict(self) -> dict:
        return {
            "temperature": self.temperature,
            "ood_threshold": self.ood_threshold,
            "validation_fit": self.temperature_fit.as_dict(),
            "test": dict(self.test),
            "ood_fit": self.ood_fit.as_dict(),
            "ood_heldout": dict(self.ood_heldout),
        }


def fit_calibrator(
    model,
    tokenizer,
    label_list: Sequence[str],
    *,
    val: Sequence[Example],
    test: Sequence[Example],
    ood_fit_texts: Sequence[str],
    ood_heldout_texts: Sequence[str],
    max_in_domain_flag_rate: float = MAX_IN_DOMAIN_FLAG_RATE,
    max_length: int = 128,
) -> CalibratorFit:
    """Temperature by validation NLL, energy OOD threshold at <= `max_in_domain_flag_rate` validation flags."""
    index = {label: i for i, label in enumerate(label_list)}

    def logits_of(texts: Sequence[str]) -> np.ndarray:
        return predict_logits(model, tokenizer, list(texts), max_length=max_length)

    # the same function `manga-intent train` calibrates with: one calibration code path
    val_logits, temperature = validation_logits_and_temperature(
        model, tokenizer, val, label_list, max_length=max_length
    )
    test_logits = logits_of([e.text for e in test])
    test_labels = np.array([index[e.label] for e in test])
    before, after = softmax(test_logits, 1.0), softmax(test_logits, temperature.temperature)
    test_scores = {
        "ece_before": expected_calibration_error(before, test_labels),
        "ece_after": expected_calibration_error(after, test_labels),
        "nll_before": negative_log_likelihood(before, test_labels),
        "nll_after": negative_log_likelihood(after, test_labels),
    }
    ood = fit_energy_threshold(
        val_logits, logits_of(ood_fit_texts), max_in_domain_flag_rate=max_in_domain_flag_rate
    )
    held_in, held_out = energy_score(test_logits), energy_score(logits_of(ood_heldout_texts))
    ood_heldout = {
        "in_domain_flag_rate": float((held_in > ood.threshold).mean()),
        "ood_tpr": float((held_out > ood.threshold).mean()),
        "auroc_energy": auroc(held_out, held_in),
    }
    return CalibratorFit(
        temperature,
        ood,
        test_scores,
        ood_heldout,
        reliability_bins(before, test_labels),
        reliability_bins(after, test_labels),
    )
