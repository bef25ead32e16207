"""Where a reader of the prediction log stands: the log's epoch and the last id it has judged.

A log that is deleted, rotated or reset starts its ids again at 1. A cursor holding only an id would
then wait forever (or skip the new rows); holding the epoch, a reader sees the change, starts again from
the new log's first row, and puts the epoch into every run key so Dagster's run-key deduplication can
never mistake a window of the new log for one of the old.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from serving.prediction_log import PredictionLog


@dataclass(frozen=True)
class LogCursor:
    epoch: str | None = None
    last_id: int = 0

    @classmethod
    def parse(cls, raw: str | None) -> tuple[LogCursor, dict]:
        """(cursor, the rest of the sensor's JSON state); a legacy cursor without an epoch is accepted."""
        state = json.loads(raw) if raw else {}
        return cls(state.pop("epoch", None), int(state.pop("last_id", 0))), state

    def dump(self, **state) -> str:
        return json.dumps({"epoch": self.epoch, "last_id": self.last_id, **state})

    @property
    def tag(self) -> str:
        """Short epoch tag for run keys."""
        return (self.epoch or "noepoch")[:8]


@dataclass(frozen=True)
class LogRead:
    cursor: LogCursor
    """The cursor the rows were read from (after any reset)."""
    rows: list[dict]
    reset: bool
    """True when the log's epoch changed (or its ids went backwards) since the cursor was written."""


def read_windows(log: PredictionLog, cursor: LogCursor, window: int, max_windows: int) -> LogRead:
    """The next rows after the cursor, at most `max_windows` full windows' worth (a bounded query)."""
    epoch = log.epoch()
    reset = False
    if cursor.epoch is not None and epoch != cursor.epoch:
        reset = True
    elif cursor.last_id and log.max_id() < cursor.last_id:
        reset = True  # a log without epochs that restarted its ids
    if reset or cursor.epoch is None:
        cursor = LogCursor(epoch, 0 if reset else cursor.last_id)
    # no epoch: the log does not exist (yet), and reading it must not create it
    rows = [] if epoch is None else log.read_since(cursor.last_id, limit=window * max_windows)
    return LogRead(cursor, rows, reset)
