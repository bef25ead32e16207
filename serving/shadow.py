"""Shadow mode: the challenger scores every request too, off the response path, and its answers are logged
beside the champion's.

`ShadowScorer` takes the champion's finished rows after the response is built and hands them to one
background thread (a bounded queue: when the challenger cannot keep up, requests are dropped from the
shadow and counted, never queued in front of shoppers). Each shadow row holds both answers — the champion's
intent/confidence/OOD flag/latency as served and the challenger's, each message scored alone — so the
`shadow_report` asset needs nothing but this log. Challenger calls slower than the budget are flagged.

The challenger's latency off the response path is not comparable with the champion's as served: the scorer
thread competes with request handling for the same cores, so even the champion's own graph reads slower
there. So the scorer times the champion too, on the same message in the same thread (the order alternates),
and the shadow report compares the two. The control is one more champion call per message
(`control_every`, default every message; 2 = every other one). Shadow scoring itself is what costs the
shoppers: on this 2-core host a scorer running the challenger beside sequential requests tripled their P95
(5.2 → 15.7 ms); the control on top of it moved it by less than the run-to-run noise (`bench/shadow_cost.py`,
docs/reference.md "Shadow mode").
"""

from __future__ import annotations

import io
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from manga_intent.sqlite_wal import set_up_wal_file

log = logging.getLogger("manga_intent.shadow")

SHADOW_COLUMNS = (
    "ts",
    "request_id",
    "text",
    "channel",
    "champion_version",
    "champion_intent",
    "champion_confidence",
    "champion_is_ood",
    "champion_latency_ms",
    "challenger_version",
    "challenger_intent",
    "challenger_confidence",
    "challenger_is_ood",
    "challenger_latency_ms",
    "over_budget",
    "champion_shadow_latency_ms",
)
"""`champion_shadow_latency_ms`: the champion re-timed beside the challenger (None in rows logged before it
existed, or when the scorer had no champion to time)."""


class ShadowLog(Protocol):
    def append(self, rows: Sequence[dict]) -> None: ...

    def read(self, challenger_version: str, since_ts: float = 0.0) -> list[dict]: ...


def _create_shadow_table(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS shadow_predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "ts REAL NOT NULL, request_id TEXT NOT NULL, text TEXT NOT NULL, channel TEXT NOT NULL, "
        "champion_version TEXT NOT NULL, champion_intent TEXT NOT NULL, champion_confidence REAL NOT NULL, "
        "champion_is_ood INTEGER NOT NULL, champion_latency_ms REAL NOT NULL, "
        "challenger_version TEXT NOT NULL, challenger_intent TEXT NOT NULL, "
        "challenger_confidence REAL NOT NULL, challenger_is_ood INTEGER NOT NULL, "
        "challenger_latency_ms REAL NOT NULL, over_budget INTEGER NOT NULL, champion_shadow_latency_ms REAL)"
    )
    columns = {row[1] for row in conn.execute("PRAGMA table_info(shadow_predictions)")}
    if "champion_shadow_latency_ms" not in columns:  # a log created before the latency control
        conn.execute("ALTER TABLE shadow_predictions ADD COLUMN champion_shadow_latency_ms REAL")
    conn.execute(
        "CREATE INDEX IF NOT EXISTS shadow_by_challenger ON shadow_predictions (challenger_version, ts)"
    )


