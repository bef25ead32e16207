"""The hand-written data shipped in data/: schema, cards, counts and disjointness."""

import json
import re
from collections import defaultdict

import pytest

from manga_intent.data import normalized_key
from manga_intent.shipped_data import (
    SHIPPED,
    build_card,
    read_rows,
    schema_problems,
)
from manga_intent.synthetic import generate_synthetic
from manga_intent.taxonomy import INTENTS, SEED_TRAFFIC_SHARES


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda s: s.name)
def test_schema_and_card_match_the_file(shipped):
    rows = read_rows(shipped.path)
    assert schema_problems(shipped, rows) == []
    card = json.loads(shipped.card_path.read_text(encoding="utf-8"))
    assert card == build_card(shipped), (
        f"{shipped.card_path} is stale: run python -m manga_intent.shipped_data"
    )
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    keys = [normalized_key(r["text"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate texts within a shipped file"


def test_sizes_and_intent_coverage():
    golden, seed, ood, targeted = (read_rows(s.path) for s in SHIPPED)
    assert {r["label"] for r in targeted} == {"escalation"}  # outside the traffic-share corpus
    assert len(golden) >= 500 and len(seed) >= 1500 and len(ood) >= 150
    for intent in INTENTS:
        assert sum(r["label"] == intent for r in golden) >= 30
    for intent, share in SEED_TRAFFIC_SHARES.items():  # seed corpus at the seed's frequencies
        assert sum(r["label"] == intent for r in seed) / len(seed) == pytest.approx(share, abs=0.005)
    for segment in ("jargon", "slang", "multi_intent", "jp_en", "romaji", "typo", "voice_asr"):
        assert sum(segment in r["segment"] for r in golden) >= 20, segment
    assert {r["category"] for r in ood} == {
        "other_shop",
        "off_topic",
        "foreign_language",
        "gibberish",
        "prompt_injection",
    }


def test_shipped_sets_are_pairwise_disjoint():
    keys = {s.name: {normalized_key(r["text"]) for r in read_rows(s.path)} for s in SHIPPED}
    exact = {s.name: {r["text"] for r in read_rows(s.path)} for s in SHIPPED}
    names = list(keys)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not exact[a] & exact[b], (a, b)
            assert not keys[a] & keys[b], (a, b, sorted(keys[a] & keys[b])[:5])


def _tokens(text):
    return frozenset(re.findall(r"\w+", text.lower()))


def test_generator_does_not_reproduce_hand_written_rows():
    synthetic = generate_synthetic(8000, seed=11) + generate_synthetic(1500, seed=12, vocabulary="novel")
    synthetic_keys = {normalized_key(r["text"]) for r in synthetic}
    synthetic_tokens = [_tokens(r["text"]) for r in synthetic]
    index = defaultdict(list)
    for i, tokens in enumerate(synthetic_tokens):
        for word in tokens:
            index[word].append(i)
    for shipped in SHIPPED:
        rows = read_rows(shipped.path)
        assert not {normalized_key(r["text"]) for r in rows} & synthetic_keys, shipped.name
        near = []
        for row in rows:
            tokens = _tokens(row["text"])
            if len(tokens) < 3:
                continue
            shared = defaultdict(int)
            for word in tokens:
                if len(index[word]) < 2000:  # skip stop-words when finding candidates
                    for i in index[word]:
                        shared[i] += 1
            for i, count in shared.items():
                if count / len(tokens | synthetic_tokens[i]) >= 0.75:
                    near.append((row["text"], synthetic[i]["text"]))
                    break
        assert near == [], f"{shipped.name} rows near-copy generator output: {near[:5]}"
