"""No races: registry-moving runs are serialised by the instance config, and the registry pool holds one step.

The slow test launches two retrains together through the real run queue and `dagster-daemon` — the path a
sensor, a schedule or `dagster job backfill` takes — one good, one weak that trains longer (so in parallel it
would finish last and, with last-writer-wins promotion, end as champion).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from manga_assets.definitions import defs
from manga_assets.golden_gate import REGISTRY_POOL
from manga_assets.instance import prepare_dagster_home
from manga_assets.jobs import SERIAL_TAG

REPO = Path(__file__).resolve().parents[1]


def test_the_instance_config_serialises_every_job_that_can_move_an_alias(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(prepare_dagster_home(tmp_path / "dagster")))
    instance = dg.DagsterInstance.get()
    queue = instance.get_concurrency_config().run_queue_config
    assert {"key": SERIAL_TAG, "limit": 1} in queue.tag_concurrency_limits
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    graph = defs.resolve_asset_graph()
    moving = []
    for job in defs.resolve_all_job_defs():
        keys = (
            {k.to_user_string() for k in job.asset_layer.executable_asset_keys} if job.asset_layer else set()
        )
        if job.name.startswith("__"):
            continue
        if keys & {"neuron_artifact", "shadow_report"}:
            moving.append(job.name)
            assert job.run_tags.get(SERIAL_TAG) and job.tags.get(SERIAL_TAG), job.name
    assert set(moving) == {"retrain_job", "seed_sweep_job", "shadow_job", "rebuild_artifact_job"}
    sweep = defs.resolve_job_def("seed_sweep_job")
    assert {k.to_user_string() for k in sweep.asset_layer.executable_asset_keys} == {
        "trained_model",
        "calibrator",
        "neuron_artifact",
    }
    check = next(iter(graph.asset_check_keys))
    assert graph.get_check_spec(check) is not None
    pools = {node.name: node.definition.pool for node in defs.resolve_job_def("retrain_job").graph.nodes}
    assert pools["neuron_artifact_golden_gate"] == REGISTRY_POOL
    assert defs.resolve_job_def("shadow_job").graph.nodes[0].definition.pool == REGISTRY_POOL


POOLED_ASSET = """
import json, os, time
import dagster as dg

@dg.asset(pool="{pool}")
def compare_and_move():
    start = time.time()
    open(os.environ["SPANS"] + ".started", "a").close()
    time.sleep(2)
    with open(os.environ["SPANS"], "a") as fh:
        fh.write(json.dumps([start, time.time()]) + "\\n")

defs = dg.Definitions(assets=[compare_and_move])
"""


def test_the_instance_is_prepared_with_the_registry_pool_one_slot(tmp_path):
    """The pool's slot exists before any run claims it (no lazy creation for two processes to race on), and
    preparing again repairs an instance left with more slots."""
    home = prepare_dagster_home(tmp_path / "dagster")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert instance.event_log_storage.get_concurrency_info(REGISTRY_POOL).slot_count == 1
        instance.event_log_storage.set_concurrency_slots(REGISTRY_POOL, 2)  # what the claim race left
        prepare_dagster_home(home)
        assert instance.event_log_storage.get_concurrency_info(REGISTRY_POOL).slot_count == 1
    finally:
        instance.dispose()


def test_the_registry_pool_lets_one_step_in_at_a_time(tmp_path):
    """A second `dagster asset materialize` process (outside the run queue) that arrives while a step holds
    the pool's slot waits for it.

    Two processes started at the same instant are not tested: Dagster's slot claim reads "a slot is free"
    and then takes it in separate statements, which SQLite does not lock, and in this suite both once
    stepped in together. The alias move itself is a compare-and-set (`ModelRegistry.move_alias`), under a
    file lock on a SQLite registry (tests/test_gate_flow.py)."""
    script = tmp_path / "pooled.py"
    script.write_text(POOLED_ASSET.format(pool=REGISTRY_POOL))
    env = {**os.environ, "DAGSTER_HOME": str(prepare_dagster_home(tmp_path / "dagster"))}
    env["SPANS"] = str(tmp_path / "spans.jsonl")
    started = Path(env["SPANS"] + ".started")
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-f", str(script)]
    logs = [(tmp_path / f"run{i}.log").open("w") for i in range(2)]
    procs = []
    for log in logs:
        procs.append(
            subprocess.Popen(command + ["--select", "compare_and_move"], env=env, cwd=tmp_path, stderr=log)
        )
        deadline = time.monotonic() + 120
        while len(procs) == 1 and not started.exists() and procs[0].poll() is None:
            assert time.monotonic() < deadline, Path(logs[0].name).read_text()[-2000:]
            time.sleep(0.05)  # the first step holds the slot before the second process starts
    for proc, log in zip(procs, logs):
        assert proc.wait(timeout=300) == 0, Path(log.name).read_text()[-2000:]
        log.close()
    (a_start, a_end), (b_start, b_end) = sorted(json.loads(line) for line in open(env["SPANS"]))
    assert b_start >= a_end  # the second step waited for the pool's one slot
    assert "Step blocked by limit for pool" in Path(logs[1].name).read_text()


def _corpus_subset(path: Path, per_intent: int = 30) -> Path:
    from manga_intent.shipped_data import SEED_CORPUS, read_rows

    counts: dict[str, int] = {}
    rows = []
    for row in read_rows(SEED_CORPUS.path):
        if counts.get(row["label"], 0) < per_intent:
            counts[row["label"]] = counts.get(row["label"], 0) + 1
            rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


OPEN_GATE = {
    "min_accuracy": 0.0,
    "min_rare_accuracy": 0.0,
    "max_p95_latency_ms": 10_000.0,
    "intent_margin": 1.0,  # tiny models: judge them on the overall comparison only
    "min_ood_tpr": -1.0,  # and not on their (random) OOD detectors
    "max_injection_flip_rate": -1.0,  # nor on how their predictions move with appended text
}


def _run_config(epochs: int, lr: float) -> dict:
    """A tiny training run. Its steps run in the run worker's process: what is under test is the run queue
    between runs; the multiprocess executor's fresh process per step (~7 s of imports each here) is not."""
    return {
        "execution": {"config": {"in_process": {}}},
        "ops": {
            "trained_model": {
                # a random tiny encoder: nothing pretrained to protect, so train its embeddings, no multiplier
                "config": {
                    "epochs": epochs,
                    "lr": lr,
                    "bootstrap": 20,
                    "freeze_word_embeddings": False,
                    "head_lr_multiplier": 1.0,
                    # no weight average: over a tiny model's few fast steps it would lag far behind
                    "ema_decay": 0.0,
                }
            }
        },
        "resources": {
            "gate_settings": {"config": OPEN_GATE},
            # fp32 only: whether a tiny model's int8 graph meets the gate's golden agreement rows is luck
            "compile_settings": {"config": {"quantize": "off", "latency_warmup": 5}},
        },
    }