class SqliteShadowLog:
    """A `shadow_predictions` table (WAL mode), by default in the prediction log's SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        set_up_wal_file(self._connect, _create_shadow_table)  # service workers open it at once

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def append(self, rows: Sequence[dict]) -> None:
        values = [tuple(_stored(r)[c] for c in SHADOW_COLUMNS) for r in rows]
        with self._lock, self._connect() as conn:
            conn.executemany(
                f"INSERT INTO shadow_predictions ({', '.join(SHADOW_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(SHADOW_COLUMNS))})",
                values,
            )

    def read(self, challenger_version: str, since_ts: float = 0.0) -> list[dict]:
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM shadow_predictions WHERE challenger_version = ? AND ts >= ? ORDER BY id",
                (str(challenger_version), since_ts),
            )
            return [_loaded(dict(row)) for row in rows]


class S3ParquetShadowLog:
    """Parquet parts under s3://bucket/<prediction-log prefix>-shadow/<challenger>/, one object per flush.

    A sibling of the prediction log's prefix, never inside it: the log's readers take every part under theirs.
    """

    def __init__(self, client, bucket: str, prefix: str = "prediction-log"):
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/") + "-shadow"
        self._lock = threading.Lock()

    def append(self, rows: Sequence[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not rows:
            return
        table = pa.table({c: [_stored(r)[c] for r in rows] for c in SHADOW_COLUMNS})
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        with self._lock:
            key = f"{self.prefix}/{rows[0]['challenger_version']}/{time.time_ns():020d}.parquet"
            self.client.put_object(Bucket=self.bucket, Key=key, Body=buffer.getvalue())

    def read(self, challenger_version: str, since_ts: float = 0.0) -> list[dict]:
        import pyarrow.parquet as pq

        out, token = [], None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": f"{self.prefix}/{challenger_version}/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kwargs)
            for obj in sorted(page.get("Contents", []), key=lambda o: o["Key"]):
                body = self.client.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                out += [
                    _loaded(r) for r in pq.read_table(io.BytesIO(body)).to_pylist() if r["ts"] >= since_ts
                ]
            if not page.get("IsTruncated"):
                return out
            token = page["NextContinuationToken"]


class PostgresShadowLog:
    """A `shadow_predictions` table beside a PostgreSQL prediction log (same database)."""

    def __init__(self, dsn: str, table: str = "shadow_predictions"):
        if not table.replace("_", "").isalnum():
            raise ValueError(f"table name {table!r} must be alphanumeric (with underscores)")
        self.dsn, self.table = dsn.replace("postgresql+psycopg2://", "postgresql://", 1), table
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))  # concurrent creators
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (id BIGSERIAL PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, "
                    "request_id TEXT NOT NULL, text TEXT NOT NULL, channel TEXT NOT NULL, "
                    "champion_version TEXT NOT NULL, champion_intent TEXT NOT NULL, "
                    "champion_confidence DOUBLE PRECISION NOT NULL, champion_is_ood INTEGER NOT NULL, "
                    "champion_latency_ms DOUBLE PRECISION NOT NULL, challenger_version TEXT NOT NULL, "
                    "challenger_intent TEXT NOT NULL, challenger_confidence DOUBLE PRECISION NOT NULL, "
                    "challenger_is_ood INTEGER NOT NULL, challenger_latency_ms DOUBLE PRECISION NOT NULL, "
                    "over_budget INTEGER NOT NULL, champion_shadow_latency_ms DOUBLE PRECISION)"
                )
                # a table created before the latency control gains the column; checked first, because ALTER
                # TABLE takes an exclusive lock even when the column exists, and waiting behind a long read it
                # would hold up every service worker's inserts queued after it
                cur.execute(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
                    "AND table_name = %s AND column_name = 'champion_shadow_latency_ms'",
                    (table.lower(),),  # unquoted names are folded to lower case
                )
                if cur.fetchone() is None:
                    cur.execute(f"ALTER TABLE {table} ADD COLUMN champion_shadow_latency_ms DOUBLE PRECISION")
                cur.execute(
                    f"CREATE INDEX IF NOT EXISTS {table}_by_challenger ON {table} (challenger_version, ts)"
                )
        finally:
            conn.close()

    def _connect(self):
        import psycopg2

        return psycopg2.connect(self.dsn)

    def append(self, rows: Sequence[dict]) -> None:
        if not rows:
            return
        values = [tuple(_stored(r)[c] for c in SHADOW_COLUMNS) for r in rows]
        placeholders = "(" + ",".join(["%s"] * len(SHADOW_COLUMNS)) + ")"
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:  # one transaction: all rows or none
                args = ",".join(cur.mogrify(placeholders, v).decode() for v in values)
                cur.execute(f"INSERT INTO {self.table} ({', '.join(SHADOW_COLUMNS)}) VALUES {args}")
        finally:
            conn.close()

    def read(self, challenger_version: str, since_ts: float = 0.0) -> list[dict]:
        conn = self._connect()
        try:
            with conn, conn.cursor() as cur:
                cur.execute(
                    f"SELECT {', '.join(SHADOW_COLUMNS)} FROM {self.table} "
                    "WHERE challenger_version = %s AND ts >= %s ORDER BY id",
                    (str(challenger_version), since_ts),
                )
                found = cur.fetchall()
        finally:
            conn.close()
        return [_loaded(dict(zip(SHADOW_COLUMNS, row))) for row in found]


def _stored(row: dict) -> dict:
    return {
        "champion_shadow_latency_ms": None,
        **row,
        "champion_is_ood": int(bool(row["champion_is_ood"])),
        "challenger_is_ood": int(bool(row["challenger_is_ood"])),
        "over_budget": int(bool(row["over_budget"])),
    }


def _loaded(row: dict) -> dict:
    return {
        **row,
        "champion_shadow_latency_ms": row.get("champion_shadow_latency_ms"),  # absent in older Parquet parts
        "champion_is_ood": bool(row["champion_is_ood"]),
        "challenger_is_ood": bool(row["challenger_is_ood"]),
        "over_budget": bool(row["over_budget"]),
    }


def open_shadow_log(prediction_log_uri: str) -> ShadowLog:
    """Beside the prediction log: the same SQLite file, the same PostgreSQL database, or `<prefix>-shadow/`
    for an S3 Parquet log."""
    if prediction_log_uri.startswith(("postgresql://", "postgresql+psycopg2://", "postgres://")):
        return PostgresShadowLog(prediction_log_uri)
    if prediction_log_uri.startswith("s3://"):
        from urllib.parse import urlparse

        from serving.s3 import s3_client

        parsed = urlparse(prediction_log_uri)
        return S3ParquetShadowLog(s3_client(), parsed.netloc, parsed.path.strip("/") or "prediction-log")
    prefix = "sqlite:///"
    path = prediction_log_uri[len(prefix) :] if prediction_log_uri.startswith(prefix) else prediction_log_uri
    return SqliteShadowLog(path)


def _timed(model, text: str):
    """(prediction, milliseconds) of one message scored alone."""
    started = time.perf_counter()
    prediction = model.classify([text])[0]
    return prediction, (time.perf_counter() - started) * 1000


class ShadowScorer:
    """One background thread scoring the challenger on what the champion just answered; never blocks callers."""

    def __init__(
        self, shadow_log: ShadowLog, budget_ms: float = 50.0, max_queue: int = 256, control_every: int = 1
    ):
        if control_every < 0:
            raise ValueError(f"control_every must be >= 0 (0: never time the champion), got {control_every}")
        self.shadow_log, self.budget_ms, self.control_every = shadow_log, budget_ms, control_every
        self._shadowed = 0  # messages scored so far: picks the controlled ones and their order
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._stats = {"scored": 0, "dropped": 0, "over_budget": 0, "errors": 0, "last_error": None}
        self._thread = threading.Thread(target=self._work, name="shadow-scorer", daemon=True)
        self._thread.start()

    def submit(
        self, challenger_version: str, challenger, champion_rows: Sequence[dict], champion=None
    ) -> bool:
        """Queue the champion's rows for the challenger; False (and counted as dropped) when the queue is full.

        `champion`: the model that answered the rows, re-timed beside the challenger as the latency control
        (None: no control timings for these rows)."""
        try:
            self._queue.put_nowait((challenger_version, challenger, list(champion_rows), champion))
            return True
        except queue.Full:
            with self._lock:
                self._stats["dropped"] += len(champion_rows)
            return False

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._score(*item)
            except Exception as exc:  # the shadow must never take the service down
                with self._lock:
                    self._stats["errors"] += 1
                    self._stats["last_error"] = f"{type(exc).__name__}: {exc}"
                log.warning("shadow scoring failed: %s", exc)
            finally:
                self._queue.task_done()

    def _score(self, challenger_version: str, challenger, rows: list[dict], champion=None) -> None:
        out = []
        for row in rows:
            self._shadowed += 1
            controlled = (
                champion is not None and self.control_every and self._shadowed % self.control_every == 0
            )
            champion_first = controlled and (self._shadowed // self.control_every) % 2 == 1  # no order bias
            control = _timed(champion, row["text"])[1] if champion_first else None
            prediction, latency = _timed(challenger, row["text"])
            if controlled and not champion_first:
                control = _timed(champion, row["text"])[1]
            out.append(
                {
                    "ts": row["ts"],
                    "request_id": row["request_id"],
                    "text": row["text"],
                    "channel": row["channel"],
                    "champion_version": row["model_version"],
                    "champion_intent": row["intent"],
                    "champion_confidence": row["confidence"],
                    "champion_is_ood": row["is_ood"],
                    "champion_latency_ms": row["latency_ms"],
                    "challenger_version": str(challenger_version),
                    "challenger_intent": prediction.intent,
                    "challenger_confidence": round(prediction.confidence, 6),
                    "challenger_is_ood": prediction.is_ood,
                    "challenger_latency_ms": round(latency, 3),
                    "over_budget": latency > self.budget_ms,
                    "champion_shadow_latency_ms": None if control is None else round(control, 3),
                }
            )
        self.shadow_log.append(out)
        with self._lock:
            self._stats["scored"] += len(out)
            self._stats["over_budget"] += sum(r["over_budget"] for r in out)

    def drain(self, timeout: float = 60.0) -> bool:
        """Wait until everything queued so far is scored and logged (demo and tests)."""
        deadline = time.time() + timeout
        while self._queue.unfinished_tasks and time.time() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def stats(self) -> dict:
        with self._lock:
            return {**self._stats, "queued": self._queue.qsize(), "budget_ms": self.budget_ms}

    def stop(self) -> None:
        self._queue.put(None)
