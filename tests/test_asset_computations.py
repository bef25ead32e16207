"""The computations behind the asset bodies, tested without Dagster (assets only load, call, store, report)."""

import numpy as np
import pytest
from conftest import tiny_classifier, write_keyword_jsonl

from labeling.label_config import OUT_OF_SCOPE
from labeling.votes import aggregate_annotations
from manga_intent.data import Example, load_jsonl, make_splits
from manga_intent.labelled_pool import load_labelled_files, merge_human_labels
from manga_intent.seed_sweep import sweep_summary


def test_labelled_pool_merges_human_labels_over_corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        '{"text": "Where is my order?", "label": "faq"}\n{"text": "hi", "label": "chitchat"}\n'
        '{"text": "", "label": "faq"}\n'
    )
    corpus, quarantined = load_labelled_files(
        [path], allowed_labels=["faq", "chitchat", "order_tracking"], quarantine=True
    )
    assert len(corpus) == 2 and quarantined == {"empty text": 1}
    assert corpus[0].meta["provenance"] == "corpus" and corpus[0].meta["source_file"] == "corpus.jsonl"
    human = [
        Example("where is my ORDER", "order_tracking"),
        Example("hi", "chitchat"),
        Example("brand new message", "faq"),
    ]
    merged, counts = merge_human_labels(corpus, human)
    assert counts == {"human_rows": 3, "relabelled": 1, "confirmed": 1, "added": 1}
    assert merged[0].label == "order_tracking" and merged[0].meta["previous_label"] == "faq"
    assert merged[0].text == "Where is my order?" and merged[-1].meta["provenance"] == "human"
    with pytest.raises(FileNotFoundError):
        load_labelled_files([], allowed_labels=["faq"], quarantine=True)


def test_annotations_aggregate_per_task_with_review_for_ties_and_out_of_scope():
    def ann(task, intent, who):
        return {
            "task_id": task,
            "text": f"t{task}",
            "message_key": f"k{task}",
            "intent": intent,
            "secondary": None,
            "annotator": who,
        }

    agreed, review = aggregate_annotations(
        [
            ann(1, "faq", 1),
            ann(1, "faq", 2),
            ann(1, "promotion", 3),
            ann(2, "faq", 1),
            ann(2, "chitchat", 2),
            ann(3, OUT_OF_SCOPE, 1),
        ],
        OUT_OF_SCOPE,
    )
    assert [(r["task_id"], r["label"], r["disagreement"]) for r in agreed] == [(1, "faq", True)]
    assert [(r["task_id"], r["reason"]) for r in review] == [(2, "tie"), (3, "out_of_scope")]


def test_sweep_summary_over_seeds():
    rows = [
        {
            "text": str(i),
            "label": ["faq", "escalation"][i % 2],
            "segment": ["jp_en"] if i < 4 else ["plain"],
            "channel": "web",
        }
        for i in range(20)
    ]
    y = np.array([i % 2 for i in range(20)])
    perfect, half = np.eye(2)[y], np.eye(2)[np.where(np.arange(20) < 10, y, 1 - y)]
    result = sweep_summary(rows, [perfect, half], ["faq", "escalation"], n_boot=50)
    assert result["summary"]["accuracy"]["mean"] == pytest.approx(0.75)
    low, high = result["summary"]["accuracy"]["ci95"]
    assert low <= 0.75 <= high
    assert {r["segment"] for r in result["language"]} == {"JP-EN code-switch", "English-only"}
    assert {r["segment"] for r in result["rarity"]} == {"mid (5-15%)", "rare (<5%)"}


def test_hpo_study_logic_runs_and_reports_trials(tmp_path, tokenizer):
    from manga_intent.hpo import run_study, trials_rows

    examples = load_jsonl(write_keyword_jsonl(tmp_path / "k.jsonl", n=120)).examples
    splits = make_splits(examples, seed=0)
    labels = sorted({e.label for e in examples})
    study = run_study(
        splits.train,
        splits.val,
        labels,
        n_trials=2,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        study_name="t",
        scale=100.0,
        max_epochs=2,
        seed=0,
        base_model=None,
        model_factory=lambda: (tiny_classifier("bert", len(labels)), tokenizer),
        log=lambda _: None,
    )
    rows = trials_rows(study)
    assert len(rows) == 2 and {"trial", "state", "val_accuracy", "lr", "epochs"} <= set(rows[0])


def test_the_compiled_assets_candidate_table_shows_each_serving_batching():
    """The fp32 reference row has no batchings; the int8 rows' agreement per batching still gets columns."""
    from manga_assets.neuron_artifact import quantization_metadata

    def batching(agreement):
        return {"agreement": agreement, "pooled_agreement": agreement, "ece_delta": 0.0}

    report = {
        "served": "int8",
        "reason": "int8 dynamic: agrees ...",
        "agreement": 0.99375,
        "ece_delta": 0.001,
        "validation_messages": 160,
        "pooled_agreement": 0.99875,
        "pooled_messages": 800,
        "candidates": [
            {"candidate": "fp32 (reference)", "agreement": 1.0, "passed": None},
            {
                "candidate": "int8 dynamic",
                "agreement": 0.99375,
                "passed": True,
                "by_batching": {"one at a time": batching(1.0), "batches of 8": batching(0.99375)},
            },
        ],
        "kept_fp32": [],
        "bf16": "n/a",
    }
    table = quantization_metadata(report)["quantization_candidates"].value
    header, _, fp32_row, int8_row = table.splitlines()
    assert "agreement, one at a time" in header and "pooled agreement, batches of 8" in header
    assert "by_batching" not in header
    columns = [c.strip() for c in header.strip("|").split("|")]
    by_column = dict(zip(columns, (c.strip() for c in int8_row.strip("|").split("|"))))
    assert (
        by_column["agreement, one at a time"] == "1.0000" and by_column["agreement, batches of 8"] == "0.9938"
    )
    assert fp32_row.count("–") >= 4  # no batching columns for the reference
