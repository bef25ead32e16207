"""bench/split_calibration.py: the oracle temperature is a ceiling, and confident errors are counted."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.split_calibration import split_calibration  # noqa: E402
from manga_intent.inference import softmax  # noqa: E402


def test_the_oracle_temperature_bounds_every_served_temperature_and_confident_errors_are_named():
    rng = np.random.default_rng(0)
    n = 400
    labels = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), labels] += 3.0  # mostly right
    wrong = np.arange(5)
    logits[wrong] = 0.0
    logits[wrong, (labels[wrong] + 1) % 3] = 12.0  # five confidently wrong rows
    for served_t in (0.5, 1.0, 2.0):
        served = softmax(logits, served_t)
        result = split_calibration(logits, served, labels, bound=0.02)
        assert result.n == n and result.confident_errors[:5] == list(range(5))
        assert result.oracle_ece <= result.served_ece + 1e-3  # no temperature beats the oracle's (grid step)
        assert 0 < result.confident_error_ece_share <= 1
        assert 0 <= result.noise_floor["share_at_or_below_bound"] <= 1
        assert result.accuracy == pytest.approx((served.argmax(1) == labels).mean())
    clean = split_calibration(logits[5:], softmax(logits[5:], 1.0), labels[5:], bound=0.02)
    assert clean.confident_errors == [] and clean.confident_error_ece_share == 0.0
