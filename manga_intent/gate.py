"""The golden-set promotion gate: absolute thresholds plus no per-intent regression vs the champion.

Per-intent regression uses an exact one-sided McNemar test on the golden messages of that intent
(paired: the same messages, candidate vs champion), Holm-adjusted across intents. An intent
"regresses" when the candidate is less accurate on it and the adjusted p-value is below alpha:
small golden-set noise does not block a release, a real drop does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import binom

from manga_intent.metrics import classification_report

REGRESSION_METHOD = "exact one-sided McNemar test per intent on paired golden predictions, Holm-adjusted"


@dataclass(frozen=True)
class GateThresholds:
    min_accuracy: float = 0.92
    min_rare_accuracy: float = 0.85
    max_p95_latency_ms: float = 15.0
    regression_alpha: float = 0.05


@dataclass
class GateVerdict:
    passed: bool
    reasons: list[str]
    checks: list[dict]
    regressions: list[dict] = field(default_factory=list)
    method: str = REGRESSION_METHOD

    def as_dict(self) -> dict:
        return asdict(self)


def mcnemar_one_sided(candidate_correct: np.ndarray, champion_correct: np.ndarray) -> tuple[int, int, float]:
    """(b, c, p): b = champion right & candidate wrong, c = the reverse; p = P(X >= b), X ~ Bin(b+c, 1/2)."""
    b = int(np.sum(champion_correct & ~candidate_correct))
    c = int(np.sum(candidate_correct & ~champion_correct))
    p = 1.0 if b + c == 0 else float(binom.sf(b - 1, b + c, 0.5))
    return b, c, p


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def per_intent_regressions(
    y_true: np.ndarray,
    candidate_pred: np.ndarray,
    champion_pred: np.ndarray,
    labels: Sequence[str],
    alpha: float,
) -> list[dict]:
    y_true, candidate_pred, champion_pred = map(np.asarray, (y_true, candidate_pred, champion_pred))
    rows = []
    for index, label in enumerate(labels):
        mask = y_true == index
        if not mask.any():
            continue
        cand, champ = candidate_pred[mask] == index, champion_pred[mask] == index
        b, c, p = mcnemar_one_sided(cand, champ)
        rows.append(
            {
                "intent": label,
                "n": int(mask.sum()),
                "candidate_accuracy": float(cand.mean()),
                "champion_accuracy": float(champ.mean()),
                "champion_only_right": b,
                "candidate_only_right": c,
                "p_value": p,
            }
        )
    for row, adjusted in zip(rows, holm_adjust([r["p_value"] for r in rows])):
        row["p_holm"] = adjusted
        row["regressed"] = bool(row["candidate_accuracy"] < row["champion_accuracy"] and adjusted < alpha)
    return rows


def evaluate_gate(
    *,
    accuracy: float,
    rare_accuracy: float | None,
    p95_latency_ms: float,
    thresholds: GateThresholds,
    regressions: list[dict] | None,
) -> GateVerdict:
    """Combine the absolute thresholds and the regression rows into a verdict with reasons."""
    checks = [
        {
            "check": "overall accuracy",
            "value": accuracy,
            "threshold": f">= {thresholds.min_accuracy}",
            "passed": accuracy >= thresholds.min_accuracy,
        },
        {
            "check": "rare-class accuracy",
            "value": rare_accuracy,
            "threshold": f">= {thresholds.min_rare_accuracy}",
            "passed": rare_accuracy is not None and rare_accuracy >= thresholds.min_rare_accuracy,
        },
        {
            "check": "P95 latency (ms)",
            "value": p95_latency_ms,
            "threshold": f"<= {thresholds.max_p95_latency_ms}",
            "passed": p95_latency_ms <= thresholds.max_p95_latency_ms,
        },
    ]
    regressed = [r for r in (regressions or []) if r["regressed"]]
    checks.append(
        {
            "check": "no per-intent regression vs champion",
            "value": ", ".join(r["intent"] for r in regressed)
            or ("none" if regressions is not None else "no champion yet"),
            "threshold": f"Holm-adjusted McNemar p >= {thresholds.regression_alpha}",
            "passed": not regressed,
        }
    )
    reasons = [
        f"{c['check']} {c['value'] if not isinstance(c['value'], float) else round(c['value'], 4)} "
        f"fails {c['threshold']}"
        for c in checks
        if not c["passed"]
    ]
    return GateVerdict(passed=not reasons, reasons=reasons, checks=checks, regressions=regressions or [])


@dataclass
class GoldenJudgement:
    """The gate's whole answer: the candidate's golden report, the verdict, and the comparison rows."""

    report: dict
    verdict: GateVerdict
    regressions: list[dict] | None


def judge_candidate(
    y_true: np.ndarray,
    candidate_probs: np.ndarray,
    labels: Sequence[str],
    *,
    rare_labels: Sequence[str],
    p95_latency_ms: float,
    thresholds: GateThresholds,
    champion_probs: np.ndarray | None = None,
    n_boot: int = 1000,
) -> GoldenJudgement:
    """Score the candidate's calibrated golden-set probabilities and judge it (against the champion's, if any)."""
    report = classification_report(
        y_true, candidate_probs, list(labels), rare_labels=rare_labels, n_boot=n_boot
    )
    regressions = None
    if champion_probs is not None:
        regressions = per_intent_regressions(
            y_true, candidate_probs.argmax(1), champion_probs.argmax(1), labels, thresholds.regression_alpha
        )
    verdict = evaluate_gate(
        accuracy=report["accuracy"],
        rare_accuracy=report["rare_class_accuracy"],
        p95_latency_ms=p95_latency_ms,
        thresholds=thresholds,
        regressions=regressions,
    )
    return GoldenJudgement(report, verdict, regressions)
