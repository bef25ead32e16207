"""The prediction log: every answer the service gives, for monitoring and active learning.

SQLite by default (one transaction per request, so a row is either fully written or absent);
S3/Parquet by configuration (each flush is one Parquet object, put atomically). Both hand rows
back in id order for the sensors' cursors.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from manga_intent.sqlite_wal import set_up_wal_file

COLUMNS = (
    "id",
    "ts",
    "request_id",
    "text",
    "channel",
    "intent",
    "confidence",
    "secondary_intent",
    "top",
    "probs",
    "is_ood",
    "energy",
    "route",
    "model_version",
    "latency_ms",
    "client",
)
JSON_COLUMNS = ("top", "probs")


class PredictionLog(Protocol):
    def append(self, rows: Sequence[dict]) -> None: ...

    def read_since(self, last_id: int, limit: int = 100_000) -> list[dict]: ...

    def max_id(self) -> int: ...

    def read_recent(self, n: int) -> list[dict]:
        """The newest `n` rows, oldest first, selected by the store (never a full scan)."""
        ...

    def epoch(self) -> str | None:
        """An id that changes whenever the log is reset (file or table recreated); None while empty."""
        ...


SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
    "request_id TEXT NOT NULL, text TEXT NOT NULL, channel TEXT NOT NULL, intent TEXT NOT NULL, "
    "confidence REAL NOT NULL, secondary_intent TEXT, top TEXT NOT NULL, probs TEXT NOT NULL, "
    "is_ood INTEGER NOT NULL, energy REAL NOT NULL, route TEXT NOT NULL, model_version TEXT NOT NULL, "
    "latency_ms REAL NOT NULL, client TEXT)"
)
SQLITE_INSERT = (
    "INSERT INTO predictions (ts, request_id, text, channel, intent, confidence, secondary_intent, top, "
    "probs, is_ood, energy, route, model_version, latency_ms, client) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def ensure_sqlite_schema(conn: sqlite3.Connection) -> None:
    """Create the log's tables if missing (a new file, or one re-created after the old one vanished).

    A new file gets a new epoch (so the sensors' cursors see the reset); a log from before per-client
    caps gains its `client` column."""
    _ensure_epoch(conn)
    conn.execute(SQLITE_SCHEMA)
    if "client" not in {row[1] for row in conn.execute("PRAGMA table_info(predictions)")}:
        conn.execute("ALTER TABLE predictions ADD COLUMN client TEXT")


def sqlite_values(rows: Sequence[dict]) -> list[tuple]:
    return [
        (
            r["ts"],
            r["request_id"],
            r["text"],
            r["channel"],
            r["intent"],
            r["confidence"],
            r.get("secondary_intent"),
            json.dumps(r["top"]),
            json.dumps(r["probs"]),
            int(r["is_ood"]),
            r["energy"],
            r["route"],
            r["model_version"],
            r["latency_ms"],
            r.get("client"),
        )
        for r in rows
    ]


class SqlitePredictionLog:
    """WAL-mode SQLite; safe for the service's threads and a reader process (the sensors)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        set_up_wal_file(self._connect, ensure_sqlite_schema)  # several processes may open it at once

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def append(self, rows: Sequence[dict]) -> None:
        """One transaction per call (the service writes through `serving.log_writer`, which group-commits)."""
        with self._lock, self._connect() as conn:  # one transaction: all rows or none
            conn.executemany(SQLITE_INSERT, sqlite_values(rows))

    def read_since(self, last_id: int, limit: int = 100_000) -> list[dict]:
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM predictions WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
            )
            return [
                {
                    **dict(row),
                    "top": json.loads(row["top"]),
                    "probs": json.loads(row["probs"]),
                    "is_ood": bool(row["is_ood"]),
                }
                for row in rows
            ]

    def max_id(self) -> int:
        with self._connect() as conn:
            return conn.execute("SELECT COALESCE(MAX(id), 0) FROM predictions").fetchone()[0]

    # read side for the sensors: bounded queries on the primary key, and the log's epoch

    def _reader(self) -> sqlite3.Connection | None:
        """A connection only if the file exists: a reader must never create an empty log."""
        if not self.path.exists():
            return None
        conn = self._connect()
        conn.row_factory = sqlite3.Row
        return conn

    def read_recent(self, n: int) -> list[dict]:
        conn = self._reader()
        if conn is None or n < 1:
            return []
        with conn:
            try:
                rows = conn.execute("SELECT * FROM predictions ORDER BY id DESC LIMIT ?", (n,)).fetchall()
            except sqlite3.OperationalError:  # table not created yet
                return []
        return [_decode(row) for row in reversed(rows)]

    def epoch(self) -> str | None:
        conn = self._reader()
        if conn is None:
            return None
        with conn:
            try:
                return _ensure_epoch(conn)
            except sqlite3.OperationalError:  # read-only or locked by a writer creating it
                row = conn.execute("SELECT value FROM log_meta WHERE key = 'epoch'").fetchone()
                return row[0] if row else None


