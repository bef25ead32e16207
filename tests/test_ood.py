"""OOD scores, the validation-chosen detector, its operating point and its metrics (pure numpy, no model)."""

import numpy as np
import pytest

from manga_intent.ood import (
    MAX_IN_DOMAIN_FLAG_RATE,
    FeatureStats,
    OODDetector,
    aupr,
    auroc,
    candidate_kinds,
    energy_score,
    fit_feature_stats,
    fit_ood_detector,
    fpr_at_tpr,
    knn_score,
    logsumexp_rows,
    mahalanobis_score,
    msp_score,
    ood_report,
    threshold_at_flag_rate,
)

K, D = 4, 12


def _blobs(rng, n, *, ood=False, scale=1.0):
    """Class blobs whose logits do NOT separate OOD (the head only sees 2 directions); features do."""
    means = np.eye(K, D) * 6.0
    y = rng.integers(0, K, n)
    centre = rng.normal(0, 1, (n, D)) * 6.0 if ood else means[y]
    features = centre + rng.normal(0, scale, (n, D))
    head = np.eye(K, D)
    return features, features @ head.T, y


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {
        name: _blobs(rng, n, ood=ood)
        for name, n, ood in (
            ("train", 400, False),
            ("val", 200, False),
            ("pool", 150, True),
            ("test", 200, False),
            ("held", 150, True),
        )
    }


def test_logit_scores_rank_confident_rows_as_in_domain():
    confident, flat = np.array([[8.0, 0, 0]]), np.array([[0.1, 0, 0]])
    assert msp_score(confident)[0] < msp_score(flat)[0]
    assert energy_score(confident)[0] < energy_score(flat)[0]
    assert msp_score(confident)[0] == pytest.approx(-np.exp(8) / (np.exp(8) + 2))


def test_numpy_logsumexp_matches_scipy_at_every_scale():
    from scipy.special import logsumexp

    rng = np.random.default_rng(0)
    for scale in (1e-3, 1.0, 50.0, 800.0):  # 800: exp would overflow without the max shift
        z = rng.normal(scale=scale, size=(64, 10))
        np.testing.assert_allclose(logsumexp_rows(z), logsumexp(z, axis=1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(energy_score(z, 1.7), -1.7 * logsumexp(z / 1.7, axis=1), rtol=1e-12)


def test_feature_scores_separate_far_points(data):
    f, _, y = data["train"]
    stats = fit_feature_stats(f, y, K, k=5)
    near, far = stats.means[:1] + 0.1, stats.means[:1] + 50.0
    assert mahalanobis_score(near, stats)[0] < mahalanobis_score(far, stats)[0]
    nearest = fit_feature_stats(f, y, K, k=1)
    assert knn_score(f[:3], nearest) == pytest.approx(np.zeros(3), abs=1e-5)  # its own bank entry
    assert knn_score(f[:3] * -1.0, nearest).min() > 0.3  # pointing away from every training feature
    assert np.allclose(np.linalg.norm(stats.bank, axis=1), 1.0, atol=1e-5)


def test_mahalanobis_matches_the_textbook_distance():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 8))
    stats = FeatureStats(rng.normal(size=(3, 8)), a @ a.T / 8, np.zeros((1, 8)), 1)
    points = rng.normal(size=(5, 8))
    expected = [min((x - m) @ stats.precision @ (x - m) for m in stats.means) for x in points]
    np.testing.assert_allclose(mahalanobis_score(points, stats), expected, rtol=1e-9)


def test_fit_feature_stats_needs_every_class():
    with pytest.raises(ValueError, match=r"classes \[2\]"):
        fit_feature_stats(np.zeros((4, 3)), np.array([0, 1, 0, 1]), 3)


