"""Which model the service serves, and swapping it without dropping a request.

`ModelHolder` keeps the live (version, model) pair. A background thread asks the source for the current
champion every `reload_seconds`; a new version is loaded, warmed up (one call per sequence bucket, so
the first real requests do not pay for lazy initialisation) and checked (finite logits, one per label)
before it takes traffic. Any failure — registry down, download error, corrupt artifact, bad warm-up —
is recorded and retried with backoff while the last good model keeps serving; the thread itself never
dies. At start-up, a champion that cannot be loaded falls back to the newest gate-passed version that can.
Only versions the gate passed, with an artifact matching their registered checksum, are loaded; a refused
version is reported in `status()` (and /healthz). A `challenger` is loaded beside the champion for shadow
scoring (`serving.shadow`); it never answers a request.
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from manga_intent.compiled import CompiledClassifier
from serving.registry import SERVING_GRAPH_TAG, UntrustedVersion
from serving.shadow import ShadowScorer

log = logging.getLogger("manga_intent.serve")

WARMUP_TEXTS = (
    "hi",
    "where is my order #1234? it was supposed to arrive yesterday",
    "any isekai like frieren but darker, with a slow-burn plot and found family? " * 2,
    "please recommend " * 60,
)
"""One message per sequence bucket (up to truncation at max_length) plus a mixed batch."""


class ModelSource(Protocol):
    """Where the served model comes from: a fixed directory, or the registry's champion alias."""

    def current(self) -> tuple[str, Path] | None:
        """(version, local compiled-artifact directory), or None when there is nothing to serve yet."""

    def fallbacks(self) -> Iterator[tuple[str, Callable[[], Path]]]:
        """Older versions that may be served instead, newest first: (version, fetch directory)."""


@dataclass
class FixedModel:
    directory: Path
    version: str = "local"

    def current(self):
        return self.version, Path(self.directory)

    def fallbacks(self):
        return iter(())

    def discard(self, version: str) -> None:
        pass


@dataclass
class ChampionModel:
    """Follows the registry's champion (and challenger) alias, trusting only versions the gate passed.

    A version is fetched only if its `gate` tag is `passed` and its downloaded artifact matches the checksum
    registered with it (`ModelRegistry.download`); anything else raises `UntrustedVersion`, so the holder keeps
    serving what it has and reports why. Verified artifacts are cached locally per version; the cache may be
    shared by several worker processes: each downloads into its own partial directory and renames it into
    place, so a half-written download is never loaded.
    """

    registry: object  # serving.registry.ModelRegistry (or anything with its read/download methods)
    cache_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="manga-serve-")))
    _graphs: dict = field(default_factory=dict, repr=False)

    def _fetch(self, mv) -> Path:
        self.registry.trusted(mv)
        version = str(mv.version)
        self._graphs[version] = (getattr(mv, "tags", None) or {}).get(SERVING_GRAPH_TAG) or None
        target = Path(self.cache_dir) / f"v{version}"
        if not (target / "manifest.json").is_file():
            partial = (
                Path(self.cache_dir) / f".v{version}.partial-{threading.get_native_id()}-{time.time_ns()}"
            )
            try:
                compiled = self.registry.compiled_dir(self.registry.download(version, partial))
                try:
                    compiled.rename(target)
                except OSError:  # another worker got there first
                    if not (target / "manifest.json").is_file():
                        raise
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        return target

    def current(self):
        champion = self.registry.champion()
        if champion is None:
            return None
        return str(champion.version), self._fetch(champion)

    def challenger(self):
        challenger = self.registry.challenger()
        if challenger is None:
            return None
        return str(challenger.version), self._fetch(challenger)

    def temperature_override(self, version: str) -> float | None:
        """The champion's `temperature_override` tag (a calibrator-only hot swap), if `version` is still it."""
        champion = self.registry.champion()
        if champion is None or str(champion.version) != version:
            return None
        value = champion.tags.get("temperature_override")
        return float(value) if value else None

    def serving_graph(self, version: str) -> str | None:
        """The graph the gate passed `version` with ("fp32" when its int8 graph disagreed on golden)."""
        return self._graphs.get(version)

    def fallbacks(self):
        passed = getattr(self.registry, "passed_versions", None)
        for version in passed() if passed else []:
            yield str(version.version), (lambda v=version: self._fetch(v))

    def discard(self, version: str) -> None:
        """Drop a cached copy that failed to load, so a retry downloads it again."""
        shutil.rmtree(Path(self.cache_dir) / f"v{version}", ignore_errors=True)


