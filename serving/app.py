"""The inference service: calibrated intent, routing decision and a prediction-log row per message.

`manga-intent serve` without --model serves the MLflow `champion` (its compiled artifact with the
calibrator and OOD threshold baked in) and swaps to a new champion within `reload_seconds`, no restart
(`serving.models`) — only versions the gate passed whose artifact matches the registered checksum; a
`challenger` in shadow mode scores every answered request too, off the response path (`serving.shadow`). Requests are micro-batched into shared model calls (`serving.batching`) and their
rows group-committed to the prediction log (`serving.log_writer`); a response is sent only once its
row is in the log.

Status codes are a contract:
- 200: answered, and the answer's row is in the log (exactly one row per message);
- 4xx with a JSON `detail` for anything that is not a valid request — bad JSON or encoding (400), not
  valid text (422: lone surrogates, noncharacters, nothing left after `clean_text`), too large (413),
  body too slow (408), wrong content type (415), missing/invalid API key (401); no row is written;
- 503 with `Retry-After` when the request is valid but cannot be answered durably now: no model
  loaded, the model queue or the log queue full, the log unavailable. Nothing is logged.
`/healthz` is liveness (the worker's threads run), `/readyz` readiness (model loaded, log writable,
reload thread alive): 503 when not ready, so a load balancer stops routing here.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from manga_intent.compiled import Prediction
from manga_intent.data import invalid_text_reason
from serving.batching import BatchResult, MicroBatcher, NoModel, Overloaded
from serving.log_writer import GroupCommitWriter, LogRejected, writer_for
from serving.models import ChampionModel, FixedModel, ModelHolder, ModelSource  # noqa: F401 (re-exported)
from serving.timing import RequestStages, StageTotals

log = logging.getLogger("manga_intent.serve")
Channel = Literal["mobile", "web", "voice"]
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
CLASSIFY_PATHS = ("/v1/classify", "/v1/classify/batch")


@dataclass
class ServiceSettings:
    max_text_chars: int = 1000
    max_body_bytes: int = 256 * 1024
    max_batch: int = 64
    """Most messages one /v1/classify/batch request may carry."""
    clarify_below: float = 0.6
    """Only for artifacts without a fitted routing policy: clarify when calibrated confidence < 0.6 (seed)."""
    secondary_min: float = 0.25
    """Report the runner-up as `secondary_intent` when its calibrated probability reaches this."""
    reload_seconds: float = 30.0
    micro_batch: int = 8
    """Most texts per model call. 8, not 32: on two cores a batch of 32 runs for tens of milliseconds and
    every request arriving meanwhile waits behind it (bench/serving_load.py, same run: open loop at
    500 req/s P95 18 ms with 32, 11 ms with 8; 16 and 64 connections no slower)."""
    micro_wait_ms: float = 2.0
    """Longest a request waits for others to share its model call (only while more are arriving)."""
    max_pending: int = 1024
    """Texts waiting for the model beyond which requests get 503 instead of queueing."""
    body_timeout_s: float = 10.0
    """A request body must arrive completely within this (slow clients get 408)."""
    api_key: str | None = None
    """When set, classify endpoints need `Authorization: Bearer <key>` or `X-API-Key: <key>`."""


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: StrictStr
    channel: Channel = "web"


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messages: list[ClassifyRequest]


class ApiError(Exception):
    def __init__(
        self, status: int, detail: str, retry_after: float | None = None, headers: dict | None = None
    ):
        super().__init__(detail)
        self.status, self.detail, self.retry_after, self.headers = status, detail, retry_after, headers or {}


def parse_json_body(body: bytes, content_type: str | None):
    """Strict UTF-8 JSON (a UTF-8 BOM is tolerated); every failure is a 4xx with a reason."""
    if content_type:
        media, _, params = content_type.partition(";")
        media = media.strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise ApiError(415, f"Content-Type {media!r} is not supported: send application/json")
        charset = re.search(r"charset\s*=\s*\"?([^\";\s]+)", params, re.IGNORECASE)
        if charset and charset.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
            raise ApiError(415, f"charset {charset.group(1)!r} is not supported: send UTF-8 JSON")
    if not body.strip():
        raise ApiError(422, "request body is empty: send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, f"request body is not valid UTF-8 JSON (invalid byte at offset {exc.start})"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return json.loads(text)
    except RecursionError:
        raise ApiError(422, "request body is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise ApiError(422, f"request body is not valid JSON: {exc}") from None


def validation_detail(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ())) or "body"
        problems.append(f"{where}: {error.get('msg')}")
    return "; ".join(problems) or "invalid request"


def _route(prediction: Prediction, settings: ServiceSettings) -> str:
    if prediction.route is not None:  # the artifact's policy, fitted on validation (calibrator_fit)
        return prediction.route
    if prediction.is_ood:
        return "fallback"
    return "clarify" if prediction.confidence < settings.clarify_below else "route"


class RequestGuard:
    """ASGI entry: bounded, deadline-bound body reading before any parsing; classify requests fast.

    Bodies over `max_body_bytes` (declared or streamed) get 413, bodies not complete within
    `body_timeout_s` get 408 — both before anything parses them. POSTs to the classify endpoints are
    announced to the micro-batcher as soon as they arrive (so it can wait for them) and answered by
    `ClassifyEndpoint` straight on ASGI; everything else (health, docs, 404/405) goes to FastAPI.
    """

    def __init__(self, app, settings: ServiceSettings, endpoint: ClassifyEndpoint | None = None):
        self.app, self.settings, self.endpoint = app, settings, endpoint
        self.batcher = endpoint.batcher if endpoint else None
        self.writer = endpoint.writer if endpoint else None
        self.holder = endpoint.holder if endpoint else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        fast = self.endpoint is not None and scope["method"] == "POST" and scope["path"] in CLASSIFY_PATHS
        if not fast:
            body = await self._read_body(scope, receive, send)
            if body is None:
                return
            return await self.app(scope, _replay(body, receive), send)
        self.batcher.arriving()
        scope["manga.arriving"] = True
        try:
            body = await self._read_body(scope, receive, send)
            if body is not None:
                await self.endpoint(scope, body, send)
        finally:
            if scope.pop("manga.arriving", False):
                self.batcher.arrived()

    async def _read_body(self, scope, receive, send) -> bytes | None:
        """The whole body, or None after answering 413/408 (or when the client went away)."""
        limit = self.settings.max_body_bytes
        for name, value in scope.get("headers") or ():
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_json(send, 413, {"detail": f"request body exceeds {limit} bytes"})
                return None
        chunks, size = [], 0
        loop = asyncio.get_running_loop()
        try:
            # read the bounded body up front; chunked uploads can't sneak past the limit
            async with asyncio.timeout_at(loop.time() + self.settings.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await _send_json(send, 413, {"detail": f"request body exceeds {limit} bytes"})
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _send_json(
                send,
                408,
                {"detail": f"request body not received within {self.settings.body_timeout_s:g}s"},
                extra_headers=[(b"connection", b"close")],
            )
            return None
        return b"".join(chunks)


def _replay(body: bytes, receive):
    replayed = False

    async def replay():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send, status: int, payload: dict, extra_headers=()):
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra_headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ClassifyEndpoint:
    """POST /v1/classify and /v1/classify/batch.

    One thread round trip per request: the event loop parses and validates, hands the texts to the
    model thread, which builds the log rows and hands them to the log writer thread, which answers the
    request once they are committed. The loop only sends the finished answer.
    """

    def __init__(self, holder, writer: GroupCommitWriter, batcher: MicroBatcher, settings, served_by: str):
        self.holder, self.writer, self.batcher, self.settings = holder, writer, batcher, settings
        self.served_by = served_by.encode()
        self._api_key = settings.api_key.encode() if settings.api_key else None
        self.timing = StageTotals()

    async def __call__(self, scope, body: bytes, send) -> None:
        headers = {}
        for name, value in scope.get("headers") or ():
            headers.setdefault(name, value)
        status, payload, extra = await self.respond(
            scope, headers, body, batch=scope["path"].endswith("/batch")
        )
        out = [(b"x-served-by", self.served_by), *extra]
        await _send_json(send, status, payload, out)

    async def respond(self, scope, headers: dict, body: bytes, batch: bool) -> tuple[int, dict, list]:
        started = time.perf_counter()
        request_id = None
        try:
            request_id = self._request_id(headers)
            self._authorize(headers)
            content_type = headers.get(b"content-type")
            payload = parse_json_body(body, content_type.decode("latin-1") if content_type else None)
            messages = self._messages(payload, batch)
            if scope.pop("manga.arriving", False):
                self.batcher.arrived()
            results, stages = await self._answer(messages, request_id, started, _client_of(scope, headers))
        except ApiError as exc:
            extra = [(k.encode(), v.encode()) for k, v in exc.headers.items()]
            content = {"detail": exc.detail}
            if request_id:
                content["request_id"] = request_id
                extra.append((b"x-request-id", request_id.encode()))
            if exc.retry_after is not None:
                extra.append((b"retry-after", str(max(1, round(exc.retry_after))).encode()))
            return exc.status, content, extra
        except Exception as exc:  # a bug, not the client's fault: still a JSON answer, and logged
            log.exception("unhandled error answering %s", scope["path"])
            return 500, {"detail": f"internal error: {type(exc).__name__}"}, []
        headers_out = [(b"x-request-id", request_id.encode()), (b"server-timing", stages.server_timing())]
        return 200, ({"results": results} if batch else results[0]), headers_out

    def _request_id(self, headers: dict) -> str:
        given = headers.get(b"x-request-id")
        if given is None:
            return uuid.uuid4().hex
        given = given.decode("latin-1")
        if not REQUEST_ID.match(given):
            raise ApiError(400, "X-Request-ID must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        return given

    def _authorize(self, headers: dict) -> None:
        if self._api_key is None:
            return
        given = headers.get(b"x-api-key")
        auth = headers.get(b"authorization", b"")
        if given is None and auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given, self._api_key):
            raise ApiError(401, "missing or invalid API key", headers={"www-authenticate": "Bearer"})

    def _check_text(self, text: str, where: str) -> None:
        limit = self.settings.max_text_chars
        if len(text) > limit:
            raise ApiError(422, f"{where}: text has {len(text)} characters; the limit is {limit}")
        problem = invalid_text_reason(text)
        if problem:
            raise ApiError(422, f"{where}: {problem}")

    def _messages(self, payload, batch: bool) -> list[ClassifyRequest]:
        try:
            parsed = (BatchRequest if batch else ClassifyRequest).model_validate(payload)
        except ValidationError as exc:
            raise ApiError(422, validation_detail(exc)) from None
        if not batch:
            self._check_text(parsed.text, "text")
            return [parsed]
        messages = parsed.messages
        if not messages:
            raise ApiError(422, "messages: at least one message is required")
        if len(messages) > self.settings.max_batch:
            raise ApiError(422, f"messages: {len(messages)} messages; the limit is {self.settings.max_batch}")
        for i, message in enumerate(messages):
            self._check_text(message.text, f"messages.{i}.text")
        return messages

    async def _answer(
        self, messages: list[ClassifyRequest], request_id: str, started: float, client: str | None = None
    ) -> tuple[list[dict], RequestStages]:
        writer = self.writer
        if not writer.available:  # refuse before spending model time on an answer we cannot log
            raise ApiError(
                503, f"prediction log unavailable: {writer.last_error}", retry_after=writer.retry_s
            )
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        clock = {}  # perf_counter readings from the other threads, for the stage timing

        def finish(answer, error) -> None:
            clock["settled"] = time.perf_counter()
            loop.call_soon_threadsafe(_settle, future, answer, error)

        def predicted(result: BatchResult | None, error: BaseException | None) -> None:  # model thread
            if error is not None:
                return finish(None, error)
            clock["result"], clock["predicted"] = result, time.perf_counter()
            rows = self._rows(messages, result, request_id, (clock["predicted"] - started) * 1000, client)
            clock["rows"] = time.perf_counter()
            try:
                writer.submit(rows, lambda failure: finish(None, failure) if failure else finish(rows, None))
            except LogRejected as exc:
                finish(None, exc)

        try:
            clock["submitted"] = time.perf_counter()
            self.batcher.submit([m.text for m in messages], predicted)
            rows = await future  # the answer exists only once its rows are in the log
        except (Overloaded, NoModel, LogRejected) as exc:
            raise ApiError(503, str(exc), retry_after=exc.retry_after) from None
        resumed = time.perf_counter()
        result = clock["result"]
        stages = RequestStages(
            parse=(clock["submitted"] - started) * 1000,
            queue=result.queue_ms,
            model=result.model_ms,
            rows=(clock["rows"] - clock["predicted"]) * 1000,
            log=(clock["settled"] - clock["rows"]) * 1000,
            resume=(resumed - clock["settled"]) * 1000,
            app=(resumed - started) * 1000,
        )
        self.timing.add(stages)
        self.holder.shadow(rows)  # the challenger scores them too, off the response path
        hidden = ("ts", "text", "top", "probs")
        return [
            {k: v for k, v in row.items() if k not in hidden} | {"top2": row["top"]} for row in rows
        ], stages

    def _rows(
        self, messages, result: BatchResult, request_id: str, latency_ms: float, client: str | None = None
    ) -> list[dict]:
        settings, now = self.settings, time.time()
        ids = [request_id] if len(messages) == 1 else [f"{request_id}.{i}" for i in range(len(messages))]
        rows = []
        for message, prediction, row_id in zip(messages, result.predictions, ids):
            top2 = [
                {"intent": t["intent"], "confidence": round(t["confidence"], 6)} for t in prediction.top[:2]
            ]
            secondary = (
                top2[1]["intent"]
                if len(top2) > 1 and top2[1]["confidence"] >= settings.secondary_min
                else None
            )
            rows.append(
                {
                    "ts": now,
                    "request_id": row_id,
                    "text": message.text,
                    "channel": message.channel,
                    "intent": prediction.intent,
                    "confidence": round(prediction.confidence, 6),
                    "secondary_intent": secondary,
                    "top": top2,
                    "probs": {t["intent"]: round(t["confidence"], 6) for t in prediction.top},
                    "is_ood": prediction.is_ood,
                    "energy": round(prediction.energy, 6),
                    "ood_detector": prediction.ood_detector,  # which detector decided is_ood
                    "ood_score": None if prediction.ood_score is None else round(prediction.ood_score, 6),
                    "route": _route(prediction, settings),
                    "model_version": result.version,
                    "latency_ms": round(latency_ms, 3),
                    "client": client,
                }
            )
        return rows


def _client_of(scope, headers: dict) -> str:
    """Who sent the request, for per-client caps in monitoring: the gateway's `X-Client-Id`, else the peer."""
    given = headers.get(b"x-client-id", b"").decode("latin-1").strip()[:128]
    if given:
        return given
    peer = scope.get("client")
    return str(peer[0]) if peer else "unknown"


