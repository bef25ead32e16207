"""Out-of-scope detection: logit scores, feature-space scores, the validation-chosen detector and its metrics.

Every score is "higher = more out-of-scope":

- `msp`: minus the maximum softmax probability (Hendrycks & Gimpel, 2017);
- `energy`: E(x) = -T logsumexp(z / T) (Liu et al., 2020), the fallback when features are unavailable;
- `mahalanobis`: the smallest Mahalanobis distance of the pooled features to a class mean, with one shared,
  Ledoit-Wolf-shrunk covariance (Lee et al., 2018), fitted on the training split;
- `knn`: one minus the cosine similarity to the k-th nearest training feature (Sun et al., 2022);
- `combined:a+b`: the mean of the named scores, each standardised by its in-domain validation mean and spread.

The detector is chosen by AUROC on a validation OOD pool (in-domain validation messages against the fitting
half of the OOD set plus generated off-topic text); its threshold is the (1 - max_in_domain_flag_rate)
quantile of in-domain validation scores, so at most that share of real traffic goes to the fallback. The
golden set and the held-out OOD half never choose anything here: they only score.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

#: The seed's operating point: at most this share of in-domain messages may be sent to the fallback.
MAX_IN_DOMAIN_FLAG_RATE = 0.05
LOGIT_SCORES = ("msp", "energy")
FEATURE_SCORES = ("mahalanobis", "knn")
SCORES = LOGIT_SCORES + FEATURE_SCORES
DETECTOR_FILE = "ood_detector.json"
FEATURE_STATS_FILE = "ood_feature_stats.npz"
#: The neighbour bank holds at most this many training features (a seeded, class-stratified sample beyond it).
MAX_BANK = 4096


# --- scores ------------------------------------------------------------------------------------------------
def logsumexp_rows(z: np.ndarray) -> np.ndarray:
    """Row-wise logsumexp of finite scores: numpy only, because scipy's array-API dispatch costs ~50 µs per
    call, a few percent of a served message."""
    peak = z.max(axis=1)
    return peak + np.log(np.exp(z - peak[:, None]).sum(axis=1))


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return -temperature * logsumexp_rows(np.asarray(logits, dtype=np.float64) / temperature)


def msp_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    return -np.exp(z.max(axis=1) - logsumexp_rows(z))


@dataclass(frozen=True, eq=False)
class FeatureStats:
    """What the feature-space scores need: class means and shared precision, and the neighbour bank."""

    means: np.ndarray
    """(classes, dim) mean training feature per class."""
    precision: np.ndarray
    """(dim, dim) inverse of the shared (shrunk) within-class covariance."""
    bank: np.ndarray
    """(n, dim) L2-normalised training features for the kNN score."""
    k: int

    @cached_property
    def mean_norms(self) -> np.ndarray:
        """(classes,) μ_c' P μ_c: the per-class constant of every Mahalanobis distance, computed once
        (as an unoptimised three-operand einsum per request it cost as much as the model call)."""
        return np.einsum("kd,kd->k", self.means @ self.precision, self.means)

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            means=self.means.astype(np.float32),
            precision=self.precision.astype(np.float32),
            bank=self.bank.astype(np.float32),
            k=np.array(self.k),
        )

    @classmethod
    def load(cls, path: Path) -> FeatureStats:
        with np.load(path) as data:
            return cls(
                data["means"].astype(np.float64),
                data["precision"].astype(np.float64),
                data["bank"].astype(np.float32),
                int(data["k"]),
            )


def _normalise(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def fit_feature_stats(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    k: int = 10,
    max_bank: int = MAX_BANK,
    seed: int = 0,
) -> FeatureStats:
    """Class means, Ledoit-Wolf-shrunk shared covariance and the neighbour bank, from training features."""
    from sklearn.covariance import LedoitWolf

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features {features.shape} and labels {labels.shape} do not line up")
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no training features: cannot fit their means")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    means = np.stack([features[labels == c].mean(axis=0) for c in range(num_classes)])
    centred = features - means[labels]
    covariance = LedoitWolf(assume_centered=True).fit(centred).covariance_
    precision = np.linalg.pinv(covariance, hermitian=True)
    if len(features) > max_bank:  # keep every class's share of the bank
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(features), size=max_bank, replace=False))
        features = features[keep]
    return FeatureStats(means, precision, _normalise(features), min(k, len(features)))


def mahalanobis_score(features: np.ndarray, stats: FeatureStats) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    fp = f @ stats.precision
    distances = np.einsum("nd,nd->n", fp, f)[:, None] - 2.0 * fp @ stats.means.T + stats.mean_norms[None, :]
    return np.maximum(distances, 0.0).min(axis=1)


def knn_score(features: np.ndarray, stats: FeatureStats) -> np.ndarray:
    similarities = _normalise(features) @ stats.bank.T
    kth = np.partition(similarities, -stats.k, axis=1)[:, -stats.k]
    return 1.0 - kth.astype(np.float64)


def component_scores(
    names: Sequence[str],
    logits: np.ndarray,
    features: np.ndarray | None,
    *,
    temperature: float = 1.0,
    stats: FeatureStats | None = None,
) -> dict[str, np.ndarray]:
    out = {}
    for name in names:
        if name == "msp":
            out[name] = msp_score(logits, temperature)
        elif name == "energy":
            out[name] = energy_score(logits, temperature)
        elif name in FEATURE_SCORES:
            if features is None or stats is None:
                raise ValueError(f"the {name} score needs pooled features and fitted feature statistics")
            out[name] = (
                mahalanobis_score(features, stats) if name == "mahalanobis" else knn_score(features, stats)
            )
        else:
            raise ValueError(f"unknown OOD score {name!r}; choose from {SCORES}")
    return out


# --- metrics -----------------------------------------------------------------------------------------------
def auroc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half (Mann-Whitney)."""
    pos = np.asarray(positive_scores, dtype=np.float64)
    neg = np.asarray(negative_scores, dtype=np.float64)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUROC needs both positive and negative scores")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def aupr(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Average precision with the OOD messages as the positive class."""
    from sklearn.metrics import average_precision_score

    pos, neg = np.asarray(positive_scores, float), np.asarray(negative_scores, float)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUPR needs both positive and negative scores")
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return float(average_precision_score(y, np.r_[pos, neg]))


