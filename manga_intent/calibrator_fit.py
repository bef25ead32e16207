"""The serving calibration of a trained model: calibrator, OOD detector and routing policy, fitted on validation.

One function (`fit_serving_calibration`) fits everything a served model needs beyond its weights, and one
(`score_outputs`) scores a fitted calibration on any labelled rows plus out-of-scope rows. `manga-intent
train`, `manga-intent evaluate`, the Dagster `calibrator` asset and the compiled artifact all go through
them, so a CLI user and the asset graph get the same model.

What is fitted on what:

- the calibrator family and parameters: the validation split (family by cross-validated NLL);
- the OOD feature statistics (class means, shared precision, neighbour bank): the training split;
- the detector choice: AUROC of in-domain validation messages against the validation OOD pool (the fitting
  half of the shipped OOD set that outlier exposure did not train on, plus generated off-topic text from
  templates outlier exposure never saw); its threshold: <= 5% of in-domain validation messages flagged;
- the routing policy (P(in scope | score), clarify threshold): the same validation mix.

The test split, the golden set and the held-out OOD half never reach these functions' fitting arguments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from manga_intent.calibrators import Calibrator, CalibratorChoice, choose_calibrator
from manga_intent.data import Example, clean_text
from manga_intent.metrics import (
    brier_score,
    classwise_ece,
    ece_noise_floor,
    expected_calibration_error,
    negative_log_likelihood,
    reliability_bins,
)
from manga_intent.ood import (
    MAX_IN_DOMAIN_FLAG_RATE,
    DetectorSelection,
    OODDetector,
    fit_feature_stats,
    fit_ood_detector,
    ood_report,
)
from manga_intent.routing import (
    DEFAULT_OOD_PRIOR,
    DEFAULT_TARGET_RISK,
    RoutingPolicy,
    curve_points,
    evaluate_policy,
    fit_routing_policy,
)
from manga_intent.shipped_data import ood_fitting_pool
from manga_intent.synthetic.offtopic import generate_offtopic

ROUTING_FILE = "routing.json"
SERVING_FILE = "serving_calibration.json"


# --- the out-of-scope pools ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class OODPools:
    """Out-of-scope text for training (outlier exposure) and for choosing the detector, never overlapping."""

    train_texts: list[str]
    val_texts: list[str]
    val_categories: list[str]
    sources: dict = field(default_factory=dict)


def build_ood_pools(
    fitting_rows: Sequence[dict], *, generated_train: int = 600, generated_val: int = 300, seed: int = 0
) -> OODPools:
    """Split the fitting OOD rows in two (alternate rows), and add generated text from disjoint templates.

    `fitting_rows` are dicts with `text` and optionally `category` (the shipped `ood_fitting_pool()`, or a
    user's `--ood-data` file). The held-out OOD half must never be passed here.
    """
    rows = [r for r in fitting_rows if clean_text(str(r.get("text", "")))]
    if len(rows) != len(fitting_rows):
        raise ValueError(f"{len(fitting_rows) - len(rows)} OOD row(s) have no text")
    train_rows, val_rows = rows[0::2], rows[1::2]
    gen_train = generate_offtopic(generated_train, seed=seed, part="train")
    gen_val = generate_offtopic(generated_val, seed=seed, part="val")
    return OODPools(
        train_texts=[clean_text(r["text"]) for r in train_rows] + [clean_text(r.text) for r in gen_train],
        val_texts=[clean_text(r["text"]) for r in val_rows] + [clean_text(r.text) for r in gen_val],
        val_categories=[str(r.get("category", "unknown")) for r in val_rows] + [r.category for r in gen_val],
        sources={
            "fitting_rows_train": len(train_rows),
            "fitting_rows_val": len(val_rows),
            "generated_train": len(gen_train),
            "generated_val": len(gen_val),
            "generator_seed": seed,
        },
    )


def shipped_ood_pools() -> OODPools:
    """The pools of `manga-intent train --ood-data shipped` (the default): the shipped fitting half of
    data/ood plus generated off-topic text, as the asset graph and the benchmarks use them."""
    return build_ood_pools(ood_fitting_pool())


def load_ood_rows(path: str | Path) -> list[dict]:
    """Out-of-scope rows from JSONL: one object per line with a non-empty `text` (any `label` is ignored,
    an optional `category` is kept for per-category reports). Bad lines fail with their line numbers."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such OOD file")
    rows, problems = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: not JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or not clean_text(obj["text"]):
            problems.append(f"line {n}: needs a JSON object with a non-empty string 'text'")
            continue
        rows.append({"text": obj["text"], "category": str(obj.get("category", "unknown"))})
    if problems:
        raise ValueError(f"{path}: {len(problems)} invalid OOD row(s): " + "; ".join(problems[:10]))
    if not rows:
        raise ValueError(f"{path}: no OOD rows")
    return rows