def _settle(future: asyncio.Future, result, error) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def create_app(
    holder: ModelHolder,
    prediction_log,
    settings: ServiceSettings | None = None,
    *,
    worker: str | None = None,
):
    """The ASGI app. `prediction_log` is a GroupCommitWriter, a SQLite path, or any PredictionLog."""
    settings = settings or ServiceSettings()
    if isinstance(prediction_log, GroupCommitWriter):
        writer = prediction_log
    else:
        path = getattr(prediction_log, "path", None)  # a SqlitePredictionLog: write its file directly
        writer = writer_for(str(path) if path is not None else prediction_log)
    batcher = MicroBatcher(
        holder.current,
        max_batch=settings.micro_batch,
        max_wait_ms=settings.micro_wait_ms,
        max_pending=settings.max_pending,
    ).start()
    served_by = worker or f"pid-{os.getpid()}"
    endpoint = ClassifyEndpoint(holder, writer, batcher, settings, served_by)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        holder.stop()  # on shutdown: stop reloading, finish the queued batches, then the queued log rows
        batcher.stop()
        writer.stop()

    app = FastAPI(title="MangaAssist intent service", version="2", lifespan=lifespan)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a bug, not the client's fault: still JSON
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"detail": f"internal error: {type(exc).__name__}"})

    async def via_framework(request: Request, batch: bool) -> JSONResponse:
        """Only reached when the app is mounted without RequestGuard in front; same behaviour."""
        headers = {k.encode("latin-1"): v.encode("latin-1") for k, v in request.headers.items()}
        status, payload, extra = await endpoint.respond(request.scope, headers, await request.body(), batch)
        return JSONResponse(payload, status_code=status, headers={k.decode(): v.decode() for k, v in extra})

    body_schema = {"content": {"application/json": {"schema": ClassifyRequest.model_json_schema()}}}
    batch_schema = {"content": {"application/json": {"schema": BatchRequest.model_json_schema()}}}

    @app.post("/v1/classify", openapi_extra={"requestBody": body_schema})
    async def classify_one(request: Request) -> JSONResponse:
        """One message → intent, calibrated confidence, top-2, OOD flag, route; logged before answering."""
        return await via_framework(request, batch=False)

    @app.post("/v1/classify/batch", openapi_extra={"requestBody": batch_schema})
    async def classify_batch(request: Request) -> JSONResponse:
        """Up to `max_batch` messages, validated and logged all-or-nothing."""
        return await via_framework(request, batch=True)

    def worker_status() -> dict:
        return {
            "worker": served_by,
            **holder.status(),
            "log": writer.status(),
            "batching": batcher.status(),
            "timing": endpoint.timing.status(),
        }

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness: the model and log threads of this worker are running (restart it if not)."""
        alive = batcher.alive() and writer.alive()
        return JSONResponse(
            {"status": "alive" if alive else "broken", **worker_status()}, status_code=200 if alive else 503
        )

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: a model is loaded, the log is writable, the reload thread (if any) is alive."""
        reasons = []
        if holder.current() is None:
            reasons.append("no model loaded")
        if not writer.status()["writable"]:
            reasons.append(f"prediction log not writable: {writer.last_error}")
        if holder.reload_thread_alive() is False:
            reasons.append("champion reload thread is not running")
        if not batcher.alive():
            reasons.append("model thread is not running")
        return JSONResponse(
            {"ready": not reasons, "reasons": reasons, **worker_status()}, status_code=503 if reasons else 200
        )

    return RequestGuard(app, settings, endpoint)
