"""Connection-level protection uvicorn does not give: a header deadline and a hard connection limit.

uvicorn times out idle keep-alive connections, but a client that connects and sends nothing, or
trickles its request line and headers a byte at a time, holds a connection (and its memory) forever.
`guarded_protocol` wraps uvicorn's httptools protocol: a connection must deliver a complete request
head within `header_timeout_s` of connecting (or of starting the next request on a kept-alive
connection), else it gets 408 and is closed. Beyond `max_connections` open connections per worker a new
connection is answered 503 and closed at once, instead of every request on every connection getting 503
(uvicorn's `limit_concurrency`). Body deadlines are enforced in the app (`serving.app.RequestGuard`).
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _raw_response(status: str, detail: str, retry_after: int | None = None) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = [
        f"HTTP/1.1 {status}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def guarded_protocol(header_timeout_s: float = 10.0, max_connections: int = 512):
    """An asyncio protocol class for `uvicorn.Config(http=...)`."""
    timeout_response = _raw_response(
        "408 Request Timeout", f"request headers not received within {header_timeout_s:g}s"
    )
    full_response = _raw_response(
        "503 Service Unavailable", f"too many open connections (limit {max_connections})", retry_after=1
    )

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer = None
        _refused = False

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self._refused = True
                transport.write(full_response)
                transport.close()
                return
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm_header_timer()

        def on_headers_complete(self) -> None:
            self._cancel_header_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # the next request on this connection is covered by uvicorn's keep-alive timeout until its
            # first byte arrives, then by our header deadline again (on_message_begin)

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                return  # a request is being answered; its body deadline is the app's business
            self.transport.write(timeout_response)
            self.transport.close()

    return GuardedHttpToolsProtocol
