"""The prediction log as a PostgreSQL table, for several service replicas and a production instance.

Ids come from a one-row counter updated inside the inserting transaction, not from a sequence: a sequence
hands out numbers outside transactions, so a slow transaction can commit id 5 after a faster one committed
id 6 — a reader whose cursor passed 6 would never see 5 — and a rolled-back insert leaves a gap forever.
The counter's row lock makes id order equal to commit order and a rolled-back batch gives its ids back:
the sequence is server-assigned and gap-free. Writers serialise on that one row for the few
milliseconds of an insert, which is what a log that sensors read by cursor needs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from serving.prediction_log import COLUMNS

_DATA_COLUMNS = [c for c in COLUMNS if c != "id"]


class PostgresPredictionLog:
    """`dsn`: a libpq URL (postgresql://user@host:port/db). Tables are created on first use."""

    def __init__(self, dsn: str, table: str = "predictions"):
        if not table.replace("_", "").isalnum():
            raise ValueError(f"table name {table!r} must be alphanumeric (with underscores)")
        # SQLAlchemy-style URLs (postgresql+psycopg2://) are accepted, as the rest of the platform uses them
        self.dsn, self.table = dsn.replace("postgresql+psycopg2://", "postgresql://", 1), table
        self._meta, self._counter = f"{table}_meta", f"{table}_counter"
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (table,))  # concurrent creators
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, "
                "request_id TEXT NOT NULL, text TEXT NOT NULL, channel TEXT NOT NULL, intent TEXT NOT NULL, "
                "confidence DOUBLE PRECISION NOT NULL, secondary_intent TEXT, top JSONB NOT NULL, "
                "probs JSONB NOT NULL, is_ood BOOLEAN NOT NULL, energy DOUBLE PRECISION NOT NULL, "
                "route TEXT NOT NULL, model_version TEXT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, client TEXT)"
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self._counter} (singleton BOOLEAN PRIMARY KEY DEFAULT TRUE "
                "CHECK (singleton), last_id BIGINT NOT NULL)"
            )
            cur.execute(f"INSERT INTO {self._counter} (last_id) VALUES (0) ON CONFLICT DO NOTHING")
            cur.execute(
                f"INSERT INTO {self._meta} (key, value) VALUES ('epoch', %s) ON CONFLICT DO NOTHING",
                (uuid.uuid4().hex,),
            )

    def _connect(self):
        import psycopg2

        return psycopg2.connect(self.dsn)

    def append(self, rows: Sequence[dict]) -> None:
        if not rows:
            return
        with self._connect() as conn, conn.cursor() as cur:  # one transaction: all rows or none
            cur.execute(f"UPDATE {self._counter} SET last_id = last_id + %s RETURNING last_id", (len(rows),))
            last = cur.fetchone()[0]
            first = last - len(rows) + 1
            values = [
                (
                    first + i,
                    *[
                        json.dumps(r[c])
                        if c in ("top", "probs")
                        else (bool(r[c]) if c == "is_ood" else r.get(c))
                        for c in _DATA_COLUMNS
                    ],
                )
                for i, r in enumerate(rows)
            ]
            placeholders = "(" + ",".join(["%s"] * len(COLUMNS)) + ")"
            args = ",".join(cur.mogrify(placeholders, v).decode() for v in values)
            cur.execute(f"INSERT INTO {self.table} ({','.join(COLUMNS)}) VALUES {args}")
        conn.close()

    def _select(self, sql: str, args: tuple) -> list[dict]:
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {','.join(COLUMNS)} FROM {self.table} {sql}", args)
            found = cur.fetchall()
        conn.close()
        return [{**dict(zip(COLUMNS, row)), "is_ood": bool(row[COLUMNS.index("is_ood")])} for row in found]

    def read_since(self, last_id: int, limit: int = 100_000) -> list[dict]:
        return self._select("WHERE id > %s ORDER BY id LIMIT %s", (last_id, limit))

    def read_recent(self, n: int) -> list[dict]:
        if n < 1:
            return []
        return list(reversed(self._select("ORDER BY id DESC LIMIT %s", (n,))))

    def max_id(self) -> int:
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT last_id FROM {self._counter}")
            value = cur.fetchone()[0]
        conn.close()
        return int(value)

    def epoch(self) -> str | None:
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT value FROM {self._meta} WHERE key = 'epoch'")
            row = cur.fetchone()
        conn.close()
        return row[0] if row else None

    def reset(self) -> str:
        """Empty the log and start a new epoch (ids restart at 1); returns the new epoch."""
        epoch = uuid.uuid4().hex
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"LOCK TABLE {self._counter} IN EXCLUSIVE MODE")
            cur.execute(f"TRUNCATE {self.table}")
            cur.execute(f"UPDATE {self._counter} SET last_id = 0")
            cur.execute(f"UPDATE {self._meta} SET value = %s WHERE key = 'epoch'", (epoch,))
        conn.close()
        return epoch
