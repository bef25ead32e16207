"""The sensors run by the real daemon: `dagster-daemon run` over the project's code location (workspace.yaml)
against a temporary production-shaped instance — deploy/postgres/dagster.yaml as shipped (storage on the
suite's PostgreSQL server, the run queue with the project's concurrency limits: one `manga/serial` run, two
`manga/labeling` runs), the prediction log as a PostgreSQL table, a real Label Studio.

Traffic is stationary first (the daemon's ticks judge it and launch nothing), then it drifts (a seasonal
sale). The daemon's own tick launches the labelling runs (one per drifted window) and one retrain (the
cooldown holds the second); the queue starts them within its limits; the labelling runs import each message
once between them and the retrain (tiny model, `MANGA_RETRAIN_RUN_CONFIG`) crowns a champion; the ticks
after that launch nothing more.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from serving.simulator import simulate

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
WINDOW = 500

#: a retrain small enough for a test (open gate: a tiny random model cannot reach the seed's 92%)
RETRAIN_RUN_CONFIG = {
    "execution": {"config": {"in_process": {}}},
    "ops": {
        "synthetic_set": {"config": {"n": 40, "k": 2, "fold_epochs": 1}},
        "trained_model": {"config": {"epochs": 3, "lr": 3e-3, "bootstrap": 50}},
        "seed_sweep_report": {"config": {"bootstrap": 20}},
    },
    "resources": {
        # fp32 only: whether a tiny random model's int8 graph meets the gate's golden agreement rows is luck
        "compile_settings": {"config": {"latency_warmup": 5, "quantize": "off"}},
        "gate_settings": {
            "config": {
                "min_accuracy": 0.0,
                "min_rare_accuracy": 0.0,
                "max_p95_latency_ms": 10000.0,
                "accuracy_margin": 1.0,
                "intent_margin": 1.0,
                "min_ood_tpr": -1.0,
                "max_injection_flip_rate": -1.0,
                "shadow_before_cutover": False,
                "latency_warmup": 5,
            }
        },
    },
}


def log_rows(scenario: str, n: int, seed: int, start: int) -> list[dict]:
    """Simulated traffic as the service logs it (a model that predicts the true intent, confidently)."""
    rng = random.Random(seed)
    rows = []
    for i, message in enumerate(simulate(scenario, n, seed=seed)):
        intent = message["true_label"] or "faq"
        runner = "promotion" if intent != "promotion" else "faq"
        confidence = rng.uniform(0.7, 0.99)
        rows.append(
            {
                "ts": time.time(),
                "request_id": f"req-{start + i}",
                "text": message["text"],
                "channel": message["channel"],
                "intent": intent,
                "confidence": confidence,
                "secondary_intent": None,
                "top": [],
                "probs": {intent: confidence, runner: 1 - confidence},
                "is_ood": message["is_ood"],
                "energy": -5.0,
                "route": "route",
                "model_version": "0",
                "latency_ms": 0.3,
                "client": message["client"],
            }
        )
    return rows


class Daemon:
    """`dagster-daemon run` in its own process group, stopped (SIGINT, then SIGKILL) when the test ends."""

    def __init__(self, env: dict, log_path: Path):
        self.log_path = log_path
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-daemon")),
                "run",
                "-w",
                str(REPO / "workspace.yaml"),
            ],
            cwd=REPO,
            env=env,
            stdout=log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def sensor_ticks(instance, name: str) -> list:
    """The daemon's recorded ticks of a sensor, oldest first."""
    from dagster._core.definitions.run_request import InstigatorType

    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == name:
            return sorted(
                instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=200),
                key=lambda t: t.timestamp,
            )
    return []


def wait_for(what: str, predicate, daemon: Daemon, timeout: float):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        assert daemon.alive(), f"the daemon exited while waiting for {what}:\n{daemon.tail()}"
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; daemon log:\n{daemon.tail()}")


