"""`manga-intent serve --workers 2` as a real multi-process service: faults that only show up there.

- a killed worker: the other keeps answering, the supervisor restarts it, every 200 has its log row;
- champion hot swap under concurrent load: no 5xx, each answer names the version that produced it
  (its confidence matches that version's model), every worker moves to the new champion;
- a corrupt artifact promoted to champion: the workers keep the last good model and say why;
  a fresh start with that champion serves the newest passed version that loads;
- the log file removed and later restored: no 5xx, and the rows end up where the files say.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from test_service import compiled_dir, corrupt_copy

from manga_intent.compiled import CompiledClassifier

pytestmark = pytest.mark.slow
SERVE = [sys.executable, "-m", "manga_intent.cli", "serve"]


class Service:
    def __init__(self, args: list[str], env: dict | None = None, workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(Path(sys.executable).parent / "manga-intent"), "serve", "--workers", str(workers)]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port), *args],
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.process.stdout:
            self.output.append(line)

    def wait_ready(self, workers: int = 2, timeout: float = 120) -> None:
        """Until `workers` distinct workers answered /readyz with 200."""
        seen, deadline = set(), time.monotonic() + timeout
        while len(seen) < workers and time.monotonic() < deadline:
            assert self.process.poll() is None, "".join(self.output[-40:])
            try:
                reply = httpx.get(f"{self.url}/readyz", timeout=2, headers={"connection": "close"})
                if reply.status_code == 200:
                    seen.add(reply.json()["worker"])
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert len(seen) >= workers, f"ready workers {seen}\n" + "".join(self.output[-40:])

    def classify(self, text: str, request_id: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/classify",
            json={"text": text},
            headers={"x-request-id": request_id, "connection": "close"},  # new connection: any worker
            timeout=10,
        )

    def workers(self) -> dict[str, dict]:
        seen = {}
        for _ in range(30):
            status = httpx.get(f"{self.url}/healthz", timeout=2, headers={"connection": "close"}).json()
            seen[status["worker"]] = status
        return seen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def log_ids(path) -> list[str]:
    if not Path(path).exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT request_id FROM predictions")]
    finally:
        conn.close()


def log_rows(path) -> dict[str, tuple]:
    conn = sqlite3.connect(path)
    try:
        return {
            r[0]: r[1:] for r in conn.execute("SELECT request_id, model_version, confidence FROM predictions")
        }
    finally:
        conn.close()


class Load:
    """A client thread sending requests on fresh connections until stopped; records every outcome."""

    def __init__(
        self, service: Service, prefix: str, texts=("where is my order", "any isekai like frieren?")
    ):
        self.service, self.prefix, self.texts = service, prefix, texts
        self.ok: dict[str, dict] = {}
        self.statuses: dict[int, int] = {}
        self.connection_errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while not self._stop.is_set():
            request_id = f"{self.prefix}-{i}"
            text = self.texts[i % len(self.texts)]
            i += 1
            try:
                reply = self.service.classify(text, request_id)
            except httpx.HTTPError:
                self.connection_errors += 1
                continue
            self.statuses[reply.status_code] = self.statuses.get(reply.status_code, 0) + 1
            if reply.status_code == 200:
                self.ok[request_id] = {"text": text, **reply.json(), "worker": reply.headers["x-served-by"]}

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(20)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("worker-artifacts")
    v1 = compiled_dir(root / "v1", tokenizer, seed=1)
    v2 = compiled_dir(root / "v2", tokenizer, seed=2)
    return {"v1": v1, "v2": v2, "corrupt": corrupt_copy(v2, root / "corrupt")}


@pytest.fixture(scope="module")
def fixed_service(artifacts, tmp_path_factory):
    """One 2-worker service over a fixed model, shared by the fault tests below (start-up is the slow part)."""
    log_path = tmp_path_factory.mktemp("fixed-service") / "log.sqlite"
    service = Service(["--model", str(artifacts["v1"]), "--log", str(log_path)])
    try:
        service.wait_ready()
        yield service, log_path
    finally:
        service.stop()


def test_killed_worker_others_keep_answering_and_it_comes_back(fixed_service):
    service, log_path = fixed_service
    before_ids = set(log_ids(log_path))
    before = service.workers()
    assert len(before) == 2
    victim = sorted(before)[0]
    with Load(service, "kill") as load:
        time.sleep(1.0)
        os.kill(int(victim.split("/")[1]), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            workers = {k for k in service.workers()}
            if len(workers) == 2 and victim not in workers:
                break
        answered_after_kill = len(load.ok)
        time.sleep(1.0)
    assert len(workers) == 2 and victim not in workers, workers  # restarted under a new pid
    index = victim.split("/")[0]
    assert any(w.startswith(f"{index}/") for w in workers)
    assert set(load.statuses) == {200}, load.statuses  # no 5xx; in-flight ones may lose the socket
    assert len(load.ok) > answered_after_kill > 0
    assert "exited with -9" in "".join(service.output)
    service.wait_ready()
    logged = [i for i in log_ids(log_path) if i not in before_ids]
    assert len(logged) == len(set(logged))
    assert set(load.ok) <= set(logged)  # every answered request has its row
    assert (
        len(set(logged) - set(load.ok)) <= load.connection_errors
    )  # rows only for answers the killed socket lost


def test_keep_alive_connections_are_dealt_to_the_workers_in_turn(fixed_service):
    """Eight keep-alive connections opened one after another land four on each worker (the kernel's accept
    race split them unevenly), and each stays on its worker."""
    service, _ = fixed_service
    service.wait_ready()
    clients = [httpx.Client(base_url=service.url, timeout=10) for _ in range(8)]
    try:
        served = []
        for i, client in enumerate(clients):
            reply = client.post(
                "/v1/classify", json={"text": "where is my order"}, headers={"x-request-id": f"deal-{i}"}
            )
            assert reply.status_code == 200
            served.append(reply.headers["x-served-by"])
        again = [
            client.post("/v1/classify", json={"text": "any isekai like frieren?"}).headers["x-served-by"]
            for client in clients
        ]
    finally:
        for client in clients:
            client.close()
    assert sorted(Counter(served).values()) == [4, 4], served
    assert again == served  # a connection stays with the worker it was dealt to


def register(registry, run_id: str, directory: Path) -> str:
    return registry.register_candidate(run_id, directory, {"seed": "0"})


def promote(registry, version: str) -> None:
    """What a passed gate does: tag the version passed and move the champion alias (compare-and-set)."""
    from serving.registry import GATE_TAG, PASSED

    champion = registry.alias_versions()["champion"]
    registry.move_alias("champion", version, expected={"champion": champion}, tags={GATE_TAG: PASSED})


def test_hot_swap_under_load_and_a_corrupt_champion(artifacts, tmp_path):
    from mlflow import MlflowClient

    from serving.registry import ModelRegistry

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = ModelRegistry(tracking)
    client = MlflowClient(tracking)
    # an explicit artifact location: MLflow's default is ./mlruns of the working directory (the repository)
    experiment = client.create_experiment("swap", artifact_location=(tmp_path / "mlartifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    v1 = register(registry, run_id, artifacts["v1"])
    promote(registry, v1)
    env = {"MLFLOW_TRACKING_URI": tracking, "MANGA_ARTIFACT_URI": str(tmp_path / "artifacts")}
    log_path = tmp_path / "log.sqlite"
    args = ["--log", str(log_path), "--reload-seconds", "0.3"]
    service = Service(args, env={**env, "MANGA_HOME": str(tmp_path / "home")})
    expected = {
        v: CompiledClassifier(artifacts[name]) for v, name in ((v1, "v1"),)
    }  # what each version answers, to check every reply against the version it names
    try:
        service.wait_ready()
        with Load(service, "swap") as load:
            time.sleep(1.0)
            v2 = register(registry, run_id, artifacts["v2"])
            expected[v2] = CompiledClassifier(artifacts["v2"])
            promote(registry, v2)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                recent = [r for r in list(load.ok.values())[-20:]]
                if len(recent) == 20 and {r["model_version"] for r in recent} == {v2}:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
        assert set(load.statuses) == {200}, load.statuses
        versions_by_worker = {}
        for reply in load.ok.values():
            versions_by_worker.setdefault(reply["worker"], set()).add(reply["model_version"])
            want = expected[reply["model_version"]].classify([reply["text"]])[0]
            assert reply["intent"] == want.intent and abs(reply["confidence"] - want.confidence) < 1e-4
        assert len(versions_by_worker) == 2 and all(v2 in vs for vs in versions_by_worker.values())
        assert {w["model_version"] for w in service.workers().values()} == {v2}

        # a corrupt upload becomes champion: every worker keeps v2 and reports the error
        v3 = register(registry, run_id, artifacts["corrupt"])
        promote(registry, v3)
        time.sleep(2.0)
        for status in service.workers().values():
            assert (
                status["model_version"] == v2
                and f"version {v3} cannot be served" in status["last_refresh_error"]
            )
            assert status["reload_thread_alive"] is True
        assert service.classify("where is my order", "after-corrupt").json()["model_version"] == v2
        assert httpx.get(f"{service.url}/readyz").status_code == 200
    finally:
        service.stop()
    rows = log_rows(log_path)
    for request_id, reply in load.ok.items():
        assert rows[request_id][0] == reply["model_version"]  # the row names the same version as the answer

    # a fresh start while the champion is corrupt serves the newest passed version that loads
    restarted = Service(args, env={**env, "MANGA_HOME": str(tmp_path / "home2")})
    try:
        restarted.wait_ready()
        for status in restarted.workers().values():
            assert status["model_version"] == v2 and f"champion version {v3}" in status["fallback"]
        assert restarted.classify("hi", "fallback").json()["model_version"] == v2
    finally:
        restarted.stop()


def test_log_removed_and_restored_under_load(fixed_service, tmp_path):
    service, log_path = fixed_service
    backup = tmp_path / "backup.sqlite"
    with Load(service, "before") as before:
        time.sleep(1.0)
    os.rename(log_path, backup)  # rotated away (only the main file, as a careless script would)
    with Load(service, "gone") as gone:
        time.sleep(1.5)
    os.replace(backup, log_path)  # ... and restored
    time.sleep(0.5)
    with Load(service, "after") as after:
        time.sleep(1.0)
    for load in (before, gone, after):
        assert set(load.statuses) <= {200, 503}, load.statuses
    assert before.ok and after.ok and gone.statuses.get(200, 0) > 0
    assert all(w["log"]["writable"] for w in service.workers().values())
    logged = log_ids(log_path)
    # the restored file holds everything answered before the rotation and after the restore; rows
    # answered while it was away went into the interim file, which the restore replaced
    assert set(before.ok) | set(after.ok) <= set(logged)
    assert not set(gone.ok) & set(logged) - set(before.ok)
    assert len(logged) == len(set(logged))
