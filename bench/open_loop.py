"""An open-loop HTTP load driver (wrk2 is not packaged here): requests leave on a fixed schedule.

A closed-loop generator (wrk) waits for each answer before sending the next request, so a slow server
slows the load down and hides its own queueing ("coordinated omission"). Here request i is due at
t0 + i/rate whether or not earlier ones were answered; its latency is measured from when it was *due*,
so time spent waiting for a free connection (or in the server's queue) counts. Keep-alive connections
are opened on demand up to `max_connections`. Each request carries a unique X-Request-ID so the log can
be checked row by row. Runs on uvloop when available; the driver shares the machine with the server,
like wrk would.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class OpenLoopResult:
    rate: float
    duration_s: float
    scheduled: int
    completed: int = 0
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    """Connection errors and timeouts."""
    latencies_ms: list[float] = field(default_factory=list)
    """Of answered requests, measured from their due time."""
    ok_ids: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    max_lateness_ms: float = 0.0
    """How far behind schedule the driver itself got when sending (its own saturation)."""

    def summary(self) -> dict:
        values = np.array(self.latencies_ms or [float("nan")])
        return {
            "offered_rps": self.rate,
            "achieved_rps": self.completed / self.wall_s if self.wall_s else 0.0,
            "requests": self.scheduled,
            "answered": self.completed,
            "ok": self.ok,
            "non_2xx": sum(n for s, n in self.statuses.items() if not 200 <= s < 300),
            "errors": self.errors,
            "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)),
            "p99_ms": float(np.percentile(values, 99)),
            "driver_max_lateness_ms": self.max_lateness_ms,
        }


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


async def run_open_loop(
    host: str,
    port: int,
    rate: float,
    duration_s: float,
    bodies: list[bytes],
    *,
    path: str = "/v1/classify",
    id_prefix: str = "open",
    max_connections: int = 128,
    timeout_s: float = 10.0,
    extra_headers: dict[str, str] | None = None,
) -> OpenLoopResult:
    total = int(rate * duration_s)
    result = OpenLoopResult(rate, duration_s, total)
    pool: asyncio.Queue = asyncio.Queue()  # idle connections; None = a free slot to open anew
    opened = 0
    headers = "".join(f"{k}: {v}\r\n" for k, v in (extra_headers or {}).items())

    async def connection():
        nonlocal opened
        if pool.empty() and opened < max_connections:
            opened += 1
            try:
                return await asyncio.open_connection(host, port)
            except OSError:
                opened -= 1
                raise
        conn = await pool.get()
        if conn is None:
            try:
                return await asyncio.open_connection(host, port)
            except OSError:
                pool.put_nowait(None)
                raise
        return conn

    def release(conn, reusable: bool):
        if reusable:
            pool.put_nowait(conn)
        else:
            conn[1].close()
            pool.put_nowait(None)

    async def one(index: int, due: float) -> None:
        request_id = f"{id_prefix}-{index}"
        body = bodies[index % len(bodies)]
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"X-Request-ID: {request_id}\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        conn = None
        try:
            conn = await asyncio.wait_for(connection(), timeout_s)
            conn[1].write(request)
            status, close = await asyncio.wait_for(_read_response(conn[0]), timeout_s)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            result.errors += 1
            if conn is not None:
                release(conn, False)
            return
        result.latencies_ms.append((time.perf_counter() - due) * 1000)
        result.completed += 1
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == 200:
            result.ok += 1
            result.ok_ids.append(request_id)
        release(conn, not close)

    tasks = []
    # time.perf_counter, not loop.time(): uvloop's clock has millisecond resolution, too coarse for a P95
    start = time.perf_counter() + 0.05
    wall_start = time.perf_counter()
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.max_lateness_ms = max(result.max_lateness_ms, -delay * 1000)
        tasks.append(asyncio.ensure_future(one(index, due)))
    await asyncio.gather(*tasks)
    result.wall_s = time.perf_counter() - wall_start
    while not pool.empty():
        conn = pool.get_nowait()
        if conn is not None:
            conn[1].close()
    return result


def open_loop(
    host: str, port: int, rate: float, duration_s: float, bodies: list[bytes], **kwargs
) -> OpenLoopResult:
    """Runs with the garbage collector off: the benchmark process has torch and transformers loaded (it
    compiles the artifact), and one full collection there stalled the driver for ~195 ms mid-run, which
    the latencies (measured from due times) then charged to the server (`driver_max_lateness_ms` shows it)."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return runner(run_open_loop(host, port, rate, duration_s, bodies, **kwargs))
    finally:
        gc.enable()
        gc.unfreeze()