def max_overlap(records) -> int:
    """Most runs in progress at one moment (from their start and end times)."""
    events = sorted(
        [(r.start_time, 1) for r in records if r.start_time]
        + [(r.end_time, -1) for r in records if r.end_time]
    )
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def test_the_daemon_launches_labelling_and_one_retrain_then_nothing_more(
    tmp_path, monkeypatch, postgres, shared_label_studio, tiny_base_dir
):
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.scheduler.instigation import TickStatus

    from labeling.client import LabelStudioClient
    from serving.pg_prediction_log import PostgresPredictionLog
    from serving.registry import ModelRegistry

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy/postgres/dagster.yaml").read_text())
    retrain_config = tmp_path / "retrain.yaml"
    retrain_config.write_text(yaml.safe_dump(RETRAIN_RUN_CONFIG))
    log_url = postgres.create_database("daemon_predictions")
    project = "MangaAssist daemon test"
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        "DAGSTER_HOME": str(home),
        "MANGA_DAGSTER_PG_URL": postgres.create_database("daemon_dagster"),
        "MANGA_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": tracking,
        "MANGA_BASE_MODEL": str(tiny_base_dir),
        "MANGA_PREDICTION_LOG": log_url,
        "LABEL_STUDIO_URL": shared_label_studio.url,
        "LABEL_STUDIO_API_KEY": shared_label_studio.token,
        "LABEL_STUDIO_PROJECT": project,
        "MANGA_SENSOR_INTERVAL_SECONDS": "5",
        "MANGA_RETRAIN_RUN_CONFIG": str(retrain_config),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    log = PostgresPredictionLog(log_url)
    log.append(log_rows("stationary", WINDOW, seed=1, start=0))
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    daemon = Daemon({**os.environ, **env}, tmp_path / "daemon.log")
    try:
        # 1. stationary traffic: the daemon's ticks judge the first window and launch nothing
        wait_for(
            "a drift_sensor tick on stationary traffic",
            lambda: [t for t in sensor_ticks(instance, "drift_sensor") if t.status == TickStatus.SKIPPED],
            daemon,
            timeout=240,
        )
        assert instance.get_runs() == []

        # 2. the traffic drifts: a seasonal sale, two full windows
        log.append(log_rows("seasonal_sale", 2 * WINDOW, seed=2, start=WINDOW))
        launching = wait_for(
            "the drift_sensor tick that launches runs",
            lambda: [t for t in sensor_ticks(instance, "drift_sensor") if t.status == TickStatus.SUCCESS],
            daemon,
            timeout=240,
        )[0]
        runs = {
            r.run_id: r
            for r in instance.get_runs(dg.RunsFilter(tags={"dagster/sensor_name": "drift_sensor"}))
        }
        assert set(launching.run_ids) == set(runs)
        jobs = sorted(r.job_name for r in runs.values())
        assert jobs == ["labeling_job", "labeling_job", "retrain_job"], jobs
        epoch = log.epoch()[:8]
        keys = {r.tags["dagster/run_key"] for r in runs.values()}
        assert keys == {
            f"drift-sample:{epoch}:501-1000",
            f"drift-sample:{epoch}:1001-1500",
            f"drift-retrain:{epoch}:501-1000",
        }, keys
        for run in runs.values():
            print(
                f"\n[daemon] drift_sensor tick -> {run.job_name} {run.tags['dagster/run_key']} "
                f"intent_kl={run.tags['intent_kl']} p={run.tags['intent_kl_p_value']}"
            )

        # 3. the queue starts them within its limits and they finish: labels imported once, a champion crowned
        def finished():
            records = instance.get_run_records(dg.RunsFilter(run_ids=list(runs)))
            return records if all(r.dagster_run.is_finished for r in records) else None

        records = wait_for("the launched runs to finish", finished, daemon, timeout=900)
        failed = {
            r.dagster_run.job_name: r.dagster_run.status for r in records if not r.dagster_run.is_success
        }
        assert not failed, (failed, daemon.tail())
        labeling = [r for r in records if r.dagster_run.job_name == "labeling_job"]
        assert max_overlap(labeling) <= 2
        assert all(r.dagster_run.tags.get("manga/labeling") for r in labeling)
        assert all(
            r.dagster_run.tags.get("manga/serial") for r in records if r.dagster_run.job_name == "retrain_job"
        )
        client = LabelStudioClient(shared_label_studio.url, shared_label_studio.token, project)
        tasks = client.tasks(client.ensure_project())
        message_keys = [t.data["message_key"] for t in tasks]
        assert len(message_keys) == len(set(message_keys)) > 0  # two parallel runs, no message twice
        batches = instance.fetch_materializations(dg.AssetKey("labeling_batch"), limit=10).records
        imported = [b.asset_materialization.metadata["imported"].value for b in batches]
        assert len(imported) == 2
        assert sum(imported) == len(tasks)
        champion = ModelRegistry(tracking, "manga-intent-classifier").champion()
        assert champion is not None
        print(
            f"[daemon] runs finished: labelling imported {imported} tasks ({len(tasks)} distinct), "
            f"retrain crowned champion v{champion.version}; labelling overlap {max_overlap(labeling)}"
        )

        # 4. the next ticks launch nothing more (every sensor, two more drift ticks after the runs finished)
        done_at = max(r.end_time for r in records)
        before = len(instance.get_runs())
        later = wait_for(
            "two drift_sensor ticks after the runs finished",
            lambda: (
                (
                    ticks := [
                        t
                        for t in sensor_ticks(instance, "drift_sensor")
                        if t.timestamp > done_at and t.status != TickStatus.STARTED  # a tick still running
                    ]
                )[1:]
                and ticks
            ),
            daemon,
            timeout=120,
        )
        assert all(t.status == TickStatus.SKIPPED for t in later), [(t.status, t.skip_reason) for t in later]
        for name in ("low_confidence_sensor", "labels_ready_sensor", "decision_tree_sensor"):
            ticks = sensor_ticks(instance, name)
            assert ticks and all(not t.run_ids for t in ticks), (
                name,
                [(t.status, t.skip_reason) for t in ticks],
            )
        assert len(instance.get_runs()) == before == len(runs)
        print(f"[daemon] {len(later)} later drift ticks: {[t.skip_reason for t in later][-1]}")
    finally:
        daemon.stop()
        instance.dispose()
