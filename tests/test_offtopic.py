"""The off-topic generator: deterministic, balanced, train/val parts disjoint, distinct from shipped data."""

import re

import pytest

from manga_intent.data import normalized_key
from manga_intent.shipped_data import GOLDEN, OOD, SEED_CORPUS, read_rows
from manga_intent.synthetic.offtopic import generate_offtopic
from manga_intent.taxonomy import OOD_CATEGORIES


def _tokens(text):
    return set(re.findall(r"\w+", text.lower()))


def test_deterministic_balanced_and_unique():
    rows = generate_offtopic(500, seed=3, part="train")
    assert rows == generate_offtopic(500, seed=3, part="train")
    assert len({r.text for r in rows}) == 500
    counts = {c: sum(r.category == c for r in rows) for c in OOD_CATEGORIES}
    assert set(counts.values()) == {100}


def test_training_and_validation_parts_use_disjoint_templates():
    train = generate_offtopic(600, seed=0, part="train")
    val = generate_offtopic(600, seed=0, part="val")
    assert not {r.template for r in train} & {r.template for r in val}
    assert not {r.text for r in train} & {r.text for r in val}
    with pytest.raises(ValueError):
        generate_offtopic(5, part="test")


def test_no_generated_row_matches_or_near_copies_a_shipped_row():
    shipped = [r["text"] for f in (OOD, GOLDEN, SEED_CORPUS) for r in read_rows(f.path)]
    keys = {normalized_key(t) for t in shipped}
    token_sets = [_tokens(t) for t in shipped]
    for part in ("train", "val"):
        for row in generate_offtopic(1000, seed=1, part=part):
            assert normalized_key(row.text) not in keys, row.text
            words = _tokens(row.text)
            if len(words) >= 4:
                worst = max(len(words & t) / len(words | t) for t in token_sets)
                assert worst < 0.7, row.text
