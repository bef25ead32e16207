import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support

from manga_intent.metrics import (
    brier_score,
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    negative_log_likelihood,
    paired_ece_delta,
    reliability_bins,
)


def test_ece_hand_computed_case():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.2-ish max conf case below
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.45, 0.55]])
    y = np.array([0, 1, 0, 0])
    # 15 bins: 0.9 -> bin (0.8667, 0.9333]; 0.6 -> (0.5333, 0.6]; 0.55 -> (0.5333, 0.6]
    # bin A: conf 0.9, acc 0.5 -> |0.5-0.9| * 2/4 = 0.2
    # bin B: conf (0.6+0.55)/2 = 0.575, acc (1 + 0)/2 = 0.5 -> |0.5-0.575| * 2/4 = 0.0375
    assert expected_calibration_error(probs, y) == pytest.approx(0.2375)


def test_ece_zero_for_perfectly_calibrated_bins_and_bin_edges():
    probs = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 0])) == 0.0
    assert expected_calibration_error(probs, np.array([1, 1, 1, 1])) == 1.0
    bins = reliability_bins(probs, np.zeros(4, dtype=int))
    assert len(bins) == 15 and bins[-1]["count"] == 4  # confidence 1.0 lands in the last bin


def test_nll_and_brier():
    probs = np.array([[0.5, 0.5], [0.8, 0.2]])
    y = np.array([0, 1])
    assert negative_log_likelihood(probs, y) == pytest.approx(-(np.log(0.5) + np.log(0.2)) / 2)
    assert brier_score(probs, y) == pytest.approx(((0.25 + 0.25) + (0.64 + 0.64)) / 2)


def test_f1_and_confusion_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, 5, 300))
    assert macro_f1(y, pred, 5) == pytest.approx(f1_score(y, pred, average="macro"))
    cm = confusion_matrix(y, pred, 5)
    assert cm.sum() == 300 and np.trace(cm) == (y == pred).sum()


def _report(n, seed=0, n_boot=300):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, 4))
    logits[np.arange(n), y] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return (
        classification_report(y, probs, ["a", "b", "c", "rare"], rare_labels=["rare"], n_boot=n_boot, seed=1),
        y,
        probs,
    )


def test_report_fields_and_per_intent_values():
    report, y, probs = _report(400)
    pred = probs.argmax(axis=1)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=[0, 1, 2, 3], zero_division=0)
    for i, label in enumerate(["a", "b", "c", "rare"]):
        assert report["per_intent"][label]["precision"] == pytest.approx(p[i])
        assert report["per_intent"][label]["recall"] == pytest.approx(r[i])
        assert report["per_intent"][label]["support"] == s[i]
    assert report["rare_class_accuracy"] == pytest.approx((pred[y == 3] == 3).mean())
    assert report["accuracy"] == pytest.approx((pred == y).mean())


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_data():
    small, _, _ = _report(200)
    large, _, _ = _report(5000)
    for report in (small, large):
        for metric in ("accuracy", "macro_f1", "rare_class_accuracy"):
            lo, hi = report["ci95"][metric]
            assert lo < report[metric] < hi
        lo, hi = report["ci95"]["ece"]  # resampled ECE is biased upwards, so only its ordering is checked
        assert 0 <= lo < hi

    def width(r):
        return r["ci95"]["accuracy"][1] - r["ci95"]["accuracy"][0]

    assert width(large) < width(small) / 3  # ~1/sqrt(25) = 1/5


def test_bootstrap_coverage_is_roughly_95_percent():
    """Over many datasets drawn from a known 80%-accurate classifier, the CI covers 0.8 ~95% of the time."""
    rng = np.random.default_rng(3)
    covered = 0
    trials = 60
    for t in range(trials):
        y = rng.integers(0, 2, 300)
        correct = rng.random(300) < 0.8
        pred = np.where(correct, y, 1 - y)
        probs = np.eye(2)[pred] * 0.9 + 0.05
        lo, hi = classification_report(y, probs, ["x", "y"], n_boot=200, seed=t)["ci95"]["accuracy"]
        covered += lo <= 0.8 <= hi
    assert covered / trials >= 0.85


def test_report_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="does not match"):
        classification_report([0, 1], np.ones((3, 2)) / 2, ["a", "b"])


def test_paired_ece_delta_sees_a_confidence_shift_not_bin_edge_noise():
    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    rng = np.random.default_rng(0)
    top = rng.integers(0, 10, 160)  # a validation split's worth of confident predictions, 90% right
    logits = rng.normal(0, 0.3, size=(160, 10))
    logits[np.arange(160), top] += rng.uniform(2, 8, 160)
    y = np.where(rng.random(160) < 0.9, top, rng.integers(0, 10, 160))
    reference = softmax(logits)
    assert paired_ece_delta(reference, reference, y) == 0.0
    # logit noise that flips no argmax (an int8 graph that agrees everywhere): re-binning alone moves the
    # plain difference past the 0.005 tolerance; over fixed bins it stays inside it, its median a fifth of it
    rebinned, paired = [], []
    for _ in range(50):
        noisy = softmax(logits + rng.normal(0, 0.1, logits.shape))
        assert (noisy.argmax(1) == reference.argmax(1)).all()
        rebinned.append(abs(expected_calibration_error(noisy, y) - expected_calibration_error(reference, y)))
        paired.append(abs(paired_ece_delta(noisy, reference, y)))
    assert max(rebinned) > 0.005
    assert max(paired) < 0.005 and np.median(paired) < 0.001
    # a real change of confidence (every message less sure, same argmax) is measured in full
    flattened = softmax(logits / 2)
    assert (flattened.argmax(1) == reference.argmax(1)).all()
    assert abs(paired_ece_delta(flattened, reference, y)) > 0.02
