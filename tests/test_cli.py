"""The `manga-intent` CLI end to end on a generated JSONL with a tiny random base model."""

import json
import subprocess
import sys

import pytest
from conftest import KEYWORDS, write_keyword_jsonl

from manga_intent.data import load_jsonl, make_splits

# a random tiny encoder has no pretrained embeddings to protect: train them, no head multiplier
FAST = [
    "--epochs",
    "6",
    "--lr",
    "3e-3",
    "--batch-size",
    "16",
    "--bootstrap",
    "100",
    "--lr-decay",
    "0.9",
    "--no-freeze-word-embeddings",
    "--head-lr-multiplier",
    "1",
]


def run_cli(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "manga_intent.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base_dir):
    root = tmp_path_factory.mktemp("cli")
    data = write_keyword_jsonl(root / "train.jsonl", n=320)
    out = root / "model"
    proc = run_cli("train", "--data", data, "--out", out, "--base-model", tiny_base_dir, *FAST, "--quiet")
    return data, out, proc


def test_train_writes_model_card_and_metrics(trained):
    data, out, proc = trained
    assert proc.stderr == ""  # --quiet: no progress bars or log lines
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "accuracy",
        "macro_f1",
        "ece",
        "nll",
        "brier",
        "per_intent",
        "train_seconds",
        "examples_per_second",
        "confusion_matrix",
        "ci95",
        "rare_class_accuracy",
    ):
        assert key in metrics, key
    assert metrics["accuracy"] >= 0.9
    assert set(metrics["per_intent"]) == set(KEYWORDS)
    assert metrics["split_sizes"] == {"train": 256, "val": 32, "test": 32}
    card = json.loads((out / "model_card.json").read_text())
    assert card["labels"] == sorted(KEYWORDS)
    assert card["recipe"]["gamma"] == 2.0 and card["recipe"]["lr"] == 3e-3
    assert card["data_hash"].startswith("sha256:")
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file() or (out / "vocab.txt").is_file()
    assert json.loads(proc.stdout)["accuracy"] == metrics["accuracy"]


