"""Labelling under concurrency and faults, against the real Label Studio server.

- Two `labeling_batch` runs in parallel (two processes, as two Dagster run workers would be) over the same
  log and project: no message is imported twice, and what they imported adds up to the project's tasks.
- `ensure_project` raced by four processes that share no lock file (four machines): one project remains.
- The SDK answering 401 (a wrong token, from the real server) or 5xx (a fault-injecting proxy in front of the
  real server): the labels-ready sensor skips with the cursor unchanged; a labelling run fails clearly,
  imports nothing and leaves no reservation behind, so the next run imports those messages.
"""

import multiprocessing
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import httpx
import pytest
from conftest import free_port

from labeling.client import LabelStudioClient
from labeling.label_config import choice_result
from labeling.ledger import LabelingLedger
from manga_assets.labeling import labeling_batch
from resources.label_studio import LabelStudioResource
from resources.monitoring_settings import MonitoringSettings
from resources.prediction_log import SqlitePredictionLogResource
from sensors.labels import labels_ready_sensor
from serving.prediction_log import SqlitePredictionLog
from serving.simulator import simulate

pytestmark = pytest.mark.slow


def fill_log(path, n=300, seed=3):
    rows = []
    for i, message in enumerate(simulate("stationary", n, seed=seed)):
        intent = message["true_label"] or "faq"
        confidence = 0.4 + 0.5 * ((i * 37) % 100) / 100
        rows.append(
            {
                "ts": float(i),
                "request_id": f"req-{i}",
                "text": message["text"],
                "channel": message["channel"],
                "intent": intent,
                "confidence": confidence,
                "secondary_intent": None,
                "top": [],
                "probs": {intent: confidence, "faq" if intent != "faq" else "promotion": 1 - confidence},
                "is_ood": False,
                "energy": -5.0,
                "route": "route",
                "model_version": "1",
                "latency_ms": 1.0,
                "client": f"user-{i}",
            }
        )
    SqlitePredictionLog(path).append(rows)


def _labelling_run(url, token, project, log_path, ledger_path, home, start, queue):
    """One labelling run in its own process (a Dagster run worker would be one)."""
    import os

    os.environ["MANGA_HOME"] = home
    resources = {
        "prediction_log": SqlitePredictionLogResource(path=log_path),
        "label_studio": LabelStudioResource(
            url=url, api_key=token, project_title=project, ledger_path=ledger_path
        ),
    }
    start.wait(timeout=120)
    result = dg.materialize(
        [labeling_batch],
        resources=resources,
        run_config={"ops": {"labeling_batch": {"config": {"k": 60, "max_client_share": 1.0}}}},
        raise_on_error=False,
    )
    metadata = result.asset_materializations_for_node("labeling_batch")[0].metadata if result.success else {}
    queue.put(
        {
            "success": result.success,
            "imported": metadata["imported"].value if metadata else None,
            "reserved_by_another_run": metadata["reserved_by_another_run"].value if metadata else None,
        }
    )


