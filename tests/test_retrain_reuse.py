"""A retrain re-runs only what changed: the consensus is reused while the seed corpus is unchanged, Dagster
sees the synthetic set as fresh after new human labels, and the newest HPO study feeds the next model."""

import json

import dagster as dg
import pytest
from conftest import exported_human_labels
from dagster_aws.s3 import S3Resource

import manga_intent.consensus as consensus
from manga_assets.hpo_study import hpo_choice, hpo_study
from manga_assets.intent_dataset import intent_dataset
from manga_assets.manifests import HpoResult
from manga_assets.seed_corpus import seed_corpus
from manga_assets.synthetic_set import synthetic_set
from manga_intent.shipped_data import SEED_CORPUS
from manga_intent.taxonomy import INTENTS
from resources.model_settings import BaseModelResource
from resources.storage import LocalArtifactStore

SMALL_CONSENSUS = {"n": 30, "k": 2, "fold_epochs": 1}


@pytest.fixture
def corpus(tmp_path):
    """A 300-row slice of the shipped corpus (every intent present), as a source directory."""
    rows = [json.loads(line) for line in SEED_CORPUS.path.read_text().splitlines()]
    by_intent: dict[str, list] = {}
    for row in rows:
        by_intent.setdefault(row["label"], []).append(row)
    chosen = [r for intent in INTENTS for r in by_intent[intent][:30]]
    source = tmp_path / "corpus"
    source.mkdir()
    (source / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return source


def materialize(instance, store, source, base, human_uri=None, consensus_config=None):
    return dg.materialize(
        [exported_human_labels(human_uri), seed_corpus, intent_dataset, synthetic_set],
        instance=instance,
        resources={
            "artifact_store": store,
            "s3": S3Resource(),
            "base_model": BaseModelResource(name_or_path=str(base)),
        },
        run_config={
            "ops": {
                "seed_corpus": {"config": {"source_uri": str(source)}},
                "synthetic_set": {"config": {**SMALL_CONSENSUS, **(consensus_config or {})}},
            }
        },
    )


def stale(instance, key: str) -> str:
    """The staleness the Dagster UI shows for `key` (FRESH, STALE or MISSING), via Dagster's own resolver."""
    from dagster._utils.test.data_versions import get_stale_status_resolver

    assets = [exported_human_labels(), seed_corpus, intent_dataset, synthetic_set]
    return get_stale_status_resolver(instance, assets).get_status(dg.AssetKey(key)).value


def test_new_human_labels_do_not_rerun_the_consensus_folds(tmp_path, corpus, tiny_base_dir, monkeypatch):
    folds: list[int] = []
    real_train = consensus.train_classifier
    monkeypatch.setattr(consensus, "train_classifier", lambda *a, **k: folds.append(1) or real_train(*a, **k))
    instance = dg.DagsterInstance.ephemeral()
    store = LocalArtifactStore(root=str(tmp_path / "artifacts"))

    first = materialize(instance, store, corpus, tiny_base_dir)
    assert len(folds) == 2  # k fold models
    meta = first.asset_materializations_for_node("synthetic_set")[0].metadata
    assert meta["reused_consensus"].value is False and meta["consensus_learner"].value == "finetune"
    agreement = meta["linear_probe_agreement"].value  # the cheap learner ran beside the folds
    assert 0 <= agreement["decision_agreement"] <= 1 and agreement["rows"] == meta["generated"].value

    # people label a few messages: the dataset changes, the seed corpus does not
    human = tmp_path / "human.jsonl"
    human.write_text(
        json.dumps({"text": "is the chainsaw man artbook in stock", "label": "product_question"}) + "\n"
    )
    uri = store.put_file(human, "human_labels/export-1.jsonl")
    second = materialize(instance, store, corpus, tiny_base_dir, human_uri=uri)
    assert len(folds) == 2  # no fold model trained again
    again = second.asset_materializations_for_node("synthetic_set")[0].metadata
    assert again["reused_consensus"].value is True
    assert again["artifacts"].value == meta["artifacts"].value and again["kept"].value == meta["kept"].value
    versions = [
        r.output_for_node(node).data_version
        for r in (first, second)
        for node in ("seed_corpus", "intent_dataset")
    ]
    assert versions[0] == versions[2] and versions[1] != versions[3]

    # what the Dagster UI shows: after a labels-only change the synthetic set is fresh
    assert stale(instance, "synthetic_set") == "FRESH"

    # a different consensus setting is a different content key: computed, not reused
    third = materialize(instance, store, corpus, tiny_base_dir, human_uri=uri, consensus_config={"seed": 7})
    assert len(folds) == 4
    assert (
        third.asset_materializations_for_node("synthetic_set")[0].metadata["reused_consensus"].value is False
    )


def test_linear_probe_consensus_trains_no_fold_model(tmp_path, corpus, tiny_base_dir, monkeypatch):
    monkeypatch.setattr(consensus, "train_classifier", lambda *a, **k: pytest.fail("fine-tuned a fold model"))
    store = LocalArtifactStore(root=str(tmp_path / "artifacts"))
    result = materialize(
        dg.DagsterInstance.ephemeral(),
        store,
        corpus,
        tiny_base_dir,
        consensus_config={"learner": "linear_probe"},
    )
    meta = result.asset_materializations_for_node("synthetic_set")[0].metadata
    assert meta["consensus_learner"].value == "linear_probe"
    assert meta["kept"].value + meta["flagged_for_review"].value == meta["generated"].value
    assert meta["linear_probe_agreement"].value == "not measured"


def study(**fields) -> HpoResult:
    base = {
        "study_name": "s",
        "storage": "sqlite://",
        "best_params": {"lr": 1e-4, "batch_size": 16},
        "best_value": 0.9,
        "n_trials": 4,
        "best_trial": 2,
        "base_model": "/models/minilm",
        "labels": list(INTENTS),
    }
    return HpoResult(**{**base, **fields})


def test_hpo_choice_uses_a_matching_study_and_says_why_not_otherwise():
    params, why = hpo_choice("auto", study(), "/models/minilm", list(INTENTS))
    assert params == {"lr": 1e-4, "batch_size": 16} and why.startswith("study s trial #2")
    assert hpo_choice("auto", None, "/models/minilm", list(INTENTS)) == (
        None,
        "no hpo_study materialized yet (run hpo_job): recipe defaults",
    )
    params, why = hpo_choice("auto", study(base_model="/models/distilbert"), "/models/minilm", list(INTENTS))
    assert params is None and "searched base model /models/distilbert" in why
    params, why = hpo_choice("auto", study(labels=INTENTS[:9]), "/models/minilm", list(INTENTS))
    assert params is None and "searched labels" in why
    assert hpo_choice("off", study(), "/models/minilm", list(INTENTS))[0] is None
    with pytest.raises(RuntimeError, match="hpo=required but no hpo_study"):
        hpo_choice("required", None, "/models/minilm", list(INTENTS))
    with pytest.raises(ValueError, match="hpo must be auto, off or required"):
        hpo_choice("sometimes", None, "/models/minilm", list(INTENTS))


@pytest.mark.slow
def test_hpo_job_results_are_picked_up_by_the_next_trained_model(
    tmp_path, corpus, tiny_base_dir, monkeypatch
):
    """hpo_job and retrain as separate runs on one instance: the model's run reads the newest study."""
    from test_asset_graph import resources

    from manga_assets.trained_model import trained_model

    monkeypatch.setenv("MANGA_HOME", str(tmp_path / "home"))
    instance = dg.DagsterInstance.ephemeral()
    res = resources(tmp_path, tiny_base_dir)
    assets = [exported_human_labels(), seed_corpus, intent_dataset, synthetic_set, hpo_study, trained_model]
    ops = {
        "seed_corpus": {"config": {"source_uri": str(corpus)}},
        "synthetic_set": {"config": SMALL_CONSENSUS},
        "hpo_study": {"config": {"n_trials": 2, "train_rows": 120, "max_epochs": 2, "lr_scale": 100.0}},
        "trained_model": {"config": {"bootstrap": 20, "freeze_word_embeddings": False}},
    }

    def run(selection, partition=None, trained=None):
        chosen = {k: v for k, v in ops.items() if k in selection}
        if trained:
            chosen["trained_model"] = {"config": {**ops["trained_model"]["config"], **trained}}
        return dg.materialize(
            assets,
            selection=selection,
            partition_key=partition,
            instance=instance,
            resources=res,
            run_config={"ops": chosen},
        )

    run(["human_labels", "seed_corpus", "intent_dataset", "synthetic_set"])
    before = run(["trained_model"], partition="42", trained={"max_steps": 4})
    meta = before.asset_materializations_for_node("trained_model")[0].metadata
    assert meta["hyperparameters_from"].value.startswith("no hpo_study materialized yet")

    searched = run(["hpo_study"])  # what hpo_job materializes
    best = searched.output_for_node("hpo_study")
    assert best.base_model == str(tiny_base_dir) and best.labels == list(INTENTS)

    after = run(["trained_model"], partition="42", trained={"epochs": 1})
    meta = after.asset_materializations_for_node("trained_model")[0].metadata
    assert meta["hyperparameters_from"].value.startswith(f"study manga-intent trial #{best.best_trial}")
    used = meta["searched_parameters_used"].value
    assert used["lr"] == best.best_params["lr"] and "epochs" not in used  # run config's epochs wins
    assert meta["searched_parameters_overridden_by_config"].value == ["epochs"]
    recipe = after.output_for_node("trained_model").recipe
    assert recipe["lr"] == best.best_params["lr"] and recipe["batch_size"] == best.best_params["batch_size"]
    assert recipe["epochs"] == 1 and recipe["max_steps"] is None
