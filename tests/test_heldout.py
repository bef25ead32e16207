"""Held out means held out: no selection path reads the golden set (only the gate and gate reports do).

A tripwire wraps every `open` of the golden file and records who opened it. Selection paths — defaults,
the HPO objective, consensus folds, calibration and the OOD threshold, the compiled artifact's parity and
latency check — run under it, through the real assets and through their core functions. The one permitted
touch is decontamination (`heldout.golden_text_keys`: message keys, no labels, nothing chosen).
"""

import ast
import builtins
import io
import os
import traceback
from pathlib import Path

import dagster as dg
import pytest
from conftest import exported_human_labels, tiny_classifier, write_keyword_jsonl

from manga_intent import heldout
from manga_intent.data import load_jsonl, make_splits
from manga_intent.shipped_data import GOLDEN

REPO = Path(__file__).resolve().parents[1]
PERMITTED = {"golden_text_keys"}  # decontamination: keys only
GOLDEN_FILE = GOLDEN.path.resolve()


class Tripwire:
    def __init__(self):
        self.opens: list[list[str]] = []

    def violations(self) -> list[str]:
        return [" > ".join(stack[-6:]) for stack in self.opens if not PERMITTED & set(stack)]

    def permitted(self) -> int:
        return sum(bool(PERMITTED & set(stack)) for stack in self.opens)


@pytest.fixture
def tripwire(monkeypatch):
    wire, real_open = Tripwire(), builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(os.fspath(file)).resolve() == GOLDEN_FILE:
            wire.opens.append([frame.name for frame in traceback.extract_stack()[:-1]])
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)  # Path.open / read_text go through io.open
    return wire


def test_the_tripwire_sees_golden_reads_and_the_reader_refuses_other_purposes(tripwire):
    from resources.gate_settings import GateSettings

    assert len(GateSettings().golden_rows()) == 547  # the gate's read is seen ...
    assert tripwire.violations() and "golden_rows" in tripwire.violations()[0]
    with pytest.raises(heldout.HeldOutViolation, match="read only by the gate"):
        heldout.read_golden("hpo objective")


GOLDEN_NAMES = {"GOLDEN", "read_golden", "golden_rows", "golden_text_keys", "golden_path"}
#: The only modules that may name the golden set: its reader, the gate, gate reports, the data cards and
#: decontamination of generated rows.
ALLOWED = {
    "manga_intent/heldout.py",
    "manga_intent/shipped_data.py",
    "manga_intent/synthetic/quality.py",
    "resources/gate_settings.py",
    "manga_assets/golden_gate.py",
    "manga_assets/seed_sweep_report.py",
    "manga_assets/golden_set_audit.py",
}


def test_only_the_gate_and_gate_reports_name_the_golden_set():
    found = []
    for package in ("manga_intent", "serving", "labeling", "resources", "manga_assets", "sensors"):
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
            names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
            hits = names & GOLDEN_NAMES
            relative = path.relative_to(REPO).as_posix()
            if hits and relative not in ALLOWED:
                found.append(f"{relative}: {sorted(hits)}")
    assert found == []


