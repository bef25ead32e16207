import numpy as np
import pytest
from scipy.stats import binomtest

from manga_intent.gate import (
    GateThresholds,
    evaluate_gate,
    holm_adjust,
    mcnemar_one_sided,
    per_intent_regressions,
)


def test_mcnemar_matches_scipy_binomial_test():
    champion = np.array([True] * 30 + [False] * 10)
    candidate = np.array([True] * 20 + [False] * 10 + [True] * 2 + [False] * 8)
    b, c, p = mcnemar_one_sided(candidate, champion)
    assert (b, c) == (10, 2)
    assert p == pytest.approx(binomtest(10, 12, 0.5, alternative="greater").pvalue)
    assert mcnemar_one_sided(champion, champion)[2] == 1.0


def test_holm_adjustment():
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_regression_detected_only_when_significant():
    labels = ["a", "b"]
    y = np.array([0] * 40 + [1] * 40)
    champion = y.copy()
    candidate = y.copy()
    candidate[:15] = 1  # candidate loses 15 of 40 "a" messages: a real regression
    candidate[40:41] = 0  # and 1 "b" message: noise
    rows = {r["intent"]: r for r in per_intent_regressions(y, candidate, champion, labels, alpha=0.05)}
    assert rows["a"]["regressed"] and not rows["b"]["regressed"]
    assert rows["a"]["champion_only_right"] == 15


def test_verdict_reasons():
    t = GateThresholds()
    ok = evaluate_gate(accuracy=0.95, rare_accuracy=0.9, p95_latency_ms=5.0, thresholds=t, regressions=None)
    assert ok.passed and ok.reasons == [] and ok.checks[-1]["value"] == "no champion yet"
    bad = evaluate_gate(
        accuracy=0.90,
        rare_accuracy=0.80,
        p95_latency_ms=20.0,
        thresholds=t,
        regressions=[{"intent": "faq", "regressed": True}],
    )
    assert not bad.passed and len(bad.reasons) == 4
    assert "overall accuracy 0.9 fails >= 0.92" in bad.reasons[0]
    assert "faq" in bad.reasons[3]