def test_metrics_on_hand_made_scores():
    pos, neg = np.array([3.0, 4.0, 5.0, 0.5]), np.array([0.0, 1.0, 2.0, 0.2])
    assert auroc(pos, neg) == pytest.approx(14 / 16)
    assert auroc(np.array([1.0]), np.array([1.0])) == 0.5  # ties count half
    assert 0 < aupr(pos, neg) <= 1
    # the loosest threshold catching 95% of pos is 0.5 (pos' minimum here): in-domain >= 0.5 -> 2 of 4
    assert fpr_at_tpr(pos, neg) == pytest.approx(0.5)


def test_threshold_flags_at_most_the_rate():
    scores = np.random.default_rng(1).normal(size=160)
    threshold = threshold_at_flag_rate(scores, 0.05)
    assert (scores > threshold).mean() <= 0.05
    assert (scores >= threshold).mean() > 0.03  # and it is not needlessly strict
    with pytest.raises(ValueError):
        threshold_at_flag_rate(scores, 1.5)


def test_detector_is_chosen_on_the_validation_pool_and_generalises(data):
    (ftr, _, ytr), (fv, lv, _), (fp, lp, _) = data["train"], data["val"], data["pool"]
    stats = fit_feature_stats(ftr, ytr, K)
    selection = fit_ood_detector(
        val_logits=lv, pool_logits=lp, val_features=fv, pool_features=fp, stats=stats
    )
    table = {row["detector"]: row for row in selection.table}
    assert set(table) == set(candidate_kinds(True))
    chosen = selection.detector
    assert table[chosen.kind]["chosen"] and sum(r["chosen"] for r in selection.table) == 1
    assert table[chosen.kind]["auroc"] == max(r["auroc"] for r in selection.table)
    assert chosen.needs_features  # logits cannot see these outliers, features can
    assert table["mahalanobis"]["auroc"] > table["energy"]["auroc"] + 0.2
    for row in selection.table:
        assert row["in_domain_flag_rate"] <= MAX_IN_DOMAIN_FLAG_RATE
    (ft, lt, _), (fh, lh, _) = data["test"], data["held"]
    report = ood_report(
        chosen.score(lt, ft), chosen.score(lh, fh), chosen.threshold, categories=["a", "b", "c"] * 50
    )
    assert report["auroc"] > 0.95 and report["tpr_at_threshold"] > 0.85
    assert report["in_domain_flag_rate"] < 0.1
    assert set(report["per_category"]) == {"a", "b", "c"}
    assert set(report) >= {"auroc", "aupr", "fpr_at_95_tpr", "tpr_at_threshold", "in_domain_flag_rate"}


def test_without_features_only_logit_detectors_compete(data):
    (_, lv, _), (_, lp, _) = data["val"], data["pool"]
    selection = fit_ood_detector(val_logits=lv, pool_logits=lp)
    assert {r["detector"] for r in selection.table} == {"msp", "energy", "combined:msp+energy"}
    assert not selection.detector.needs_features


def test_detector_round_trips_through_its_files(tmp_path, data):
    (ftr, _, ytr), (fv, lv, _), (fp, lp, _) = data["train"], data["val"], data["pool"]
    stats = fit_feature_stats(ftr, ytr, K)
    detector = fit_ood_detector(
        val_logits=lv,
        pool_logits=lp,
        val_features=fv,
        pool_features=fp,
        stats=stats,
        candidates=["combined:energy+knn"],
    ).detector
    files = detector.save(tmp_path)
    loaded = OODDetector.load(tmp_path)
    assert loaded.kind == "combined:energy+knn" and loaded.threshold == detector.threshold
    assert np.allclose(loaded.score(lv, fv), detector.score(lv, fv), atol=1e-4)
    (tmp_path / files[1]).unlink()
    with pytest.raises(FileNotFoundError):
        OODDetector.load(tmp_path)
    with pytest.raises(ValueError, match="needs pooled features"):
        detector.score(lv, None)


def test_empty_pool_is_an_error(data):
    _, lv, _ = data["val"]
    with pytest.raises(ValueError, match="pool is empty"):
        fit_ood_detector(val_logits=lv, pool_logits=np.zeros((0, K)))
