"""Tests for the seeded synthetic-message generator (manga_intent.synthetic).

The point of the generator is trustworthy, reproducible data: these tests pin down
determinism, the label and segment mixes, that every segment tag is visibly true of
its text (and absent tags are absent), and the novel-vocabulary drift scenario.
"""

from __future__ import annotations

import collections
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from manga_intent.synthetic import (
    DEFAULT_SEGMENT_MIX,
    INTENTS,
    SEED_TRAFFIC_SHARES,
    SEGMENTS,
    add_romaji,
    apply_asr_noise,
    apply_typos,
    code_switch_jp,
    generate_synthetic,
    known_vocabulary,
    normalize_for_match,
    template_counts,
    write_audit_sample,
)
from manga_intent.synthetic import compose as gen
from manga_intent.synthetic import (
    lexicon as lx,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
N_BIG = 4000
JAPANESE = re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u4e00-\u9fff]")
PUNCT = re.compile(r"[^\w\s]|_")


def _norm_terms(strings):
    return {normalize_for_match(s) for s in strings} - {""}


JARGON = _norm_terms(lx.JARGON)
SLANG = _norm_terms(lx.SLANG)
NOVEL_SLANG = _norm_terms(lx.NOVEL_SLANG)
ROMAJI = _norm_terms(lx.ROMAJI)
TITLES = _norm_terms(t for t, _ in lx.TITLES)
NOVEL_TITLES = _norm_terms(t for t, _ in lx.NOVEL_TITLES)


def has_any(text: str, terms) -> bool:
    padded = f" {normalize_for_match(text)} "
    return any(f" {t} " in padded for t in terms)


@pytest.fixture(scope="module")
def train_rows():
    return generate_synthetic(N_BIG, seed=1234)


@pytest.fixture(scope="module")
def novel_rows():
    return generate_synthetic(N_BIG, seed=1234, vocabulary="novel")


# --------------------------------------------------------------------- constants
def test_public_constants_match_spec():
    assert INTENTS == (
        "product_discovery",
        "product_question",
        "recommendation",
        "faq",
        "order_tracking",
        "return_request",
        "promotion",
        "checkout_help",
        "escalation",
        "chitchat",
    )
    assert [round(SEED_TRAFFIC_SHARES[i] * 100) for i in INTENTS] == [22, 15, 18, 8, 12, 7, 5, 4, 3, 6]
    assert math.isclose(sum(SEED_TRAFFIC_SHARES.values()), 1.0)
    assert SEGMENTS[0] == "plain" and set(SEGMENTS[1:]) == set(DEFAULT_SEGMENT_MIX)
    assert dict(DEFAULT_SEGMENT_MIX) == {
        "jargon": 0.22,
        "slang": 0.15,
        "multi_intent": 0.18,
        "jp_en": 0.10,
        "romaji": 0.04,
        "typo": 0.10,
        "voice_asr": 0.08,
    }


def test_at_least_25_templates_per_intent():
    counts = template_counts()
    assert set(counts) == set(INTENTS)
    for intent, c in counts.items():
        assert c["templates"] >= 25, intent
        if intent != "chitchat":
            assert c["secondary_clauses"] >= 5, intent


# ------------------------------------------------------------------ determinism
def test_same_seed_same_output_and_different_seed_differs():
    a = generate_synthetic(300, seed=7)
    b = generate_synthetic(300, seed=7)
    c = generate_synthetic(300, seed=8)
    assert a == b
    assert [r["text"] for r in a] != [r["text"] for r in c]


def test_does_not_touch_global_random_state():
    random.seed(99)
    before = random.getstate()
    generate_synthetic(50, seed=1)
    assert random.getstate() == before


