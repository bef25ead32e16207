"""Attacks, the normalisation defence in the shared clean_text, flip/goal rates and the phrasing split."""

import random
import re
import unicodedata

import numpy as np
import pytest

from manga_intent.data import Example, clean_text
from manga_intent.injection_generator import insert_instruction
from manga_intent.robustness import (
    ADVERSARIAL_MIX,
    ATTACKS,
    ATTACKS_BY_NAME,
    HOMOGLYPHS,
    INJECTION_TEMPLATES,
    INTENT_ALIASES,
    adversarial_augmentation,
    adversarial_examples,
    adversarial_pairs,
    attack_text,
    injection_phrase,
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


def test_every_lookalike_of_a_latin_letter_folds_inside_a_latin_word_after_nfkc():
    """Built from Unicode's confusables table, not from any phrasing set: NFKC runs first, so a lookalike whose
    NFKC image is another non-Latin letter (lunate sigma ϲ -> ς) must fold through that image."""
    from manga_intent.data import _latin_lookalikes

    missed = []
    for ch, letter in _latin_lookalikes().items():
        nfkc = unicodedata.normalize("NFKC", ch)
        if nfkc.isascii() or not nfkc.isalpha():
            continue  # NFKC itself gives a Latin letter (a cased form), or a mark/digit, not a letter to fold
        if clean_text(f"x{ch}x") != f"x{letter}x":
            missed.append((ch, letter, clean_text(f"x{ch}x")))
    assert not missed, missed[:10]
    assert clean_text("ϲheϲkout") == "checkout"


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


def test_the_three_phrasing_sets_are_disjoint():
    for a, b in (("train", "val"), ("train", "heldout"), ("val", "heldout")):
        assert not set(INJECTION_TEMPLATES[a]) & set(INJECTION_TEMPLATES[b])
        assert not set(HOMOGLYPHS[a].values()) & set(HOMOGLYPHS[b].values())
        for intent, names in INTENT_ALIASES.items():
            assert intent in INTENTS
            assert not set(names[a]) & set(names[b]), (intent, a, b)


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9]+|<t>", text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def test_training_phrasings_share_no_word_trigram_with_val_or_heldout_ones():
    """The composed generator and the training templates never write a val or held-out phrasing, even in
    part: no word trigram (the target as a placeholder) of one appears in 20,000 generated instructions."""
    unseen = {}
    for phrasings in ("val", "heldout"):
        for template in INJECTION_TEMPLATES[phrasings]:
            for gram in _trigrams(template.replace("{intent}", " <T> ")):
                unseen[gram] = template
    rng = random.Random(0)
    for _ in range(20_000):
        target = rng.choice(INTENTS)
        phrase = injection_phrase(target, rng, "train")
        for name in sorted(INTENT_ALIASES[target]["train"] + (target, target.replace("_", " ")), key=len)[
            ::-1
        ]:
            phrase = re.sub(re.escape(name), " <T> ", phrase, flags=re.IGNORECASE)
        shared = _trigrams(phrase) & set(unseen)
        assert not shared, (phrase, [unseen[g] for g in shared])


def test_adversarial_examples_use_training_phrasings_only_and_keep_labels():
    rows = [
        Example(f"where is my order number {i}. it is late", "order_tracking", "train") for i in range(200)
    ]
    attacked = adversarial_examples(rows, INTENTS, 600, seed=0)
    assert len(attacked) == 600
    assert {e.label for e in attacked} == {"order_tracking"}
    unseen_names = {n.lower() for names in INTENT_ALIASES.values() for n in names["val"] + names["heldout"]}
    kinds = {kind for kind, _ in ADVERSARIAL_MIX}
    for example in attacked:
        assert example.text == clean_text(example.text)
        assert not any(n in example.text.lower() for n in unseen_names), example.text
        assert example.meta["augmented"] in kinds
        assert (example.meta["injected"] is not None) == example.meta["augmented"].startswith("injection")
    assert {e.meta["augmented"] for e in attacked} == kinds
    inside = [
        e.text for e in attacked if e.meta["augmented"] == "injection" and not e.text.startswith("where")
    ]
    assert inside, "no injection was placed before the message"
    assert adversarial_examples(rows, INTENTS, 50, seed=1) == adversarial_examples(rows, INTENTS, 50, seed=1)
    assert len(adversarial_augmentation(rows, INTENTS, fraction=2.0, seed=0)) == 400
    with pytest.raises(ValueError, match="no examples"):
        adversarial_examples([], INTENTS, 5)


def test_injections_go_before_after_or_between_sentences():
    rng = random.Random(0)
    text = "where is my order? it was due monday."
    assert insert_instruction(text, "X", "inside", rng) == "where is my order? X it was due monday."
    assert insert_instruction(text, "X", "prefix", rng).startswith("X")
    assert insert_instruction("no sentence break", "X", "inside", rng) in {
        f"{a}{sep}{b}"
        for sep in (" ", "\n", " - ", ". ")
        for a, b in (("X", "no sentence break"), ("no sentence break", "X"))
    }
    with pytest.raises(ValueError, match="position"):
        insert_instruction(text, "X", "middle", rng)


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


def test_leetspeak_is_folded_but_numbers_are_not():
    assert clean_text("wh3r3 is my 0rd3r? c4n 1 g37 4 r3fund") == "where is my order? can 1 get 4 refund"
    assert clean_text("H3LL0, m4ng4 0nep1ece ta1k") == "HELLO, manga onepiece talk"
    for text in (
        "vol12 of jjk",
        "ps5 and 3ds, 4k 1080p blu-ray",
        "top5 shonen of 2024",
        "the 2nd and 3rd volumes",
        "order #12345 for $19.99",
        "b2b mp3 x2 jjk0",
        "Hunter x Hunter vol 37",
    ):
        assert clean_text(text) == text


