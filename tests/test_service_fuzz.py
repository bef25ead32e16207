"""Fuzz and slow clients: no input crashes the service, none gets a 5xx, none leaves a log row unless answered.

Two layers: generated request bodies through the app (encodings, sizes, JSON shapes, Unicode edge cases),
and raw bytes over a real socket to uvicorn with our protocol (malformed HTTP, trickled headers, stalled
bodies, idle connections, the connection limit, pipelining).
"""

import json
import random
import socket
import threading
import time

import pytest
from fastapi.testclient import TestClient
from test_service import compiled_dir, logged

from serving.app import FixedModel, ModelHolder, ServiceSettings, create_app
from serving.log_writer import writer_for
from serving.server import ServeOptions, uvicorn_config

ALLOWED = {200, 400, 401, 408, 413, 415, 422}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tokenizer):
    return compiled_dir(tmp_path_factory.mktemp("fuzz-artifact"), tokenizer)


def fuzz_bodies(seed: int = 1234, n: int = 260) -> list[tuple[str, bytes, dict]]:
    """(label, body, headers) cases: structured edge cases plus random mutations of a valid body."""
    rng = random.Random(seed)
    valid = json.dumps({"text": "where is my order", "channel": "web"}).encode()
    texts = [
        "",
        " ",
        "\x00",
        "a\ud800b",
        "\udc00",
        "\ud83d\ude00",  # a surrogate pair in JSON escapes is a valid emoji
        "\uffff",
        "\U0010ffff",
        "\ufdd0",
        "\u202e\u202d",
        "\u200b" * 50,
        "x" * 1001,
        "x" * 1000,
        "é" * 999,
        "🗡" * 400,
        "\u0301" * 200,
        "\r\n\t",
        "null",
        "<script>alert(1)</script>",
        "'; DROP TABLE predictions; --",
        "ｖｏｌ１２",
        "\x1b[31mred\x1b[0m",
    ]
    cases = [(f"text {t[:12]!r}", json.dumps({"text": t}).encode(), {}) for t in texts]
    shapes = [
        b"",
        b"null",
        b"true",
        b"0",
        b'"text"',
        b"[]",
        b"{}",
        b'{"text": []}',
        b'{"text": {"a": 1}}',
        b'{"text": 1e999}',
        b'{"text": NaN}',
        b'{"text": "hi", "channel": null}',
        b'{"text": "hi", "channel": "WEB"}',
        b'{"text": "hi", "text": 5}',
        b'{"text": "hi"}' * 2,
        b"[" * 900 + b"]" * 900,
        b'{"a":' * 900 + b"1" + b"}" * 900,
        b'{"text": "hi", "n": ' + b"1" * 4400 + b"}",
        b'{"text": "\\u12"}',
        b'{"text": "\\x41"}',
        b"\xef\xbb\xbf" + valid,
        b"\xfe\xff" + valid,
        valid.decode().encode("utf-16-le"),
        valid.decode().encode("utf-32"),
        b'{"text": "\xc0\xaf"}',  # overlong
        b'{"text": "\xed\xa0\x80"}',  # CESU-8 surrogate
        b'{"text": "\xf4\x90\x80\x80"}',  # above U+10FFFF
        b'{"text": "caf\xe9"}',  # latin-1
        b" " * 5000,
        b'{"text": "' + b"a" * 300_000 + b'"}',
    ]
    cases += [(f"shape {s[:16]!r}", s, {}) for s in shapes]
    content_types = [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-16",
        "",
    ]
    cases += [(f"content-type {c!r}", valid, {"content-type": c}) for c in content_types]
    for i in range(n - len(cases)):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            pos = rng.randrange(len(body) + 1)
            if op < 0.4 and body:
                body[min(pos, len(body) - 1)] = rng.randrange(256)
            elif op < 0.7:
                body[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            elif body:
                del body[pos : pos + rng.randint(1, 5)]
        cases.append((f"mutation {i}", bytes(body), {}))
    return cases


def test_fuzzed_bodies_never_5xx_and_log_only_answers(artifact, tmp_path):
    holder = ModelHolder(FixedModel(artifact), 3600)
    holder.refresh()
    log_path = tmp_path / "log.sqlite"
    client = TestClient(create_app(holder, writer_for(str(log_path))), raise_server_exceptions=True)
    outcomes, answered = {}, []
    for i, (label, body, headers) in enumerate(fuzz_bodies()):
        headers = {"content-type": "application/json", "x-request-id": f"f{i}", **headers}
        if headers["content-type"] == "":
            del headers["content-type"]
        for path in ("/v1/classify", "/v1/classify/batch"):
            reply = client.post(path, content=body, headers=headers)
            assert reply.status_code in ALLOWED, (label, path, reply.status_code, reply.text)
            detail = reply.json()
            if reply.status_code == 200:
                answered.append(i)
            else:
                assert isinstance(detail.get("detail"), str) and detail["detail"], (label, detail)
            outcomes[reply.status_code] = outcomes.get(reply.status_code, 0) + 1
    print(f"\n[fuzz] {sum(outcomes.values())} requests: {dict(sorted(outcomes.items()))}")
    rows = logged(log_path)
    single = [r for r in rows if "." not in r["request_id"]]
    assert sorted(int(r["request_id"][1:]) for r in single) == sorted(answered)
    assert outcomes.get(200, 0) > 10 and outcomes.get(422, 0) > 10 and outcomes.get(400, 0) > 5
    assert client.post("/v1/classify", json={"text": "still here"}).status_code == 200


class LiveServer:
    """uvicorn with our protocol in a background thread, on a free port."""

    def __init__(self, app, **options):
        import uvicorn
        from conftest import free_port

        self.port = free_port()
        config = uvicorn_config(app, ServeOptions(**options), host="127.0.0.1", port=self.port)
        config.log_level = "warning"
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except TimeoutError:
        pass
    return b"".join(chunks)


def request(body: bytes, request_id: str = "raw", extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-Request-ID: {request_id}\r\nContent-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


@pytest.fixture
def live(artifact, tmp_path):
    holder = ModelHolder(FixedModel(artifact), 3600)
    holder.refresh()
    log_path = tmp_path / "log.sqlite"
    app = create_app(holder, writer_for(str(log_path)), ServiceSettings(body_timeout_s=0.6))
    with LiveServer(app, header_timeout_s=0.6, max_connections=6, keep_alive_s=1) as server:
        yield server, log_path


MALFORMED = [
    ("garbage request line", b"HELLO\r\n\r\n"),
    ("bad method", b"P\x00ST /v1/classify HTTP/1.1\r\nHost: x\r\n\r\n"),
    (
        "bad chunk size",
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    ),
    ("negative content-length", b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
    ("header without colon", b"POST /v1/classify HTTP/1.1\r\nHost x\r\n\r\n"),
    ("http/0.9 style", b"GET /readyz\r\n\r\n"),  # httptools answers it like 1.0: 200 is fine
    ("wrong path", b"POST /v2/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"),
    ("get on classify", b"GET /v1/classify HTTP/1.1\r\nHost: x\r\n\r\n"),
]


def test_malformed_http_gets_4xx_and_the_server_keeps_answering(live):
    server, log_path = live
    for label, raw in MALFORMED:
        with server.connect() as sock:
            sock.sendall(raw)
            reply = read_all(sock, timeout=3)
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else None
        assert status is None or status < 500, (label, reply[:200])
        assert status != 200 or label.startswith("http/0.9"), (label, reply[:200])
    with server.connect() as sock:
        sock.sendall(
            request(b'{"text": "pipelined one"}', "p1") + request(b'{"text": "pipelined two"}', "p2")
        )
        time.sleep(0.5)
        reply = read_all(sock, timeout=2)
    assert reply.count(b"HTTP/1.1 200 OK") == 2
    assert [r["request_id"] for r in logged(log_path)] == ["p1", "p2"]


def test_slow_clients_are_cut_off(live):
    server, log_path = live
    started = time.monotonic()
    with server.connect() as idle:  # connects and says nothing
        assert b"408" in read_all(idle, timeout=5).split(b"\r\n")[0]
    assert time.monotonic() - started < 3
    started = time.monotonic()
    with server.connect() as trickle:  # slowloris: one header byte every 0.1 s
        trickle.sendall(b"POST /v1/classify HTTP/1.1\r\n")
        try:
            for byte in b"Host: example\r\nX-Slow: " + b"a" * 100:
                trickle.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass  # the server closed it
        assert time.monotonic() - started < 4
    with server.connect() as stalled:  # headers fine, body never completes
        stalled.sendall(request(b'{"text": "hello there"}')[:-5])
        reply = read_all(stalled, timeout=5)
        assert reply.startswith(b"HTTP/1.1 408") and b"body not received" in reply
    assert logged(log_path) == []
    with server.connect() as sock:
        sock.sendall(request(b'{"text": "fine"}', "ok"))
        assert read_all(sock, timeout=2).startswith(b"HTTP/1.1 200")


def test_connection_limit_refuses_new_connections_only(live):
    server, _ = live
    held = [server.connect() for _ in range(6)]
    try:
        extra = server.connect()
        reply = read_all(extra, timeout=3)
        assert reply.startswith(b"HTTP/1.1 503") and b"too many open connections" in reply
        held[0].sendall(request(b'{"text": "one of the held connections still works"}', "held"))
        held[0].settimeout(3)
        assert held[0].recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    with server.connect() as sock:
        sock.sendall(request(b'{"text": "room again"}', "again"))
        assert read_all(sock, timeout=2).startswith(b"HTTP/1.1 200")