def test_selection_functions_never_open_the_golden_file(tripwire, tmp_path, tokenizer):
    """Defaults, HPO objective, consensus folds, serving calibration (calibrator, OOD detector, routing),
    compiled-artifact check."""
    from manga_intent.calibrator_fit import build_ood_pools, fit_serving_calibration
    from manga_intent.compiled import build_artifact
    from manga_intent.hpo import run_study
    from manga_intent.shipped_data import ood_fitting_pool
    from manga_intent.synthetic.quality import run_quality
    from manga_intent.training import TrainConfig, default_learning_rate

    examples = load_jsonl(write_keyword_jsonl(tmp_path / "k.jsonl", n=120)).examples
    splits = make_splits(examples, seed=0)
    labels = sorted({e.label for e in examples})
    TrainConfig()
    default_learning_rate(tiny_classifier("bert", 4).config)
    run_study(
        splits.train,
        splits.val,
        labels,
        n_trials=1,
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        study_name="t",
        scale=100.0,
        max_epochs=2,
        seed=0,
        base_model=None,
        model_factory=lambda: (tiny_classifier("bert", len(labels)), tokenizer),
        log=lambda _: None,
    )
    from manga_intent.taxonomy import INTENTS

    corpus = load_jsonl(REPO / "data" / "seed_corpus" / "seed_corpus.jsonl").examples
    run_quality(
        make_splits(corpus, seed=42).train[:200],
        30,
        seed=1,
        k=2,
        config=TrainConfig(epochs=1, lr=3e-3),
        progress=False,
        model_factory=lambda: (tiny_classifier("bert", len(INTENTS)), tokenizer),
    )
    model = tiny_classifier("bert", len(labels)).eval()
    fit = fit_serving_calibration(
        model,
        tokenizer,
        labels,
        train=splits.train,
        val=splits.val,
        ood_val_texts=build_ood_pools(ood_fitting_pool()).val_texts,
        max_length=64,
    )
    build_artifact(
        model,
        tokenizer,
        tmp_path / "compiled",
        labels=labels,
        calibration=fit,
        check_texts=[e.text for e in splits.val + splits.test],
        max_length=64,
        backend="onnx",
        latency_warmup=2,
    )
    assert tripwire.violations() == []
    assert tripwire.permitted() >= 1  # decontamination ran, by key only


SMALL = {
    "synthetic_set": {"config": {"n": 40, "k": 2, "fold_epochs": 1}},
    "hpo_study": {"config": {"n_trials": 1, "train_rows": 120, "max_epochs": 1, "lr_scale": 100.0}},
    "trained_model": {"config": {"epochs": 1, "lr": 3e-3, "bootstrap": 20}},
}


@pytest.mark.slow
def test_every_non_gate_asset_runs_without_reading_the_golden_set(
    tripwire, tmp_path, tiny_base_dir, monkeypatch
):
    """The real graph up to the compiled artifact; the consensus folds also see only the training split."""
    from test_asset_graph import resources

    import manga_intent.consensus as consensus
    from manga_assets.calibrator import calibrator
    from manga_assets.hpo_study import hpo_study
    from manga_assets.intent_dataset import intent_dataset
    from manga_assets.neuron_artifact import neuron_artifact
    from manga_assets.seed_corpus import seed_corpus
    from manga_assets.snapshots import dataset_splits, read_snapshot
    from manga_assets.synthetic_set import synthetic_set
    from manga_assets.trained_model import trained_model

    monkeypatch.setenv("MANGA_HOME", str(tmp_path / "home"))
    fold_rows: list[str] = []
    real_train = consensus.train_classifier

    def recording_train(train, val, *args, **kwargs):
        fold_rows.extend(e.text for e in train + val)
        return real_train(train, val, *args, **kwargs)

    monkeypatch.setattr(consensus, "train_classifier", recording_train)
    assets = [exported_human_labels(), seed_corpus, intent_dataset, synthetic_set, hpo_study, trained_model]
    result = dg.materialize(
        [*assets, calibrator, neuron_artifact],  # no golden_gate, no seed_sweep_report
        partition_key="42",
        instance=dg.DagsterInstance.ephemeral(),
        resources=resources(tmp_path, tiny_base_dir),
        # the calibrator refits here (test_asset_graph covers taking trained_model's): neither path reads golden
        run_config={"ops": {**SMALL, "calibrator": {"config": {"refit": True}}}},
    )
    assert result.success
    assert "fitted here on validation" in str(
        result.asset_materializations_for_node("calibrator")[0].metadata
    )
    assert tripwire.violations() == []
    assert tripwire.permitted() >= 1
    snapshot = result.asset_materializations_for_node("intent_dataset")[0].metadata["snapshot_uri"].value
    store = resources(tmp_path, tiny_base_dir)["artifact_store"]
    splits = dataset_splits(read_snapshot(store, snapshot))
    held_out = {e.text for e in splits.val + splits.test}
    assert fold_rows and set(fold_rows) <= {e.text for e in splits.train}
    assert not held_out & set(fold_rows)
