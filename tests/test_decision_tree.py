"""The seed's failure-mode decision tree: each leaf has a scenario that reaches it and only it.

Scenarios are built the way production builds them: audited rows (the model's answer + a human label on a
random slice) go through `audit_metrics`, latency through the log's rows, then `decide`.
"""

import random

import pytest

from manga_intent.audit import audit_metrics, in_audit_slice
from manga_intent.decision_tree import LEAVES, Baseline, Signals, decide
from manga_intent.remedies import discovery_candidates, pair_candidates, refit_temperature
from manga_intent.taxonomy import INTENTS


def exact(rng, n, share):
    """n flags with exactly round(share * n) True, shuffled: scenarios without sampling luck."""
    flags = [i < round(share * n) for i in range(n)]
    rng.shuffle(flags)
    return flags


def audited(
    n_en=1200,
    n_jp=400,
    acc_en=0.93,
    acc_jp=0.85,
    seed=0,
    overconfident=False,
    ood=1000,
    ood_precision=0.9,
    pairs=1000,
    pair_recall=0.8,
):
    rng = random.Random(seed)
    rows = []
    for text, n, acc in (("where is my order", n_en, acc_en), ("この漫画は英語ですか vol 3", n_jp, acc_jp)):
        for label, right in [(lab, r) for lab in INTENTS for r in exact(rng, n // len(INTENTS), acc)]:
            intent = label if right else rng.choice([i for i in INTENTS if i != label])
            confidence = 0.99 if overconfident else acc  # calibrated: confidence equals accuracy
            rows.append(
                {
                    "text": text,
                    "channel": "web",
                    "label": label,
                    "secondary": None,
                    "intent": intent,
                    "confidence": confidence,
                    "is_ood": False,
                    "secondary_intent": None,
                }
            )
    for precise in exact(rng, ood, ood_precision):
        rows.append(
            {
                "text": "what's the weather",
                "channel": "web",
                "label": "out_of_scope" if precise else "faq",
                "secondary": None,
                "intent": "faq",
                "confidence": 0.3,
                "is_ood": True,
                "secondary_intent": None,
            }
        )
    for hit in exact(rng, pairs, pair_recall):
        rows.append(
            {
                "text": "return this and find something better",
                "channel": "web",
                "label": "return_request",
                "secondary": "recommendation",
                "intent": "return_request",
                "confidence": 0.99,
                "is_ood": False,
                "secondary_intent": "recommendation" if hit else None,
            }
        )
    return rows


def signals(rows, **extra) -> Signals:
    m = audit_metrics(rows)
    return Signals(
        accuracy=m["accuracy"],
        segment_accuracy=m["segment_accuracy"],
        rest_accuracy=m["rest_accuracy"],
        ece=m["ece"],
        ece_labels=m["ece_labels"],
        ood_precision=m["ood_precision"],
        multi_intent_recall=m["multi_intent_recall"],
        p95_latency_ms=8.0,
        **extra,
    )


def measured_baseline() -> Baseline:
    """What `monitoring_baseline` does: the same measurement on the champion's own (healthy) data."""
    m = audit_metrics(audited(seed=99))
    return Baseline(
        accuracy=m["accuracy"].value,
        segment_accuracy={s: r.value for s, r in m["segment_accuracy"].items()},
        ece=m["ece"],
        p95_latency_ms=8.0,
        ood_precision=m["ood_precision"].value,
        multi_intent_recall=m["multi_intent_recall"].value,
        tokenizer_fingerprint="abc",
    )


BASELINE = measured_baseline()


def leaves(actions):
    return [a.leaf for a in actions]


def test_healthy_traffic_reaches_no_leaf():
    assert leaves(decide(signals(audited(), intent_kl=0.01), BASELINE)) == []


@pytest.mark.parametrize(
    "scenario, expected",
    [
        # accuracy down overall (every segment), data drift → full retrain with recent data
        (lambda: signals(audited(acc_en=0.86, acc_jp=0.79), intent_kl=0.06), ["C→I"]),
        # accuracy down overall, no data drift → concept drift: audit the golden set
        (lambda: signals(audited(acc_en=0.86, acc_jp=0.79), intent_kl=0.01), ["C→J"]),
        # one segment (JP-EN) down 10pp, the rest healthy → targeted re-label sweep on it
        (lambda: signals(audited(acc_jp=0.72), intent_kl=0.01), ["D→O"]),
        # ECE up (confidently wrong), accuracy unchanged → calibrator refit + hot swap
        (lambda: signals(audited(overconfident=True), intent_kl=0.01), ["E→K"]),
        # the refit did not bring ECE back → full retrain
        (lambda: signals(audited(), intent_kl=0.01, calibrator_refit_recovered=False), ["E→I"]),
        # P95 up, same tokenizer, single messages slower → re-trace / rebuild the artifact
        (lambda: Signals(p95_latency_ms=11.0, tokenizer_fingerprint="abc"), ["F→M"]),
        # P95 up and the tokenizer changed → pin the tokenizer
        (lambda: Signals(p95_latency_ms=11.0, tokenizer_fingerprint="xyz"), ["F→L"]),
        # only batched requests slower → tune batch size and timeout
        (
            lambda: Signals(
                p95_latency_ms=8.2,
                p95_batched_latency_ms=6.0,
                baseline_batched_p95_ms=3.0,
                tokenizer_fingerprint="abc",
            ),
            ["F→N"],
        ),
        # OOD precision down 15pp → new-intent discovery with a 200-candidate review batch
        (
            lambda: signals(audited(ood_precision=0.75), intent_kl=0.01),
            ["G→P"],
        ),
        # multi-intent recall down → sample new pair co-occurrences
        (
            lambda: signals(audited(pair_recall=0.6), intent_kl=0.01),
            ["H→Q"],
        ),
    ],
    ids=["C-I", "C-J", "D-O", "E-K", "E-I", "F-M", "F-L", "F-N", "G-P", "H-Q"],
)
def test_each_leaf_has_a_scenario_that_reaches_it_and_only_it(scenario, expected):
    actions = decide(scenario(), BASELINE)
    assert leaves(actions) == expected, [a.reason for a in actions]
    assert actions[0].job == LEAVES[expected[0]][1]


def test_every_leaf_is_covered_and_names_a_job():
    assert set(LEAVES) == {"C→I", "C→J", "D→O", "E→K", "E→I", "F→L", "F→M", "F→N", "G→P", "H→Q"}


def test_a_few_unlucky_labels_do_not_fire():
    rows = audited(n_en=40, n_jp=20, acc_en=0.85, acc_jp=0.8, ood=20, pairs=20)
    assert decide(signals(rows, intent_kl=0.06), BASELINE) == []  # under min_labels


def test_audit_slice_is_uniform_and_independent_of_the_model():
    ids = [f"req-{i}" for i in range(20000)]
    picked = [i for i in ids if in_audit_slice(i, 0.05)]
    assert 0.045 < len(picked) / len(ids) < 0.055


def test_refit_recovers_a_pure_temperature_miscalibration():
    import numpy as np

    rng = np.random.default_rng(0)
    items = []
    for i in range(600):
        label = int(rng.integers(len(INTENTS)))
        logits = rng.normal(0, 1, len(INTENTS))
        logits[label] += 2.0
        p = np.exp(logits * 3.0)  # served too sharp: temperature 1/3 too low
        p /= p.sum()
        items.append({"label": INTENTS[label], "probs": dict(zip(INTENTS, p)), "ts": i})
    refit = refit_temperature(items, INTENTS, current_temperature=1.0)
    assert refit.ece_after < 0.75 * refit.ece_before and refit.correction > 1.3
    assert refit.unknown_labels == {}


def test_temperature_refit_counts_rows_of_an_intent_the_model_lacks_and_needs_20_it_knows():
    probs = dict.fromkeys(INTENTS, 1 / len(INTENTS))
    new_intent = [{"label": "gift_wrapping", "probs": probs, "ts": i} for i in range(30)]
    known = [{"label": INTENTS[i % len(INTENTS)], "probs": probs, "ts": 100 + i} for i in range(19)]
    with pytest.raises(
        ValueError, match=r"got 19 \(30 more carry labels it does not know: \{'gift_wrapping': 30\}"
    ):
        refit_temperature(new_intent + known, INTENTS, current_temperature=1.0)
    refit = refit_temperature(new_intent + known + known[:1], INTENTS, current_temperature=1.0)
    assert refit.unknown_labels == {"gift_wrapping": 30} and refit.fit_labels + refit.check_labels == 20


def test_discovery_returns_200_candidates_across_clusters_and_pairs_are_balanced():
    rows = [
        {"text": f"do you sell {w} stickers {i}", "id": i}
        for i, w in enumerate(["anime", "cosplay", "figure", "poster"] * 80)
    ]
    rows += [{"text": f"what's the weather in tokyo {i}", "id": 1000 + i} for i in range(100)]
    picked = discovery_candidates(rows, 200)
    assert len(picked) == 200 and len({p["cluster"] for p in picked}) > 2
    pair_rows = [
        {
            "text": f"m{i}",
            "probs": {"return_request": 0.5, "recommendation": 0.4}
            if i % 2
            else {"faq": 0.55, "promotion": 0.3},
        }
        for i in range(100)
    ]
    pairs = pair_candidates(pair_rows, 20)
    assert {p["pair"] for p in pairs} == {"recommendation+return_request", "faq+promotion"} and len(
        pairs
    ) == 20