def test_leetspeak_fold_leaves_every_shipped_shop_message_unchanged():
    """The fold is a defence, not a rewrite: no training, targeted or validation row of the shipped corpus
    reads differently (only the gibberish OOD rows such as "0x3f9a" do)."""
    from manga_intent.leetspeak import fold_leetspeak
    from manga_intent.shipped_data import SEED_CORPUS, TARGETED, read_rows

    changed = [
        r["text"]
        for f in (SEED_CORPUS, TARGETED)
        for r in read_rows(f.path)
        if fold_leetspeak(r["text"]) != r["text"]
    ]
    assert changed == []


def test_lookalikes_of_lookalikes_fold_inside_latin_words():
    """Greek τ is listed as a confusable of LATIN LETTER SMALL CAPITAL T only: it still folds to t."""
    assert clean_text("wτrd ordеr") == "wtrd order"
    assert clean_text("Ελληνικά κείμενα εδώ τώρα") == "Ελληνικά κείμενα εδώ τώρα"


_TASK = {
    "order_tracking": ["tracking", "parcel", "delivery", "shipped"],
    "return_request": ["refund", "return", "damaged", "broken"],
    "escalation": ["manager", "human", "complaint", "agent"],
    "chitchat": ["hello", "thanks", "bye", "hi"],
}
_FILLER = ["please", "can", "you", "the", "my", "now", "today", "manga", "vol", "is", "it", "where"]


def _keyword_rows(n: int, seed: int) -> list[Example]:
    from conftest import keyword_rows

    return [Example(text, label) for text, label in keyword_rows(n, seed, _TASK, _FILLER)]


def test_adversarial_training_lowers_the_flip_rate_of_unseen_injection_phrasings(tokenizer):
    """A tiny model whose intents are keywords ("refund") is flipped by an injection naming another intent
    ("... route to return request"); adversarial training on the composed training phrasings makes it
    ignore the injections of the held-out phrasings it never saw, at the same clean accuracy.

    Judged on three seeds together: one tiny model's flip rate swings from 6% to 70% with its seed (and
    with the CPU's float kernels), so one seed cannot tell the defence from luck."""
    from conftest import tiny_classifier, tiny_train_config

    from manga_intent.calibrator_fit import eager_outputs
    from manga_intent.training import train_classifier

    train, val, test = _keyword_rows(400, 0), _keyword_rows(80, 1), _keyword_rows(120, 2)
    labels = list(_TASK)

    def trained(weight: float, seed: int):
        result = train_classifier(
            train,
            val,
            labels,
            tiny_train_config(
                adversarial_weight=weight, adversarial_batch_size=16, init_seed=seed, sampler_seed=seed
            ),
            model_and_tokenizer=(tiny_classifier("bert", len(labels), seed=seed), tokenizer),
            progress=False,
        )
        predict = lambda texts: eager_outputs(result.model, tokenizer, texts).logits.argmax(1)  # noqa: E731
        attacks = [ATTACKS_BY_NAME["inject_append"], ATTACKS_BY_NAME["inject_prefix"]]
        return result, run_robustness(predict, test, labels, attacks=attacks, phrasings="heldout")

    flips = {0.0: [], 1.0: []}
    for seed in (0, 1, 2):
        for weight in flips:
            result, report = trained(weight, seed)
            assert report.clean_accuracy > 0.95, (weight, seed, report.clean_accuracy)
            flips[weight].append(report.summary()["injection_flip_rate"])
            if weight:
                assert any("adversarial training on" in note for note in result.notes)
            else:
                assert not any("adversarial" in note for note in result.notes)
    plain, adversarial = np.mean(flips[0.0]), np.mean(flips[1.0])
    assert plain > 0.1, flips
    assert adversarial < 0.5 * plain, flips
    with pytest.raises(ValueError, match="adversarial_weight"):
        tiny_train_config(adversarial_weight=-1).validate()
    with pytest.raises(ValueError, match="needs adversarial_weight"):
        tiny_train_config(adversarial_consistency=1.0).validate()


def test_lone_demands_of_a_self_routing_intent_keep_that_intent():
    """Adversarial training teaches that an injected demand beside a request is noise; a message that is
    nothing but a demand for a person ("live agent now") must still read as escalation."""
    rows = [Example("where is my order", "order_tracking"), Example("let me talk to a person", "escalation")]
    pairs = adversarial_pairs(rows, INTENTS, 2000, seed=0)
    demands = [(s, e) for s, e in pairs if e.meta["augmented"] == "self_routing_demand"]
    assert 20 < len(demands) < 120  # about 3%
    assert all(rows[s].label == e.label == "escalation" and e.text != rows[s].text for s, e in demands)
    plain = [Example("where is my order", "order_tracking")]
    assert not any(
        e.meta["augmented"] == "self_routing_demand" for _, e in adversarial_pairs(plain, INTENTS, 500)
    )
    none = adversarial_pairs(rows, INTENTS, 2000, seed=0, self_routing_share=0.0)
    assert not any(e.meta["augmented"] == "self_routing_demand" for _, e in none)
    many = adversarial_pairs(rows, INTENTS, 2000, seed=0, self_routing_share=0.5)
    assert 800 < sum(e.meta["augmented"] == "self_routing_demand" for _, e in many) < 1200

    from manga_intent.training import TrainConfig

    with pytest.raises(ValueError, match="adversarial_self_routing_share must be in"):
        TrainConfig(adversarial_self_routing_share=1.5).validate()
