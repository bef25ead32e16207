import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from manga_intent.calibration import fit_temperature
from manga_intent.inference import softmax
from manga_intent.ood import auroc, energy_score, fit_energy_threshold


def _overconfident(n=3000, k=5, seed=0, scale=4.0):
    """Logits from a calibrated model (T=1) multiplied by `scale`: the fitted T should undo it."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(size=(n, k)) * 1.5
    probs = softmax(true_logits)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    return true_logits * scale, labels


def test_temperature_recovers_known_scale_and_improves_calibration():
    logits, labels = _overconfident(scale=4.0)
    fit = fit_temperature(logits, labels)
    assert fit.temperature == pytest.approx(4.0, rel=0.1)
    assert fit.nll_after < fit.nll_before and fit.ece_after < fit.ece_before
    accuracy = lambda t: (softmax(logits, t).argmax(1) == labels).mean()  # noqa: E731
    assert accuracy(fit.temperature) == accuracy(1.0)


def test_temperature_below_one_for_underconfident_logits():
    logits, labels = _overconfident(scale=0.5)
    assert fit_temperature(logits, labels).temperature == pytest.approx(0.5, rel=0.1)


def test_energy_score_and_auroc():
    z = np.array([[10.0, 0.0], [0.0, 0.0]])
    assert energy_score(z)[0] < energy_score(z)[1]
    assert energy_score(z)[1] == pytest.approx(-np.log(2))
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 300), rng.normal(0, 1, 400)
    pos[:10] = neg[:10]  # ties
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(400)], np.r_[pos, neg])
    assert auroc(pos, neg) == pytest.approx(expected)


def test_threshold_flags_at_most_five_percent_of_in_domain():
    rng = np.random.default_rng(1)
    in_domain = rng.normal(size=(1000, 10))
    in_domain[np.arange(1000), rng.integers(0, 10, 1000)] += 6.0  # confident
    ood = rng.normal(size=(200, 10))  # flat logits: high energy
    fit = fit_energy_threshold(in_domain, ood, max_in_domain_flag_rate=0.05)
    assert fit.in_domain_flag_rate <= 0.05
    assert fit.ood_tpr > 0.8 and fit.auroc_energy > 0.9
    with pytest.raises(ValueError):
        fit_energy_threshold(in_domain, ood, max_in_domain_flag_rate=0.0)
