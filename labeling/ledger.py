"""A local ledger of message keys, written BEFORE tasks are imported into Label Studio.

Two labelling runs started by one sensor tick both read the project's keys, both see a message as new,
and both import it. The ledger closes that window: a run first reserves its keys with one INSERT that a
UNIQUE constraint arbitrates (SQLite, one file per deployment, WAL, safe across processes), imports only
what it won, then marks those keys imported with their task ids. A failed import releases its
reservations so a later run can retry them. The project's own task data (`message_key`) is still checked
too, so a lost ledger cannot cause duplicates either.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from manga_intent.sqlite_wal import set_up_wal_file


class LabelingLedger:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        set_up_wal_file(self._connect, self._create_table)  # run workers of one tick open it at once

    @staticmethod
    def _create_table(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS message_keys (project TEXT NOT NULL, message_key TEXT NOT NULL, "
            "run_id TEXT NOT NULL, status TEXT NOT NULL, task_id INTEGER, created REAL NOT NULL, "
            "PRIMARY KEY (project, message_key))"
        )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60, isolation_level=None)

    def reserve(self, project: str, keys: Iterable[str], run_id: str) -> list[str]:
        """Reserve `keys` for `run_id`; returns the keys this run won (in the given order)."""
        keys = list(dict.fromkeys(keys))
        now = time.time()
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time: reservation is all-or-nothing per key
            won = []
            for key in keys:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO message_keys (project, message_key, run_id, status, created) "
                    "VALUES (?, ?, ?, 'reserved', ?)",
                    (project, key, run_id, now),
                )
                if cursor.rowcount == 1:
                    won.append(key)
            conn.execute("COMMIT")
            return won
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def mark_imported(self, project: str, task_ids: dict[str, int]) -> None:
        with self._connect() as conn:
            conn.executemany(
                "UPDATE message_keys SET status = 'imported', task_id = ? WHERE project = ? AND message_key = ?",
                [(task_id, project, key) for key, task_id in task_ids.items()],
            )

    def release(self, project: str, keys: Iterable[str], run_id: str) -> None:
        with self._connect() as conn:
            conn.executemany(
                "DELETE FROM message_keys WHERE project = ? AND message_key = ? AND run_id = ? AND status = 'reserved'",
                [(project, key, run_id) for key in keys],
            )

    def keys(self, project: str) -> set[str]:
        with self._connect() as conn:
            return {
                row[0]
                for row in conn.execute("SELECT message_key FROM message_keys WHERE project = ?", (project,))
            }