def test_deterministic_across_hash_seeds():
    """Set/dict ordering must not leak into output (PYTHONHASHSEED differs per process)."""
    code = (
        "import hashlib, json\n"
        "from manga_intent.synthetic import generate_synthetic\n"
        "rows = generate_synthetic(200, seed=5) + generate_synthetic(100, seed=5, vocabulary='novel')\n"
        "print(hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


# ------------------------------------------------------------------------ mixes
def test_segment_mix_within_tolerance(train_rows):
    counts = collections.Counter(s for r in train_rows for s in r["segment"])
    for seg, target in DEFAULT_SEGMENT_MIX.items():
        share = counts[seg] / len(train_rows)
        assert abs(share - target) <= 0.03, (seg, share, target)
    expected_plain = math.prod(1 - p for p in DEFAULT_SEGMENT_MIX.values())
    assert abs(counts["plain"] / len(train_rows) - expected_plain) <= 0.03


def test_label_shares_within_tolerance(train_rows):
    counts = collections.Counter(r["label"] for r in train_rows)
    for intent in INTENTS:
        assert abs(counts[intent] / len(train_rows) - SEED_TRAFFIC_SHARES[intent]) <= 0.005, intent


def test_custom_intent_shares_and_segment_mix():
    shares = {"faq": 0.5, "escalation": 0.25, "chitchat": 0.25}
    rows = generate_synthetic(400, seed=3, intent_shares=shares, segment_mix={"voice_asr": 1.0})
    counts = collections.Counter(r["label"] for r in rows)
    assert counts == {"faq": 200, "escalation": 100, "chitchat": 100}
    assert all(r["segment"] == ["voice_asr"] for r in rows)


def test_zero_mix_gives_plain_rows_only():
    rows = generate_synthetic(300, seed=4, segment_mix={})
    assert all(r["segment"] == ["plain"] and r["secondary"] is None for r in rows)


def test_multi_intent_never_on_chitchat_but_overall_share_kept(train_rows):
    assert all(r["secondary"] is None for r in train_rows if r["label"] == "chitchat")
    share = sum(r["secondary"] is not None for r in train_rows) / len(train_rows)
    assert abs(share - DEFAULT_SEGMENT_MIX["multi_intent"]) <= 0.03


# ------------------------------------------------------------------ row content
def test_row_schema_and_uniqueness(train_rows):
    keys = set()
    for r in train_rows:
        assert set(r) == {"text", "label", "secondary", "segment", "source", "template_id"}
        assert r["source"] == "synthetic"
        assert r["label"] in INTENTS
        assert r["text"] and r["text"] == " ".join(r["text"].split())
        segs = r["segment"]
        assert segs and len(set(segs)) == len(segs) and set(segs) <= set(SEGMENTS)
        assert segs == sorted(segs, key=SEGMENTS.index)
        assert ("plain" in segs) == (segs == ["plain"])
        assert r["template_id"].startswith(r["label"] + ".")
        keys.add(" ".join(r["text"].lower().split()))
    assert len(keys) == len(train_rows)
    assert len({r["template_id"].split("+")[0] for r in train_rows}) >= 250


def _assert_tags_true(rows, own_slang, foreign_slang, foreign_titles):
    vocab = known_vocabulary()
    for r in rows:
        text, segs = r["text"], set(r["segment"])
        ctx = (text, r["segment"])
        assert bool(JAPANESE.search(text)) == ("jp_en" in segs), ctx
        assert has_any(text, JARGON) == ("jargon" in segs), ctx
        assert has_any(text, own_slang) == ("slang" in segs), ctx
        assert not has_any(text, foreign_slang), ctx
        assert not has_any(text, foreign_titles), ctx
        assert has_any(text, ROMAJI) == ("romaji" in segs), ctx
        unknown = [w for w in normalize_for_match(text).split() if w not in vocab]
        assert bool(unknown) == ("typo" in segs), (ctx, unknown)
        if "voice_asr" in segs:
            assert text == text.lower() and not PUNCT.search(text) and not re.search(r"\d", text), ctx
        if "multi_intent" in segs:
            assert r["secondary"] in INTENTS and r["secondary"] != r["label"], ctx
            assert f"+{r['secondary']}.s" in r["template_id"], ctx
        else:
            assert r["secondary"] is None and "+" not in r["template_id"], ctx


def test_every_train_tag_is_verifiably_true(train_rows):
    _assert_tags_true(train_rows, SLANG, NOVEL_SLANG, NOVEL_TITLES)


def test_every_novel_tag_is_verifiably_true(novel_rows):
    _assert_tags_true(novel_rows, NOVEL_SLANG, SLANG, TITLES)


def test_texts_are_diverse(train_rows):
    lengths = [len(r["text"].split()) for r in train_rows]
    assert min(lengths) <= 3 and max(lengths) >= 40
    assert len({r["text"].split()[0].lower() for r in train_rows}) >= 100


# ------------------------------------------------------------ novel vocabulary
def test_novel_lexicons_are_disjoint_from_train():
    train_terms = TITLES | SLANG | _norm_terms(lx.JARGON) | ROMAJI
    novel_terms = NOVEL_TITLES | NOVEL_SLANG
    assert not train_terms & novel_terms
    for novel in novel_terms:  # no phrase of one side hides inside the other
        for train in train_terms:
            assert f" {novel} " not in f" {train} " and f" {train} " not in f" {novel} ", (novel, train)
    assert len(lx.NOVEL_TITLES) >= 20
    for term in ("aura", "rizz", "delulu", "it's giving", "6-7"):
        assert term in lx.NOVEL_SLANG


def test_novel_vocabulary_is_actually_used(novel_rows, train_rows):
    used = [r for r in novel_rows if has_any(r["text"], NOVEL_TITLES | NOVEL_SLANG)]
    assert len(used) / len(novel_rows) >= 0.3
    padded = [f" {normalize_for_match(r['text'])} " for r in novel_rows]
    distinct = {t for t in NOVEL_TITLES if any(f" {t} " in p for p in padded)}
    assert len(distinct) >= 20
    assert any(has_any(r["text"], NOVEL_SLANG) for r in novel_rows if "slang" in r["segment"])
    assert not any(has_any(r["text"], NOVEL_TITLES | NOVEL_SLANG) for r in train_rows)


# ----------------------------------------------------------------------- lexicon
def test_lexicon_sizes_and_spec_vocabulary():
    titles = [t for t, _ in lx.TITLES]
    assert len(titles) >= 120 and len(set(titles)) == len(titles)
    assert all(author.strip() for _, author in lx.TITLES)
    for t in ("One Piece", "Berserk", "Frieren", "Kagurabachi", "Vinland Saga", "Witch Hat Atelier"):
        assert t in titles
    for term in (
        "tankōbon",
        "omnibus",
        "3-in-1",
        "box set",
        "light novel",
        "manhwa",
        "webtoon",
        "artbook",
        "isekai",
        "iyashikei",
    ):
        assert normalize_for_match(term) in JARGON
    for term in ("peak", "mid", "W", "goated", "ngl", "fr", "lowkey"):
        assert term in lx.SLANG
    heard = {dst for _, dst in lx.ASR_CONFUSIONS}
    assert {"won piece", "burr serk", "free wren"} <= heard
    assert all(JAPANESE.search(p) for p in lx.JAPANESE_PHRASES)


def test_filler_lists_carry_exactly_the_tags_they_claim():
    for genre in lx.GENRES_JARGON:
        assert has_any(genre, JARGON), genre
    for genre in lx.GENRES_PLAIN:
        assert not has_any(genre, JARGON | SLANG | ROMAJI), genre
    for pair in lx.FORMATS_JARGON:
        assert all(has_any(f, JARGON) for f in pair), pair
    for category in lx.CATEGORIES_JARGON:
        assert has_any(category, JARGON), category
    for pair in lx.FORMATS_PLAIN:
        assert not any(has_any(f, JARGON | SLANG) for f in pair), pair
    for marker in lx.SLANG_PREFIXES + lx.SLANG_SUFFIXES + lx.SLANG_ADJ_POS + lx.SLANG_ADJ_NEG:
        assert has_any(marker, SLANG) and not has_any(marker, NOVEL_SLANG), marker
    novel_markers = (
        lx.NOVEL_SLANG_PREFIXES + lx.NOVEL_SLANG_SUFFIXES + lx.NOVEL_SLANG_ADJ_POS + lx.NOVEL_SLANG_ADJ_NEG
    )
    for marker in novel_markers:
        assert has_any(marker, NOVEL_SLANG) and not has_any(marker, SLANG), marker
    for marker in lx.ROMAJI_PREFIXES + lx.ROMAJI_SUFFIXES:
        assert has_any(marker, ROMAJI), marker
    for title, author in lx.TITLES + lx.NOVEL_TITLES:
        assert not has_any(f"{title} {author}", JARGON | SLANG | NOVEL_SLANG | ROMAJI), title


def test_typo_targets_are_not_known_words():
    vocab = known_vocabulary()
    for correct, typo in lx.COMMON_TYPOS:
        assert correct in vocab and normalize_for_match(typo) not in vocab, (correct, typo)


# -------------------------------------------------------------- noise functions
def test_apply_typos_standalone():
    text = "Where is my order for the Berserk deluxe edition?"
    vocab = known_vocabulary()
    for seed in range(30):
        out = apply_typos(text, random.Random(seed))
        assert out != text
        assert any(w not in vocab for w in normalize_for_match(out).split())
        assert apply_typos(text, random.Random(seed)) == out
    protected = apply_typos(text, random.Random(0), rate=1.0, protect=["deluxe"])
    assert "deluxe" in protected
    with pytest.raises(ValueError, match="rate"):
        apply_typos(text, random.Random(0), rate=0)


def test_apply_asr_noise_standalone():
    text = "Where is One Piece vol. 105? I paid $20 & used code MANGA20!"
    outs = [apply_asr_noise(text, random.Random(s)) for s in range(40)]
    for out in outs:
        assert out == out.lower() and not PUNCT.search(out) and not re.search(r"\d", out)
        assert "one oh five" in out and "twenty dollars" in out
    assert any("won piece" in o for o in outs) and any("wear is" in o for o in outs)
    jp = apply_asr_noise("この漫画は英語ですか？ vol 3", random.Random(0))
    assert JAPANESE.search(jp) and not PUNCT.search(jp) and "volume three" in jp


def test_code_switch_and_romaji_standalone():
    for seed in range(30):
        out = code_switch_jp("Is this manga in English?", random.Random(seed), intent="product_question")
        assert JAPANESE.search(out)
        out = add_romaji("Thanks, the cover is really cute", random.Random(seed), intent="chitchat")
        assert has_any(out, ROMAJI)
    assert code_switch_jp("no subs here", random.Random(1)) == code_switch_jp(
        "no subs here", random.Random(1)
    )
    with pytest.raises(ValueError, match="unknown intent"):
        code_switch_jp("hi", random.Random(0), intent="nope")


# ------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be >= 1"),
        ({"n": -5}, "n must be >= 1"),
        ({"n": 2.5}, "n must be an int"),
        ({"n": True}, "n must be an int"),
        ({"seed": "x"}, "seed must be an int"),
        ({"segment_mix": {"sarcasm": 0.1}}, r"unknown segment\(s\) \['sarcasm'\]"),
        ({"segment_mix": {"plain": 0.5}}, "'plain' cannot be drawn"),
        ({"segment_mix": {"typo": -0.1}}, r"segment_mix\['typo'\] = -0.1 is outside \[0, 1\]"),
        ({"segment_mix": {"slang": 1.5}}, r"segment_mix\['slang'\] = 1.5 is outside"),
        ({"segment_mix": {"slang": float("nan")}}, "outside"),
        ({"segment_mix": {"slang": "high"}}, "must be a number"),
        ({"intent_shares": {"faq": 0.5, "refunds": 0.5}}, r"unknown intent\(s\) \['refunds'\]"),
        ({"intent_shares": {"faq": 0.5, "chitchat": 0.4}}, "must sum to 1"),
        ({"intent_shares": {"faq": 1.2, "chitchat": -0.2}}, r"intent_shares\['faq'\] = 1.2 is outside"),
        ({"intent_shares": {"chitchat": 1.0}}, r"multi_intent.*cannot be met"),
        ({"vocabulary": "slang2026"}, "vocabulary must be one of"),
    ],
)
def test_validation_errors(kwargs, message):
    args = {"n": 10, "seed": 0, **kwargs}
    n = args.pop("n")
    with pytest.raises(ValueError, match=message):
        generate_synthetic(n, **args)


