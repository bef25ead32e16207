import xml.etree.ElementTree as ET

import pytest

from labeling.label_config import choice_result, label_config, read_choices
from labeling.votes import majority_vote
from manga_intent.active_learning import select_batch, uncertainty
from manga_intent.taxonomy import INTENTS


def test_label_config_is_valid_xml_with_all_intents():
    root = ET.fromstring(label_config())
    primary = [c.get("value") for c in root.find("Choices[@name='intent']")]
    assert primary == [*INTENTS, "out_of_scope"]
    assert [c.get("value") for c in root.find("Choices[@name='secondary']")] == list(INTENTS)
    assert read_choices([choice_result("intent", "faq"), choice_result("secondary", "promotion")]) == (
        "faq",
        "promotion",
    )


def test_majority_vote_and_disagreements():
    vote = majority_vote(
        [
            {"intent": "faq", "secondary": None, "annotator": 1},
            {"intent": "faq", "secondary": "promotion", "annotator": 2},
            {"intent": "promotion", "secondary": None, "annotator": 3},
        ]
    )
    assert vote["label"] == "faq" and vote["secondary"] == "promotion" and vote["disagreement"]
    assert vote["agreement"] == pytest.approx(2 / 3)
    tie = majority_vote([{"intent": "faq", "annotator": 1}, {"intent": "chitchat", "annotator": 2}])
    assert tie["label"] is None and tie["tie"]
    single = majority_vote([{"intent": "faq", "annotator": 1}])
    assert single["label"] == "faq" and not single["disagreement"]


def probs(top, p1, second, p2):
    rest = (1 - p1 - p2) / 8
    return {i: (p1 if i == top else p2 if i == second else rest) for i in INTENTS}


def test_uncertainty_strategies_order():
    sure, torn = probs("faq", 0.9, "promotion", 0.05), probs("faq", 0.45, "promotion", 0.44)
    for strategy in ("margin", "least_confidence", "entropy"):
        assert uncertainty(torn, strategy) > uncertainty(sure, strategy)
    with pytest.raises(ValueError):
        uncertainty(sure, "random")


def test_selection_dedupes_balances_and_excludes():
    candidates = [
        {"text": f"where is my order {i}?!", "probs": probs("order_tracking", 0.4, "return_request", 0.39)}
        for i in range(50)
    ]
    candidates += [
        {"text": "Where is my ORDER 1", "probs": probs("order_tracking", 0.4, "return_request", 0.39)}
    ]
    candidates += [
        {"text": f"deal on berserk {i}", "probs": probs("promotion", 0.5, "product_question", 0.3)}
        for i in range(5)
    ]
    candidates += [{"text": f"hello {i}", "probs": probs("chitchat", 0.95, "faq", 0.01)} for i in range(5)]
    batch = select_batch(candidates, 12, exclude_keys={"whereismyorder0"})
    keys = [c["message_key"] for c in batch]
    assert len(batch) == 12 and len(set(keys)) == 12
    assert "whereismyorder0" not in keys and keys.count("whereismyorder1") == 1
    groups = {c["group"] for c in batch}
    assert groups == {"order_tracking|return_request", "promotion|product_question", "chitchat|faq"}
    assert batch[0]["uncertainty"] >= batch[-1]["uncertainty"] or len(groups) > 1
    # the most uncertain group leads; the confident chitchat group still gets a seat
    assert sum(c["group"] == "chitchat|faq" for c in batch) == 4


def test_badge_prefers_uncertain_examples_and_spreads_over_clusters():
    import numpy as np

    from manga_intent.active_learning import badge_batch, gradient_embeddings

    rng = np.random.default_rng(0)
    centres = np.eye(4) * 5
    features = np.concatenate([centres[c] + rng.normal(0, 0.1, (50, 4)) for c in range(4)])
    probs = np.tile([0.5, 0.5], (200, 1))
    probs[:100] = [0.99, 0.01]  # clusters 0 and 1: the model is sure
    candidates = [{"text": f"message {i}"} for i in range(200)]
    # the gradient at the model's guess is (p - onehot) x h: near zero where the model is sure
    norms = np.linalg.norm(gradient_embeddings(probs, features), axis=1)
    assert norms[:100].max() < norms[100:].min()
    picked = badge_batch(candidates, probs, features, 6, seed=1)
    indices = [int(p["text"].split()[1]) for p in picked]
    assert len(set(indices)) == 6 and all(p["strategy"] == "badge" for p in picked)
    assert {i // 50 for i in indices} >= {2, 3}  # both uncertain clusters, not six from one
    assert sum(i >= 100 for i in indices) >= 4
    # duplicates and excluded keys are skipped, as in select_batch
    twice = badge_batch(
        candidates + candidates[:5], np.vstack([probs, probs[:5]]), np.vstack([features, features[:5]]), 300
    )
    assert len(twice) == 200
    assert all(
        p["text"] != "message 150"
        for p in badge_batch(candidates, probs, features, 50, exclude_keys={"message150"})
    )
