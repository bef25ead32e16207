"""The worker supervisor: N service processes behind one listening socket, restarted when they die.

Each worker is a fresh interpreter (`python -m serving.supervisor --worker ...`) that loads and warms its
own model session and only then reports ready. The supervisor accepts on the listening socket and deals
each new connection to the next ready worker in turn (`serving.handoff`: left to the kernel, two workers
split a few keep-alive connections unevenly and the busier one queues) — so while a worker (re)starts,
new connections go to the others. A worker that exits for any reason
other than a shutdown is restarted, with a backoff that grows while it keeps dying within seconds of
starting (the supervisor gives up when no worker ever came up: a broken configuration exits instead of
looping). SIGTERM/SIGINT stop all workers gracefully (they finish in-flight requests and flush the log).
Workers die with the supervisor (PR_SET_PDEATHSIG), so none is left orphaned.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger("manga_intent.serve.supervisor")


@dataclass
class _Slot:
    index: int
    process: subprocess.Popen | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0
    restarts: int = 0
    history: list = field(default_factory=list)


class Supervisor:
    def __init__(
        self,
        options,
        sock: socket.socket,
        *,
        quick_death_s: float = 10.0,
        max_backoff_s: float = 30.0,
        give_up_after: int = 5,
    ):
        self.options, self.sock = options, sock
        self.quick_death_s, self.max_backoff_s, self.give_up_after = (
            quick_death_s,
            max_backoff_s,
            give_up_after,
        )
        self._ever_up = False
        self.slots = [_Slot(i) for i in range(options.workers)]
        self._stopping = False
        from serving.handoff import ConnectionDealer

        self.dealer = ConnectionDealer(sock)

    def _spawn(self, slot: _Slot) -> None:
        channel = self.dealer.channel_for(slot.index)
        fd = channel.fileno()
        command = [
            sys.executable,
            "-m",
            "serving.supervisor",
            "--worker",
            "--fd",
            str(fd),
            "--index",
            str(slot.index),
            "--options",
            json.dumps(self.options.to_json()),
        ]
        try:
            slot.process = subprocess.Popen(command, pass_fds=(fd,))
        finally:
            channel.close()  # the worker has its own copy
        slot.started = time.monotonic()
        log.info("worker %d started (pid %d)", slot.index, slot.process.pid)

    def _on_exit(self, slot: _Slot, code: int) -> None:
        lived = time.monotonic() - slot.started
        self._ever_up = self._ever_up or lived >= self.quick_death_s
        slot.quick_deaths = slot.quick_deaths + 1 if lived < self.quick_death_s else 0
        if not self._ever_up and slot.quick_deaths >= self.give_up_after:
            raise SystemExit(
                f"worker {slot.index} died {slot.quick_deaths} times within {self.quick_death_s:.0f}s of "
                f"starting (last exit code {code}) and no worker ever came up: giving up"
            )
        delay = min(self.max_backoff_s, 0.5 * 2**slot.quick_deaths) if slot.quick_deaths else 0.2
        slot.restart_at = time.monotonic() + delay
        slot.restarts += 1
        slot.history.append({"pid": slot.process.pid, "exit": code, "lived_s": round(lived, 1)})
        self.dealer.worker_gone(slot.index)
        log.error(
            "worker %d (pid %d) exited with %s after %.1fs; restarting in %.1fs",
            slot.index,
            slot.process.pid,
            code,
            lived,
            delay,
        )
        slot.process = None

    def run(self) -> None:
        def stop(signum, frame):
            self._stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.dealer.start()
        for slot in self.slots:
            self._spawn(slot)
        print(
            f"serving on http://{self.options.host}:{self.options.port} with {len(self.slots)} workers "
            f"(supervisor pid {os.getpid()})",
            flush=True,
        )
        try:
            while not self._stopping:
                now = time.monotonic()
                for slot in self.slots:
                    if slot.process is not None:
                        code = slot.process.poll()
                        if code is not None:
                            self._on_exit(slot, code)
                    elif now >= slot.restart_at:
                        self._spawn(slot)
                time.sleep(0.1)
        finally:
            self.shutdown()

    def shutdown(self, timeout: float = 15.0) -> None:
        running = [s.process for s in self.slots if s.process is not None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.dealer.stop()
        self.sock.close()


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_worker(fd: int, index: int, options_json: dict) -> None:
    from serving.server import ServeOptions

    options = ServeOptions(**options_json)
    threads = str(options.threads_per_worker())
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = threads
    _die_with_parent()
    if options.pin_workers:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[index % len(cpus)]})
    from serving.handoff import HandedServer
    from serving.server import build_app, uvicorn_config

    channel = socket.socket(fileno=fd)  # connections arrive here from the supervisor (serving.handoff)
    app, _ = build_app(options=options, worker=f"{index}/{os.getpid()}")
    HandedServer(uvicorn_config(app, options), channel).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--fd", type=int, required=True, help="the worker's end of its connection channel")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--options", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker {args.index} %(name)s: %(message)s")
    run_worker(args.fd, args.index, json.loads(args.options))
    return 0


if __name__ == "__main__":
    sys.exit(main())