def settle_heap() -> None:
    """Freeze what is alive now (imports, the loaded model) out of the garbage collector's reach.

    A serving worker holds ~280k long-lived objects (transformers, torch, the tokenizer); a full collection
    walks all of them and stalled every request in flight for ~90 ms here, which is the P99 of a busy
    service. Frozen objects are skipped by every later collection, so those only walk request garbage.
    Called once the model is loaded and after each swap (unfreezing first, so the replaced model's
    reference cycles can still be collected).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def check_warm(model: CompiledClassifier, texts=WARMUP_TEXTS) -> None:
    """Run every bucket once and refuse a model whose outputs are not one finite logit per label, or whose
    OOD detector does not give a finite score."""
    for batch in [[t] for t in texts] + [list(texts)]:
        logits = model.logits_for_ids(model.encode(batch))
        if logits.shape != (len(batch), len(model.labels)):
            raise ValueError(
                f"model returns logits of shape {logits.shape} for {len(batch)} messages and "
                f"{len(model.labels)} labels"
            )
        if not np.isfinite(logits).all():
            raise ValueError("model returns non-finite logits on the warm-up messages")
        if (
            getattr(model, "recheck_margin", None) is not None
            and not np.isfinite(model.fp32_logits_for_ids(model.encode(batch))).all()
        ):
            raise ValueError("the fp32 re-check graph returns non-finite logits on the warm-up messages")
    # the serving path itself once: calibrator, OOD detector (with the features it needs) and routing policy
    scores = np.array([p.ood_score for p in model.predictions_for_ids(model.encode(list(texts)), top_k=1)])
    if not np.isfinite(scores.astype(float)).all():
        raise ValueError("the artifact's OOD detector returns non-finite scores on the warm-up messages")


@dataclass
class _Failure:
    attempts: int
    retry_at: float
    error: str


class ModelHolder:
    """The live model; a background thread swaps in a new champion without dropping requests."""

    def __init__(
        self,
        source: ModelSource,
        reload_seconds: float = 30.0,
        *,
        loader: Callable[[Path], CompiledClassifier] = CompiledClassifier,
        max_backoff_seconds: float = 600.0,
        shadow: ShadowScorer | None = None,
    ):
        self.source, self.reload_seconds, self.loader = source, reload_seconds, loader
        self.shadow_scorer = shadow
        self._challenger: tuple[str, CompiledClassifier] | None = None
        self.refused: dict[str, str] = {}
        """alias → why its version is not served (not passed by the gate, or a checksum mismatch)."""
        self.max_backoff_seconds = max_backoff_seconds
        self._current: tuple[str, CompiledClassifier] | None = None
        self._refresh_lock = threading.Lock()
        self._failures: dict[str, _Failure] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.fallback: str | None = None
        """Why an older version is served instead of the champion (None when serving the champion)."""
        self.loaded_at: float | None = None
        self.swaps = 0

    # -- what the request path sees --------------------------------------------------------------------
    def current(self) -> tuple[str, CompiledClassifier] | None:
        return self._current  # one attribute read: a swap is atomic for readers

    @property
    def version(self) -> str | None:
        return self._current[0] if self._current else None

    @property
    def model(self) -> CompiledClassifier | None:
        return self._current[1] if self._current else None

    # -- loading ---------------------------------------------------------------------------------------
    def _record(self, message: str) -> None:
        if message != self.last_error:
            log.error("model refresh: %s", message)
        self.last_error, self.last_error_at = message, time.time()

    def _load_model(self, version: str, directory: Path) -> CompiledClassifier:
        """The loader's model, in the graph the gate passed this version with when the source says."""
        gated = getattr(self.source, "serving_graph", None)
        graph = gated(version) if gated else None
        return self.loader(directory) if graph is None else self.loader(directory, graph=graph)

    def _load(self, version: str, fetch: Callable[[], Path]) -> bool:
        failure = self._failures.get(version)
        if failure and time.monotonic() < failure.retry_at:
            return False
        try:
            model = self._load_model(version, fetch())
            check_warm(model)
        except Exception as exc:
            attempts = failure.attempts + 1 if failure else 1
            backoff = min(self.max_backoff_seconds, self.reload_seconds * 2 ** (attempts - 1))
            error = f"version {version} cannot be served: {type(exc).__name__}: {exc}"
            self._failures[version] = _Failure(attempts, time.monotonic() + backoff, error)
            self._record(error + f" (attempt {attempts}; next try in {backoff:.0f}s; serving {self.version})")
            discard = getattr(self.source, "discard", None)
            if discard:
                discard(version)
            return False
        self._failures.pop(version, None)
        previous = self.version
        self._current = (version, model)
        self.loaded_at = time.time()
        self.swaps += 1
        settle_heap()
        log.info(
            "serving model version %s (%s, %s graph; was %s)", version, model.backend, model.graph, previous
        )
        return True

    def refresh(self) -> bool:
        """Swap to the source's current version if it is new and loads; never raises."""
        with self._refresh_lock:
            self._refresh_challenger()
            try:
                found = self.source.current()
            except UntrustedVersion as exc:  # the alias points at a version we must not serve
                self.refused["champion"] = str(exc)
                self._record(f"refusing the champion: {exc} (serving {self.version})")
                return False
            except Exception as exc:  # registry or storage down: keep serving what we have
                self._record(f"cannot reach the model source: {type(exc).__name__}: {exc}")
                return False
            self.refused.pop("champion", None)
            if found is None or found[0] == self.version:
                if found is not None:
                    self.fallback = None
                    self._apply_temperature_override()
                return False
            version, directory = found
            if self._load(version, lambda: directory):
                self.fallback = None
                self._apply_temperature_override()
                return True
            if self._current is None:  # nothing served yet: try the newest loadable passed version
                return self._fall_back(version)
            return False

    def _apply_temperature_override(self) -> None:
        """A calibrator-only hot swap: the champion's `temperature_override` tag, applied in place (no reload).

        Only for the champion itself (never a fallback version); a failure is recorded, the model keeps
        its temperature."""
        lookup = getattr(self.source, "temperature_override", None)
        current = self._current
        if lookup is None or current is None:
            return
        version, model = current
        try:
            override = lookup(version)
        except Exception as exc:
            self._record(f"cannot read the temperature override: {type(exc).__name__}: {exc}")
            return
        before = getattr(model, "temperature", None)
        if override is not None and override != before:
            log.info("version %s: temperature %s -> %.4f (calibrator hot swap)", version, before, override)
            model.temperature = override  # one float attribute: readers see the old or the new value

    def _fall_back(self, champion: str) -> bool:
        try:
            candidates = list(self.source.fallbacks())
        except Exception as exc:
            self._record(f"cannot list fallback versions: {type(exc).__name__}: {exc}")
            return False
        for version, fetch in candidates:
            if version != champion and self._load(version, fetch):
                self.fallback = (
                    f"champion version {champion} cannot be served ({self._failures[champion].error}); "
                    f"serving version {version}, the newest passed version that loads"
                )
                log.warning(self.fallback)
                return True
        return False

    # -- shadow mode -----------------------------------------------------------------------------------
    def _refresh_challenger(self) -> None:
        """Load (or drop) the challenger the source names; failures never touch the champion."""
        if self.shadow_scorer is None or not hasattr(self.source, "challenger"):
            return
        try:
            found = self.source.challenger()
            self.refused.pop("challenger", None)
            if found is None:
                self._challenger = None
            elif self._challenger is None or self._challenger[0] != found[0]:
                model = self._load_model(found[0], found[1])
                check_warm(model)
                self._challenger = (found[0], model)
                log.info("shadow scoring with challenger version %s", found[0])
        except UntrustedVersion as exc:
            self.refused["challenger"] = str(exc)
            self._challenger = None
        except Exception as exc:
            self._record(f"challenger cannot be loaded: {type(exc).__name__}: {exc}")
            self._challenger = None

    def shadow(self, rows: list[dict]) -> None:
        """Hand rows the champion answered to the challenger's background scorer (never blocks), with the model
        that answered them as the latency control."""
        challenger, scorer, current = self._challenger, self.shadow_scorer, self._current
        if (
            challenger is not None
            and scorer is not None
            and rows
            and challenger[0] != rows[0]["model_version"]
        ):
            answered_by = (
                current[1] if current is not None and current[0] == rows[0]["model_version"] else None
            )
            scorer.submit(challenger[0], challenger[1], rows, champion=answered_by)

    @property
    def challenger_version(self) -> str | None:
        return self._challenger[0] if self._challenger else None

    # -- background reload -----------------------------------------------------------------------------
    def start(self) -> ModelHolder:
        def loop():
            while not self._stop.wait(self.reload_seconds):
                try:
                    self.refresh()
                except BaseException as exc:  # refresh never raises; this is the last line of defence
                    self._record(f"reload loop error: {type(exc).__name__}: {exc}")

        self._thread = threading.Thread(target=loop, name="champion-reload", daemon=True)
        self._thread.start()
        return self

    def reload_thread_alive(self) -> bool | None:
        """None when this holder does not reload (a fixed --model)."""
        return None if self._thread is None else self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self.shadow_scorer is not None:
            self.shadow_scorer.stop()

    def status(self) -> dict:
        model = self.model
        return {
            "model_version": self.version,
            "backend": model.backend if model else None,
            "graph": model.graph if model else None,
            "near_ties_rerun_fp32": model.rechecked if getattr(model, "recheck_margin", None) else None,
            "temperature": getattr(model, "temperature", None),
            "loaded_at": self.loaded_at,
            "fallback": self.fallback,
            "reload_thread_alive": self.reload_thread_alive(),
            "last_refresh_error": self.last_error,
            "last_refresh_error_at": self.last_error_at,
            "refused_versions": dict(self.refused),
            "challenger_version": self.challenger_version,
            "shadow": self.shadow_scorer.stats() if self.shadow_scorer else None,
        }
