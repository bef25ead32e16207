"""Richer post-hoc calibrators than one temperature, and the honest way of choosing between them.

Families (Guo et al., 2017; Kull et al., 2019), each mapping logits z to calibrated logits:

- `temperature`: z / T (one parameter; never changes the predicted intent);
- `bias`: z / T + b (per-class bias: corrects a model that over- or under-predicts some intents);
- `vector`: w * z + b (per-class scale and bias: vector scaling).

The richer families always fit the validation split at least as well as temperature scaling, so their
in-sample NLL cannot choose between them. The family is chosen by K-fold cross-validated NLL on the
validation split (a richer family must win by more than one standard error), then refitted on all of it;
test and golden rows are never seen here. A small L2 pull towards plain temperature scaling keeps the
per-class parameters stable on a 160-row validation split.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from manga_intent.calibration import fit_temperature
from manga_intent.metrics import expected_calibration_error, negative_log_likelihood

FAMILIES = ("temperature", "bias", "vector")
CALIBRATOR_FILE = "calibrator.json"


@dataclass(frozen=True)
class Calibrator:
    """Calibrated logits = scale * z + bias (temperature scaling: scale = 1/T everywhere, bias 0)."""

    family: str
    scale: tuple[float, ...]
    bias: tuple[float, ...]

    @classmethod
    def from_temperature(cls, temperature: float, num_classes: int) -> Calibrator:
        return cls("temperature", (1.0 / temperature,) * num_classes, (0.0,) * num_classes)

    @property
    def temperature(self) -> float:
        """The equivalent single temperature (exact for the temperature family; the mean for the others)."""
        return float(1.0 / np.mean(self.scale))

    @cached_property
    def _affine(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.scale, dtype=np.float64), np.asarray(self.bias, dtype=np.float64)

    def logits(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64)
        if z.shape[1] != len(self.scale):
            raise ValueError(f"calibrator is for {len(self.scale)} classes, logits have {z.shape[1]}")
        scale, bias = self._affine
        return z * scale + bias

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        # a stable softmax in plain numpy: the serving path calls this per batch, and scipy's array-API
        # wrapper around log_softmax cost more than the arithmetic
        z = self.logits(logits)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def as_dict(self) -> dict:
        return {
            "family": self.family,
            "scale": list(self.scale),
            "bias": list(self.bias),
            "temperature": self.temperature,
        }

    @classmethod
    def from_dict(cls, payload: dict) -> Calibrator:
        if payload["family"] not in FAMILIES:
            raise ValueError(f"unknown calibrator family {payload['family']!r}")
        return cls(payload["family"], tuple(map(float, payload["scale"])), tuple(map(float, payload["bias"])))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CALIBRATOR_FILE
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Calibrator | None:
        path = Path(directory) / CALIBRATOR_FILE
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def _fit_family(family: str, logits: np.ndarray, labels: np.ndarray, l2: float) -> Calibrator:
    k = logits.shape[1]
    t0 = fit_temperature(logits, labels).temperature
    if family == "temperature":
        return Calibrator.from_temperature(t0, k)
    n = len(labels)
    onehot = np.eye(k)[labels]

    def unpack(theta):
        if family == "bias":
            return np.full(k, np.exp(theta[0])), theta[1:]
        return theta[:k], theta[k:]

    def objective(theta):
        scale, bias = unpack(theta)
        z = logits * scale + bias
        log_p = log_softmax(z, axis=1)
        nll = -(onehot * log_p).sum() / n
        residual = (np.exp(log_p) - onehot) / n  # d nll / d z
        if family == "bias":
            grad = np.r_[(residual * logits * scale).sum(), residual.sum(axis=0)]
            penalty = l2 * (theta[1:] ** 2).sum()
            grad[1:] += 2 * l2 * theta[1:]
        else:
            grad = np.r_[(residual * logits).sum(axis=0), residual.sum(axis=0)]
            pull = np.r_[theta[:k] - 1.0 / t0, theta[k:]]
            penalty = l2 * (pull**2).sum()
            grad += 2 * l2 * pull
        return nll + penalty, grad

    start = (
        np.r_[np.log(1.0 / t0), np.zeros(k)] if family == "bias" else np.r_[np.full(k, 1.0 / t0), np.zeros(k)]
    )
    result = minimize(objective, start, jac=True, method="L-BFGS-B")
    scale, bias = unpack(result.x)
    bias = bias - bias.mean()  # softmax is shift-invariant: keep the bias centred
    return Calibrator(family, tuple(map(float, scale)), tuple(map(float, bias)))


def fit_calibrator_family(
    family: str, logits: np.ndarray, labels: np.ndarray, *, l2: float = 1e-3
) -> Calibrator:
    if family not in FAMILIES:
        raise ValueError(f"calibrator family must be one of {FAMILIES}, got {family!r}")
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        raise ValueError("cannot fit a calibrator on an empty validation set")
    return _fit_family(family, logits, labels, l2)


@dataclass
class CalibratorChoice:
    calibrator: Calibrator
    table: list[dict] = field(default_factory=list)
    """Per family: cross-validated NLL (the choice), in-sample NLL and ECE on the validation split."""
    folds: int = 5

    def as_dict(self) -> dict:
        return {
            "calibrator": self.calibrator.as_dict(),
            "table": self.table,
            "folds": self.folds,
            "chosen_by": f"{self.folds}-fold cross-validated NLL on the validation split (a richer family "
            "must win by more than one standard error)",
        }


def _folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold id per row, stratified by label (each label's rows dealt round-robin after a seeded shuffle)."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=int)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        assignment[rows] = (np.arange(len(rows)) + rng.integers(folds)) % folds
    return assignment


def choose_calibrator(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    families: Sequence[str] = FAMILIES,
    folds: int = 5,
    seed: int = 0,
    l2: float = 1e-3,
) -> CalibratorChoice:
    """Pick a family by cross-validated validation NLL, refit it on the whole validation split.

    A richer family replaces a simpler one only if its held-out NLL is lower by more than one standard
    error of the paired per-row difference (the one-standard-error rule): on ~115-160 validation rows a
    per-class bias can win the cross-validation by 0.0006 nats by chance and then calibrate worse (out of
    fold on the seed corpus, `python bench/cv_select.py calibrators`). Temperature scaling is the fallback
    on tiny splits.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise ValueError(f"families must be a non-empty subset of {FAMILIES}, got {list(families)}")
    if len(labels) < 2 * folds:
        fitted = fit_calibrator_family("temperature", logits, labels)
        return CalibratorChoice(
            fitted, [{"family": "temperature", "note": "too few rows to cross-validate"}], 0
        )
    fold_of = _folds(labels, folds, seed)
    rows, held_out_losses = [], {}
    for family in sorted(families, key=FAMILIES.index):  # simplest first
        losses = np.empty(len(labels))
        for f in range(folds):
            train, test = fold_of != f, fold_of == f
            cal = fit_calibrator_family(family, logits[train], labels[train], l2=l2)
            probs = cal.probabilities(logits[test])
            losses[test] = -np.log(np.clip(probs[np.arange(int(test.sum())), labels[test]], 1e-12, None))
        held_out_losses[family] = losses
        full = fit_calibrator_family(family, logits, labels, l2=l2)
        probs = full.probabilities(logits)
        rows.append(
            {
                "family": family,
                "cv_nll": float(losses.mean()),
                "val_nll_in_sample": negative_log_likelihood(probs, labels),
                "val_ece_in_sample": expected_calibration_error(probs, labels),
                "val_accuracy": float((probs.argmax(1) == labels).mean()),
                "compared_with": None,
                "cv_nll_gain": None,
                "gain_standard_error": None,
                "_calibrator": full,
            }
        )
    best = rows[0]
    for row in rows[1:]:
        gain = held_out_losses[best["family"]] - held_out_losses[row["family"]]  # > 0: row predicts better
        standard_error = float(gain.std(ddof=1) / np.sqrt(len(gain)))
        row.update(compared_with=best["family"], cv_nll_gain=float(gain.mean()))
        row["gain_standard_error"] = standard_error
        if gain.mean() > max(standard_error, 1e-4):
            best = row
    for row in rows:
        row["chosen"] = row is best
    chosen = best["_calibrator"]
    return CalibratorChoice(chosen, [{k: v for k, v in r.items() if k != "_calibrator"} for r in rows], folds)
