"""The route / clarify / fallback policy: P(in scope), the fitted clarify threshold, risk-coverage and AURC."""

import numpy as np
import pytest

from manga_intent.routing import (
    RoutingPolicy,
    evaluate_policy,
    fit_in_scope_model,
    fit_routing_policy,
    mixture_weights,
    risk_coverage,
)


def test_risk_coverage_and_aurc_on_a_hand_made_case():
    confidence = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, False, True])
    curve = risk_coverage(confidence, correct)
    assert curve["coverage"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert curve["risk"].tolist() == pytest.approx([0, 0, 1 / 3, 1 / 4])
    assert curve["aurc"] == pytest.approx(0.25 * (0 + 0 + 1 / 3 + 1 / 4))
    perfect = risk_coverage(np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, True, True, False]))
    assert perfect["aurc"] < curve["aurc"]  # the error answered last costs least


def test_in_scope_probability_falls_with_the_ood_score():
    rng = np.random.default_rng(0)
    model = fit_in_scope_model(rng.normal(0, 1, 300), rng.normal(4, 1, 100), ood_prior=0.05)
    p = model.probability(np.array([-1.0, 2.0, 6.0]))
    assert p[0] > p[1] > p[2] and p[0] > 0.95 and p[2] < 0.2
    assert mixture_weights(3, 2, 0.2)[1].sum() == pytest.approx(0.2)


def _mix(rng, n_in=400, n_ood=200):
    in_score, ood_score = rng.normal(0, 1, n_in), rng.normal(3.5, 1, n_ood)
    in_prob = rng.uniform(0.3, 1.0, n_in)
    in_correct = rng.uniform(size=n_in) < in_prob  # calibrated in-domain probabilities
    return in_prob, in_correct, in_score, rng.uniform(0.3, 0.9, n_ood), ood_score


def test_clarify_threshold_is_fitted_to_the_target_risk_and_generalises():
    rng = np.random.default_rng(1)
    vp, vc, vs, pp, ps = _mix(rng)
    threshold = float(np.quantile(vs, 0.95, method="higher"))
    policy = fit_routing_policy(
        val_max_prob=vp,
        val_correct=vc,
        val_ood_score=vs,
        pool_max_prob=pp,
        pool_ood_score=ps,
        fallback_threshold=threshold,
        target_risk=0.1,
    )
    fit = evaluate_policy(
        policy, in_max_prob=vp, in_correct=vc, in_ood_score=vs, ood_max_prob=pp, ood_ood_score=ps
    )
    assert fit["selective_risk"] <= 0.1 + 1e-9
    assert 0 < policy.clarify_below < 1
    looser = RoutingPolicy(threshold, policy.clarify_below - 0.1, policy.in_scope, 0.1)
    assert (
        evaluate_policy(
            looser, in_max_prob=vp, in_correct=vc, in_ood_score=vs, ood_max_prob=pp, ood_ood_score=ps
        )["selective_risk"]
        > 0.1
    )  # the fitted threshold is the loosest
    risks = []
    for seed in range(2, 7):  # fresh draws: the true risk at the fitted threshold is ~0.13 here
        tp, tc, ts, op, os_ = _mix(np.random.default_rng(seed))
        test = evaluate_policy(
            policy, in_max_prob=tp, in_correct=tc, in_ood_score=ts, ood_max_prob=op, ood_ood_score=os_
        )
        risks.append(test["selective_risk"])
    assert np.mean(risks) < 0.16
    for who in ("in_domain", "out_of_scope"):
        assert sum(test[who].values()) == pytest.approx(1.0)
    assert test["out_of_scope"]["fallback"] > 0.8 and test["in_domain"]["fallback"] < 0.1
    assert test["aurc_joint"] > 0 and 0 <= test["ece_joint"] <= 1


def test_policy_decides_and_round_trips():
    rng = np.random.default_rng(3)
    vp, vc, vs, pp, ps = _mix(rng)
    policy = fit_routing_policy(
        val_max_prob=vp,
        val_correct=vc,
        val_ood_score=vs,
        pool_max_prob=pp,
        pool_ood_score=ps,
        fallback_threshold=2.0,
    )
    assert RoutingPolicy.from_dict(policy.as_dict()) == policy
    decisions = policy.decide(np.array([0.99, 0.99, 0.31]), np.array([-1.0, 5.0, -1.0]))
    assert decisions.tolist() == ["route", "fallback", "clarify"]
    with pytest.raises(ValueError):
        fit_routing_policy(
            val_max_prob=vp,
            val_correct=vc,
            val_ood_score=vs,
            pool_max_prob=pp,
            pool_ood_score=ps,
            fallback_threshold=2.0,
            target_risk=0,
        )
