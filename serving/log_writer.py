"""The prediction log's write path: group commit, answers only after the row is in the log, clear 503s.

Each service worker has one writer thread. Requests hand it their rows and wait; the thread takes
everything queued (whole requests only, up to `max_group_rows`) and writes it in ONE transaction, then
releases all those requests at once. A request's response is sent only after its transaction committed:
with SQLite in WAL mode that means its rows are in the WAL file, so a killed worker loses no
acknowledged row (`synchronous=NORMAL`; `FULL` adds an fsync per group commit, which also survives power
loss, at a few ms per commit on this disk).

Failure is explicit, never a hung request or a permanent 500:
- the queue is bounded: when it is full the request gets `LogBackpressure` (HTTP 503 + Retry-After);
- a write that fails (lock held by another writer past `busy_timeout_s`, the file unusable) fails every
  request of that group with `LogUnavailable` (503 + Retry-After) and nothing of it is in the log; while
  the log is unavailable new requests are refused at once, and the thread probes it every `retry_s`
  until it works again;
- the SQLite file disappearing or being replaced is detected (its inode is checked before and after each
  commit and every `check_interval_s`): the table is re-created (or the replacement opened) and a group
  that may have gone into the vanished file is written again (unless it is already there). A WAL or shm
  file left at the path by the vanished file is renamed `*.orphan-<ns>` first, because SQLite would replay
  a stray WAL into the new file; workers serialise this through a lock file next to the log.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from manga_intent.sqlite_wal import set_up_wal_file
from serving.prediction_log import SQLITE_INSERT, PredictionLog, ensure_sqlite_schema, sqlite_values
from serving.queue_thread import QueueThread

log = logging.getLogger("manga_intent.serve.log")


class LogRejected(Exception):
    """The row was not written; the client should retry after `retry_after` seconds (HTTP 503)."""

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class LogBackpressure(LogRejected):
    """The write queue is full: the log is behind, so this request is refused rather than buffered."""


class LogUnavailable(LogRejected):
    """The log cannot be written right now (locked, missing, unusable)."""


class LogSink(Protocol):
    def write(self, rows: Sequence[dict]) -> None:
        """Write all rows in one transaction, or raise with nothing written."""

    def check(self) -> None:
        """Cheap periodic health check (e.g. has the file been replaced); may raise."""

    def probe(self) -> None:
        """Verify the log can be written now (used to recover after a failure); raises if not."""

    def close(self) -> None: ...


@dataclass
class PredictionLogSink:
    """Any `PredictionLog` as a sink (S3/Parquet: one part per group commit; PostgreSQL: one transaction).

    A log that buffers rows (the S3 log's `batch_rows`/`flush_seconds`) is flushed inside `write`, so a
    request is still answered only once its rows are stored."""

    prediction_log: PredictionLog

    def write(self, rows):
        self.prediction_log.append(rows)
        flush = getattr(self.prediction_log, "flush", None)
        if flush is not None:
            flush()

    def check(self):
        pass

    def probe(self):
        self.prediction_log.max_id()

    def close(self):
        close = getattr(self.prediction_log, "close", None)
        if close is not None:
            close()


class SqliteLogSink:
    """One long-lived WAL connection per worker, with the file-identity checks described above."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout_s: float = 1.0,
        lock_wait_s: float = 3.0,
    ):
        if synchronous.upper() not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self.busy_timeout_s, self.lock_wait_s = busy_timeout_s, lock_wait_s
        self._conn: sqlite3.Connection | None = None
        self._ever_opened = False
        self._identity: tuple | None = None
        """(db file id, WAL file id) of the open connection."""
        self.recreated = 0
        """Times this sink found the file gone and created a new one."""
        self.reopened = 0
        """Times it found the file (or its WAL) removed or replaced and moved on to what is there now."""

    # -- file identity ---------------------------------------------------------------------------------
    @staticmethod
    def _file_id(path: str | Path) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def _current_identity(self) -> tuple:
        return self._file_id(self.path), self._file_id(f"{self.path}-wal")

    def _moved(self) -> bool:
        return self._conn is not None and self._current_identity() != self._identity

    @contextmanager
    def _transition_lock(self):
        """Serialises creating / switching files across workers (flock on `<log>.lock`)."""
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.lock_wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LogUnavailable(
                            f"prediction log {self.path} is being re-created by another worker", retry_after=1
                        ) from None
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)  # also releases the lock

    def _set_aside(self, reason: str) -> None:
        """Rename the WAL/shm left at the path by a file that is gone, so they never join the new file.

        (SQLite would replay a stray WAL into whatever database file sits next to it.)"""
        wal, shm = Path(f"{self.path}-wal"), Path(f"{self.path}-shm")
        if wal.exists():
            if wal.stat().st_size == 0:  # checkpointed already: nothing in it
                wal.unlink(missing_ok=True)
            else:
                orphan = f"{wal}.orphan-{time.time_ns()}"
                wal.rename(orphan)
                log.warning("set %s aside as %s: %s", wal, orphan, reason)
        shm.unlink(missing_ok=True)  # only an index of the WAL; rebuilt from the WAL by SQLite

    # -- opening -----------------------------------------------------------------------------------------
    def _connect(self, create: bool) -> None:
        uri = f"file:{quote(str(self.path.resolve()))}?mode={'rwc' if create else 'rw'}"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(
                uri, uri=True, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )

        try:  # other workers and the monitoring reader may be switching the same new file to WAL
            set_up_wal_file(connect, ensure_sqlite_schema, timeout_s=self.lock_wait_s)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            raise LogUnavailable(
                f"prediction log {self.path} stayed locked while being set up ({exc})", retry_after=1
            ) from exc
        conn = connect()
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LogUnavailable(f"prediction log {self.path} refuses WAL mode (journal_mode={mode})")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        except BaseException:
            conn.close()
            raise
        self._conn, self._identity = conn, self._current_identity()
        self._ever_opened = True

    def _open(self, old_wal: tuple[int, int] | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if old_wal is None and self._file_id(self.path) is not None:
            try:
                return self._connect(create=False)
            except sqlite3.OperationalError:
                if self._file_id(self.path) is not None:
                    raise  # it is there and still fails: a real error
        with self._transition_lock():
            if self._file_id(self.path) is None:
                had_a_file = self._ever_opened
                self._set_aside("its database file was removed")
                self._connect(create=True)
                if had_a_file:
                    self.recreated += 1
                    log.warning("prediction log %s was missing: created a new one", self.path)
            else:
                if old_wal is not None and self._file_id(f"{self.path}-wal") == old_wal:
                    self._set_aside("it belongs to the database file that was replaced")
                self._connect(create=False)

    def _checkpoint_old_file(self) -> None:
        """Fold the old file's WAL into it before letting go: a log rotated by `mv` is then complete, and
        the WAL left at the path is empty instead of a stray that could be replayed into the next file."""
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("could not checkpoint the moved prediction log: %s", exc)

    def _close(self) -> None:
        # SQLite neither checkpoints nor deletes the WAL when closing a database file that has been moved
        # or unlinked, so this never touches a file now at the path.
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None

    def _ensure_open(self) -> sqlite3.Connection:
        if self._moved():
            old_wal = self._identity[1]
            log.warning("prediction log %s (or its WAL) was removed or replaced: reopening", self.path)
            self._checkpoint_old_file()
            self._close()
            self._open(old_wal)
            self.reopened += 1
        elif self._conn is None:
            self._open()
        return self._conn

    # -- sink protocol ---------------------------------------------------------------------------------
    def write(self, rows: Sequence[dict]) -> None:
        values = sqlite_values(rows)
        conn = self._ensure_open()
        self._transaction(conn, values)
        for _ in range(3):
            if not self._moved():
                return
            # the file or its WAL vanished/was replaced around this commit: the rows may be lost with it
            conn = self._ensure_open()
            missing = self._missing(conn, values)
            if not missing:
                return
            self._transaction(conn, missing)
        raise LogUnavailable(f"prediction log {self.path} keeps moving; rows not written")

    def _transaction(self, conn: sqlite3.Connection, values: list[tuple]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(SQLITE_INSERT, values)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    self._close()
            raise

    @staticmethod
    def _missing(conn: sqlite3.Connection, values: list[tuple]) -> list[tuple]:
        """Rows (as values) not in the file now open, matched on (request_id, ts)."""
        present = set()
        for start in range(0, len(values), 400):
            chunk = values[start : start + 400]
            marks = ",".join("?" * len(chunk))
            present |= set(
                conn.execute(
                    f"SELECT request_id, ts FROM predictions WHERE request_id IN ({marks})",
                    [v[1] for v in chunk],
                ).fetchall()
            )
        return [v for v in values if (v[1], v[0]) not in present]

    def check(self) -> None:
        if self._moved():
            self._ensure_open()

    def probe(self) -> None:
        conn = self._ensure_open()
        conn.execute("BEGIN IMMEDIATE")  # takes the write lock: proves the file is writable and not held
        conn.execute("ROLLBACK")

    def close(self) -> None:
        self._close()


@dataclass
class _Entry:
    rows: Sequence[dict]
    done: Callable[[BaseException | None], None]
    enqueued: float = field(default_factory=time.monotonic)


class GroupCommitWriter(QueueThread):
    """A bounded queue and one thread that writes whole groups of requests per transaction.

    `stop()` writes what is queued, then stops the thread and closes the sink."""

    thread_name = "prediction-log-writer"

    def __init__(
        self,
        sink: LogSink,
        *,
        max_queue_rows: int = 8192,
        max_group_rows: int = 1024,
        max_queue_wait_s: float = 2.0,
        retry_s: float = 1.0,
        check_interval_s: float = 0.25,
    ):
        super().__init__()
        self.sink = sink
        self.max_queue_rows, self.max_group_rows = max_queue_rows, max_group_rows
        self.max_queue_wait_s, self.retry_s, self.check_interval_s = (
            max_queue_wait_s,
            retry_s,
            check_interval_s,
        )
        self._queue: deque[_Entry] = deque()
        self._queued_rows = 0
        self.available = True
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.rows_written = 0
        self.commits = 0
        self.rejected = 0

    # -- request side ----------------------------------------------------------------------------------
    def submit(self, rows: Sequence[dict], done: Callable[[BaseException | None], None]) -> None:
        """Queue `rows` (all-or-nothing); `done(None)` runs once they are committed, `done(exc)` if not.

        Raises LogUnavailable / LogBackpressure at once when the log is down or the queue is full.
        """
        with self._cond:
            if self._stopping:
                raise LogUnavailable("the service is shutting down")
            if not self.available:
                self.rejected += 1
                raise LogUnavailable(
                    f"prediction log unavailable: {self.last_error}", retry_after=max(1.0, self.retry_s)
                )
            if self._queued_rows + len(rows) > self.max_queue_rows:
                self.rejected += 1
                raise LogBackpressure(
                    f"prediction log is behind ({self._queued_rows} rows waiting); retry shortly",
                    retry_after=1,
                )
            self._queue.append(_Entry(rows, done))
            self._queued_rows += len(rows)
            self._cond.notify()

    # -- writer thread ---------------------------------------------------------------------------------
    def status(self) -> dict:
        return {
            "writable": self.available and self.alive(),
            "writer_thread_alive": self.alive(),
            "queued_rows": self._queued_rows,
            "rows_written": self.rows_written,
            "commits": self.commits,
            "rows_per_commit": round(self.rows_written / self.commits, 2) if self.commits else None,
            "rejected": self.rejected,
            "last_error": self.last_error,
        }

    def _take_group(self) -> list[_Entry]:
        group, rows = [], 0
        while self._queue and (not group or rows + len(self._queue[0].rows) <= self.max_group_rows):
            entry = self._queue.popleft()
            group.append(entry)
            rows += len(entry.rows)
        self._queued_rows -= rows
        return group

    def _run(self) -> None:
        last_check = time.monotonic()
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    self._cond.wait(self.check_interval_s)
                if self._stopping and not self._queue:
                    break
                group = self._take_group()
            try:
                now = time.monotonic()
                if not group:
                    if not self.available and now - (self.last_error_at or 0) >= self.retry_s:
                        self._recover()
                    elif self.available and now - last_check >= self.check_interval_s:
                        last_check = now
                        self.sink.check()
                    continue
                self._commit(group, now)
            except Exception as exc:  # the thread itself must never die
                self._mark_failed(exc)
        self.sink.close()

    def _commit(self, group: list[_Entry], now: float) -> None:
        stale = [e for e in group if now - e.enqueued > self.max_queue_wait_s]
        fresh = [e for e in group if now - e.enqueued <= self.max_queue_wait_s]
        for entry in stale:
            entry.done(LogUnavailable("prediction log write waited too long; not written", retry_after=1))
        if not fresh:
            return
        rows = [row for entry in fresh for row in entry.rows]
        try:
            self.sink.write(rows)
        except Exception as exc:
            error = self._mark_failed(exc)
            for entry in fresh:
                entry.done(error)
            return
        self.rows_written += len(rows)
        self.commits += 1
        for entry in fresh:
            entry.done(None)

    def _mark_failed(self, exc: BaseException) -> LogUnavailable:
        message = str(exc) if isinstance(exc, LogRejected) else f"{type(exc).__name__}: {exc}"
        if self.available or message != self.last_error:
            log.error("prediction log write failed: %s", message)
        with self._cond:
            self.available = False
            self.last_error, self.last_error_at = message, time.monotonic()
            queued = list(self._queue)  # these would fail too: answer them now
            self._queue.clear()
            self._queued_rows = 0
        error = LogUnavailable(f"prediction log unavailable: {message}", retry_after=max(1.0, self.retry_s))
        for entry in queued:
            entry.done(error)
        return error

    def _recover(self) -> None:
        try:
            self.sink.probe()
        except Exception as exc:
            self._mark_failed(exc)
            return
        with self._cond:
            self.available = True
        log.warning("prediction log is writable again (last error: %s)", self.last_error)


def writer_for(uri_or_log, **writer_options) -> GroupCommitWriter:
    """A started writer for a SQLite path (or sqlite:/// URI), an s3:// or postgresql:// URI, or any
    other PredictionLog."""
    sqlite_options = {
        k: writer_options.pop(k) for k in ("synchronous", "busy_timeout_s") if k in writer_options
    }
    if isinstance(uri_or_log, str | Path):
        uri = str(uri_or_log)
        if uri.startswith(("s3://", "postgresql://", "postgresql+psycopg2://", "postgres://")):
            from serving.prediction_log import open_prediction_log

            sink: LogSink = PredictionLogSink(open_prediction_log(uri))
        else:
            sink = SqliteLogSink(
                uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else uri, **sqlite_options
            )
    else:
        sink = PredictionLogSink(uri_or_log)
    return GroupCommitWriter(sink, **writer_options).start()
