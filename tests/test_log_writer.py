"""The prediction log's write path: group commit, back-pressure, clear failures, files that vanish."""

import multiprocessing
import os
import shutil
import sqlite3
import threading
import time

import pytest

from serving.log_writer import (
    GroupCommitWriter,
    LogBackpressure,
    LogUnavailable,
    SqliteLogSink,
    writer_for,
)
from serving.prediction_log import SqlitePredictionLog


def row(request_id: str) -> dict:
    return {
        "ts": time.time(),
        "request_id": request_id,
        "text": f"message {request_id}",
        "channel": "web",
        "intent": "faq",
        "confidence": 0.9,
        "secondary_intent": None,
        "top": [{"intent": "faq", "confidence": 0.9}],
        "probs": {"faq": 0.9},
        "is_ood": False,
        "energy": -3.0,
        "route": "route",
        "model_version": "1",
        "latency_ms": 1.0,
    }


def ids_in(path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT request_id FROM predictions ORDER BY id")]
    finally:
        conn.close()


def submit_and_wait(writer: GroupCommitWriter, rows: list[dict], timeout: float = 10.0):
    """Submit from a plain thread; returns the error (None = committed)."""
    done, outcome = threading.Event(), {}

    def callback(error):
        outcome["error"] = error
        done.set()

    writer.submit(rows, callback)
    assert done.wait(timeout), "the writer never answered"
    return outcome["error"]


class SlowSink:
    """Wraps a sink and blocks each write until released, to pile requests up behind it."""

    def __init__(self, inner):
        self.inner, self.gate, self.writes = inner, threading.Event(), []

    def write(self, rows):
        self.gate.wait(10)
        self.writes.append(len(rows))
        self.inner.write(rows)

    def check(self):
        self.inner.check()

    def probe(self):
        self.inner.probe()

    def close(self):
        self.inner.close()


def test_many_requests_share_one_transaction(tmp_path):
    sink = SlowSink(SqliteLogSink(tmp_path / "log.sqlite"))
    writer = GroupCommitWriter(sink).start()
    results, threads = [], []
    for i in range(40):
        t = threading.Thread(target=lambda i=i: results.append(submit_and_wait(writer, [row(f"r{i}")])))
        t.start()
        threads.append(t)
        if i == 0:
            time.sleep(0.2)  # the first write is now blocked in the sink; the rest queue behind it
    time.sleep(0.2)
    sink.gate.set()
    for t in threads:
        t.join()
    writer.stop()
    assert results == [None] * 40
    assert sorted(ids_in(tmp_path / "log.sqlite")) == sorted(f"r{i}" for i in range(40))
    assert len(sink.writes) < 40 and max(sink.writes) > 1, sink.writes  # grouped
    assert writer.status()["commits"] == len(sink.writes)


def test_full_queue_refuses_instead_of_buffering(tmp_path):
    sink = SlowSink(SqliteLogSink(tmp_path / "log.sqlite"))
    writer = GroupCommitWriter(sink, max_queue_rows=3).start()
    answered = []
    writer.submit([row("a")], answered.append)  # taken by the (blocked) writer thread
    time.sleep(0.2)
    writer.submit([row("b"), row("c")], answered.append)
    with pytest.raises(LogBackpressure, match="behind"):
        writer.submit([row("d"), row("e")], answered.append)
    sink.gate.set()
    writer.stop()
    assert answered == [None, None]
    assert ids_in(tmp_path / "log.sqlite") == ["a", "b", "c"]  # nothing of the refused request


def test_locked_log_is_503_material_then_recovers(tmp_path):
    path = tmp_path / "log.sqlite"
    SqlitePredictionLog(path)
    writer = writer_for(str(path), busy_timeout_s=0.2, retry_s=0.2)
    assert submit_and_wait(writer, [row("before")]) is None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # a long writer elsewhere holds the lock
    started = time.monotonic()
    error = submit_and_wait(writer, [row("during")])
    assert isinstance(error, LogUnavailable) and "locked" in str(error) and error.retry_after >= 1
    assert time.monotonic() - started < 2  # bounded by busy_timeout, not 30 s
    with pytest.raises(LogUnavailable):  # while down, refused at once
        writer.submit([row("refused")], lambda e: None)
    assert writer.status()["writable"] is False
    other.execute("ROLLBACK")
    other.close()
    deadline = time.monotonic() + 5
    while not writer.available and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.available, writer.status()
    assert submit_and_wait(writer, [row("after")]) is None
    writer.stop()
    assert ids_in(path) == ["before", "after"]


def test_removed_file_is_recreated_and_stray_wal_set_aside(tmp_path):
    path = tmp_path / "log.sqlite"
    sink = SqliteLogSink(path)
    sink.write([row("old")])
    path.unlink()
    sink.write([row("new")])
    assert ids_in(path) == ["new"] and sink.recreated == 1
    for leftover in tmp_path.iterdir():  # the vanished file's WAL may not join the new one
        assert ".orphan-" not in leftover.name or leftover.stat().st_size > 0
    shutil.rmtree(tmp_path)
    sink.write([row("newer")])
    assert ids_in(path) == ["newer"] and sink.recreated == 2


def test_rotated_file_is_complete_and_restored_file_is_used(tmp_path):
    path, rotated = tmp_path / "log.sqlite", tmp_path / "rotated.sqlite"
    sink = SqliteLogSink(path)
    sink.write([row("a"), row("b")])
    os.rename(path, rotated)  # a careless rotation moves only the main file
    sink.write([row("c")])
    assert ids_in(rotated) == ["a", "b"]  # its WAL was folded in before the sink let go of it
    assert ids_in(path) == ["c"]
    os.replace(rotated, path)  # restored from the "backup"
    sink.write([row("d")])
    assert ids_in(path) == ["a", "b", "d"]
    os.unlink(f"{path}-wal")  # even the live WAL removed: no row lost, none doubled
    sink.write([row("e")])
    assert ids_in(path) == ["a", "b", "d", "e"]


def test_unusable_path_is_unavailable_until_fixed(tmp_path):
    path = tmp_path / "log.sqlite"
    writer = writer_for(str(path), retry_s=0.1)
    assert submit_and_wait(writer, [row("one")]) is None
    path.unlink()
    for leftover in tmp_path.glob("log.sqlite-*"):
        leftover.unlink()
    path.mkdir()  # something else now sits at the log's path
    error = submit_and_wait(writer, [row("two")])
    assert isinstance(error, LogUnavailable) and "unable to open" in str(error)
    path.rmdir()
    deadline = time.monotonic() + 5
    while not writer.available and time.monotonic() < deadline:
        time.sleep(0.05)
    assert submit_and_wait(writer, [row("three")]) is None
    writer.stop()
    assert ids_in(path) == ["three"]


def _write_from_process(path: str, prefix: str, n: int) -> None:
    writer = writer_for(path)
    for i in range(n):
        assert submit_and_wait(writer, [row(f"{prefix}{i}")]) is None
    writer.stop()


def test_two_processes_share_the_log(tmp_path):
    path = str(tmp_path / "log.sqlite")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_from_process, args=(path, p, 150)) for p in ("x", "y")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    logged = ids_in(path)
    assert len(logged) == 300 and len(set(logged)) == 300


