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
)
JSON_COLUMNS = ("top", "probs")


class PredictionLog(Protocol):
    def append(self, rows: Sequence[dict]) -> None: ...

    def read_since(self, last_id: int, limit: int = 100_000) -> list[dict]: ...

    def max_id(self) -> int: ...


SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
    "request_id TEXT NOT NULL, text TEXT NOT NULL, channel TEXT NOT NULL, intent TEXT NOT NULL, "
    "confidence REAL NOT NULL, secondary_intent TEXT, top TEXT NOT NULL, probs TEXT NOT NULL, "
    "is_ood INTEGER NOT NULL, energy REAL NOT NULL, route TEXT NOT NULL, model_version TEXT NOT NULL, "
    "latency_ms REAL NOT NULL)"
)
SQLITE_INSERT = (
    "INSERT INTO predictions (ts, request_id, text, channel, intent, confidence, secondary_intent, top, "
    "probs, is_ood, energy, route, model_version, latency_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def ensure_sqlite_schema(conn: sqlite3.Connection) -> None:
    """Create the log's tables if missing (a new file, or one re-created after the old one vanished)."""
    conn.execute(SQLITE_SCHEMA)


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
        )
        for r in rows
    ]


class SqlitePredictionLog:
    """WAL-mode SQLite; safe for the service's threads and a reader process (the sensors)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            ensure_sqlite_schema(conn)

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


class S3ParquetPredictionLog:
    """Parquet files under s3://bucket/prefix/; ids are nanosecond timestamps, unique per writer."""

    def __init__(self, client, bucket: str, prefix: str = "prediction-log"):
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/")
        self._lock = threading.Lock()
        self._last_id = 0

    def _next_id(self) -> int:
        self._last_id = max(self._last_id + 1, time.time_ns())
        return self._last_id

    def append(self, rows: Sequence[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not rows:
            return
        with self._lock:
            ids = [self._next_id() for _ in rows]
            table = pa.table(
                {
                    "id": ids,
                    **{c: [r.get(c) for r in rows] for c in COLUMNS if c not in ("id", *JSON_COLUMNS)},
                    **{c: [json.dumps(r[c]) for r in rows] for c in JSON_COLUMNS},
                }
            )
            buffer = io.BytesIO()
            pq.write_table(table, buffer)
            # the key sorts by first id, so readers can skip whole files below their cursor
            self.client.put_object(
                Bucket=self.bucket,
                Key=f"{self.prefix}/{ids[0]:020d}-{ids[-1]:020d}.parquet",
                Body=buffer.getvalue(),
            )

    def _keys(self) -> list[str]:
        keys, token = [], None
        while True:
            kwargs = {"Bucket": self.bucket, "Prefix": self.prefix + "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.client.list_objects_v2(**kwargs)
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".parquet")]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = page["NextContinuationToken"]

    def read_since(self, last_id: int, limit: int = 100_000) -> list[dict]:
        import pyarrow.parquet as pq

        out: list[dict] = []
        for key in self._keys():
            last_in_file = int(Path(key).stem.split("-")[1])
            if last_in_file <= last_id:
                continue
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            for row in pq.read_table(io.BytesIO(body)).to_pylist():
                if row["id"] > last_id:
                    out.append(
                        {
                            **row,
                            **{c: json.loads(row[c]) for c in JSON_COLUMNS},
                            "is_ood": bool(row["is_ood"]),
                        }
                    )
        out.sort(key=lambda r: r["id"])
        return out[:limit]

    def max_id(self) -> int:
        keys = self._keys()
        return int(Path(keys[-1]).stem.split("-")[1]) if keys else 0


def open_prediction_log(uri: str) -> PredictionLog:
    """`s3://bucket/prefix` → S3/Parquet (client from `serving.s3`); anything else is a SQLite path."""
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