# --- model outputs --------------------------------------------------------------------------------------------
@dataclass
class Outputs:
    """Logits and pooled features of some texts (from the eager model or the compiled artifact)."""

    logits: np.ndarray
    features: np.ndarray | None

    def __len__(self) -> int:
        return len(self.logits)


def eager_outputs(
    model, tokenizer, texts: Sequence[str], *, max_length: int = 128, cleaner=clean_text
) -> Outputs:
    from manga_intent.inference import predict_logits_and_features

    logits, features = predict_logits_and_features(
        model, tokenizer, list(texts), max_length=max_length, cleaner=cleaner
    )
    return Outputs(logits, features if features.shape[1] else None)


# --- the fitted calibration -----------------------------------------------------------------------------------
@dataclass
class ServingCalibration:
    calibrator: Calibrator
    detector: OODDetector
    policy: RoutingPolicy
    calibrator_choice: dict = field(default_factory=dict)
    detector_selection: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    """Scores on the data that fitted it (validation split and validation OOD pool): fit diagnostics only."""

    @property
    def temperature(self) -> float:
        return self.calibrator.temperature

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return self.calibrator.probabilities(logits)

    def ood_scores(self, outputs: Outputs) -> np.ndarray:
        return self.detector.score(outputs.logits, outputs.features)

    def save(self, directory: str | Path) -> list[str]:
        """Write the calibrator, the detector (with its feature statistics) and the policy next to a model."""
        directory = Path(directory)
        files = [self.calibrator.save(directory).name, *self.detector.save(directory)]
        (directory / ROUTING_FILE).write_text(
            json.dumps(self.policy.as_dict(), indent=2) + "\n", encoding="utf-8"
        )
        summary = {
            "calibrator_choice": self.calibrator_choice,
            "detector_selection": self.detector_selection,
            "validation": self.validation,
        }
        (directory / SERVING_FILE).write_text(
            json.dumps(summary, indent=2, default=float) + "\n", encoding="utf-8"
        )
        return [*files, ROUTING_FILE, SERVING_FILE]

    @classmethod
    def exists(cls, directory: str | Path) -> bool:
        directory = Path(directory)
        return (directory / ROUTING_FILE).is_file() and OODDetector.exists(directory)

    @classmethod
    def load(cls, directory: str | Path) -> ServingCalibration:
        directory = Path(directory)
        calibrator = Calibrator.load(directory)
        if calibrator is None or not cls.exists(directory):
            raise FileNotFoundError(
                f"{directory}: no serving calibration (calibrator, OOD detector, routing)"
            )
        policy = RoutingPolicy.from_dict(json.loads((directory / ROUTING_FILE).read_text(encoding="utf-8")))
        summary_path = directory / SERVING_FILE
        summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
        return cls(
            calibrator,
            OODDetector.load(directory),
            policy,
            summary.get("calibrator_choice", {}),
            summary.get("detector_selection", {}),
            summary.get("validation", {}),
        )


def _labels(examples: Sequence[Example], label_list: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(label_list)}
    unknown = sorted({e.label for e in examples} - set(index))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the model's label set {list(label_list)}")
    return np.array([index[e.label] for e in examples], dtype=int)


def fit_serving_calibration_from_outputs(
    label_list: Sequence[str],
    *,
    train: Outputs,
    train_labels: np.ndarray,
    val: Outputs,
    val_labels: np.ndarray,
    ood_val: Outputs,
    max_in_domain_flag_rate: float = MAX_IN_DOMAIN_FLAG_RATE,
    target_risk: float = DEFAULT_TARGET_RISK,
    ood_prior: float = DEFAULT_OOD_PRIOR,
    detector_candidates: Sequence[str] | None = None,
) -> ServingCalibration:
    """Calibrator on val; feature stats on train; detector and policy on val + the validation OOD pool."""
    choice: CalibratorChoice = choose_calibrator(val.logits, val_labels)
    calibrator = choice.calibrator
    stats = None
    if train.features is not None and val.features is not None and ood_val.features is not None:
        stats = fit_feature_stats(train.features, train_labels, len(label_list))
    selection: DetectorSelection = fit_ood_detector(
        val_logits=val.logits,
        pool_logits=ood_val.logits,
        val_features=val.features,
        pool_features=ood_val.features,
        stats=stats,
        candidates=detector_candidates,
        max_in_domain_flag_rate=max_in_domain_flag_rate,
    )
    detector = selection.detector
    val_probs, pool_probs = calibrator.probabilities(val.logits), calibrator.probabilities(ood_val.logits)
    val_scores, pool_scores = (
        detector.score(val.logits, val.features),
        detector.score(ood_val.logits, ood_val.features),
    )
    policy = fit_routing_policy(
        val_max_prob=val_probs.max(1),
        val_correct=val_probs.argmax(1) == val_labels,
        val_ood_score=val_scores,
        pool_max_prob=pool_probs.max(1),
        pool_ood_score=pool_scores,
        fallback_threshold=detector.threshold,
        target_risk=target_risk,
        ood_prior=ood_prior,
    )
    fitted = ServingCalibration(calibrator, detector, policy, choice.as_dict(), selection.as_dict())
    fitted.validation = score_outputs(fitted, val, val_labels, label_list, ood=ood_val, curve=False)
    return fitted


