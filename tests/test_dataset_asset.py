import json

import dagster as dg
import pytest
from conftest import exported_human_labels
from dagster_aws.s3 import S3Resource

from manga_assets.intent_dataset import intent_dataset
from manga_assets.seed_corpus import seed_corpus
from resources.storage import LocalArtifactStore


def materialize(tmp_path, source, human_file, quarantine=True, targeted=None):
    """seed_corpus → intent_dataset downstream of an export in the artifact store (what `human_labels` hands it)."""
    store = LocalArtifactStore(root=str(tmp_path / "artifacts"))
    uri = store.put_file(human_file, "human_labels/export.jsonl") if human_file.exists() else None
    return dg.materialize(
        [exported_human_labels(uri), seed_corpus, intent_dataset],
        raise_on_error=False,
        resources={"artifact_store": store, "s3": S3Resource()},
        run_config={
            "ops": {
                "seed_corpus": {
                    "config": {
                        "source_uri": str(source),
                        "quarantine": quarantine,
                        **({} if targeted is None else {"targeted_uri": targeted}),
                    }
                }
            }
        },
    )


def test_shipped_corpus_with_human_labels_merged(tmp_path):
    human = tmp_path / "human"
    human.mkdir()
    rows = [
        {
            "text": "how do i delete my account and all my data from your site",
            "label": "escalation",
            "task_id": 1,
        },  # an existing corpus message, relabelled
        {"text": "is the kaiju no. 8 artbook out in english yet", "label": "product_question"},
    ]  # new
    (human / "label_studio.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = materialize(tmp_path, "data/seed_corpus", human / "label_studio.jsonl")
    assert result.success
    meta = result.asset_materializations_for_node("intent_dataset")[0].metadata
    corpus_meta = result.asset_materializations_for_node("seed_corpus")[0].metadata
    assert meta["rows"].value == 1601 + 65 and corpus_meta["quarantined_rows"].value == 0
    assert corpus_meta["targeted_rows"].value == 65
    assert meta["human_labels"].value == {"human_rows": 2, "relabelled": 1, "confirmed": 0, "added": 1}
    assert meta["provenance"].value == {"corpus": 1599, "human": 2, "targeted": 65}
    manifest = result.output_for_node("intent_dataset")
    snapshot = [json.loads(line) for line in open(manifest.uri[len("file://") :], encoding="utf-8")]
    relabelled = next(r for r in snapshot if r["text"].startswith("how do i delete my account"))
    assert relabelled["label"] == "escalation" and relabelled["previous_label"] == "faq"
    # fixed splits: every corpus row keeps the split it has without human labels; the new message trains
    corpus = result.output_for_node("seed_corpus")
    corpus_rows = [json.loads(line) for line in open(corpus.uri[len("file://") :], encoding="utf-8")]
    split_of = {r["text"]: r["split"] for r in corpus_rows}
    assert {r["split"] for r in corpus_rows} == {"train", "val", "test"}
    assert all(r["split"] == split_of[r["text"]] for r in snapshot if r["text"] in split_of)
    targeted = [r for r in corpus_rows if r.get("provenance") == "targeted"]
    assert len(targeted) == 65 and {(r["split"], r["label"]) for r in targeted} == {("train", "escalation")}
    shares = [r for r in corpus_rows if r.get("provenance") != "targeted"]
    assert {r["split"] for r in shares} == {"train", "val", "test"} and len(shares) == 1600
    added = next(r for r in snapshot if r["text"].startswith("is the kaiju no. 8 artbook"))
    assert added["split"] == "train" and added["provenance"] == "human"
    alone = materialize(tmp_path / "alone", "data/seed_corpus", tmp_path / "none.jsonl")
    assert alone.output_for_node("seed_corpus").data_version == corpus.data_version
    assert alone.output_for_node("intent_dataset").data_version != manifest.data_version


def test_bad_rows_quarantined_or_named(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.jsonl").write_text(
        '{"text": "hi", "label": "chitchat"}\n{"text": "", "label": "faq"}\n'
        '{"text": "x", "label": "weather"}\n'
    )
    result = materialize(tmp_path, source, tmp_path / "none.jsonl", targeted="")
    meta = result.asset_materializations_for_node("seed_corpus")[0].metadata
    assert meta["rows"].value == 1 and meta["quarantine_reasons"].value == {
        "empty text": 1,
        "unknown label": 1,
    }
    strict = materialize(tmp_path, source, tmp_path / "none.jsonl", quarantine=False, targeted="")
    assert not strict.success
    failure = next(e for e in strict.all_events if e.is_step_failure)
    assert "line 2: empty text" in failure.event_specific_data.error.to_string()


def test_targeted_rows_train_only_and_never_repeat_the_corpus():
    from manga_intent.data import Example
    from manga_intent.labelled_pool import with_targeted_rows

    corpus = [Example("where is my order", "order_tracking", split="val")]
    rows = with_targeted_rows(corpus, [Example("get me a human please", "escalation")])
    assert [(r.split, r.meta["provenance"]) for r in rows[1:]] == [("train", "targeted")]
    assert rows[0] == corpus[0]
    with pytest.raises(ValueError, match="repeat corpus messages"):
        with_targeted_rows(corpus, [Example("Where is my order?", "escalation")])