def _ensure_epoch(conn: sqlite3.Connection) -> str:
    """The log's epoch: a random id stored beside the table, made once per (re)created file."""
    import uuid

    try:  # read first: an existing epoch needs no write lock (the service's writers may hold it)
        row = conn.execute("SELECT value FROM log_meta WHERE key = 'epoch'").fetchone()
        if row:
            return row[0]
    except sqlite3.OperationalError:  # no log_meta table yet
        pass
    conn.execute("CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT OR IGNORE INTO log_meta (key, value) VALUES ('epoch', ?)", (uuid.uuid4().hex,))
    return conn.execute("SELECT value FROM log_meta WHERE key = 'epoch'").fetchone()[0]


def _decode(row) -> dict:
    return {
        **dict(row),
        "top": json.loads(row["top"]),
        "probs": json.loads(row["probs"]),
        "is_ood": bool(row["is_ood"]),
    }


#: Ids in part n are n * PART_SPAN + row offset, so a part holds at most this many rows.
PART_SPAN = 1_000_000


class S3ParquetPredictionLog:
    """Parquet parts under s3://bucket/prefix/parts/, numbered densely by conditional writes.

    Replicas need no coordinator: a writer puts part n with `If-None-Match: *` only after seeing part n-1,
    so parts are dense and a put of any existing number fails (412) and moves on to the next. Every
    accepted part therefore has a higher number than every part already visible, and row ids
    (n * PART_SPAN + offset) never go backwards: a reader whose cursor has passed id x will never see a
    new row below x, however late a delayed writer lands. Two writers can never overwrite each other.
    Rows are buffered and flushed as one part every `batch_rows` rows or `flush_seconds`.
    `prefix/epoch.json` names the log's epoch; deleting the log makes a new one.
    """

    def __init__(
        self,
        client,
        bucket: str,
        prefix: str = "prediction-log",
        *,
        batch_rows: int = 1,
        flush_seconds: float = 5.0,
        before_put=None,
    ):
        if not 1 <= batch_rows < PART_SPAN:
            raise ValueError(f"batch_rows must be in [1, {PART_SPAN}), got {batch_rows}")
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self.batch_rows, self.flush_seconds = batch_rows, flush_seconds
        self._before_put = before_put  # test hook: runs after a part number is chosen, before the put
        self._lock = threading.Lock()
        self._buffer: list[dict] = []
        self._buffer_since = 0.0
        self._next_part: int | None = None  # found from the log's tail on the first flush
        self.parts_written: list[int] = []

    # -- writing ---------------------------------------------------------------------------------------
    def append(self, rows: Sequence[dict]) -> None:
        if not rows:
            return
        with self._lock:
            if not self._buffer:
                self._buffer_since = time.monotonic()
            self._buffer.extend(rows)
            if (
                len(self._buffer) >= self.batch_rows
                or time.monotonic() - self._buffer_since >= self.flush_seconds
            ):
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    close = flush

    def _flush_locked(self) -> None:
        while self._buffer:
            rows, self._buffer = self._buffer[: PART_SPAN - 1], self._buffer[PART_SPAN - 1 :]
            self._ensure_epoch()
            part = self._claim_and_put(rows)
            self.parts_written.append(part)

    def _part_key(self, part: int) -> str:
        return f"{self.prefix}/parts/{part:012d}.parquet"

    def _claim_and_put(self, rows: list[dict]) -> int:
        from botocore.exceptions import ClientError

        part = self._next_part or self._tail() + 1
        while True:
            if part > 1 and not self._exists(part - 1):
                part = self._tail() + 1  # our guess ran ahead of the log (or the log was reset)
                continue
            if self._before_put is not None:
                self._before_put(part)
            body = _parquet_bytes(rows, [part * PART_SPAN + i for i in range(len(rows))])
            try:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._part_key(part),
                    Body=body,
                    IfNoneMatch="*",
                    Metadata={"rows": str(len(rows))},
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    part += 1  # another replica took this number first
                    continue
                raise
            self._next_part = part + 1
            return part

    def _ensure_epoch(self) -> None:
        import uuid

        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=f"{self.prefix}/epoch.json",
                Body=json.dumps({"epoch": uuid.uuid4().hex}).encode(),
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") not in ("PreconditionFailed", "412"):
                raise

    # -- locating parts without listing the whole log ----------------------------------------------------
    def _head(self, part: int) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._part_key(part))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _exists(self, part: int) -> bool:
        return self._head(part) is not None

    def _tail(self) -> int:
        """The highest part number (0 when empty): parts are dense, so gallop then bisect on HEADs."""
        if not self._exists(1):
            return 0
        low, high = 1, 2
        while self._exists(high):
            low, high = high, high * 2
        while high - low > 1:  # invariant: low exists, high does not
            middle = (low + high) // 2
            low, high = (middle, high) if self._exists(middle) else (low, middle)
        return low

    def _read_part(self, part: int) -> list[dict]:
        import pyarrow.parquet as pq

        body = self.client.get_object(Bucket=self.bucket, Key=self._part_key(part))["Body"].read()
        return [
            {**row, **{c: json.loads(row[c]) for c in JSON_COLUMNS}, "is_ood": bool(row["is_ood"])}
            for row in pq.read_table(io.BytesIO(body)).to_pylist()
        ]

    # -- reading ---------------------------------------------------------------------------------------
    def read_since(self, last_id: int, limit: int = 100_000) -> list[dict]:
        """Rows with id > last_id, oldest first: parts are listed from the cursor's part on, not from 1."""
        out: list[dict] = []
        first_part = max(1, last_id // PART_SPAN)
        start_after = self._part_key(first_part - 1) if first_part > 1 else None
        token = None
        while len(out) < limit:
            kwargs = {"Bucket": self.bucket, "Prefix": f"{self.prefix}/parts/", "MaxKeys": 100}
            if token:
                kwargs["ContinuationToken"] = token
            elif start_after:
                kwargs["StartAfter"] = start_after
            page = self.client.list_objects_v2(**kwargs)
            for obj in page.get("Contents", []):
                part = int(Path(obj["Key"]).stem)
                out += [r for r in self._read_part(part) if r["id"] > last_id]
                if len(out) >= limit:
                    break
            if not page.get("IsTruncated"):
                break
            token = page["NextContinuationToken"]
        return out[:limit]

    def read_recent(self, n: int) -> list[dict]:
        out: list[dict] = []
        part = self._tail()
        while part >= 1 and len(out) < n:
            out = self._read_part(part) + out
            part -= 1
        return out[-n:] if n > 0 else []

    def max_id(self) -> int:
        part = self._tail()
        if part == 0:
            return 0
        rows = int(self._head(part)["Metadata"].get("rows", "1"))
        return part * PART_SPAN + rows - 1

    def epoch(self) -> str | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/epoch.json")["Body"].read()
        except ClientError:
            return None
        return json.loads(body)["epoch"]


def _parquet_bytes(rows: list[dict], ids: list[int]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": ids,
            **{c: [r.get(c) for r in rows] for c in COLUMNS if c not in ("id", *JSON_COLUMNS)},
            **{c: [json.dumps(r[c]) for r in rows] for c in JSON_COLUMNS},
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def open_prediction_log(uri: str) -> PredictionLog:
    """`s3://bucket/prefix` → S3/Parquet (client from `serving.s3`); `postgresql://...` → a PostgreSQL
    table; anything else is a SQLite path."""
    if uri.startswith(("postgresql://", "postgresql+psycopg2://", "postgres://")):
        from serving.pg_prediction_log import PostgresPredictionLog

        return PostgresPredictionLog(uri)
    if uri.startswith("s3://"):
        from urllib.parse import urlparse

        from serving.s3 import s3_client

        parsed = urlparse(uri)
        return S3ParquetPredictionLog(s3_client(), parsed.netloc, parsed.path.strip("/") or "prediction-log")
    return SqlitePredictionLog(uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else uri)


def default_sqlite_path() -> str:
    from manga_intent.home import manga_home

    return str(manga_home() / "predictions.sqlite")


def default_log_uri() -> str:
    """$MANGA_PREDICTION_LOG, else the SQLite file under $MANGA_HOME."""
    import os

    return os.environ.get("MANGA_PREDICTION_LOG") or default_sqlite_path()
