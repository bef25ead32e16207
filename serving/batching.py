"""Micro-batching: concurrent requests share one model call, a lone request does not wait for company.

Requests hand their texts to one model thread per worker. When the thread is free it takes the oldest
request and everything already queued behind it, up to `max_batch` texts. It waits for more only while
other classify requests are known to be on their way (received but still being parsed), and never
longer than `max_wait_ms` after the oldest request arrived — so a lone request is run at once, and under
load batches grow by themselves while the previous batch runs. Inside a batch, texts are grouped by
sequence bucket (16/32/64/128 tokens) and each group is padded only to its own longest message.

Every batch is run by one model version, taken from the holder when the batch starts, and each result
names it: a hot swap between batches never mixes versions inside one answer. If a batch fails, its
requests are retried one by one, so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from manga_intent.compiled import Prediction
from serving.queue_thread import QueueThread

log = logging.getLogger("manga_intent.serve.batching")


class Overloaded(Exception):
    """More requests are waiting for the model than `max_pending`: refuse (HTTP 503), don't queue."""

    retry_after = 1


class NoModel(Exception):
    """No model is loaded (yet): HTTP 503."""

    retry_after = 5


@dataclass(frozen=True)
class BatchResult:
    version: str
    predictions: list[Prediction]
    batch_texts: int
    """How many texts shared the model call(s) this request was part of."""
    queue_ms: float
    model_ms: float


@dataclass
class _Job:
    texts: Sequence[str]
    done: Callable[[BatchResult | None, BaseException | None], None]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher(QueueThread):
    thread_name = "micro-batcher"

    def __init__(
        self,
        current_model: Callable[[], tuple[str, object] | None],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        max_pending: int = 1024,
    ):
        """`current_model()` returns (version, CompiledClassifier) or None when nothing is loaded."""
        if max_batch < 1 or max_wait_ms < 0 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be >= 1 and max_wait_ms >= 0")
        self.current_model = current_model
        self.max_batch, self.max_wait_s, self.max_pending = max_batch, max_wait_ms / 1000, max_pending
        super().__init__()
        self._queue: deque[_Job] = deque()
        self._pending_texts = 0
        self._arriving = 0
        self.batches = 0
        self.texts = 0
        self.largest_batch = 0

    # -- request side ----------------------------------------------------------------------------------
    def arriving(self) -> None:
        """A classify request was received and will submit soon: worth waiting for (bounded)."""
        with self._cond:
            self._arriving += 1

    def arrived(self) -> None:
        """That request submitted or gave up."""
        with self._cond:
            self._arriving = max(0, self._arriving - 1)
            self._cond.notify()

    def submit(self, texts: Sequence[str], done: Callable[[BatchResult | None, BaseException | None], None]):
        with self._cond:
            if self._stopping:
                raise Overloaded("the service is shutting down")
            if self._pending_texts + len(texts) > self.max_pending:
                raise Overloaded(f"{self._pending_texts} messages are waiting for the model; retry shortly")
            self._queue.append(_Job(texts, done))
            self._pending_texts += len(texts)
            self._cond.notify()

    # -- model thread ----------------------------------------------------------------------------------
    def status(self) -> dict:
        return {
            "model_thread_alive": self.alive(),
            "pending_texts": self._pending_texts,
            "batches": self.batches,
            "texts": self.texts,
            "texts_per_batch": round(self.texts / self.batches, 2) if self.batches else None,
            "largest_batch": self.largest_batch,
        }

    def _take_batch(self) -> list[_Job]:
        """Called with the lock held and a non-empty queue."""
        deadline = self._queue[0].enqueued + self.max_wait_s
        while self._pending_texts < self.max_batch and self._arriving > 0 and not self._stopping:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        jobs, texts = [], 0
        while self._queue and (not jobs or texts + len(self._queue[0].texts) <= self.max_batch):
            job = self._queue.popleft()
            jobs.append(job)
            texts += len(job.texts)
        self._pending_texts -= texts
        return jobs

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                jobs = self._take_batch()
            try:
                self._run_batch(jobs)
            except BaseException as exc:  # never let the thread die with requests waiting
                log.exception("micro-batch failed outside the model call")
                for job in jobs:
                    job.done(None, exc)

    def _run_batch(self, jobs: list[_Job]) -> None:
        current = self.current_model()
        if current is None:
            for job in jobs:
                job.done(None, NoModel("no model is loaded yet"))
            return
        version, model = current
        started = time.perf_counter()
        texts = [t for job in jobs for t in job.texts]
        try:
            # logits, and the pooled features when the artifact's OOD detector scores them
            predictions = model.predictions_for_ids(model.encode(texts), top_k=len(model.labels))
        except Exception:
            if len(jobs) == 1:
                raise
            log.warning("batch of %d requests failed; retrying them one by one", len(jobs), exc_info=True)
            for job in jobs:
                try:
                    self._run_batch([job])
                except Exception as exc:
                    job.done(None, exc)
            return
        model_ms = (time.perf_counter() - started) * 1000
        self.batches += 1
        self.texts += len(texts)
        self.largest_batch = max(self.largest_batch, len(texts))
        offset = 0
        for job in jobs:
            mine = predictions[offset : offset + len(job.texts)]
            offset += len(job.texts)
            job.done(BatchResult(version, mine, len(texts), (started - job.enqueued) * 1000, model_ms), None)
