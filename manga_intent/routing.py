"""The route / clarify / fallback policy across the in-domain → out-of-scope continuum (seed open problem 2).

Temperature scaling is fitted on in-domain messages only, so its confidence says nothing about whether a
message belongs to the shop at all. Here the calibrated top probability is combined with the OOD detector:

    P(in scope | x)   = sigmoid(-(a * ood_score(x) + b)),   fitted on validation at the expected OOD share
    joint confidence  = P(in scope | x) * max_c P(c | x, in scope)

which is the probability that routing the message to its top intent is right, on a traffic mix with that OOD
share. A message goes to the `fallback` when its OOD score passes the detector's threshold (≤ 5% of in-domain
validation messages), to `clarify` when its joint confidence is under `clarify_below`, and is routed otherwise.
`clarify_below` is fitted on the validation mix: walking down from the most confident messages, the last
threshold before the routed messages are wrong more than `target_risk` of the time. Nothing here reads test or golden rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

ROUTES = ("route", "clarify", "fallback")
#: Routed messages may be wrong (misrouted in-domain, or out-of-scope answered as an intent) at most this often.
DEFAULT_TARGET_RISK = 0.03
#: Share of out-of-scope traffic the joint confidence is calibrated for (the seed's "5% OOD slice").
DEFAULT_OOD_PRIOR = 0.05


@dataclass(frozen=True)
class InScopeModel:
    """P(in scope | OOD score) = sigmoid(-(a * score + b)), a logistic fit at the prior `ood_prior`."""

    a: float
    b: float
    ood_prior: float

    def probability(self, ood_score: np.ndarray) -> np.ndarray:
        return expit(-(self.a * np.asarray(ood_score, float) + self.b))


def mixture_weights(n_in: int, n_ood: int, ood_prior: float) -> tuple[np.ndarray, np.ndarray]:
    """Row weights that turn n_in in-domain and n_ood OOD rows into a mix with `ood_prior` OOD share (sum 1)."""
    if not 0 < ood_prior < 1:
        raise ValueError(f"ood_prior must be in (0, 1), got {ood_prior}")
    if n_in == 0 or n_ood == 0:
        raise ValueError("the mixture needs in-domain and out-of-scope rows")
    return np.full(n_in, (1 - ood_prior) / n_in), np.full(n_ood, ood_prior / n_ood)


def fit_in_scope_model(
    in_scores: np.ndarray, ood_scores: np.ndarray, ood_prior: float = DEFAULT_OOD_PRIOR
) -> InScopeModel:
    """Weighted logistic regression (Platt scaling) of in-scope vs out-of-scope on the OOD score."""
    s_in, s_ood = np.asarray(in_scores, float), np.asarray(ood_scores, float)
    w_in, w_ood = mixture_weights(len(s_in), len(s_ood), ood_prior)
    scores, weights = np.r_[s_in, s_ood], np.r_[w_in, w_ood]
    y = np.r_[np.ones(len(s_in)), np.zeros(len(s_ood))]
    centre, spread = float(np.median(scores)), float(scores.std() or 1.0)
    x = (scores - centre) / spread

    def objective(theta):
        p = np.clip(expit(-(theta[0] * x + theta[1])), 1e-12, 1 - 1e-12)
        loss = -(weights * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum() + 1e-4 * theta[0] ** 2
        g = weights * (p - y)  # d loss / d (-(a x + b))
        return loss, np.array([-(g * x).sum() + 2e-4 * theta[0], -g.sum()])

    result = minimize(objective, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = result.x
    return InScopeModel(float(a / spread), float(b - a * centre / spread), float(ood_prior))


def risk_coverage(confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """Selective risk at every coverage when answering the most confident messages first; AURC is its area."""
    confidence = np.asarray(confidence, float)
    correct = np.asarray(correct, bool)
    weights = (
        np.full(len(confidence), 1.0 / max(len(confidence), 1))
        if weights is None
        else np.asarray(weights, float)
    )
    order = np.argsort(-confidence, kind="mergesort")
    w, wrong = weights[order], (~correct[order]).astype(float)
    covered = np.cumsum(w)
    risk = np.cumsum(w * wrong) / covered
    coverage = covered / covered[-1]
    aurc = float(np.sum(risk * np.diff(np.r_[0.0, coverage])))
    return {
        "coverage": coverage,
        "risk": risk,
        "confidence": confidence[order],
        "aurc": aurc,
        "full_coverage_risk": float(risk[-1]),
    }


def weighted_ece(confidence: np.ndarray, correct: np.ndarray, weights: np.ndarray, n_bins: int = 15) -> float:
    confidence, correct, weights = (
        np.asarray(confidence, float),
        np.asarray(correct, float),
        np.asarray(weights, float),
    )
    bins = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    total, ece = weights.sum(), 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            wb = weights[mask].sum()
            ece += (
                wb
                / total
                * abs(
                    np.average(correct[mask], weights=weights[mask])
                    - np.average(confidence[mask], weights=weights[mask])
                )
            )
    return float(ece)


@dataclass(frozen=True)
class RoutingPolicy:
    fallback_threshold: float
    """OOD score above which a message goes to the fallback (the detector's threshold)."""
    clarify_below: float
    """Joint confidence under which a (non-fallback) message gets a clarifying question."""
    in_scope: InScopeModel
    target_risk: float

    def joint_confidence(self, max_prob: np.ndarray, ood_score: np.ndarray) -> np.ndarray:
        return np.asarray(max_prob, float) * self.in_scope.probability(ood_score)

    def decide(self, max_prob: np.ndarray, ood_score: np.ndarray) -> np.ndarray:
        joint = self.joint_confidence(max_prob, ood_score)
        fallback = np.asarray(ood_score, float) > self.fallback_threshold
        return np.where(fallback, "fallback", np.where(joint < self.clarify_below, "clarify", "route"))

    def as_dict(self) -> dict:
        return {
            "fallback_threshold": self.fallback_threshold,
            "clarify_below": self.clarify_below,
            "target_risk": self.target_risk,
            "in_scope": asdict(self.in_scope),
        }

    @classmethod
    def from_dict(cls, payload: dict) -> RoutingPolicy:
        return cls(
            float(payload["fallback_threshold"]),
            float(payload["clarify_below"]),
            InScopeModel(**payload["in_scope"]),
            float(payload["target_risk"]),
        )


def fit_clarify_threshold(
    joint: np.ndarray,
    correct: np.ndarray,
    fallback: np.ndarray,
    weights: np.ndarray,
    target_risk: float,
    min_routed: int = 20,
) -> float:
    """The joint-confidence threshold at which the routed (non-fallback, joint >= t) messages stop meeting
    `target_risk`, walking down from the most confident.

    Walking down and stopping at the first breach (once `min_routed` messages are routed, so a single early
    error does not end the walk) keeps a lucky dip of the noisy validation risk curve far below the breach
    from being chosen; such a dip would not hold on new traffic.
    """
    if not 0 < target_risk < 1:
        raise ValueError(f"target_risk must be in (0, 1), got {target_risk}")
    candidates = np.unique(joint[~fallback])[::-1]
    best = float(np.nextafter(candidates[0], np.inf)) if len(candidates) else 1.0  # route nothing
    for t in candidates:  # from the most confident down: coverage grows as t falls
        routed = ~fallback & (joint >= t)
        risk = np.sum(weights[routed] * ~correct[routed]) / np.sum(weights[routed])
        if risk <= target_risk:
            best = float(t)
        elif routed.sum() >= min_routed:
            break
    return best


def fit_routing_policy(
    *,
    val_max_prob: np.ndarray,
    val_correct: np.ndarray,
    val_ood_score: np.ndarray,
    pool_max_prob: np.ndarray,
    pool_ood_score: np.ndarray,
    fallback_threshold: float,
    target_risk: float = DEFAULT_TARGET_RISK,
    ood_prior: float = DEFAULT_OOD_PRIOR,
) -> RoutingPolicy:
    """Fit P(in scope | score) and the clarify threshold on the validation mix (in-domain val + OOD pool)."""
    in_scope = fit_in_scope_model(val_ood_score, pool_ood_score, ood_prior)
    probe = RoutingPolicy(fallback_threshold, 0.0, in_scope, target_risk)
    joint = np.r_[
        probe.joint_confidence(val_max_prob, val_ood_score),
        probe.joint_confidence(pool_max_prob, pool_ood_score),
    ]
    correct = np.r_[np.asarray(val_correct, bool), np.zeros(len(pool_max_prob), bool)]
    fallback = np.r_[
        np.asarray(val_ood_score) > fallback_threshold, np.asarray(pool_ood_score) > fallback_threshold
    ]
    w_in, w_ood = mixture_weights(len(val_max_prob), len(pool_max_prob), ood_prior)
    clarify = fit_clarify_threshold(joint, correct, fallback, np.r_[w_in, w_ood], target_risk)
    return RoutingPolicy(fallback_threshold, clarify, in_scope, target_risk)


def evaluate_policy(
    policy: RoutingPolicy,
    *,
    in_max_prob: np.ndarray,
    in_correct: np.ndarray,
    in_ood_score: np.ndarray,
    ood_max_prob: np.ndarray,
    ood_ood_score: np.ndarray,
    ood_prior: float | None = None,
) -> dict:
    """Route shares, selective risk, AURC and joint-confidence ECE of `policy` on an in-domain + OOD mix."""
    prior = policy.in_scope.ood_prior if ood_prior is None else ood_prior
    in_correct = np.asarray(in_correct, bool)
    d_in, d_ood = policy.decide(in_max_prob, in_ood_score), policy.decide(ood_max_prob, ood_ood_score)
    j_in, j_ood = (
        policy.joint_confidence(in_max_prob, in_ood_score),
        policy.joint_confidence(ood_max_prob, ood_ood_score),
    )
    w_in, w_ood = mixture_weights(len(j_in), len(j_ood), prior)
    joint, weights = np.r_[j_in, j_ood], np.r_[w_in, w_ood]
    correct = np.r_[in_correct, np.zeros(len(j_ood), bool)]
    decisions = np.r_[d_in, d_ood]
    routed = decisions == "route"
    curve = risk_coverage(joint, correct, weights)
    in_only = risk_coverage(np.asarray(in_max_prob, float), in_correct)
    return {
        "ood_prior": prior,
        "in_domain": {r: float((d_in == r).mean()) for r in ROUTES},
        "out_of_scope": {r: float((d_ood == r).mean()) for r in ROUTES},
        "coverage": float(weights[routed].sum()),
        "selective_risk": float(
            np.sum(weights[routed] * ~correct[routed]) / max(weights[routed].sum(), 1e-12)
        ),
        "routed_accuracy_in_domain": float(in_correct[d_in == "route"].mean())
        if (d_in == "route").any()
        else None,
        "aurc_joint": curve["aurc"],
        "aurc_in_domain_max_prob": in_only["aurc"],
        "ece_joint": weighted_ece(joint, correct, weights),
        "curve": curve,
        "in_domain_curve": in_only,
        "n_in_domain": int(len(j_in)),
        "n_ood": int(len(j_ood)),
    }


def summary_table(evaluation: dict, policy: RoutingPolicy) -> list[dict]:
    """Rows for asset metadata and the CLI: what happens to in-domain and out-of-scope traffic."""
    rows = []
    for who in ("in_domain", "out_of_scope"):
        rows.append({"traffic": who.replace("_", " "), **{r: evaluation[who][r] for r in ROUTES}})
    rows.append(
        {
            "traffic": f"mix ({evaluation['ood_prior']:.0%} OOD)",
            "route": evaluation["coverage"],
            "clarify": None,
            "fallback": None,
        }
    )
    return rows


def curve_points(curve: dict, points: int = 11) -> list[dict]:
    """The risk-coverage curve sampled at `points` coverages (a table for metadata and the CLI)."""
    out = []
    for c in np.linspace(0.1, 1.0, points - 1 if points > 1 else 1):
        i = int(np.searchsorted(curve["coverage"], c - 1e-12))
        i = min(i, len(curve["coverage"]) - 1)
        out.append(
            {
                "coverage": float(c),
                "risk": float(curve["risk"][i]),
                "confidence": float(curve["confidence"][i]),
            }
        )
    return out
