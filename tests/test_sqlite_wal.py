"""SQLite files that several processes open at once: the prediction log (its readers and the service workers'
writing sinks), the shadow log, the labelling ledger.

Switching a new file to WAL locks out a concurrent opener at once ("database is locked", no busy wait; CI
saw it fail one of two parallel labelling runs). Before `manga_intent.sqlite_wal` each of these classes
failed several opens in a hundred under the test below; the service worker's sink, which serialises creating
a file with its own lock file, still lost one or two in a hundred to a reader opening the same new file.
"""

import multiprocessing
import sqlite3

import pytest

from labeling.ledger import LabelingLedger
from manga_intent.sqlite_wal import set_up_wal_file
from serving.log_writer import SqliteLogSink
from serving.prediction_log import SqlitePredictionLog
from serving.shadow import SqliteShadowLog


def _service_worker_sink(path):
    """What a service worker does first: open the log through its sink and prove it writable."""
    sink = SqliteLogSink(path)
    sink.probe()
    sink.close()


def _worker_or_reader(path):
    """Service workers and the monitoring sensor's reader open the same new prediction log: the four processes
    of a round are started in turn and numbered in turn, so two of them are each (pid parity could give none)."""
    number = int(multiprocessing.current_process().name.rsplit("-", 1)[-1])
    (_service_worker_sink if number % 2 else SqlitePredictionLog)(path)


OPENERS = {
    "ledger": LabelingLedger,
    "prediction_log": SqlitePredictionLog,
    "shadow_log": SqliteShadowLog,
    "service_worker_sink": _service_worker_sink,
    "service_workers_and_reader": _worker_or_reader,
}


def _open_each(kind, paths, barrier, queue):
    """One worker process: for each new file, wait until all four are at the barrier, then open it."""
    for path in paths:
        barrier.wait(timeout=60)
        try:
            OPENERS[kind](path)
            queue.put(None)
        except Exception as exc:  # reported to the test, which fails with it
            import traceback

            queue.put(f"{path}: {exc!r}" + "".join(traceback.format_tb(exc.__traceback__)[-3:]))


@pytest.mark.parametrize("kind", list(OPENERS))
def test_processes_opening_a_new_file_at_once_all_get_it(tmp_path, kind):
    """Four processes x 25 fresh files, released together by a barrier before each file. The four processes
    live through all 25 rounds (forking this test process a hundred times cost ~14 s a case)."""
    ctx = multiprocessing.get_context("fork")
    paths = [str(tmp_path / f"{kind}{n}.sqlite") for n in range(25)]
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    workers = [ctx.Process(target=_open_each, args=(kind, paths, barrier, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in range(4 * len(paths))]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    for path in paths:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    problems = [r for r in results if r is not None]
    assert not problems, problems


def test_other_errors_are_raised_at_once(tmp_path):
    calls = []

    def bad_schema(conn):
        calls.append(1)
        conn.execute("CREATE TABLE broken (")

    with pytest.raises(sqlite3.OperationalError, match="incomplete input"):
        set_up_wal_file(lambda: sqlite3.connect(tmp_path / "x.sqlite"), bad_schema)
    assert calls == [1]


def test_a_file_that_stays_locked_fails_after_the_timeout(tmp_path):
    path = tmp_path / "held.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # nobody else may read, let alone switch the journal mode
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            set_up_wal_file(lambda: sqlite3.connect(path, timeout=0.01), timeout_s=0.3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
