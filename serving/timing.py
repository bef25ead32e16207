"""Where a classify request's time goes inside the service, per request and summed per worker.

Each answered request gets a standard `Server-Timing` response header (browser dev tools and `curl -i`
show it) and adds its stages to the worker's running totals in `/healthz` (`timing`), which
bench/serving_load.py differences per load level to show what is model time and what is overhead.

Stages, in request order:
- `parse`: body → validated messages, on the event loop;
- `queue`: waiting for the model thread (wake-up, and batch-mates while others are arriving);
- `model`: the batch's model call (tokenize, ONNX Runtime, calibration, OOD score) — shared by the batch;
- `rows`: building the log rows on the model thread;
- `log`: waiting for the log writer (wake-up and group commit);
- `resume`: the commit's callback until the event loop runs the request again;
- `app`: all of it, from the body being read to the answer being ready to send.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class RequestStages:
    """Milliseconds per stage of one request."""

    parse: float = 0.0
    queue: float = 0.0
    model: float = 0.0
    rows: float = 0.0
    log: float = 0.0
    resume: float = 0.0
    app: float = 0.0

    def server_timing(self) -> bytes:
        """The `Server-Timing` header value, e.g. `parse;dur=0.041, queue;dur=0.090, ...`."""
        return ", ".join(f"{f.name};dur={getattr(self, f.name):.3f}" for f in fields(self)).encode()


class StageTotals:
    """Running sums per stage over the answered requests of one worker.

    Only the event loop thread adds to it (after a request's rows are committed), so it needs no lock."""

    def __init__(self) -> None:
        self.requests = 0
        self.sum_ms = {f.name: 0.0 for f in fields(RequestStages)}

    def add(self, stages: RequestStages) -> None:
        self.requests += 1
        for name in self.sum_ms:
            self.sum_ms[name] += getattr(stages, name)

    def status(self) -> dict:
        """Totals (so a caller can difference two readings) and the mean per request."""
        mean = {k: round(v / self.requests, 4) for k, v in self.sum_ms.items()} if self.requests else None
        return {
            "requests": self.requests,
            "sum_ms": {k: round(v, 3) for k, v in self.sum_ms.items()},
            "mean_ms": mean,
        }
