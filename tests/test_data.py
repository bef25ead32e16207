import json
from collections import Counter

import pytest

from manga_intent.data import (
    DataValidationError,
    Example,
    class_weights,
    clean_text,
    data_hash,
    load_jsonl,
    make_splits,
    normalized_key,
    parse_jsonl_lines,
    stratified_split,
)
from manga_intent.taxonomy import INTENTS, SEED_TRAFFIC_SHARES


def test_clean_text_keeps_japanese_and_jargon():
    assert clean_text("  この漫画は英語ですか?  vol 12 ") == "この漫画は英語ですか? vol 12"
    assert clean_text("tankōbon\tshōnen") == "tankōbon shōnen"
    assert clean_text("ｖｏｌ１２　ﾜﾝﾋﾟｰｽ") == "vol12 ワンピース"  # NFKC folds width, keeps kana


def test_clean_text_strips_controls_and_normalises_whitespace():
    assert clean_text("where\x00 is\x07 my\norder\r\n") == "where is my order"
    assert clean_text("a\u200bb\ufeff") == "ab"
    assert clean_text("\x1b\x00 \n") == ""
    assert clean_text("Berserk Deluxe") == "Berserk Deluxe"  # case is the tokenizer's business


def test_normalized_key_ignores_case_punctuation_and_spaces():
    assert normalized_key("Where is my ORDER?!") == normalized_key("where is my order")


def _lines(*rows):
    return [r if isinstance(r, str) else json.dumps(r) for r in rows]


def test_errors_name_every_offending_line():
    lines = _lines(
        {"text": "hello", "label": "chitchat"},
        "{not json",
        {"label": "faq"},
        {"text": "   \x00 ", "label": "faq"},
        {"text": "where is it", "label": "shipping"},
        {"text": 42, "label": "faq"},
        {"text": "ok", "label": ["faq"]},
        ["text", "label"],
        {"text": "hi", "label": "chitchat", "split": "holdout"},
    )
    with pytest.raises(DataValidationError) as info:
        parse_jsonl_lines(lines, source="bad.jsonl", allowed_labels=INTENTS)
    message = str(info.value)
    assert "bad.jsonl: 8 invalid row(s)" in message
    for fragment in (
        "line 2: invalid JSON",
        "line 3: missing field 'text'",
        "line 4: empty text",
        "line 5: unknown label: 'shipping'",
        "line 6: wrong type: 'text' must be a string",
        "line 7: wrong type: 'label'",
        "line 8: not a JSON object",
        "line 9: bad split",
    ):
        assert fragment in message
    assert [p.line for p in info.value.problems] == [2, 3, 4, 5, 6, 7, 8, 9]


def test_quarantine_sets_rows_aside_with_counts():
    lines = _lines(
        {"text": "hello", "label": "chitchat"},
        "{oops",
        {"text": "", "label": "faq"},
        {"text": "x", "label": "nope"},
        "",
        {"text": "return this", "label": "return_request"},
    )
    loaded = parse_jsonl_lines(lines, allowed_labels=INTENTS, quarantine=True)
    assert [e.text for e in loaded.examples] == ["hello", "return this"]
    assert [e.line for e in loaded.examples] == [1, 6]
    assert loaded.quarantine_counts == {"invalid JSON": 1, "empty text": 1, "unknown label": 1}
    assert len(loaded.examples) + len(loaded.quarantined) == 5  # the blank line is not a row


def test_mixed_split_column_is_an_error():
    lines = _lines({"text": "a", "label": "x", "split": "train"}, {"text": "b", "label": "y"})
    with pytest.raises(DataValidationError, match="line 2: missing 'split'"):
        parse_jsonl_lines(lines)


def test_empty_file_and_bad_utf8(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataValidationError, match="no labelled rows"):
        load_jsonl(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "\xff\xfe", "label": "b"}\n')
    with pytest.raises(DataValidationError, match="line 2: not valid UTF-8"):
        load_jsonl(bad)
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_jsonl(tmp_path / "missing.jsonl")


def _seeded_examples(n=2000):
    examples = []
    for label, share in SEED_TRAFFIC_SHARES.items():
        examples += [Example(f"{label} message {i}", label) for i in range(round(n * share))]
    return examples


