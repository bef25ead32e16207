"""The drift test's false-alarm rate is what it says, and the seasonal sale is caught."""

import numpy as np

from manga_intent.drift_test import drift_test
from manga_intent.taxonomy import SEED_TRAFFIC_SHARES
from serving.simulator import SCENARIOS


def windows(shares, n_windows, size, seed):
    rng = np.random.default_rng(seed)
    labels = list(shares)
    p = np.array([shares[k] for k in labels])
    return [list(rng.choice(labels, size=size, p=p / p.sum())) for _ in range(n_windows)]


def test_stationary_windows_fire_under_one_percent_and_sales_over_95():
    stationary = [
        drift_test(w, SEED_TRAFFIC_SHARES).drifted for w in windows(SEED_TRAFFIC_SHARES, 1000, 500, 1)
    ]
    sale = [
        drift_test(w, SEED_TRAFFIC_SHARES).drifted
        for w in windows(SCENARIOS["seasonal_sale"].intent_shares, 300, 500, 2)
    ]
    assert np.mean(stationary) < 0.01 and np.mean(sale) > 0.95


def test_zero_reference_share_gives_a_finite_kl_and_a_p_value():
    reference = {**SEED_TRAFFIC_SHARES, "chitchat": 0.0}
    test = drift_test(["chitchat"] * 20 + ["faq"] * 480, reference)
    assert np.isfinite(test.kl) and test.drifted and 0 < test.p_value < 0.001


def test_the_calibrated_threshold_shrinks_with_window_size():
    small = drift_test(["faq"] * 10 + ["promotion"] * 10, SEED_TRAFFIC_SHARES).kl_threshold
    large = drift_test(["faq"] * 1000 + ["promotion"] * 1000, SEED_TRAFFIC_SHARES).kl_threshold
    assert large < small
