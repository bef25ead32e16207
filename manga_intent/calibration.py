"""Temperature scaling (Guo et al., 2017): one scalar T fitted by NLL on the validation split.

Dividing logits by T changes confidence, never the argmax, so accuracy is untouched while ECE
and NLL improve. Focal loss tends to leave models under-confident, so T < 1 is normal here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from manga_intent.inference import softmax
from manga_intent.metrics import expected_calibration_error, negative_log_likelihood


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)
) -> TemperatureFit:
    """Minimise validation NLL over log T (bounded, so a degenerate split cannot run away)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on an empty validation set")

    def nll(log_t: float) -> float:
        return negative_log_likelihood(softmax(logits, float(np.exp(log_t))), labels)

    result = minimize_scalar(
        nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded", options={"xatol": 1e-5}
    )
    temperature = float(np.exp(result.x))
    before, after = softmax(logits, 1.0), softmax(logits, temperature)
    return TemperatureFit(
        temperature=temperature,
        nll_before=negative_log_likelihood(before, labels),
        nll_after=negative_log_likelihood(after, labels),
        ece_before=expected_calibration_error(before, labels),
        ece_after=expected_calibration_error(after, labels),
        n=int(len(labels)),
    )


def calibration_scores(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """ECE, NLL and Brier of `logits` before (T = 1) and after dividing by `temperature`."""
    from manga_intent.metrics import brier_score

    labels = np.asarray(labels, dtype=int)
    before, after = softmax(logits, 1.0), softmax(logits, temperature)
    return {
        "temperature": float(temperature),
        "n": int(len(labels)),
        "ece_uncalibrated": expected_calibration_error(before, labels),
        "ece": expected_calibration_error(after, labels),
        "nll_uncalibrated": negative_log_likelihood(before, labels),
        "nll": negative_log_likelihood(after, labels),
        "brier_uncalibrated": brier_score(before, labels),
        "brier": brier_score(after, labels),
    }


def validation_logits_and_temperature(
    model, tokenizer, val_examples, label_list, *, max_length: int = 128
) -> tuple[np.ndarray, TemperatureFit]:
    """The one calibration code path: `manga-intent train` and the Dagster `calibrator` both call this.

    Scores the validation rows (never test or golden rows) and fits the temperature on them by NLL;
    returns the validation logits too, for whatever else is fitted on validation (the OOD threshold).
    """
    from manga_intent.inference import predict_logits

    index = {label: i for i, label in enumerate(label_list)}
    logits = predict_logits(model, tokenizer, [e.text for e in val_examples], max_length=max_length)
    return logits, fit_temperature(logits, np.array([index[e.label] for e in val_examples]))


def calibrate_on_validation(
    model, tokenizer, val_examples, label_list, *, max_length: int = 128
) -> TemperatureFit:
    """The temperature fitted on validation (see `validation_logits_and_temperature`)."""
    return validation_logits_and_temperature(
        model, tokenizer, val_examples, label_list, max_length=max_length
    )[1]