def _project_with_upstream(tmp_path, tiny_base_dir, monkeypatch, extra_env=None):
    """The project's instance (dagster.yaml's run queue) with the shared upstream snapshot materialized once,
    as `make demo` or an earlier retrain leaves it; returns (subprocess env, instance, MLflow URI)."""
    from manga_assets.definitions import ALL_ASSETS, build_resources

    home = prepare_dagster_home(tmp_path / "dagster")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MANGA_HOME": str(tmp_path / "manga_home"),
        "MLFLOW_TRACKING_URI": tracking,
        "MANGA_BASE_MODEL": str(tiny_base_dir),
        "HF_HUB_OFFLINE": "1",
        **(extra_env or {}),
    }
    for key in ("DAGSTER_HOME", "MANGA_HOME", "MLFLOW_TRACKING_URI", "MANGA_BASE_MODEL", *(extra_env or {})):
        monkeypatch.setenv(key, env[key])
    instance = dg.DagsterInstance.get()
    # the shared upstream snapshot, materialized once (as `make demo` or an earlier retrain leaves it)
    source = _corpus_subset(tmp_path / "corpus.jsonl")
    upstream = dg.materialize(
        ALL_ASSETS,
        selection=["human_labels", "seed_corpus", "intent_dataset", "synthetic_set"],  # no study: hpo_job's
        instance=instance,
        resources=build_resources(),
        run_config={
            "ops": {
                "seed_corpus": {"config": {"source_uri": str(source)}},
                "synthetic_set": {"config": {"n": 20, "k": 2, "fold_epochs": 1}},
            }
        },
    )
    assert upstream.success
    return env, instance, tracking


def _daemon_until_finished(env, tmp_path, instance, job_name: str, runs: int, timeout: float = 900):
    """`dagster-daemon run` over the code location until `runs` runs of `job_name` exist and have finished
    (the backfill daemon creates a backfill's runs, the run queue starts queued ones); its log stays in
    tmp_path/daemon.log."""
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            records = instance.get_run_records(dg.RunsFilter(job_name=job_name))
            if len(records) >= runs and all(r.dagster_run.is_finished for r in records):
                break
            time.sleep(3)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        log.close()
    return records