def fpr_at_tpr(positive_scores: np.ndarray, negative_scores: np.ndarray, tpr: float = 0.95) -> float:
    """Share of in-domain messages flagged by the loosest threshold that still catches `tpr` of the OOD ones."""
    pos, neg = np.asarray(positive_scores, float), np.asarray(negative_scores, float)
    threshold = np.quantile(pos, 1.0 - tpr, method="lower")
    return float((neg >= threshold).mean())


def threshold_at_flag_rate(
    in_domain_scores: np.ndarray, max_flag_rate: float = MAX_IN_DOMAIN_FLAG_RATE
) -> float:
    """The threshold that flags (score > threshold) at most `max_flag_rate` of the in-domain scores."""
    if not 0 < max_flag_rate < 1:
        raise ValueError(f"max_in_domain_flag_rate must be in (0, 1), got {max_flag_rate}")
    scores = np.asarray(in_domain_scores, float)
    if len(scores) == 0:
        raise ValueError("cannot set an OOD threshold without in-domain scores")
    return float(np.quantile(scores, 1.0 - max_flag_rate, method="higher"))


def ood_report(
    in_domain_scores: np.ndarray,
    ood_scores: np.ndarray,
    threshold: float,
    categories: Sequence[str] | None = None,
) -> dict:
    """AUROC, AUPR, FPR at 95% TPR, TPR and in-domain flag rate at `threshold`; per category when given."""
    s_in, s_ood = np.asarray(in_domain_scores, float), np.asarray(ood_scores, float)
    report = {
        "auroc": auroc(s_ood, s_in),
        "aupr": aupr(s_ood, s_in),
        "fpr_at_95_tpr": fpr_at_tpr(s_ood, s_in),
        "tpr_at_threshold": float((s_ood > threshold).mean()),
        "in_domain_flag_rate": float((s_in > threshold).mean()),
        "threshold": float(threshold),
        "n_in_domain": int(len(s_in)),
        "n_ood": int(len(s_ood)),
    }
    if categories is not None:
        if len(categories) != len(s_ood):
            raise ValueError(f"{len(categories)} categories for {len(s_ood)} OOD scores")
        cats = np.asarray(categories)
        report["per_category"] = {
            c: {
                "n": int((cats == c).sum()),
                "tpr_at_threshold": float((s_ood[cats == c] > threshold).mean()),
                "auroc": auroc(s_ood[cats == c], s_in),
                "aupr": aupr(s_ood[cats == c], s_in),
                "fpr_at_95_tpr": fpr_at_tpr(s_ood[cats == c], s_in),
            }
            for c in sorted(set(cats.tolist()))
        }
    return report


