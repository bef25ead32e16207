"""Setting up a SQLite file that several processes open at once in WAL mode.

Switching a new file to WAL needs an exclusive lock. When two connections that have both read the file try
to take it, SQLite answers one of them "database is locked" at once instead of waiting (its busy timeout
does not apply there: waiting could deadlock). The prediction log, the shadow log and the labelling ledger
are each opened by several processes at the same moment (service workers, sensors, the run workers of one
sensor tick), so the loser retries until the file is set up.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing

#: How long setting up keeps retrying while other processes set up the same file.
SETUP_TIMEOUT_S = 60.0


def set_up_wal_file(
    connect: Callable[[], sqlite3.Connection],
    create_schema: Callable[[sqlite3.Connection], object] = lambda conn: None,
    *,
    timeout_s: float = SETUP_TIMEOUT_S,
) -> None:
    """Put the file behind `connect()` in WAL mode and run `create_schema` (idempotent) in one committed
    transaction, retrying on "database is locked" for up to `timeout_s`; any other error is raised."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            with closing(connect()) as conn:
                if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                with conn:  # commits the schema (a no-op on an autocommit connection)
                    create_schema(conn)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
