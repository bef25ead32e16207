"""Connections dealt to workers in turn, instead of left to whichever worker's accept wins the race.

With one listening socket shared by every worker, the kernel gives each new connection to whichever
worker accepts first, and a keep-alive connection then stays there. With two workers and a few
connections the split is a coin toss: the open-loop benchmark at 500 req/s measured 55/45, 54/46 and
59/41 splits in three runs, and P95 17, 20 and 27 ms — the busier worker queues while the other idles.
So with several workers the supervisor accepts, and hands each connection (its file descriptor, over a
Unix socket with SCM_RIGHTS) to the next *ready* worker in turn. A worker's channel carries one byte
`R` the other way once its model is loaded and warmed up; a worker that died (its channel at EOF) or does
not take a descriptor (full channel) is skipped. While no worker is ready nothing is accepted, so new
connections wait in the kernel's backlog, as they did before.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
import socket
import threading

import uvicorn

log = logging.getLogger("manga_intent.serve.handoff")
READY = b"R"


class ConnectionDealer:
    """The supervisor side: accepts on `listener` and deals connections to ready worker channels."""

    def __init__(self, listener: socket.socket):
        self.listener = listener
        self.listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._channels: dict[int, socket.socket] = {}
        self._ready: list[int] = []
        self._next = 0
        self._accepting = False
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._thread: threading.Thread | None = None
        self.dealt: dict[int, int] = {}

    def channel_for(self, index: int) -> socket.socket:
        """A fresh channel for worker `index`; returns the worker's end (to pass to its process)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # one message per descriptor
        ours.setblocking(False)
        with self._lock:
            self._drop(index)
            self._channels[index] = ours
            self._selector.register(ours, selectors.EVENT_READ, ("worker", index))
        self._wake()
        return theirs

    def worker_gone(self, index: int) -> None:
        with self._lock:
            self._drop(index)
        self._wake()

    def _drop(self, index: int) -> None:
        """With the lock held."""
        channel = self._channels.pop(index, None)
        if channel is not None:
            self._selector.unregister(channel)
            channel.close()
        if index in self._ready:
            self._ready.remove(index)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"w")
        except OSError:
            pass

    def start(self) -> ConnectionDealer:
        self._thread = threading.Thread(target=self._run, name="connection-dealer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            for index in list(self._channels):
                self._drop(index)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._listen_while_ready()
            for key, _ in self._selector.select(timeout=1.0):
                kind, index = key.data
                if kind == "wake":
                    try:
                        while self._wake_r.recv(256):
                            pass
                    except BlockingIOError:
                        pass
                elif kind == "worker":
                    self._from_worker(index, key.fileobj)
                else:
                    self._accept()

    def _listen_while_ready(self) -> None:
        with self._lock:
            want = bool(self._ready) and not self._stop.is_set()
            if want and not self._accepting:
                self._selector.register(self.listener, selectors.EVENT_READ, ("listener", None))
            elif not want and self._accepting:
                self._selector.unregister(self.listener)
            self._accepting = want

    def _from_worker(self, index: int, channel: socket.socket) -> None:
        try:
            data = channel.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        with self._lock:
            if self._channels.get(index) is not channel:
                return
            if not data:  # the worker exited or closed its end
                self._drop(index)
            elif READY in data and index not in self._ready:
                self._ready.append(index)
                log.info("worker %d is ready for connections", index)

    def _accept(self) -> None:
        for _ in range(64):  # drain a burst of connections, then look at the workers again
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: leave the rest in the backlog for now
                log.warning("accept failed: %s", exc)
                return
            try:
                self._deal(connection)
            finally:
                connection.close()  # the worker holds its own duplicate of the descriptor

    def _deal(self, connection: socket.socket) -> None:
        with self._lock:
            for _ in range(len(self._ready)):
                index = self._ready[self._next % len(self._ready)]
                self._next += 1
                try:
                    socket.send_fds(self._channels[index], [b"c"], [connection.fileno()])
                except (BlockingIOError, InterruptedError):
                    continue  # that worker is not keeping up with its channel: the next one
                except OSError:
                    self._drop(index)  # it died
                    continue
                self.dealt[index] = self.dealt.get(index, 0) + 1
                return
        log.warning("no ready worker could take a connection; closing it")


class HandedServer(uvicorn.Server):
    """A uvicorn server whose connections arrive over `channel` from a `ConnectionDealer`."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket):
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the lifespan, no listening socket of its own
        if self.should_exit:
            return
        loop = asyncio.get_running_loop()
        config = self.config

        def create_protocol() -> asyncio.Protocol:
            return config.http_protocol_class(
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )

        self._create_protocol = create_protocol
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._receive)
        self.channel.sendall(READY)

    def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            message, fds, _, _ = socket.recv_fds(self.channel, 64, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            message, fds = b"", []
        for fd in fds:
            connection = socket.socket(fileno=fd)
            connection.setblocking(False)
            loop.create_task(self._serve_connection(connection))
        if not message and not fds:  # the supervisor is gone: finish what is in flight and stop
            loop.remove_reader(self.channel.fileno())
            self.should_exit = True

    async def _serve_connection(self, connection: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._create_protocol, connection)
        except OSError as exc:  # the client went away before the worker took the connection
            log.debug("handed connection lost: %s", exc)
            connection.close()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        except (ValueError, OSError):
            pass
        await super().shutdown(sockets=sockets)