# --- the detector ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class OODDetector:
    """A fitted OOD score plus its threshold; what the compiled artifact carries and serving evaluates."""

    kind: str
    """`msp`, `energy`, `mahalanobis`, `knn` or `combined:a+b[+c...]`."""
    threshold: float
    temperature: float = 1.0
    center: Mapping[str, float] = field(default_factory=dict)
    scale: Mapping[str, float] = field(default_factory=dict)
    stats: FeatureStats | None = None

    @property
    def components(self) -> tuple[str, ...]:
        return (
            tuple(self.kind.split(":", 1)[1].split("+"))
            if self.kind.startswith("combined:")
            else (self.kind,)
        )

    @property
    def needs_features(self) -> bool:
        return any(c in FEATURE_SCORES for c in self.components)

    def score(self, logits: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        parts = component_scores(
            self.components, logits, features, temperature=self.temperature, stats=self.stats
        )
        if not self.kind.startswith("combined:"):
            return parts[self.kind]
        return np.mean([(parts[c] - self.center[c]) / self.scale[c] for c in self.components], axis=0)

    def flags(self, logits: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        return self.score(logits, features) > self.threshold

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "threshold": self.threshold,
            "temperature": self.temperature,
            "center": dict(self.center),
            "scale": dict(self.scale),
            "components": list(self.components),
            "needs_features": self.needs_features,
        }

    def save(self, directory: str | Path) -> list[str]:
        """Write the detector next to a model or compiled artifact; returns the file names written."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files = [DETECTOR_FILE]
        payload = self.describe()
        if self.stats is not None and self.needs_features:
            self.stats.save(directory / FEATURE_STATS_FILE)
            payload["feature_stats"] = FEATURE_STATS_FILE
            files.append(FEATURE_STATS_FILE)
        (directory / DETECTOR_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return files

    @classmethod
    def load(cls, directory: str | Path) -> OODDetector:
        directory = Path(directory)
        payload = json.loads((directory / DETECTOR_FILE).read_text(encoding="utf-8"))
        stats = (
            FeatureStats.load(directory / payload["feature_stats"]) if payload.get("feature_stats") else None
        )
        detector = cls(
            payload["kind"],
            float(payload["threshold"]),
            float(payload.get("temperature", 1.0)),
            payload.get("center", {}),
            payload.get("scale", {}),
            stats,
        )
        if detector.needs_features and stats is None:
            raise ValueError(
                f"{directory}: detector {detector.kind} needs {FEATURE_STATS_FILE}, which is missing"
            )
        return detector

    @classmethod
    def exists(cls, directory: str | Path) -> bool:
        return (Path(directory) / DETECTOR_FILE).is_file()


def candidate_kinds(with_features: bool) -> list[str]:
    """Every single score, and every combination of two or more, that the inputs allow."""
    names = SCORES if with_features else LOGIT_SCORES
    combos = [
        f"combined:{'+'.join(c)}" for r in range(2, len(names) + 1) for c in itertools.combinations(names, r)
    ]
    return [*names, *combos]


@dataclass
class DetectorSelection:
    detector: OODDetector
    table: list[dict]
    """One row per candidate: validation AUROC/AUPR/FPR@95/TPR and flag rate at its own threshold."""
    chosen_by: str = "validation AUROC (in-domain validation split vs validation OOD pool)"
    candidates: dict[str, OODDetector] = field(default_factory=dict)
    """Every candidate fitted the same way (for side-by-side held-out reports; only `detector` is served)."""

    def as_dict(self) -> dict:
        return {"detector": self.detector.describe(), "table": self.table, "chosen_by": self.chosen_by}


def fit_ood_detector(
    *,
    val_logits: np.ndarray,
    pool_logits: np.ndarray,
    val_features: np.ndarray | None = None,
    pool_features: np.ndarray | None = None,
    stats: FeatureStats | None = None,
    temperature: float = 1.0,
    candidates: Sequence[str] | None = None,
    max_in_domain_flag_rate: float = MAX_IN_DOMAIN_FLAG_RATE,
) -> DetectorSelection:
    """Score every candidate on the validation pool, keep the highest AUROC (fewer components win ties).

    `val_*` are in-domain validation messages, `pool_*` the validation OOD pool; `stats` come from the
    training split (`fit_feature_stats`). Each candidate's threshold is set on the in-domain validation scores.
    """
    with_features = stats is not None and val_features is not None and pool_features is not None
    kinds = list(candidates) if candidates is not None else candidate_kinds(with_features)
    if not kinds:
        raise ValueError("no OOD detector candidates")
    if len(pool_logits) == 0:
        raise ValueError("the validation OOD pool is empty: cannot choose a detector")
    names = sorted({c for kind in kinds for c in OODDetector(kind, 0.0).components})
    s_in = component_scores(names, val_logits, val_features, temperature=temperature, stats=stats)
    center = {n: float(np.median(s_in[n])) for n in names}
    scale = {n: float(max(np.subtract(*np.percentile(s_in[n], [75, 25])), 1e-6)) for n in names}
    rows, fitted = [], {}
    for kind in kinds:
        probe = OODDetector(kind, 0.0, temperature, center, scale, stats)
        parts = probe.components
        sub_c, sub_s = {c: center[c] for c in parts}, {c: scale[c] for c in parts}
        probe = OODDetector(kind, 0.0, temperature, sub_c, sub_s, stats if probe.needs_features else None)
        in_scores, pool_scores = (
            probe.score(val_logits, val_features),
            probe.score(pool_logits, pool_features),
        )
        threshold = threshold_at_flag_rate(in_scores, max_in_domain_flag_rate)
        detector = OODDetector(kind, threshold, temperature, sub_c, sub_s, probe.stats)
        fitted[kind] = detector
        report = ood_report(in_scores, pool_scores, threshold)
        rows.append(
            {
                "detector": kind,
                "components": len(parts),
                **{
                    k: report[k]
                    for k in ("auroc", "aupr", "fpr_at_95_tpr", "tpr_at_threshold", "in_domain_flag_rate")
                },
            }
        )
    best = max(rows, key=lambda r: (round(r["auroc"], 6), -r["components"], r["tpr_at_threshold"]))
    for row in rows:
        row["chosen"] = row is best
    return DetectorSelection(fitted[best["detector"]], rows, candidates=fitted)


# --- compatibility: the energy threshold the first calibrator fitted ---------------------------------------
@dataclass(frozen=True)
class OODThreshold:
    threshold: float
    temperature: float
    in_domain_flag_rate: float
    ood_tpr: float
    auroc_energy: float
    auroc_msp: float
    n_in_domain: int
    n_ood: int

    def as_dict(self) -> dict:
        return asdict(self)


def fit_energy_threshold(
    in_domain_logits: np.ndarray,
    ood_logits: np.ndarray,
    *,
    max_in_domain_flag_rate: float = MAX_IN_DOMAIN_FLAG_RATE,
    temperature: float = 1.0,
) -> OODThreshold:
    e_in = energy_score(in_domain_logits, temperature)
    e_ood = energy_score(ood_logits, temperature)
    threshold = threshold_at_flag_rate(e_in, max_in_domain_flag_rate)
    return OODThreshold(
        threshold=threshold,
        temperature=temperature,
        in_domain_flag_rate=float((e_in > threshold).mean()),
        ood_tpr=float((e_ood > threshold).mean()),
        auroc_energy=auroc(e_ood, e_in),
        auroc_msp=auroc(msp_score(ood_logits), msp_score(in_domain_logits)),
        n_in_domain=int(len(e_in)),
        n_ood=int(len(e_ood)),
    )


def is_ood(logits: np.ndarray, threshold: float, temperature: float = 1.0) -> np.ndarray:
    return energy_score(logits, temperature) > threshold