def fit_serving_calibration(
    model,
    tokenizer,
    label_list: Sequence[str],
    *,
    train: Sequence[Example],
    val: Sequence[Example],
    ood_val_texts: Sequence[str],
    max_length: int = 128,
    **options,
) -> ServingCalibration:
    """`fit_serving_calibration_from_outputs` on the eager model's outputs (see the module docstring)."""
    if not ood_val_texts:
        raise ValueError("the validation OOD pool is empty: pass out-of-scope texts to choose the detector")

    def run(texts):
        return eager_outputs(model, tokenizer, texts, max_length=max_length)

    return fit_serving_calibration_from_outputs(
        label_list,
        train=run([e.text for e in train]),
        train_labels=_labels(train, label_list),
        val=run([e.text for e in val]),
        val_labels=_labels(val, label_list),
        ood_val=run(ood_val_texts),
        **options,
    )


# --- scoring ------------------------------------------------------------------------------------------------
def score_outputs(
    calibration: ServingCalibration,
    outputs: Outputs,
    labels: np.ndarray,
    label_list: Sequence[str],
    *,
    ood: Outputs | None = None,
    ood_categories: Sequence[str] | None = None,
    curve: bool = True,
) -> dict:
    """Calibrated metrics on labelled rows, and with out-of-scope rows the `ood` block and the risk-coverage
    summary of the route/clarify/fallback policy on the mix."""
    labels = np.asarray(labels, dtype=int)
    probs = calibration.probabilities(outputs.logits)
    raw = Calibrator.from_temperature(1.0, len(label_list)).probabilities(outputs.logits)
    report = {
        "n": int(len(labels)),
        "accuracy": float((probs.argmax(1) == labels).mean()),
        "accuracy_uncalibrated_argmax": float((outputs.logits.argmax(1) == labels).mean()),
        "ece": expected_calibration_error(probs, labels),
        "ece_uncalibrated": expected_calibration_error(raw, labels),
        "classwise_ece": classwise_ece(probs, labels)["mean"],
        "classwise_ece_uncalibrated": classwise_ece(raw, labels)["mean"],
        "nll": negative_log_likelihood(probs, labels),
        "nll_uncalibrated": negative_log_likelihood(raw, labels),
        "brier": brier_score(probs, labels),
        "calibrator": calibration.calibrator.family,
        "ood_detector": calibration.detector.kind,
    }
    if curve:  # the full report: diagrams and the noise floor beside the ECE (a fit's own scoring skips them)
        report["ece_noise_floor"] = ece_noise_floor(probs)
        report["reliability"] = reliability_bins(probs, labels)
        report["reliability_uncalibrated"] = reliability_bins(raw, labels)
        report["classwise_ece_per_intent"] = dict(zip(label_list, classwise_ece(probs, labels)["per_class"]))
    in_scores = calibration.ood_scores(outputs)
    if ood is None or len(ood) == 0:
        report["in_domain_flag_rate"] = float((in_scores > calibration.detector.threshold).mean())
        return report
    ood_scores = calibration.ood_scores(ood)
    report["ood"] = ood_report(in_scores, ood_scores, calibration.detector.threshold, ood_categories)
    report["ood"]["detector"] = calibration.detector.kind
    ood_probs = calibration.probabilities(ood.logits)
    evaluation = evaluate_policy(
        calibration.policy,
        in_max_prob=probs.max(1),
        in_correct=probs.argmax(1) == labels,
        in_ood_score=in_scores,
        ood_max_prob=ood_probs.max(1),
        ood_ood_score=ood_scores,
    )
    summary = {k: v for k, v in evaluation.items() if k not in ("curve", "in_domain_curve")}
    summary.update(
        clarify_below=calibration.policy.clarify_below,
        fallback_threshold=calibration.policy.fallback_threshold,
        target_risk=calibration.policy.target_risk,
    )
    if curve:
        summary["curve_points"] = curve_points(evaluation["curve"])
        summary["_curve"] = evaluation["curve"]
        summary["_in_domain_curve"] = evaluation["in_domain_curve"]
    report["risk_coverage"] = summary
    return report


def public(report: dict) -> dict:
    """The report without its raw curves (arrays), for JSON output."""
    out = {}
    for key, value in report.items():
        if key.startswith("_"):
            continue
        out[key] = public(value) if isinstance(value, dict) else value
    return out
