"""The inference service: calibrated intent, routing decision and a prediction-log row per message.

`manga-intent serve` without --model serves the MLflow `champion` (its compiled artifact with the
calibrator and OOD threshold baked in) and swaps to a new champion within `reload_seconds`, no restart
(`serving.models`). Requests are micro-batched into shared model calls (`serving.batching`) and their
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
from serving.batching import MicroBatcher, NoModel, Overloaded
from serving.log_writer import GroupCommitWriter, LogRejected, writer_for
from serving.models import ChampionModel, FixedModel, ModelHolder, ModelSource  # noqa: F401 (re-exported)

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
    """Seed: route to clarification when calibrated confidence < 0.6."""
    secondary_min: float = 0.25
    """Report the runner-up as `secondary_intent` when its calibrated probability reaches this."""
    reload_seconds: float = 30.0
    micro_batch: int = 32
    """Most texts per model call."""
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
    if prediction.is_ood:
        return "fallback"
    return "clarify" if prediction.confidence < settings.clarify_below else "route"


class RequestGuard:
    """ASGI middleware: bounded, deadline-bound body reading before any parsing; arrival signal.

    Bodies over `max_body_bytes` (declared or streamed) get 413, bodies not complete within
    `body_timeout_s` get 408 — both before the app sees them. Classify requests are announced to the
    micro-batcher as soon as they arrive, so it can wait for them.
    """

    def __init__(
        self, app, settings: ServiceSettings, batcher: MicroBatcher | None, writer=None, holder=None
    ):
        self.app, self.settings, self.batcher = app, settings, batcher
        self.writer, self.holder = writer, holder

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        announce = self.batcher is not None and scope.get("path") in CLASSIFY_PATHS
        if announce:
            self.batcher.arriving()
            scope["manga.arriving"] = True
        try:
            await self._handle(scope, receive, send)
        finally:
            if announce and scope.pop("manga.arriving", False):
                self.batcher.arrived()

    async def _handle(self, scope, receive, send):
        limit = self.settings.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_json(send, 413, {"detail": f"request body exceeds {limit} bytes"})
        chunks, size = [], 0
        deadline = time.monotonic() + self.settings.body_timeout_s
        while True:  # read the bounded body up front; chunked uploads can't sneak past the limit
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return await _send_json(
                    send,
                    408,
                    {"detail": f"request body not received within {self.settings.body_timeout_s:g}s"},
                    extra_headers=[(b"connection", b"close")],
                )
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await _send_json(send, 413, {"detail": f"request body exceeds {limit} bytes"})
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send, status: int, payload: dict, extra_headers=()):
    body = json.dumps(payload).encode()
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

    @asynccontextmanager
    async def lifespan(_app):
        yield
        holder.stop()  # on shutdown: stop reloading, finish the queued batches, then the queued log rows
        batcher.stop()
        writer.stop()

    app = FastAPI(title="MangaAssist intent service", version="2", lifespan=lifespan)

    def error_response(exc: ApiError, request_id: str | None) -> JSONResponse:
        headers = {"x-served-by": served_by, **exc.headers}
        if request_id:
            headers["x-request-id"] = request_id
        if exc.retry_after is not None:
            headers["retry-after"] = str(max(1, round(exc.retry_after)))
        content = {"detail": exc.detail}
        if request_id:
            content["request_id"] = request_id
        return JSONResponse(status_code=exc.status, content=content, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a bug, not the client's fault: still JSON
        log.exception("unhandled error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"detail": f"internal error: {type(exc).__name__}"})

    def authorize(request: Request) -> None:
        if not settings.api_key:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise ApiError(401, "missing or invalid API key", headers={"www-authenticate": "Bearer"})

    def request_id_of(request: Request) -> str:
        given = request.headers.get("x-request-id")
        if given is None:
            return uuid.uuid4().hex
        if not REQUEST_ID.match(given):
            raise ApiError(400, "X-Request-ID must be 1-128 characters of A-Z a-z 0-9 . _ : -")
        return given

    def check_text(text: str, where: str) -> None:
        if len(text) > settings.max_text_chars:
            raise ApiError(
                422, f"{where}: text has {len(text)} characters; the limit is {settings.max_text_chars}"
            )
        problem = invalid_text_reason(text)
        if problem:
            raise ApiError(422, f"{where}: {problem}")

    async def answer(request: Request, messages: list[ClassifyRequest], request_id: str, started: float):
        if request.scope.pop("manga.arriving", False):
            batcher.arrived()
        if not writer.available:  # refuse before spending model time on an answer we cannot log
            raise ApiError(
                503, f"prediction log unavailable: {writer.last_error}", retry_after=writer.retry_s
            )
        try:
            result = await batcher.classify([m.text for m in messages])
        except (Overloaded, NoModel) as exc:
            raise ApiError(503, str(exc), retry_after=exc.retry_after) from None
        latency_ms = (time.perf_counter() - started) * 1000
        now = time.time()
        ids = [request_id] if len(messages) == 1 else [f"{request_id}.{i}" for i in range(len(messages))]
        rows = []
        for message, prediction, row_id in zip(messages, result.predictions, ids):
            runner_up = prediction.top[1] if len(prediction.top) > 1 else None
            secondary = (
                runner_up["intent"]
                if runner_up and runner_up["confidence"] >= settings.secondary_min
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
                    "top": [{**t, "confidence": round(t["confidence"], 6)} for t in prediction.top[:2]],
                    "probs": {t["intent"]: round(t["confidence"], 6) for t in prediction.top},
                    "is_ood": prediction.is_ood,
                    "energy": round(prediction.energy, 6),
                    "route": _route(prediction, settings),
                    "model_version": result.version,
                    "latency_ms": round(latency_ms, 3),
                }
            )
        try:
            await writer.write(rows)  # the answer exists only once its rows are in the log
        except LogRejected as exc:
            raise ApiError(503, str(exc), retry_after=exc.retry_after) from None
        hidden = ("ts", "text", "top", "probs")
        return [{k: v for k, v in row.items() if k not in hidden} | {"top2": row["top"]} for row in rows]

    async def handle(request: Request, batch: bool) -> JSONResponse:
        started = time.perf_counter()
        request_id = None
        try:
            request_id = request_id_of(request)
            authorize(request)
            payload = parse_json_body(await request.body(), request.headers.get("content-type"))
            try:
                parsed = (BatchRequest if batch else ClassifyRequest).model_validate(payload)
            except ValidationError as exc:
                raise ApiError(422, validation_detail(exc)) from None
            if batch:
                messages = parsed.messages
                if not messages:
                    raise ApiError(422, "messages: at least one message is required")
                if len(messages) > settings.max_batch:
                    raise ApiError(
                        422, f"messages: {len(messages)} messages; the limit is {settings.max_batch}"
                    )
                for i, message in enumerate(messages):
                    check_text(message.text, f"messages.{i}.text")
            else:
                messages = [parsed]
                check_text(parsed.text, "text")
            results = await answer(request, messages, request_id, started)
        except ApiError as exc:
            return error_response(exc, request_id)
        content = {"results": results} if batch else results[0]
        return JSONResponse(content, headers={"x-request-id": request_id, "x-served-by": served_by})

    body_schema = {"content": {"application/json": {"schema": ClassifyRequest.model_json_schema()}}}
    batch_schema = {"content": {"application/json": {"schema": BatchRequest.model_json_schema()}}}

    @app.post("/v1/classify", openapi_extra={"requestBody": body_schema})
    async def classify_one(request: Request) -> JSONResponse:
        return await handle(request, batch=False)

    @app.post("/v1/classify/batch", openapi_extra={"requestBody": batch_schema})
    async def classify_batch(request: Request) -> JSONResponse:
        return await handle(request, batch=True)

    def worker_status() -> dict:
        return {"worker": served_by, **holder.status(), "log": writer.status(), "batching": batcher.status()}

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

    return RequestGuard(app, settings, batcher, writer, holder)