def test_two_labelling_runs_in_parallel_import_no_message_twice(tmp_path, shared_label_studio):
    fill_log(tmp_path / "log.sqlite")
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Barrier(2), ctx.Queue()
    project = "parallel labelling"
    workers = [
        ctx.Process(
            target=_labelling_run,
            args=(
                shared_label_studio.url,
                shared_label_studio.token,
                project,
                str(tmp_path / "log.sqlite"),
                str(tmp_path / "ledger.sqlite"),  # one ledger per deployment, shared by its run workers
                str(tmp_path / "home"),
                start,
                queue,
            ),
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert all(r["success"] for r in results), results
    client = LabelStudioClient(shared_label_studio.url, shared_label_studio.token, project)
    tasks = client.tasks(client.ensure_project())
    keys = [t.data["message_key"] for t in tasks]
    assert len(keys) == len(set(keys)), "a message was imported twice"
    assert sum(r["imported"] for r in results) == len(tasks) >= 60
    ledger = LabelingLedger(tmp_path / "ledger.sqlite")
    assert ledger.keys(project) == set(keys)
    print(f"\n[labelling] two parallel runs: {results}; {len(tasks)} distinct tasks")


def _ensure(url, token, title, home, start, queue):
    import os

    os.environ["MANGA_HOME"] = home  # its own lock file: these callers could be on different machines
    client = LabelStudioClient(url, token, title)
    start.wait(timeout=120)
    queue.put(client.ensure_project())


def test_ensure_project_raced_from_four_machines_leaves_one_project(tmp_path, shared_label_studio):
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Barrier(4), ctx.Queue()
    title = "raced project"
    workers = [
        ctx.Process(
            target=_ensure,
            args=(
                shared_label_studio.url,
                shared_label_studio.token,
                title,
                str(tmp_path / f"m{i}"),
                start,
                queue,
            ),
        )
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    ids = [queue.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    client = LabelStudioClient(shared_label_studio.url, shared_label_studio.token, title)
    remaining = client._project_ids()
    assert len(set(ids)) == 1 and remaining == [ids[0]], (ids, remaining)
    assert client.ensure_project() == ids[0]


class FaultProxy:
    """A reverse proxy in front of the real Label Studio that answers `status` to requests whose path starts
    with one of `fail_paths` (and forwards everything else untouched)."""

    def __init__(self, upstream: str):
        self.upstream, self.fail_paths, self.status = upstream, (), 500
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if any(self.path.startswith(p) for p in proxy.fail_paths):
                    payload = b'{"detail": "injected fault"}'
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                reply = httpx.request(
                    self.command, proxy.upstream + self.path, headers=headers, content=body, timeout=60
                )
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "content-encoding",
                        "connection",
                    ):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _tick(resource: LabelStudioResource, cursor):
    context = dg.build_sensor_context(
        cursor=cursor,
        resources={"label_studio": resource, "monitoring": MonitoringSettings(min_new_labels=1)},
    )
    result = labels_ready_sensor(context)
    return result, context.cursor


def test_sdk_401_and_5xx_are_unavailable_and_keep_the_cursor_and_the_messages(
    tmp_path, shared_label_studio, monkeypatch
):
    monkeypatch.setenv("MANGA_HOME", str(tmp_path / "home"))
    project = "faults"
    url, token = shared_label_studio.url, shared_label_studio.token
    healthy = LabelStudioResource(url=url, api_key=token, project_title=project)
    client = healthy.get_client()
    project_id = client.ensure_project()
    task_id = client.import_tasks(project_id, [{"data": {"text": "where is my order", "message_key": "k1"}}])[
        0
    ]
    client.sdk().annotations.create(id=task_id, result=[choice_result("intent", "order_tracking")])
    ready, cursor = _tick(healthy, None)
    assert [r.job_name for r in ready] == ["retrain_job"]
    client.sdk().annotations.create(id=task_id, result=[choice_result("intent", "order_tracking")])

    # 401: the real server refuses a wrong token
    refused = LabelStudioResource(url=url, api_key="0" * 40, project_title=project)
    skip, after = _tick(refused, cursor)
    assert isinstance(skip, dg.SkipReason) and "401" in skip.skip_message and after == cursor

    proxy = FaultProxy(url)
    try:
        behind_proxy = LabelStudioResource(
            url=proxy.url, api_key=token, project_title=project, timeout_seconds=10
        )
        # 5xx on the task listing the sensor reads
        proxy.fail_paths, proxy.status = ("/api/tasks",), 503
        skip, after = _tick(behind_proxy, cursor)
        assert isinstance(skip, dg.SkipReason) and "503" in skip.skip_message and after == cursor
        # healthy again: the annotation made meanwhile is counted, nothing was lost
        proxy.fail_paths = ()
        ready, _ = _tick(behind_proxy, cursor)
        assert len(ready) == 1 and ready[0].tags["new_labels"] == "1"

        # a labelling run whose import answers 500: it fails clearly, imports nothing, releases its reservations
        fill_log(tmp_path / "log.sqlite", n=120, seed=5)
        resources = {
            "prediction_log": SqlitePredictionLogResource(path=str(tmp_path / "log.sqlite")),
            "label_studio": LabelStudioResource(
                url=proxy.url,
                api_key=token,
                project_title=project,
                ledger_path=str(tmp_path / "ledger.sqlite"),
                timeout_seconds=10,
            ),
        }
        config = {"ops": {"labeling_batch": {"config": {"k": 20, "max_client_share": 1.0}}}}
        proxy.fail_paths, proxy.status = (f"/api/projects/{project_id}/import",), 500
        failed = dg.materialize(
            [labeling_batch], resources=resources, run_config=config, raise_on_error=False
        )
        assert not failed.success
        message = " ".join(str(e.event_specific_data.error) for e in failed.all_events if e.is_step_failure)
        assert "Label Studio" in message and "500" in message, message
        assert LabelingLedger(tmp_path / "ledger.sqlite").keys(project) == set()  # nothing left reserved
        assert len(client.tasks(project_id)) == 1
        proxy.fail_paths = ()
        retried = dg.materialize([labeling_batch], resources=resources, run_config=config)
        assert retried.asset_materializations_for_node("labeling_batch")[0].metadata["imported"].value == 20
    finally:
        proxy.close()


def test_a_duplicate_another_machine_already_deleted_is_not_an_error(tmp_path, monkeypatch):
    """The race's losing half, made deterministic: between listing the raced projects and deleting the empty
    duplicate, another machine deleted it (Label Studio answers 404). The caller still settles on the winner;
    any other refusal still raises."""
    from types import SimpleNamespace

    from label_studio_sdk.core.api_error import ApiError

    from labeling.client import LabelStudioClient

    monkeypatch.setenv("MANGA_HOME", str(tmp_path))
    gone = ApiError(status_code=404, headers={}, body={"detail": "No Project matches the given query."})
    refused = ApiError(status_code=400, headers={}, body={"detail": "bad request"})
    projects = [SimpleNamespace(id=i, title="raced") for i in (7, 9)]

    def client_whose_delete_raises(error):
        def delete(id):
            raise error

        client = LabelStudioClient(url="http://127.0.0.1:9", api_key="k", project_title="raced")
        client._sdk = SimpleNamespace(
            projects=SimpleNamespace(list=lambda: projects, delete=delete),
            tasks=SimpleNamespace(list=lambda project, page_size: []),
        )
        return client

    assert client_whose_delete_raises(gone).ensure_project() == 7
    with pytest.raises(ApiError):
        client_whose_delete_raises(refused).ensure_project()
