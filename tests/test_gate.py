"""The gate's criteria on constructed golden predictions, at the boundaries the issue names.

The golden set's real shape: 547 rows, 30 each for the rare intents checkout_help and escalation.
"""

import math

import numpy as np
import pytest

from manga_intent.gate import (
    CHALLENGER,
    CHAMPION,
    FAIL,
    INFO,
    NOT_APPLICABLE,
    PASS,
    GateEvidence,
    GateRow,
    GateThresholds,
    Reference,
    judge,
    minimum_detectable_drop,
    paired_bootstrap,
    rows_needed,
    wilson_interval,
)
from manga_intent.taxonomy import INTENTS

GOLDEN_COUNTS = [114, 78, 94, 42, 62, 36, 30, 30, 30, 31]  # data/golden/card.json, in INTENTS order
RARE = ("checkout_help", "escalation")
Y = np.repeat(np.arange(len(INTENTS)), GOLDEN_COUNTS)


def probs(predicted: np.ndarray) -> np.ndarray:
    out = np.full((len(predicted), len(INTENTS)), 0.02)
    out[np.arange(len(predicted)), predicted] = 0.82
    return out


def champion_predictions(errors: int = 22, seed: int = 0) -> np.ndarray:
    """A 96% champion whose errors sit outside the rare intents."""
    rng = np.random.default_rng(seed)
    common = np.where(~np.isin(Y, [INTENTS.index(r) for r in RARE]))[0]
    wrong = rng.choice(common, errors, replace=False)
    predicted = Y.copy()
    predicted[wrong] = (Y[wrong] + 1) % len(INTENTS)
    return predicted


