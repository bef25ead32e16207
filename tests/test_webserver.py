"""A real dagster-webserver serving workspace.yaml runs a job launched through GraphQL (the UI's path)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port
from dagster_graphql import DagsterGraphQLClient

from manga_intent.shipped_data import SEED_CORPUS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def webserver(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    # launch runs straight away: no daemon needed for the queued coordinator
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "MANGA_HOME": str(tmp_path / "manga_home")}
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / "webserver.log").read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            client._execute("{ version }")
            break
        except Exception:
            time.sleep(1)
    else:
        proc.kill()
        raise RuntimeError("webserver did not come up:\n" + (tmp_path / "webserver.log").read_text())
    yield client, tmp_path
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_materialization_launched_over_graphql_succeeds(webserver):
    client, tmp_path = webserver
    run_id = client.submit_job_execution(
        "dataset_job",
        repository_location_name="manga_assets.definitions",
        repository_name="__repository__",
        run_config={"ops": {"seed_corpus": {"config": {"source_uri": str(SEED_CORPUS.path)}}}},
    )
    deadline = time.time() + 240
    status = None
    while time.time() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS", status
    snapshots = list((tmp_path / "manga_home" / "artifacts" / "datasets" / "intent_dataset").glob("*.jsonl"))
    assert (
        len(snapshots) == 1 and len(snapshots[0].read_text().splitlines()) == 1600 + 65
    )  # corpus + targeted rows


def test_dagster_asset_materialize_from_the_command_line(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "MANGA_HOME": str(tmp_path / "manga_home")}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "asset",
            "materialize",
            "-m",
            "manga_assets.definitions",
            "--select",
            "seed_corpus,intent_dataset",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RUN_SUCCESS" in proc.stderr + proc.stdout
