"""The supervisor's connection dealer on real sockets: descriptors passed with SCM_RIGHTS, in turn, to ready
workers only, skipping a worker that died or whose channel is full."""

import socket
import time

import pytest

from serving.handoff import READY, ConnectionDealer


class FakeWorker:
    """The worker end of a channel: reports ready, receives descriptors."""

    def __init__(self, channel: socket.socket):
        self.channel = channel
        self.channel.settimeout(5)

    def ready(self):
        self.channel.sendall(READY)

    def receive(self) -> socket.socket:
        _, fds, _, _ = socket.recv_fds(self.channel, 16, 4)
        assert len(fds) == 1
        return socket.socket(fileno=fds[0])

    def nothing_waiting(self) -> bool:
        self.channel.settimeout(0.3)
        try:
            self.channel.recv(16, socket.MSG_PEEK)
        except TimeoutError:
            return True
        finally:
            self.channel.settimeout(5)
        return False


@pytest.fixture
def dealer():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    dealer = ConnectionDealer(listener).start()
    yield dealer
    dealer.stop()
    listener.close()


def counted(dealer, settle_s: float = 2.0) -> dict:
    """The dealer's per-worker counts once it stops changing (it counts just after the worker got the fd)."""
    deadline, last = time.monotonic() + settle_s, None
    while time.monotonic() < deadline:
        current = dict(dealer.dealt)
        if current == last:
            return current
        last = current
        time.sleep(0.1)
    return dict(dealer.dealt)


def closed_by_peer(client: socket.socket) -> bool:
    """EOF or a reset (closing a socket with unread bytes sends RST) within 5 s."""
    client.settimeout(5)
    try:
        return client.recv(16) == b""
    except ConnectionResetError:
        return True


def connect(dealer, payload: bytes) -> socket.socket:
    client = socket.create_connection(dealer.listener.getsockname(), timeout=5)
    client.sendall(payload)
    return client


def test_connections_go_to_ready_workers_in_turn_and_carry_their_bytes(dealer):
    a, b = FakeWorker(dealer.channel_for(0)), FakeWorker(dealer.channel_for(1))
    a.ready()
    b.ready()
    time.sleep(0.2)
    clients = [connect(dealer, f"hello {i}".encode()) for i in range(6)]
    got = [a.receive(), b.receive(), a.receive(), b.receive(), a.receive(), b.receive()]
    by_payload = {conn.recv(64): conn for conn in got}
    assert sorted(by_payload) == sorted(f"hello {i}".encode() for i in range(6))
    by_payload[b"hello 3"].sendall(b"answer 3")  # the handed descriptor is that client's connection
    assert clients[3].recv(64) == b"answer 3"
    assert counted(dealer) == {0: 3, 1: 3}
    for conn in got + clients:
        conn.close()


def test_nothing_is_dealt_before_a_worker_is_ready_and_a_dead_worker_is_skipped(dealer):
    a, b = FakeWorker(dealer.channel_for(0)), FakeWorker(dealer.channel_for(1))
    early = connect(dealer, b"early")  # waits in the backlog: no worker is ready yet
    assert a.nothing_waiting() and b.nothing_waiting()
    b.ready()
    assert b.receive().recv(64) == b"early"
    a.ready()
    time.sleep(0.2)
    b.channel.close()  # worker 1 dies
    time.sleep(0.2)
    later = [connect(dealer, f"later {i}".encode()) for i in range(3)]
    assert sorted(a.receive().recv(64) for _ in later) == [b"later 0", b"later 1", b"later 2"]
    assert counted(dealer) == {1: 1, 0: 3}
    for conn in [early, *later]:
        conn.close()


def test_a_worker_whose_channel_is_full_is_skipped_and_nothing_is_lost(dealer):
    """Worker 0 stops reading its channel (a stalled event loop): once its send buffer is full the dealer
    hands the remaining connections to worker 1 instead of blocking or dropping them."""
    a, b = FakeWorker(dealer.channel_for(0)), FakeWorker(dealer.channel_for(1))
    dealer._channels[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's minimum: a few fds
    a.ready()
    b.ready()
    time.sleep(0.2)
    n = 60
    clients = [connect(dealer, f"msg {i}".encode()) for i in range(n)]
    received_by_b = []
    deadline = time.monotonic() + 10
    while sum(counted(dealer, 0.3).values()) < n and time.monotonic() < deadline:
        received_by_b.append(b.receive())
    counts = counted(dealer)
    assert counts[0] + counts[1] == n, counts  # every connection went to a worker; none was closed
    assert counts[0] < n // 2 < counts[1], counts  # worker 0 took only what its full channel could hold
    while len(received_by_b) < counts[1]:
        received_by_b.append(b.receive())
    received_by_a = [a.receive() for _ in range(counts[0])]  # what waited in its channel is still there
    payloads = sorted(conn.recv(64) for conn in received_by_a + received_by_b)
    assert payloads == sorted(f"msg {i}".encode() for i in range(n))
    for conn in received_by_a + received_by_b + clients:
        conn.close()


def test_when_no_ready_worker_can_take_a_connection_the_client_sees_it_closed(dealer):
    """The only worker's channel is full: the dealer closes the extra connections (the client sees a reset at
    once, and can retry) rather than holding descriptors it cannot place."""
    a = FakeWorker(dealer.channel_for(0))
    dealer._channels[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    a.ready()
    time.sleep(0.2)
    n = 40
    clients = [connect(dealer, f"msg {i}".encode()) for i in range(n)]
    taken = counted(dealer)[0]
    assert 0 < taken < n
    assert sum(closed_by_peer(client) for client in clients[taken:]) == n - taken
    handed = [a.receive() for _ in range(taken)]
    assert sorted(conn.recv(64) for conn in handed) == sorted(f"msg {i}".encode() for i in range(taken))
    for conn in handed + clients:
        conn.close()