def flip(predicted: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = predicted.copy()
    out[rows] = (Y[rows] + 3) % len(INTENTS)
    return out


def evidence(candidate, champion=None, labels=INTENTS, champion_labels=INTENTS, relabel=None, latency=5.0):
    references = (
        () if champion is None else (Reference(CHAMPION, "1", tuple(champion_labels), probs(champion)),)
    )
    return GateEvidence(
        labels=tuple(labels),
        y_true=Y,
        candidate_probs=probs(candidate),
        latency_ms=np.full(len(Y), latency),
        rare_labels=RARE,
        references=references,
        relabel=relabel or {},
    )


def rows_by_check(verdict):
    return {row.check: row for row in verdict.rows}


def test_every_row_has_value_threshold_ci_and_verdict():
    verdict = judge(evidence(champion_predictions(), champion_predictions()), GateThresholds())
    table = verdict.table()
    assert {tuple(row) for row in table} == {("check", "value", "threshold", "95% CI", "verdict", "detail")}
    checks = [row["check"] for row in table]
    assert checks[:2] == ["overall accuracy", "overall vs champion"]
    assert sum(c.endswith("vs champion") and c.startswith("intent ") for c in checks) == len(INTENTS)
    assert "rare intent checkout_help accuracy" in checks and "rare intent escalation accuracy" in checks
    assert "P95 latency (gate run)" in checks and "label order vs champion v1" in checks
    assert all(row.verdict in (PASS, FAIL, INFO, NOT_APPLICABLE) for row in verdict.rows)
    numeric = [row for row in verdict.rows if isinstance(row.value, float) and row.unit != ""]
    assert numeric and all(row.ci is not None for row in numeric)


def test_a_tie_passes():
    champion = champion_predictions()
    verdict = judge(evidence(champion.copy(), champion), GateThresholds())
    assert verdict.passed, verdict.reasons
    overall = rows_by_check(verdict)["overall vs champion"]
    assert overall.value == 0.0 and overall.ci == (0.0, 0.0)


def test_two_points_worse_overall_is_rejected():
    champion = champion_predictions()
    right = np.where(champion == Y)[0]
    lost = np.random.default_rng(1).choice(right, 11, replace=False)  # 11/547 = 2.0 pp, spread over intents
    verdict = judge(evidence(flip(champion, lost), champion), GateThresholds())
    overall = rows_by_check(verdict)["overall vs champion"]
    assert overall.value == pytest.approx(-11 / 547)
    assert overall.ci[0] < -0.01 and overall.verdict == FAIL
    assert rows_by_check(verdict)["overall accuracy"].verdict == PASS  # still above the 92% floor
    assert not verdict.passed and any(r.startswith("overall vs champion") for r in verdict.reasons)


def test_ten_point_drop_on_a_30_row_rare_intent_is_rejected():
    """Escalation loses 3 of its 30 messages; 3 gains elsewhere keep overall accuracy level."""
    champion = champion_predictions()
    escalation = np.where(Y == INTENTS.index("escalation"))[0][:3]
    wrong_discovery = np.where((Y == 0) & (champion != Y))[0][:3]
    candidate = flip(champion, escalation)
    candidate[wrong_discovery] = 0  # fixed
    rows = rows_by_check(judge(evidence(candidate, champion), GateThresholds()))
    assert rows["overall vs champion"].value == 0.0 and rows["overall vs champion"].verdict == PASS
    assert rows["rare intent escalation accuracy"].value == pytest.approx(0.9)  # above the 85% floor
    assert rows["rare intent escalation accuracy"].verdict == PASS
    row = rows["intent escalation vs champion"]
    assert row.value == pytest.approx(-0.1) and row.verdict == FAIL and row.facts["n"] == 30


def test_each_rare_intent_meets_the_floor_on_its_own():
    """checkout_help at 73% fails even though the two rare intents pooled are at 87%."""
    candidate = champion_predictions()
    checkout = np.where(Y == INTENTS.index("checkout_help"))[0][:8]
    verdict = judge(evidence(flip(candidate, checkout)), GateThresholds())
    rows = rows_by_check(verdict)
    assert rows["rare intent checkout_help accuracy"].value == pytest.approx(22 / 30)
    assert rows["rare intent checkout_help accuracy"].verdict == FAIL
    assert rows["rare intent escalation accuracy"].verdict == PASS
    assert (22 + 30) / 60 > 0.85 and not verdict.passed


def test_first_model_has_no_comparison_but_still_prints_the_detectable_drop():
    verdict = judge(evidence(champion_predictions()), GateThresholds())
    assert verdict.passed
    assert rows_by_check(verdict)["overall vs champion"].verdict == NOT_APPLICABLE
    table = {row["intent"]: row for row in verdict.intent_table()}
    accuracy = 1 - 22 / 547
    assumed = 2 * accuracy * (1 - accuracy)
    assert table["escalation"]["MDD"] == f"{minimum_detectable_drop(30, assumed) * 100:.1f} pp"
    assert table["escalation"]["rows needed"] == rows_needed(0.05, assumed)
    assert table["escalation"]["protected at margin"] == "no"  # 30 rows cannot certify a 5 pp margin


def test_minimum_detectable_drop_closed_form():
    z = 1.959964 + 0.841621
    assert minimum_detectable_drop(30, 0.05) == pytest.approx(z * math.sqrt(0.05 / 30), rel=1e-5)
    assert rows_needed(0.05, 0.05) == math.ceil((z / 0.05) ** 2 * 0.05)
    # the bootstrap CI of a paired difference matches the normal approximation it assumes
    rng = np.random.default_rng(3)
    a, b = rng.random(4000) < 0.9, rng.random(4000) < 0.9
    diff, low, high = paired_bootstrap(a, b, n_boot=4000)
    se = math.sqrt(np.mean(a != b) / 4000)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert wilson_interval(27, 30) == pytest.approx((0.7438, 0.9646), abs=1e-3)  # Wilson (1927)


def test_label_order_must_match_the_champion_or_be_mapped():
    champion = champion_predictions()
    renamed = tuple("customer_escalation" if label == "escalation" else label for label in INTENTS)
    verdict = judge(evidence(champion.copy(), champion, champion_labels=renamed), GateThresholds())
    row = rows_by_check(verdict)["label order vs champion v1"]
    assert row.verdict == FAIL and "customer_escalation→escalation" in row.detail
    assert rows_by_check(verdict)["overall vs champion"].value == "not comparable"
    mapped = judge(
        evidence(
            champion.copy(), champion, champion_labels=renamed, relabel={"customer_escalation": "escalation"}
        ),
        GateThresholds(),
    )
    assert mapped.passed and rows_by_check(mapped)["label order vs champion v1"].value == "relabelled by map"


def test_p95_latency_is_judged_on_the_gate_samples():
    rows = rows_by_check(judge(evidence(champion_predictions(), latency=16.0), GateThresholds()))
    assert rows["P95 latency (gate run)"].verdict == FAIL and rows["P95 latency (gate run)"].value == 16.0


def test_a_challenger_in_shadow_is_only_displaced_by_a_model_not_worse_than_it():
    champion = champion_predictions(errors=30)
    challenger = champion_predictions(errors=8, seed=1)
    candidate = champion_predictions(errors=20, seed=2)
    ev = evidence(candidate, champion)
    ev = GateEvidence(
        **{
            **ev.__dict__,
            "references": (*ev.references, Reference(CHALLENGER, "2", tuple(INTENTS), probs(challenger))),
        }
    )
    rows = rows_by_check(judge(ev, GateThresholds(intent_margin=1.0)))
    assert rows["overall vs champion"].verdict == PASS
    assert rows["overall vs challenger in shadow"].verdict == FAIL


def test_other_checks_slot_into_the_same_table():
    def ood_tpr(ev, t):
        tpr = ev.extras["ood_tpr"]
        return [GateRow("OOD TPR (held-out half)", tpr, "≥ 80.00%", PASS if tpr >= 0.8 else FAIL)]

    ev = evidence(champion_predictions())
    ev = GateEvidence(**{**ev.__dict__, "extras": {"ood_tpr": 0.7}})
    from manga_intent.gate import DEFAULT_CRITERIA

    verdict = judge(ev, GateThresholds(), criteria=(*DEFAULT_CRITERIA, ood_tpr))
    assert verdict.table()[-1]["check"] == "OOD TPR (held-out half)" and not verdict.passed
    assert verdict.reasons == ("OOD TPR (held-out half): 70.00% fails ≥ 80.00%",)


def quantization_extras(agreement: float) -> dict:
    return {
        "quantization": {
            "served_graph": "int8",
            "agreement": agreement,
            "ece_delta": 0.001,
            "min_agreement": 0.995,
            "max_ece_delta": 0.005,
        }
    }


def test_an_int8_graph_failing_only_agreement_falls_back_to_its_fp32_graph():
    from manga_intent.gate import only_quantization_failed, with_fp32_fallback

    champion = champion_predictions()
    base = evidence(champion.copy(), champion)
    int8 = judge(GateEvidence(**{**base.__dict__, "extras": quantization_extras(0.98)}), GateThresholds())
    assert not int8.passed and only_quantization_failed(int8)
    assert int8.reasons == (
        "int8 graph agrees with fp32 (golden, worst serving batching): 98.00% fails ≥ 99.50%",
    )
    fp32 = judge(
        GateEvidence(**{**base.__dict__, "extras": {"quantization": {"served_graph": "fp32"}}}),
        GateThresholds(),
    )
    merged = with_fp32_fallback(int8, fp32)
    assert merged.passed and merged.reasons == ()
    rows = rows_by_check(merged)
    assert (
        rows["int8 graph agrees with fp32 (golden, worst serving batching)"].verdict == INFO
    )  # kept, to say why int8 is not served
    assert rows["int8 graph agrees with fp32 (golden, worst serving batching)"].value == 0.98
    served = rows["served graph"]
    assert served.value == "fp32" and "98.00% fails" in served.detail
    assert merged.table()[-1]["check"] == "served graph"
    # the fp32 graph's own rows decide: a worse fp32 graph is still rejected
    worse = flip(champion, np.where(champion == Y)[0][:40])
    bad_fp32 = judge(evidence(worse, champion), GateThresholds())
    assert not with_fp32_fallback(int8, bad_fp32).passed


def test_an_int8_graph_that_moves_ood_flags_falls_back_to_fp32_like_one_that_moves_intents():
    """With a serving calibration the int8 graph must also keep fp32's OOD flags and routes on golden; failing
    only that is a quantization failure (the fp32 graph is judged), and the rows say which decision moved."""
    from manga_intent.gate import only_quantization_failed

    champion = champion_predictions()
    base = evidence(champion.copy(), champion)
    extras = quantization_extras(1.0)
    extras["quantization"].update(
        ood_flag_agreement=0.99, min_ood_flag_agreement=0.995, route_agreement=0.995, min_route_agreement=0.99
    )
    verdict = judge(GateEvidence(**{**base.__dict__, "extras": extras}), GateThresholds())
    assert not verdict.passed and only_quantization_failed(verdict)
    assert verdict.reasons == (
        "int8 graph keeps fp32's OOD flag (golden, worst serving batching): 99.00% fails ≥ 99.50%",
    )
    assert (
        rows_by_check(verdict)["int8 graph keeps fp32's route (golden, worst serving batching)"].verdict
        == PASS
    )
    # an artifact without a detector has no such rows
    plain = judge(GateEvidence(**{**base.__dict__, "extras": quantization_extras(1.0)}), GateThresholds())
    assert plain.passed and not any("keeps fp32's" in row["check"] for row in plain.table())


def test_no_fallback_when_anything_but_quantization_fails():
    from manga_intent.gate import only_quantization_failed

    champion = champion_predictions()
    worse = flip(champion, np.where(champion == Y)[0][:40])
    ev = evidence(worse, champion)
    both = judge(GateEvidence(**{**ev.__dict__, "extras": quantization_extras(0.98)}), GateThresholds())
    assert not both.passed and not only_quantization_failed(both)
    passing = judge(evidence(champion.copy(), champion), GateThresholds())
    assert not only_quantization_failed(passing)


def ood_and_injection_extras(tpr: float, golden_flags: float, flip_rate: float) -> dict:
    return {
        "ood": {"detector": "energy", "tpr": tpr, "n_ood": 85, "golden_flag_rate": golden_flags},
        "injection": {"injection_flip_rate": flip_rate, "injection_goal_rate": flip_rate / 3},
    }


def test_ood_and_injection_rows_are_informational_until_bounds_are_configured():
    champion = champion_predictions()
    base = evidence(champion.copy(), champion)
    weak = GateEvidence(**{**base.__dict__, "extras": ood_and_injection_extras(0.60, 0.08, 0.30)})
    informational = judge(weak, GateThresholds())
    assert informational.passed
    rows = rows_by_check(informational)
    assert rows["OOD TPR (held-out OOD half, energy)"].verdict == INFO
    assert rows["OOD TPR (held-out OOD half, energy)"].ci == pytest.approx(wilson_interval(51, 85))
    assert rows["in-domain OOD flags (golden)"].verdict == INFO
    assert rows["injection flip rate (held-out phrasings)"].verdict == INFO

    seed_point = GateThresholds(min_ood_tpr=0.85, max_ood_flag_rate=0.05, max_injection_flip_rate=0.05)
    rejected = judge(weak, seed_point)
    assert not rejected.passed
    assert rejected.reasons == (
        "OOD TPR (held-out OOD half, energy): 60.00% fails ≥ 85.00%",
        "in-domain OOD flags (golden): 8.00% fails ≤ 5.00%",
        "injection flip rate (held-out phrasings): 30.00% fails ≤ 5.00%",
    )
    good = GateEvidence(**{**base.__dict__, "extras": ood_and_injection_extras(0.94, 0.04, 0.03)})
    assert judge(good, seed_point).passed
    # no OOD rows given: the row says so instead of passing or failing
    bare = judge(base, seed_point)
    assert rows_by_check(bare)["OOD TPR (held-out OOD half)"].verdict == NOT_APPLICABLE


@pytest.mark.parametrize("ood_threshold, caught", [(-1e9, 1.0), (1e9, 0.0)])
def test_gate_evidence_measures_the_served_detector_and_injections(
    tmp_path, tokenizer, ood_threshold, caught
):
    """On a real compiled artifact: its own OOD flag on the OOD texts and golden, and the injection suite."""
    from conftest import tiny_classifier

    from manga_intent.compiled import CompiledClassifier, compile_classifier
    from manga_intent.gate_evidence import gather_evidence

    compile_classifier(
        tiny_classifier("bert", len(INTENTS), seed=0).eval(),
        tokenizer,
        tmp_path,
        labels=INTENTS,
        temperature=1.0,
        ood_threshold=ood_threshold,
        backend="onnx",
        max_length=64,
    )
    rows = [{"text": f"where is my order number {i}", "label": INTENTS[i % len(INTENTS)]} for i in range(20)]
    ev = gather_evidence(
        CompiledClassifier(tmp_path),
        rows,
        rare_labels=RARE,
        ood_texts=["do you sell concert tickets?", "asdf qwer zxcv"],
        latency_warmup=1,
    )
    assert ev.extras["ood"] == {"detector": "energy", "tpr": caught, "n_ood": 2, "golden_flag_rate": caught}
    injection = ev.extras["injection"]
    assert injection["phrasings"] == "heldout" and injection["n"] == 20
    assert 0.0 <= injection["injection_goal_rate"] <= injection["injection_flip_rate"] <= 1.0
    rows_ = rows_by_check(judge(ev, GateThresholds(min_ood_tpr=0.85)))
    assert rows_["OOD TPR (held-out OOD half, energy)"].verdict == (PASS if caught else FAIL)


def test_deployment_defaults_enforce_the_seed_ood_operating_point():
    """GateSettings (what the Dagster gate runs with) makes the OOD TPR row a criterion at the seed's 85%
    and the injection flip rate one at the seed's 5%; the golden flag rate stays informational (its
    threshold is fitted to 5% on validation)."""
    from resources.gate_settings import GateSettings

    thresholds = GateSettings().thresholds()
    assert thresholds.min_ood_tpr == 0.85
    assert thresholds.max_injection_flip_rate == 0.05
    assert thresholds.max_ood_flag_rate is None
    assert GateSettings(min_ood_tpr=-1.0).thresholds().min_ood_tpr is None
    assert GateSettings(max_injection_flip_rate=-1.0).thresholds().max_injection_flip_rate is None


def calibrated_probs(rng: np.random.Generator, confidence: float) -> np.ndarray:
    """Golden-sized predictions whose top probability is right `confidence` of the time: calibrated."""
    predicted = np.where(rng.random(len(Y)) < confidence, Y, (Y + 1) % len(INTENTS))
    out = np.full((len(Y), len(INTENTS)), (1 - confidence) / (len(INTENTS) - 1))
    out[np.arange(len(Y)), predicted] = confidence
    return out


def test_the_ece_row_judges_the_bound_and_shows_the_noise_floor_beside_it():
    rng = np.random.default_rng(3)
    calibrated = calibrated_probs(rng, 0.9)
    base = evidence(champion_predictions())
    honest = GateEvidence(**{**base.__dict__, "candidate_probs": calibrated})
    row = rows_by_check(judge(honest, GateThresholds(max_ece=0.05)))["calibrated ECE"]
    assert row.verdict == PASS
    floor = row.facts["ece_noise_floor"]
    assert 0 < floor < row.facts["ece_noise_floor_p95"] < 0.05  # one bin of 547 rows at 0.9
    assert "perfectly calibrated" in row.detail and "547 messages" in row.detail
    assert "can be noise" not in row.detail

    # the same calibrated model under a bound tighter than its floor: FAIL stands, the detail says why
    tight = rows_by_check(judge(honest, GateThresholds(max_ece=0.001)))["calibrated ECE"]
    assert tight.verdict == FAIL and "can be noise" in tight.detail

    # overconfident (says 0.99, right 90% of the time): far above the floor, and fails
    overconfident = np.where(calibrated == 0.9, 0.99, 0.01 / (len(INTENTS) - 1))
    loud = GateEvidence(**{**base.__dict__, "candidate_probs": overconfident})
    row = rows_by_check(judge(loud, GateThresholds(max_ece=0.05)))["calibrated ECE"]
    assert row.verdict == FAIL and row.value > 5 * row.facts["ece_noise_floor_p95"]
    assert rows_by_check(judge(loud, GateThresholds()))["calibrated ECE"].verdict == INFO
