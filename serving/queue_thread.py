"""The lifecycle both per-worker service threads share (the model thread and the log writer thread)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Self


class QueueThread(ABC):
    """One daemon thread working off a queue guarded by `self._cond`.

    `stop` sets `_stopping` and wakes the thread; the subclass's `_run` drains what it must and returns."""

    thread_name = "queue-thread"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _run(self) -> None:
        """The thread's loop: serve the queue until `_stopping`, then drain what must be drained."""

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
