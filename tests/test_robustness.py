"""Attacks, the normalisation defence in the shared clean_text, flip/goal rates and the phrasing split."""

import random

import numpy as np
import pytest

from manga_intent.data import Example, clean_text
from manga_intent.robustness import (
    ATTACKS,
    ATTACKS_BY_NAME,
    HOMOGLYPHS,
    INJECTION_TEMPLATES,
    INTENT_ALIASES,
    adversarial_augmentation,
    attack_text,
    nfkc_only_clean_text,
    run_robustness,
)
from manga_intent.taxonomy import INTENTS

MESSAGE = "where is my order, it has been two weeks"


def test_every_attack_changes_the_text():
    for attack in ATTACKS:
        rng = random.Random(0)
        attacked, target = attack_text(attack, MESSAGE, "order_tracking", INTENTS, rng, "heldout")
        assert attacked != MESSAGE, attack.name
        assert (target is not None) == attack.has_goal
        assert target != "order_tracking"


@pytest.mark.parametrize("name", ["zero_width", "bidi", "fullwidth"])
def test_normalisation_undoes_invisible_and_width_attacks(name):
    for seed in range(5):
        attacked, _ = attack_text(
            ATTACKS_BY_NAME[name], MESSAGE, "order_tracking", INTENTS, random.Random(seed), "heldout"
        )
        assert clean_text(attacked) == clean_text(MESSAGE)
        assert (
            nfkc_only_clean_text(attacked) != MESSAGE or name == "fullwidth"
        )  # the old cleaning missed these


@pytest.mark.parametrize("phrasings", ["train", "heldout"])
def test_homoglyphs_fold_back_to_latin(phrasings):
    attacked, _ = attack_text(
        ATTACKS_BY_NAME["homoglyphs"], MESSAGE, "order_tracking", INTENTS, random.Random(1), phrasings
    )
    folded = clean_text(attacked)
    known = {v for v in HOMOGLYPHS[phrasings].values()}
    assert sum(ch in known for ch in attacked) > 3
    # Unicode's confusables table covers nearly all the held-out lookalikes too (not written from them)
    assert sum(a != b for a, b in zip(folded, MESSAGE)) <= 2


def test_clean_text_leaves_real_foreign_scripts_and_japanese_alone():
    for text in (
        "Какая погода будет завтра в Москве?",
        "Ελληνικά κείμενα εδώ",
        "ハイキュー!! の公式グッズ ありますか",
        "tankōbon shōnen vol 3",
        "Hunter x Hunter vol 37",
    ):
        assert clean_text(text) == text
    assert clean_text("whеrе is my оrdеr") == "where is my order"  # Cyrillic е/о inside Latin words
    assert clean_text("help!!!!!!!! now...") == "help!!! now..."
    assert clean_text("a\u202eb\u200dc\u00add") == "abcd"


def test_heldout_phrasings_are_disjoint_from_training_ones():
    assert not set(INJECTION_TEMPLATES["train"]) & set(INJECTION_TEMPLATES["heldout"])
    for intent, names in INTENT_ALIASES.items():
        assert intent in INTENTS
        assert not set(names["train"]) & set(names["heldout"])
    assert not set(HOMOGLYPHS["train"].values()) & set(HOMOGLYPHS["heldout"].values())


def test_augmentation_uses_training_phrasings_only_and_keeps_labels():
    rows = [Example(f"where is my order number {i}", "order_tracking", "train") for i in range(200)]
    augmented = adversarial_augmentation(rows, INTENTS, fraction=2.0, seed=0)
    assert len(augmented) == 400
    assert {e.label for e in augmented} == {"order_tracking"}
    heldout_markers = [t.split("{intent}")[0].strip().lower() for t in INJECTION_TEMPLATES["heldout"]]
    heldout_markers = [m for m in heldout_markers if len(m) > 6]
    for example in augmented:
        assert example.text == clean_text(example.text)
        assert not any(m in example.text.lower() for m in heldout_markers), example.text
        assert example.meta["augmented"] in ATTACKS_BY_NAME
    assert {e.meta["augmented"] for e in augmented} == set(ATTACKS_BY_NAME)


def test_flip_and_goal_rates_of_a_keyword_model():
    """A model that trusts intent names is fooled by injections (flips to the goal), not by casing."""
    examples = [Example(f"where is my parcel {i}", "order_tracking") for i in range(50)]

    def predict(texts):
        out = []
        for text in texts:
            lowered = text.lower()
            named = [
                i
                for i, label in enumerate(INTENTS)
                if label != "order_tracking" and (label in lowered or label.replace("_", " ") in lowered)
            ]
            hit = named[0] if named else None
            out.append(INTENTS.index("order_tracking") if hit is None else hit)
        return np.array(out)

    report = run_robustness(
        predict,
        examples,
        INTENTS,
        attacks=[ATTACKS_BY_NAME["inject_append"], ATTACKS_BY_NAME["casing"]],
        phrasings="heldout",
    )
    rows = {r["attack"]: r for r in report.rows}
    assert report.clean_accuracy == 1.0
    assert rows["casing"]["flip_rate"] == 0.0 and rows["casing"]["goal_rate"] is None
    assert rows["inject_append"]["flip_rate"] > 0.3
    assert rows["inject_append"]["goal_rate"] == pytest.approx(rows["inject_append"]["flip_rate"])
    summary = report.summary()
    assert summary["injection_flip_rate"] == rows["inject_append"]["flip_rate"]
    with pytest.raises(ValueError):
        run_robustness(predict, [], INTENTS)
