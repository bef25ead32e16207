"""The inference service: calibrated intent, routing decision and a prediction-log row per message.

`manga-intent serve` without --model serves the MLflow `champion` (its compiled artifact with the
calibrator and OOD threshold baked in) and swaps to a new champion within `reload_seconds`, no
restart — only versions the gate passed, whose artifact matches the registered checksum. A `challenger`
in shadow mode scores every request too, off the response path (`serving.shadow`). Bad input always gets a 4xx with a message; nothing reaches the log unless the whole
request succeeded.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from manga_intent.compiled import CompiledClassifier, Prediction
from serving.prediction_log import PredictionLog
from serving.registry import UntrustedVersion
from serving.shadow import ShadowScorer

log = logging.getLogger("manga_intent.serve")
Channel = Literal["mobile", "web", "voice"]


@dataclass
class ServiceSettings:
    max_text_chars: int = 1000
    max_body_bytes: int = 256 * 1024
    max_batch: int = 64
    clarify_below: float = 0.6
    """Seed: route to clarification when calibrated confidence < 0.6."""
    secondary_min: float = 0.25
    """Report the runner-up as `secondary_intent` when its calibrated probability reaches this."""
    reload_seconds: float = 30.0


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: StrictStr
    channel: Channel = "web"


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    messages: list[ClassifyRequest]


class ModelSource(Protocol):
    """Where the served model comes from: a fixed directory, or the registry's champion alias."""

    def current(self) -> tuple[str, Path] | None:
        """(version, local compiled-artifact directory), or None when there is nothing to serve yet."""


@dataclass
class FixedModel:
    directory: Path
    version: str = "local"

    def current(self):
        return self.version, self.directory


@dataclass
class ChampionModel:
    """Follows the registry's champion (and challenger) alias, trusting only versions the gate passed.

    A version is loaded only if its `gate` tag is `passed` and the downloaded artifact matches its registered
    checksum; anything else raises `UntrustedVersion`, so the holder keeps what it serves and says why.
    Verified artifacts are cached locally per version.
    """

    registry: object  # serving.registry.ModelRegistry
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="manga-serve-")))

    def _fetch(self, mv) -> tuple[str, Path]:
        self.registry.trusted(mv)
        target = self.cache_dir / f"v{mv.version}"
        if not (target / "manifest.json").is_file():
            partial = self.cache_dir / f".v{mv.version}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            model_dir = self.registry.download(str(mv.version), partial)  # checksum verified
            self.registry.compiled_dir(model_dir).rename(target)
            shutil.rmtree(partial, ignore_errors=True)
        return str(mv.version), target

    def current(self):
        champion = self.registry.champion()
        return None if champion is None else self._fetch(champion)

    def challenger(self):
        challenger = self.registry.challenger()
        return None if challenger is None else self._fetch(challenger)

    def temperature_override(self) -> float | None:
        champion = self.registry.champion()
        value = champion.tags.get("temperature_override") if champion is not None else None
        return float(value) if value else None