def test_evaluate_reproduces_test_metrics(trained):
    data, out, _ = trained
    report = json.loads(run_cli("evaluate", "--model", out, "--data", data, "--bootstrap", "100").stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    assert report["n"] == 32 and report["accuracy"] == pytest.approx(metrics["accuracy"])
    assert report["ece"] == pytest.approx(metrics["ece"], abs=1e-6)
    everything = json.loads(
        run_cli("evaluate", "--model", out, "--data", data, "--split", "all", "--bootstrap", "0").stdout
    )
    assert everything["n"] == 320


def test_evaluate_and_robustness_quarantine_bad_rows_when_asked_and_count_them(trained, tmp_path):
    data, out, _ = trained
    mixed = tmp_path / "mixed.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()[:20]]
    mixed.write_text(
        "\n".join(json.dumps({"text": r["text"], "label": r["label"]}) for r in rows)
        + '\n{"text": "a label the model never learned", "label": "gift_wrapping"}\n{"text": "", "label": "beta"}\n'
    )
    refused = run_cli("evaluate", "--model", out, "--data", mixed, "--split", "all", check=False)
    assert refused.returncode != 0 and "--quarantine" in refused.stderr and "line 21" in refused.stderr
    report = json.loads(
        run_cli(
            "evaluate", "--model", out, "--data", mixed, "--split", "all", "--bootstrap", "0", "--quarantine"
        ).stdout
    )
    assert (
        report["n"] == 20
        and report["quarantined_rows"] == 2
        and sum(report["quarantine_counts"].values()) == 2
    )
    proc = run_cli(
        "robustness", "--model", out, "--data", mixed, "--split", "all", "--attacks", "casing", "--quarantine"
    )
    assert json.loads(proc.stdout)["quarantined_rows"] == 2 and "quarantined 2 row(s)" in proc.stderr


def test_predict_prints_one_json_line_per_text(trained):
    _, out, _ = trained
    lines = run_cli("predict", "--model", out, "my package was never shipped", "thanks bye", "--quiet").stdout
    rows = [json.loads(line) for line in lines.strip().splitlines()]
    assert [r["intent"] for r in rows] == ["beta", "delta"]
    for r in rows:
        assert len(r["top3"]) == 3 and r["top3"][0]["intent"] == r["intent"]
        assert 0 < r["confidence"] <= 1


def test_train_with_split_column_and_progress(tmp_path, tiny_base_dir):
    data = write_keyword_jsonl(tmp_path / "split.jsonl", n=120, with_split=True)
    proc = run_cli(
        "train",
        "--data",
        data,
        "--out",
        tmp_path / "m",
        "--base-model",
        tiny_base_dir,
        "--epochs",
        "1",
        "--bootstrap",
        "0",
        "--seed",
        "7",
    )
    assert "epoch 1" in proc.stderr  # progress / epoch lines go to stderr
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["split_sizes"] == {
        "train": 72,
        "val": 24,
        "test": 24,
    }
    assert json.loads((tmp_path / "m" / "model_card.json").read_text())["recipe"]["init_seed"] == 7


BAD_FILES = {
    "broken_json": ('{"text": "hi", "label": "a"}\n{"text": "oops"\n', "line 2: invalid JSON"),
    "missing_label": ('{"text": "hi", "label": "a"}\n{"text": "x"}\n', "line 2: missing field 'label'"),
    "empty_text": (
        '{"text": "hi", "label": "a"}\n{"text": " \\u0000 ", "label": "b"}\n',
        "line 2: empty text",
    ),
    "wrong_type": ('{"text": ["hi"], "label": "a"}\n', "line 1: wrong type: 'text' must be a string"),
    "one_label": ('{"text": "hi", "label": "a"}\n{"text": "yo", "label": "a"}\n', "at least 2 labels"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_files_get_clear_errors(tmp_path, tiny_base_dir, name):
    content, expected = BAD_FILES[name]
    path = tmp_path / f"{name}.jsonl"
    path.write_text(content)
    proc = run_cli(
        "train", "--data", path, "--out", tmp_path / "m", "--base-model", tiny_base_dir, check=False
    )
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_label_against_enforced_set_and_quarantine(tmp_path, tiny_base_dir):
    path = write_keyword_jsonl(tmp_path / "d.jsonl", n=120)
    with path.open("a") as fh:
        fh.write('{"text": "where is the shop", "label": "epsilon"}\n')
    labels = ",".join(KEYWORDS)
    proc = run_cli(
        "train",
        "--data",
        path,
        "--out",
        tmp_path / "m",
        "--labels",
        labels,
        "--base-model",
        tiny_base_dir,
        check=False,
    )
    assert proc.returncode == 2 and "line 121: unknown label: 'epsilon'" in proc.stderr
    proc = run_cli(
        "train",
        "--data",
        path,
        "--out",
        tmp_path / "m",
        "--labels",
        labels,
        "--quarantine",
        "--base-model",
        tiny_base_dir,
        "--epochs",
        "1",
        "--bootstrap",
        "0",
    )
    assert "quarantined 1 row(s)" in proc.stderr
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["quarantined_rows"] == 1


def test_missing_files_and_models_are_clear(tmp_path, tiny_base_dir):
    proc = run_cli("train", "--data", tmp_path / "nope.jsonl", "--out", tmp_path / "m", check=False)
    assert proc.returncode == 2 and "data file not found" in proc.stderr
    data = write_keyword_jsonl(tmp_path / "d.jsonl", n=40)
    proc = run_cli(
        "train",
        "--data",
        data,
        "--out",
        tmp_path / "m",
        "--base-model",
        "no-such/model-anywhere",
        check=False,
    )
    assert proc.returncode == 2 and "No model is downloaded at run time" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("predict", "--model", tmp_path, "hello", check=False)
    assert proc.returncode == 2 and "model_card.json" in proc.stderr
    proc = run_cli("train", "--data", data, "--out", tmp_path / "m", "--epochs", "0", check=False)
    assert proc.returncode == 2 and "epochs must be >= 1" in proc.stderr


def test_train_test_only_file_carves_validation_and_evaluate_takes_any_split(tmp_path, tiny_base_dir):
    """The usual public format: train and test rows only; then a test-only file for evaluate."""
    source = write_keyword_jsonl(tmp_path / "all.jsonl", n=200)
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    public = tmp_path / "public.jsonl"
    public.write_text(
        "".join(
            json.dumps({**r, "split": "test" if i % 5 == 0 else "train"}) + "\n" for i, r in enumerate(rows)
        )
    )
    test_only = tmp_path / "test_only.jsonl"
    test_only.write_text(
        "".join(json.dumps({**r, "split": "test"}) + "\n" for i, r in enumerate(rows) if i % 5 == 0)
    )
    out = tmp_path / "m"
    proc = run_cli("train", "--data", public, "--out", out, "--base-model", tiny_base_dir, *FAST)
    assert "validation carved from train (16 rows, stratified, seed 42)" in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val_source"] == "carved_from_train" and metrics["split"] == "test"
    assert metrics["split_sizes"] == {"train": 144, "val": 16, "test": 40}  # test rows never trained on
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["fitted_on"] == "val" and calibration["n"] == 16
    for key in ("ece", "ece_uncalibrated", "nll", "nll_uncalibrated", "brier", "brier_uncalibrated"):
        assert key in metrics, key
    # the shipped OOD pool is on by default, so the served calibrator (chosen by validation NLL among
    # temperature / bias / vector) is what metrics and evaluate report; calibration.json keeps the plain
    # temperature fitted on the same validation rows
    served = metrics["serving_calibration"]["calibrator"]
    assert metrics["temperature"] == pytest.approx(served["temperature"])

    report = json.loads(run_cli("evaluate", "--model", out, "--data", test_only, "--bootstrap", "0").stdout)
    assert report["n"] == 40 and report["accuracy"] == pytest.approx(metrics["accuracy"])
    assert report["temperature"] == pytest.approx(served["temperature"])
    assert report["calibrator"] == served["family"]
    assert report["ece"] == pytest.approx(metrics["ece"], abs=1e-6)  # float32 logits
    raw = json.loads(
        run_cli("evaluate", "--model", out, "--data", test_only, "--uncalibrated", "--bootstrap", "0").stdout
    )
    assert raw["temperature"] == 1.0 and raw["ece"] == pytest.approx(metrics["ece_uncalibrated"], abs=1e-6)
    assert (
        json.loads(
            run_cli("evaluate", "--model", out, "--data", public, "--split", "all", "--bootstrap", "0").stdout
        )["n"]
        == 200
    )
    assert (
        json.loads(
            run_cli("evaluate", "--model", out, "--data", public, "--split", "val", "--bootstrap", "0").stdout
        )["n"]
        == 16
    )  # carved exactly as in training
    missing = run_cli("evaluate", "--model", out, "--data", test_only, "--split", "train", check=False)
    assert missing.returncode == 2 and "no 'train' rows" in missing.stderr
    refused = run_cli(
        "train",
        "--data",
        test_only,
        "--out",
        tmp_path / "x",
        "--base-model",
        tiny_base_dir,
        *FAST,
        check=False,
    )
    assert refused.returncode == 2 and "no 'train' rows" in refused.stderr


def test_compare_cli_runs_chunks_and_summarises(tmp_path, tiny_base_dir):
    rows = []
    for i in range(150):
        label = "common" if i % 10 < 6 else ("mid" if i % 10 < 9 else "rare")
        word = {"common": "order", "mid": "refund", "rare": "human"}[label]
        rows.append({"text": f"{word} please {i}", "label": label})
    data = tmp_path / "c.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = [
        "compare",
        "--data",
        data,
        "--out",
        tmp_path / "cmp",
        "--base-model",
        tiny_base_dir,
        "--methods",
        "plain_ce,threshold_moving,recipe_v2",
        "--seeds",
        "2",
        "--max-steps",
        "4",
        "--quiet",
    ]
    run_cli(*common, "--only-seeds", "1", "--no-summary")
    assert len((tmp_path / "cmp" / "runs.jsonl").read_text().splitlines()) == 3
    proc = run_cli(*common)  # seed 1 is skipped (already in the results file), seed 2 runs, then the summary
    assert len((tmp_path / "cmp" / "runs.jsonl").read_text().splitlines()) == 6
    summary = json.loads(proc.stdout)
    assert [m["method"] for m in summary["methods"]] == ["plain_ce", "threshold_moving", "recipe_v2"]
    assert set(summary["tests_vs_recipe_v2"]) == {"plain_ce", "threshold_moving"}
    assert "| plain_ce |" in (tmp_path / "cmp" / "table.md").read_text()
    # a budget the user gives is the budget exactly, for every method trained
    assert (summary["step_budget"], summary["min_epochs"]) == (4, 0.0)
    runs = [json.loads(line) for line in (tmp_path / "cmp" / "runs.jsonl").read_text().splitlines()]
    assert {(r["config"]["max_steps"], r["config"]["min_epochs"]) for r in runs} == {(4, 0.0)}
    # another step budget is another setup: it trains afresh and tables only its own runs
    other = [*common[: common.index("--max-steps")], "--max-steps", "5", "--only-seeds", "1"]
    five_run = run_cli(*other)
    # these labels are not MangaAssist's, so the default --ood-data shipped is noted (not --quiet here)
    assert "--ood-data shipped is MangaAssist's out-of-scope text" in five_run.stderr
    five = json.loads(five_run.stdout)
    assert len((tmp_path / "cmp" / "runs.jsonl").read_text().splitlines()) == 9
    assert five["setup"] != summary["setup"] and {m["seeds"] for m in five["methods"]} == {1}
    again = json.loads(run_cli(*common).stdout)  # the 4-step grid is still whole and untouched
    assert len((tmp_path / "cmp" / "runs.jsonl").read_text().splitlines()) == 9
    assert again["setup"] == summary["setup"] and {m["seeds"] for m in again["methods"]} == {2}


def test_train_writes_the_serving_calibration_and_evaluate_reports_ood(trained, tmp_path):
    data, out, proc = trained
    for name in ("calibrator.json", "ood_detector.json", "routing.json", "serving_calibration.json"):
        assert (out / name).is_file(), name
    line = json.loads(proc.stdout)
    assert line["ood_detector"] and line["calibrator"] in ("temperature", "bias", "vector")
    ood = tmp_path / "ood.jsonl"
    ood.write_text(
        "\n".join(
            json.dumps({"text": t, "label": "whatever"})
            for t in ("book me a flight to oslo", "zxqv blorp", "weather in lima", "who won the derby")
        )
        + "\n",
        encoding="utf-8",
    )
    report = json.loads(
        run_cli("evaluate", "--model", out, "--data", data, "--ood", ood, "--bootstrap", "0").stdout
    )
    for key in ("auroc", "aupr", "fpr_at_95_tpr", "tpr_at_threshold", "in_domain_flag_rate"):
        assert 0 <= report["ood"][key] <= 1, key
    assert report["ood"]["n_ood"] == 4 and report["ood"]["n_in_domain"] == report["n"]
    assert {"aurc_joint", "coverage", "selective_risk", "clarify_below"} <= set(report["risk_coverage"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": ""}\n', encoding="utf-8")
    failed = run_cli("evaluate", "--model", out, "--data", data, "--ood", bad, check=False)
    assert failed.returncode == 2 and "line 1" in failed.stderr


def test_robustness_prints_flip_and_goal_rates_per_attack(trained):
    data, out, _ = trained
    proc = run_cli("robustness", "--model", out, "--data", data, "--attacks", "inject_append,homoglyphs")
    report = json.loads(proc.stdout)
    rows = {r["attack"]: r for r in report["attacks"]}
    assert set(rows) == {"inject_append", "homoglyphs"} and report["phrasings"] == "heldout"
    assert 0 <= rows["inject_append"]["goal_rate"] <= rows["inject_append"]["flip_rate"] <= 1
    assert rows["homoglyphs"]["goal_rate"] is None and "ood_flag_rate" in rows["homoglyphs"]
    assert "inject_append" in proc.stderr
    unknown = run_cli("robustness", "--model", out, "--data", data, "--attacks", "nope", check=False)
    assert unknown.returncode == 2 and "unknown attacks" in unknown.stderr


def test_predict_reports_the_detector_and_route(trained):
    _, out, _ = trained
    rows = [
        json.loads(x)
        for x in run_cli("predict", "--model", out, "refund broken", "--quiet").stdout.splitlines()
    ]
    assert rows[0]["route"] in ("route", "clarify", "fallback") and rows[0]["ood_detector"]
    assert isinstance(rows[0]["is_ood"], bool)


def test_train_with_own_ood_file_outlier_exposure_and_augmentation(tmp_path, tiny_base_dir):
    data = write_keyword_jsonl(tmp_path / "train.jsonl", n=160)
    ood = tmp_path / "ood.jsonl"
    ood.write_text(
        "\n".join(json.dumps({"text": f"flight number {i} to rome"}) for i in range(12)) + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "model"
    proc = run_cli(
        "train",
        "--data",
        data,
        "--out",
        out,
        "--base-model",
        tiny_base_dir,
        "--epochs",
        "1",
        "--ood-data",
        ood,
        "--outlier-exposure-weight",
        "0.5",
        "--adversarial-augmentation",
        "0.2",
        "--adversarial-weight",
        "1.5",
        "--adversarial-consistency",
        "0.5",
        "--bootstrap",
        "0",
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["serving_calibration"]["ood_pools"]["fitting_rows_train"] == 6
    assert metrics["training"]["config"]["outlier_exposure_weight"] == 0.5
    assert metrics["training"]["config"]["adversarial_weight"] == 1.5
    assert metrics["training"]["config"]["adversarial_consistency"] == 0.5
    assert any("adversarial augmentation" in n for n in metrics["training"]["notes"])
    assert any(
        "adversarial training on" in n and "consistency 0.5" in n for n in metrics["training"]["notes"]
    )
    assert "out-of-scope pools" in proc.stderr
    refused = run_cli(
        "train",
        "--data",
        data,
        "--out",
        tmp_path / "m2",
        "--base-model",
        tiny_base_dir,
        "--ood-data",
        "none",
        "--outlier-exposure-weight",
        "0.5",
        check=False,
    )
    assert refused.returncode == 2 and "needs out-of-scope texts" in refused.stderr
    plain = tmp_path / "plain"
    run_cli(
        "train",
        "--data",
        data,
        "--out",
        plain,
        "--base-model",
        tiny_base_dir,
        "--epochs",
        "1",
        "--ood-data",
        "none",
        "--bootstrap",
        "0",
        "--quiet",
    )
    assert not (plain / "ood_detector.json").exists()
    no_detector = run_cli("evaluate", "--model", plain, "--data", data, "--ood", ood, check=False)
    assert no_detector.returncode == 2 and "no OOD detector" in no_detector.stderr


def test_calibration_on_out_of_fold_logits_of_train_and_val(tmp_path, tiny_base_dir):
    data = write_keyword_jsonl(tmp_path / "d.jsonl", n=200)
    out = tmp_path / "m"
    run_cli(
        "train",
        "--data",
        data,
        "--out",
        out,
        "--base-model",
        tiny_base_dir,
        *FAST,
        "--epochs",
        "3",
        "--calibration",
        "cv",
        "--calibration-folds",
        "3",
        "--ood-data",
        "none",
        "--quiet",
    )
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["n"] == 180  # train 160 + val 20, every row predicted out of fold; test untouched
    assert calibration["fitted_on"] == "out-of-fold logits of train+val (180 rows, 3-fold)"
    assert calibration["val_only_fit"]["n"] == 20
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["temperature"] == pytest.approx(calibration["temperature"])
    assert 0 <= metrics["ece_debiased_l2"] and metrics["ece_noise_floor"]["n"] == 20
    bad = run_cli("train", "--data", data, "--out", tmp_path / "x", "--calibration-folds", "1", check=False)
    assert bad.returncode == 2 and "--calibration-folds must be >= 2" in bad.stderr
    with_ood = run_cli("train", "--data", data, "--out", tmp_path / "y", "--calibration", "cv", check=False)
    assert with_ood.returncode == 2 and "add --ood-data none" in with_ood.stderr


def test_train_only_rows_join_training_after_the_split(tmp_path, tiny_base_dir):
    """`--train-only FILE` adds rows to training as the asset graph adds its targeted rows: the split of
    --data is unchanged (validation and test are the same rows), and a repeated message or an unknown
    intent is refused before any training."""
    data = write_keyword_jsonl(tmp_path / "data.jsonl", n=120)
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        "".join(
            json.dumps({"text": f"a refund for the broken box, case {i}", "label": "gamma"}) + "\n"
            for i in range(7)
        )
    )
    out = tmp_path / "m"
    proc = run_cli(
        "train", "--data", data, "--train-only", extra, "--out", out, "--base-model", tiny_base_dir, *FAST
    )
    assert f"--train-only {extra}: 7 rows added to training" in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    plain = make_splits(load_jsonl(data).examples, seed=42)
    assert metrics["split_sizes"] == {
        "train": len(plain.train) + 7,
        "val": len(plain.val),
        "test": len(plain.test),
    }
    assert json.loads((out / "model_card.json").read_text())["train_only_files"] == [str(extra.resolve())]

    test_message = plain.test[0]
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text(json.dumps({"text": test_message.text, "label": test_message.label}) + "\n")
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"text": "where is my parcel", "label": "omega"}) + "\n")
    for bad, message in ((repeated, "repeat corpus messages"), (unknown, "omega")):
        refused = run_cli(
            "train",
            "--data",
            data,
            "--train-only",
            bad,
            "--out",
            tmp_path / "x",
            "--base-model",
            tiny_base_dir,
            *FAST,
            check=False,
        )
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert not (tmp_path / "x").exists()


def test_the_shipped_out_of_scope_pool_is_flagged_for_another_domains_labels():
    """`train` and `compare` say so when MangaAssist's out-of-scope text meets labels that are not the shop's."""
    from manga_intent.cli import shipped_pool_note
    from manga_intent.taxonomy import INTENTS

    assert shipped_pool_note("shipped", list(INTENTS)) is None
    assert shipped_pool_note("shipped", list(INTENTS)[:3]) is None  # a subset of the shop's intents
    note = shipped_pool_note("shipped", ["weather_query", "play_music", "faq"])
    assert note and "2 of these 3 labels" in note and "'play_music'" in note and "--ood-data FILE" in note
    assert shipped_pool_note("my_ood.jsonl", ["weather_query"]) is None
    assert shipped_pool_note("none", ["weather_query"]) is None