@pytest.mark.slow
def test_two_retrains_launched_together_end_with_the_good_one_as_champion(
    tmp_path, tiny_base_dir, monkeypatch
):
    from serving.registry import ModelRegistry

    env, instance, tracking = _project_with_upstream(tmp_path, tiny_base_dir, monkeypatch)

    def launch(partition: str, config: dict) -> None:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "dagster"), "job", "launch", "-w", "workspace.yaml"]
            + ["-j", "seed_sweep_job", "--config-json", json.dumps(config)]
            + ["--tags", json.dumps({"dagster/partition": partition, "retrain": partition})],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    launch("2024", _run_config(epochs=10, lr=3e-3))  # good
    launch("123", _run_config(epochs=12, lr=1e-9))  # weak (untrained), and slower
    queued = instance.get_run_records(dg.RunsFilter(job_name="seed_sweep_job"))
    assert len(queued) == 2 and {r.dagster_run.status for r in queued} == {dg.DagsterRunStatus.QUEUED}

    records = _daemon_until_finished(env, tmp_path, instance, "seed_sweep_job", runs=2)
    runs = {r.dagster_run.tags["retrain"]: r for r in records}
    assert all(r.dagster_run.is_finished for r in runs.values()), (tmp_path / "daemon.log").read_text()[
        -3000:
    ]
    good, weak = runs["2024"], runs["123"]
    assert good.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert weak.dagster_run.status == dg.DagsterRunStatus.FAILURE  # its blocking gate failed
    assert weak.start_time >= good.end_time  # serialised by the run queue, in launch order

    registry = ModelRegistry(tracking)
    champion = registry.champion()
    assert champion.tags["seed"] == "2024" and champion.tags["gate"] == "passed"
    versions = registry.client().search_model_versions(f"name='{registry.model_name}'")
    loser = next(v for v in versions if v.tags.get("seed") == "123")
    assert loser.tags["gate"] == "rejected" and "overall vs champion" in loser.tags["gate_reasons"]
    assert loser.tags["gate_compared_to"] == str(champion.version)
    print(
        f"\n[race] champion v{champion.version} (seed 2024); v{loser.version} rejected: {loser.tags['gate_reasons']}"
    )


@pytest.mark.slow
def test_the_readme_seed_sweep_backfill_runs_its_partitions_one_after_another(
    tmp_path, tiny_base_dir, monkeypatch
):
    """The README's command, verbatim but for the paths: `dagster job backfill ... -j seed_sweep_job
    --partitions 123,2024`. A backfill takes no run config, so the deployment's `MANGA_RETRAIN_RUN_CONFIG`
    gives the runs their (tiny) training settings. The daemon runs both partitions, one after another, over
    one upstream snapshot."""
    import yaml

    settings = tmp_path / "retrain.yaml"
    tiny = _run_config(epochs=4, lr=3e-3)
    tiny["ops"]["synthetic_set"] = {"config": {"n": 20, "k": 2, "fold_epochs": 1}}  # not in this job: dropped
    tiny["resources"]["gate_settings"]["config"]["accuracy_margin"] = 1.0  # both seeds pass: a clean sweep
    # every kept synthetic row trains here, to show both partitions read one synthetic snapshot
    tiny["ops"]["trained_model"]["config"]["synthetic_share"] = 1.0
    settings.write_text(yaml.safe_dump(tiny))
    env, instance, _ = _project_with_upstream(
        tmp_path, tiny_base_dir, monkeypatch, extra_env={"MANGA_RETRAIN_RUN_CONFIG": str(settings)}
    )
    command = [str(Path(sys.executable).parent / "dagster"), "job", "backfill", "-w", "workspace.yaml"]
    command += ["-j", "seed_sweep_job", "--partitions", "123,2024", "--noprompt"]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(instance.get_backfills()) == 1

    records = _daemon_until_finished(env, tmp_path, instance, "seed_sweep_job", runs=2)
    by_partition = {r.dagster_run.tags.get("dagster/partition"): r for r in records}
    assert set(by_partition) == {"123", "2024"}, (tmp_path / "daemon.log").read_text()[-3000:]
    failures = {
        r.dagster_run.tags.get("dagster/partition"): [
            e.dagster_event.event_specific_data.error.to_string()[-1500:]
            for e in instance.all_logs(r.dagster_run.run_id)
            if e.is_dagster_event and e.dagster_event.is_step_failure
        ]
        for r in records
        if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS
    }
    assert failures == {}
    first, second = sorted(records, key=lambda r: r.start_time)
    assert second.start_time >= first.end_time  # the serial run queue: one registry-moving run at a time
    models = [
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("trained_model"), asset_partitions=[p]), limit=1
        ).records[0]
        for p in ("123", "2024")
    ]
    manifests = [m.asset_materialization.metadata["manifest"].value for m in models]
    assert manifests[0]["data_version"] == manifests[1]["data_version"]  # one upstream snapshot
    assert manifests[0]["synthetic_uri"] == manifests[1]["synthetic_uri"] != ""
    assert manifests[0]["synthetic_rows"] == manifests[1]["synthetic_rows"] > 0
    assert {m["recipe"]["epochs"] for m in manifests} == {4}  # the deployment's settings reached the runs