def test_n_of_one_and_chitchat_only_without_multi():
    assert len(generate_synthetic(1, seed=0)) == 1
    rows = generate_synthetic(20, seed=0, intent_shares={"chitchat": 1.0}, segment_mix={"slang": 0.5})
    assert {r["label"] for r in rows} == {"chitchat"}


@pytest.fixture
def single_chitchat_template(monkeypatch):
    tpl = gen._make_template("chitchat.99", "good day to you", "main")
    monkeypatch.setitem(gen._TEMPLATES, "chitchat", (tpl,))
    gen._eligible_cached.cache_clear()
    yield
    monkeypatch.undo()
    gen._eligible_cached.cache_clear()


def test_impossible_uniqueness_raises_clear_error(single_chitchat_template):
    assert len(generate_synthetic(1, seed=0, intent_shares={"chitchat": 1.0}, segment_mix={})) == 1
    with pytest.raises(ValueError, match=r"could not generate 5 unique texts: after 1 rows.*'chitchat'"):
        generate_synthetic(5, seed=0, intent_shares={"chitchat": 1.0}, segment_mix={})


# ------------------------------------------------------------------------ audit
def test_write_audit_sample(tmp_path, train_rows):
    rows = train_rows[:200] + [dict(train_rows[0], text="pipe | and\nnewline", segment=["plain"])]
    path = write_audit_sample(rows, tmp_path / "audit" / "sample.md", k=50, seed=3)
    content = path.read_text(encoding="utf-8")
    lines = content.splitlines()
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| # ")]
    assert len(table) == 50
    assert "| # | text | label | secondary | segments | template_id |" in lines
    assert (
        write_audit_sample(rows, tmp_path / "again.md", k=50, seed=3).read_text(encoding="utf-8") == content
    )
    small = write_audit_sample(rows[-1:], tmp_path / "small.md", k=50)
    assert "pipe \\| and newline" in small.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="k must be"):
        write_audit_sample(rows, tmp_path / "x.md", k=0)