def test_stratified_split_keeps_label_shares_and_is_deterministic():
    examples = _seeded_examples()
    parts = stratified_split(examples, seed=42)
    assert parts.sizes() == {"train": 1600, "val": 200, "test": 200}
    total = Counter(e.label for e in examples)
    for part in (parts.train, parts.val, parts.test):
        counts = Counter(e.label for e in part)
        for label in total:
            assert counts[label] / len(part) == pytest.approx(total[label] / len(examples), abs=0.006)
    again = stratified_split(examples, seed=42)
    assert [e.text for e in again.test] == [e.text for e in parts.test]
    other = stratified_split(examples, seed=7)
    assert [e.text for e in other.test] != [e.text for e in parts.test]
    seen = [e.text for p in (parts.train, parts.val, parts.test) for e in p]
    assert sorted(seen) == sorted(e.text for e in examples)  # nothing lost or duplicated


def test_rare_label_still_reaches_val_and_test():
    examples = [Example(f"common {i}", "common") for i in range(97)] + [
        Example(f"rare {i}", "rare") for i in range(3)
    ]
    parts = stratified_split(examples, seed=1)
    for part in (parts.train, parts.val, parts.test):
        assert any(e.label == "rare" for e in part)


def test_make_splits_uses_split_column_and_needs_train_rows():
    rows = [
        Example("a", "x", "train"),
        Example("b", "y", "train"),
        Example("c", "x", "val"),
        Example("d", "y", "test"),
    ]
    parts = make_splits(rows)
    assert parts.sizes() == {"train": 2, "val": 1, "test": 1} and parts.val_source == "file"
    assert make_splits(rows[:3]).sizes() == {"train": 2, "val": 1, "test": 0}  # no test rows: metrics on val
    with pytest.raises(ValueError, match="no 'train' rows"):
        make_splits([Example("d", "y", "test"), Example("e", "x", "test")])


def test_class_weights_follow_the_seed_formula():
    labels = [label for label, share in SEED_TRAFFIC_SHARES.items() for _ in range(round(share * 1000))]
    weights = dict(zip(INTENTS, class_weights(labels, INTENTS)))
    inverse = {label: 1 / share for label, share in SEED_TRAFFIC_SHARES.items()}
    norm = sum(inverse.values())
    for label in INTENTS:
        assert weights[label] == pytest.approx(inverse[label] / norm)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["escalation"] / weights["product_discovery"] == pytest.approx(22 / 3)  # the seed's "7.3x"


def test_class_weights_reject_labels_without_examples():
    with pytest.raises(ValueError, match="no training examples"):
        class_weights(["a", "a"], ["a", "b"])


def test_data_hash_is_order_independent_and_content_sensitive():
    a = [Example("x", "1"), Example("y", "2")]
    assert data_hash(a) == data_hash(list(reversed(a)))
    assert data_hash(a) != data_hash([Example("x", "1"), Example("y", "3")])


def test_stratified_subsample_keeps_shares_rare_labels_and_the_newest_rows():
    from manga_intent.data import stratified_subsample

    rows = [Example(text=f"corpus {i}", label="faq" if i % 10 else "escalation") for i in range(300)]
    rows += [Example(text=f"human {i}", label="checkout_help") for i in range(3)]  # newest labels come last
    picked = stratified_subsample(rows, 101)
    counts = Counter(e.label for e in picked)
    assert len(picked) == 101 and len({e.text for e in picked}) == 101
    assert counts == {
        "faq": 90,
        "escalation": 10,
        "checkout_help": 1,
    }  # 270 : 30 : 3 scaled to 101 (a prefix: none)
    assert picked == stratified_subsample(rows, 101)  # seeded: every trial searches the same rows
    assert stratified_subsample(rows, 101, seed=1) != picked
    assert Counter(e.label for e in stratified_subsample(rows, 3)) == {
        "faq": 1,
        "escalation": 1,
        "checkout_help": 1,
    }
    assert stratified_subsample(rows, 0) == rows and stratified_subsample(rows, 1000) == rows
    with pytest.raises(ValueError, match=">= 0"):
        stratified_subsample(rows, -1)