class ModelHolder:
    """The live model (and the challenger in shadow); a background thread swaps in new versions without
    dropping requests, and a version the source refuses is reported, never served."""

    def __init__(self, source: ModelSource, reload_seconds: float, shadow: ShadowScorer | None = None):
        self.source, self.reload_seconds, self.shadow_scorer = source, reload_seconds, shadow
        self._lock = threading.Lock()
        self.version: str | None = None
        self.model: CompiledClassifier | None = None
        self.challenger_version: str | None = None
        self.challenger: CompiledClassifier | None = None
        self.last_error: str | None = None
        self.refused: dict[str, str] = {}
        self._stop = threading.Event()

    def _note_error(self, exc: Exception, what: str) -> None:
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"
        if isinstance(exc, UntrustedVersion):
            self.refused[what] = str(exc)
        log.warning("%s refresh failed, keeping version %s: %s", what, self.version, self.last_error)

    def refresh(self) -> bool:
        changed = self._refresh_challenger()
        try:
            found = self.source.current()
        except (
            Exception
        ) as exc:  # registry or storage down, or an untrusted version: keep serving what we have
            self._note_error(exc, "champion")
            return changed
        self.refused.pop("champion", None)
        if found is not None and found[0] == self.version:
            self._apply_temperature_override()
        if found is None or found[0] == self.version:
            return changed
        version, directory = found
        model = CompiledClassifier(directory)
        with self._lock:
            self.version, self.model = version, model
        self._apply_temperature_override()
        log.info("serving model version %s (%s)", version, model.backend)
        return True

    def _apply_temperature_override(self) -> None:
        """A calibrator-only hot swap: the champion's `temperature_override` tag, applied in place."""
        override = getattr(self.source, "temperature_override", lambda: None)()
        if override is not None and self.model is not None and override != self.model.temperature:
            with self._lock:
                log.info("temperature %.4f -> %.4f (calibrator hot swap)", self.model.temperature, override)
                self.model.temperature = override

    def _refresh_challenger(self) -> bool:
        if self.shadow_scorer is None or not hasattr(self.source, "challenger"):
            return False
        try:
            found = self.source.challenger()
        except Exception as exc:
            self._note_error(exc, "challenger")
            return False
        self.refused.pop("challenger", None)
        version = found[0] if found else None
        if version == self.challenger_version:
            return False
        model = CompiledClassifier(found[1]) if found else None
        with self._lock:
            self.challenger_version, self.challenger = version, model
        log.info("shadow scoring with challenger %s", version)
        return True

    def get(self) -> tuple[str, CompiledClassifier]:
        with self._lock:
            if self.model is None:
                raise HTTPException(
                    503, "no model is loaded yet: no champion in the registry and no --model given"
                )
            return self.version, self.model

    def shadow(self, rows: list[dict]) -> None:
        """Hand the champion's answered rows to the challenger, off the response path."""
        with self._lock:
            version, challenger = self.challenger_version, self.challenger
        if challenger is not None and self.shadow_scorer is not None and version != rows[0]["model_version"]:
            self.shadow_scorer.submit(version, challenger, rows)

    def start(self) -> None:
        def loop():
            while not self._stop.wait(self.reload_seconds):
                self.refresh()

        threading.Thread(target=loop, name="champion-reload", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self.shadow_scorer is not None:
            self.shadow_scorer.stop()


class BodySizeLimit:
    """ASGI middleware: 413 for bodies over the limit, declared or streamed, before parsing."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)
        body = b""
        while True:  # read the bounded body up front; chunked uploads can't sneak past the limit
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                return await self._reject(send)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send):
        body = f'{{"detail": "request body exceeds {self.max_bytes} bytes"}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route(prediction: Prediction, settings: ServiceSettings) -> str:
    if prediction.is_ood:
        return "fallback"
    return "clarify" if prediction.confidence < settings.clarify_below else "route"


def _client_of(request: Request) -> str:
    """Who sent the request, for per-client caps in monitoring: the gateway's `X-Client-Id`, else the peer."""
    given = request.headers.get("x-client-id", "").strip()[:128]
    return given or (request.client.host if request.client else "unknown")


def create_app(
    holder: ModelHolder, prediction_log: PredictionLog, settings: ServiceSettings | None = None
) -> FastAPI:
    settings = settings or ServiceSettings()
    app = FastAPI(title="MangaAssist intent service", version="1")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "request body is not valid UTF-8 JSON"
        return JSONResponse(status_code=exc.status_code, content={"detail": detail}, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {error.get('msg')}")
        return JSONResponse(status_code=422, content={"detail": "; ".join(problems) or "invalid request"})

    def check_text(text: str, where: str) -> None:
        if not text.strip():
            raise HTTPException(422, f"{where}: text is empty")
        if len(text) > settings.max_text_chars:
            raise HTTPException(
                422, f"{where}: text has {len(text)} characters; the limit is {settings.max_text_chars}"
            )
        if "\x00" in text:
            raise HTTPException(422, f"{where}: text contains a NUL character")

    def classify(messages: list[ClassifyRequest], client: str | None = None) -> list[dict]:
        version, model = holder.get()
        started = time.perf_counter()
        predictions = model.classify([m.text for m in messages], top_k=len(model.labels))
        latency_ms = (time.perf_counter() - started) * 1000 / len(messages)
        now = time.time()
        rows = []
        for message, prediction in zip(messages, predictions):
            runner_up = prediction.top[1] if len(prediction.top) > 1 else None
            secondary = (
                runner_up["intent"]
                if runner_up and runner_up["confidence"] >= settings.secondary_min
                else None
            )
            rows.append(
                {
                    "ts": now,
                    "request_id": uuid.uuid4().hex,
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
                    "model_version": version,
                    "latency_ms": round(latency_ms, 3),
                    "client": client,
                }
            )
        prediction_log.append(rows)  # one transaction; if it fails the client gets an error, not a lie
        holder.shadow(rows)
        hidden = ("ts", "text", "top", "probs")
        return [{k: v for k, v in row.items() if k not in hidden} | {"top2": row["top"]} for row in rows]

    @app.post("/v1/classify")
    def classify_one(body: ClassifyRequest, request: Request) -> dict:
        check_text(body.text, "text")
        return classify([body], _client_of(request))[0]

    @app.post("/v1/classify/batch")
    def classify_batch(body: BatchRequest, request: Request) -> dict:
        if not body.messages:
            raise HTTPException(422, "messages: at least one message is required")
        if len(body.messages) > settings.max_batch:
            raise HTTPException(
                422, f"messages: {len(body.messages)} messages; the limit is {settings.max_batch}"
            )
        for i, message in enumerate(body.messages):
            check_text(message.text, f"messages.{i}.text")
        return {"results": classify(body.messages, _client_of(request))}

    @app.get("/healthz")
    def healthz() -> dict:
        return {
            "status": "ok" if holder.model is not None else "no_model",
            "model_version": holder.version,
            "backend": holder.model.backend if holder.model else None,
            "last_refresh_error": holder.last_error,
            "refused_versions": dict(holder.refused),
            "challenger_version": holder.challenger_version,
            "shadow": holder.shadow_scorer.stats() if holder.shadow_scorer else None,
        }

    return BodySizeLimit(app, settings.max_body_bytes)