def test_writer_keeps_the_client_and_a_recreated_file_starts_a_new_epoch(tmp_path):
    """The write path (group commit) and the read path (epochs, windowed reads) meet on one file: the
    sensors' cursors must see a file the writer had to re-create as a reset, and per-client caps need
    the `client` column the writer stores."""
    path = tmp_path / "log.sqlite"
    sink = SqliteLogSink(path)
    sink.write([{**row("a"), "client": "gateway-1"}, row("b")])
    reader = SqlitePredictionLog(path)
    first_epoch = reader.epoch()
    assert first_epoch and [(r["request_id"], r["client"]) for r in reader.read_recent(5)] == [
        ("a", "gateway-1"),
        ("b", None),
    ]
    path.unlink()
    sink.write([row("c")])
    assert sink.recreated == 1
    assert reader.epoch() not in (None, first_epoch)
    assert [r["request_id"] for r in reader.read_since(0)] == ["c"]


def test_a_log_from_before_the_client_column_gains_it(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
        "request_id TEXT NOT NULL, text TEXT NOT NULL, channel TEXT NOT NULL, intent TEXT NOT NULL, "
        "confidence REAL NOT NULL, secondary_intent TEXT, top TEXT NOT NULL, probs TEXT NOT NULL, "
        "is_ood INTEGER NOT NULL, energy REAL NOT NULL, route TEXT NOT NULL, model_version TEXT NOT NULL, "
        "latency_ms REAL NOT NULL)"
    )
    conn.commit()
    conn.close()
    sink = SqliteLogSink(path)
    sink.write([{**row("x"), "client": "c1"}])
    assert SqlitePredictionLog(path).read_since(0)[0]["client"] == "c1"
