"""Build and run the service: `manga-intent serve [--model DIR] [--workers N] ...`.

One worker process per usable core by default (affinity mask and cgroup quota, not the host's count),
each with its own ONNX Runtime session (intra-op threads = its share of the cores, inter-op 1), its own
micro-batcher and its own log writer, writing one WAL-mode prediction log. The supervisor accepts on the
listening socket and deals connections to the workers in turn (`serving.handoff`).
A supervisor restarts a worker that dies (`serving.supervisor`). `--workers 1` runs in-process.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

from manga_intent.cpu import single_threaded_blas, usable_cpus
from serving.app import ChampionModel, FixedModel, ModelHolder, ServiceSettings, create_app
from serving.http_guard import guarded_protocol
from serving.log_writer import writer_for
from serving.prediction_log import default_log_uri

log = logging.getLogger("manga_intent.serve")


@dataclass
class ServeOptions:
    """Everything a worker needs to build its app (JSON-serialisable: it is handed to worker processes)."""

    model_dir: str | None = None
    model_version: str | None = None
    """Version name reported for a fixed --model (default `local:<directory name>`)."""
    host: str = "127.0.0.1"
    port: int = 8000
    log_uri: str | None = None
    workers: int = 0
    """0: one per usable core."""
    threads: int = 0
    """ONNX Runtime intra-op threads per worker; 0: usable cores / workers (at least 1)."""
    graph: str | None = None
    """"fp32" or "int8" to override the artifact's serving graph (benchmarks); None: as compiled."""
    micro_batch: int = 8
    micro_wait_ms: float = 2.0
    max_pending: int = 1024
    log_sync: str = "normal"
    max_connections: int = 512
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    reload_seconds: float = 30.0
    pin_workers: bool = False
    access_log: bool = False
    cache_dir: str | None = None

    def worker_count(self) -> int:
        return self.workers or usable_cpus()

    def threads_per_worker(self) -> int:
        return self.threads or max(1, usable_cpus() // self.worker_count())

    def settings(self) -> ServiceSettings:
        return ServiceSettings(
            reload_seconds=self.reload_seconds,
            micro_batch=self.micro_batch,
            micro_wait_ms=self.micro_wait_ms,
            max_pending=self.max_pending,
            body_timeout_s=self.body_timeout_s,
            api_key=os.environ.get("MANGA_API_KEY") or None,
        )

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def fixed_model_source(directory: str | Path) -> FixedModel:
    """A compiled artifact directory as is; a `manga-intent train` directory is compiled to ONNX first.

    A trained model is served with the calibrator, OOD detector and routing policy `manga-intent train`
    fitted on validation; one trained before those existed, at its stored temperature with OOD off.
    """
    directory = Path(directory)
    if (directory / "manifest.json").is_file():
        return FixedModel(directory, version=f"local:{directory.name}")
    if (directory / "model_card.json").is_file():
        from manga_intent.calibrator_fit import ServingCalibration
        from manga_intent.compiled import compile_classifier
        from manga_intent.model_io import load_trained, read_temperature

        model, tokenizer, card = load_trained(directory)
        temperature = read_temperature(directory)  # fitted on validation by `manga-intent train`
        # `manga-intent train` also fits the calibrator, OOD detector and routing policy: serve them too
        serving = ServingCalibration.load(directory) if ServingCalibration.exists(directory) else None
        out = Path(tempfile.mkdtemp(prefix="manga-serve-compiled-"))
        compile_classifier(
            model,
            tokenizer,
            out,
            labels=card["labels"],
            temperature=None if serving else temperature,
            ood_threshold=None if serving else float("inf"),
            max_length=card["recipe"]["max_length"],
            backend="auto",
            calibration=serving,
        )
        return FixedModel(out, version=f"local:{directory.name}")
    raise FileNotFoundError(
        f"{directory}: neither a compiled artifact (manifest.json) nor a trained model (model_card.json)"
    )


def model_loader(forced: str | None, threads: int | None):
    from manga_intent.compiled import CompiledClassifier

    def load(directory: Path, graph: str | None = None) -> CompiledClassifier:
        """`graph` is the gate's choice for this version; fp32 from either the gate or --graph wins."""
        chosen = "fp32" if "fp32" in (graph, forced) else (forced or graph)
        return CompiledClassifier(
            directory, graph=chosen, intra_op_threads=threads, inter_op_threads=1 if threads else None
        )

    return load


def build_app(
    model_dir: str | None = None,
    *,
    log_uri: str | None = None,
    settings: ServiceSettings | None = None,
    registry=None,
    shadow_budget_ms: float | None = None,
    options: ServeOptions | None = None,
    worker: str | None = None,
):
    """(ASGI app, ModelHolder): the model is loaded and warmed up before this returns."""
    single_threaded_blas()  # post-processing BLAS must not wait for cores the model call is using
    options = options or ServeOptions(model_dir=model_dir, log_uri=log_uri)
    settings = settings or options.settings()
    model_dir = model_dir or options.model_dir
    shadow = None
    if model_dir:
        source = fixed_model_source(model_dir)
        if options.model_version:
            source.version = options.model_version
    else:
        from serving.registry import ModelRegistry, default_tracking_uri
        from serving.shadow import ShadowScorer, open_shadow_log

        cache = options.cache_dir or tempfile.mkdtemp(prefix="manga-serve-")
        source = ChampionModel(registry or ModelRegistry(default_tracking_uri()), cache_dir=Path(cache))
        budget = shadow_budget_ms or float(os.environ.get("MANGA_SHADOW_BUDGET_MS", "50"))
        shadow = ShadowScorer(
            open_shadow_log(log_uri or options.log_uri or default_log_uri()), budget_ms=budget
        )
    holder = ModelHolder(
        source,
        settings.reload_seconds,
        loader=model_loader(options.graph, options.threads or None),
        shadow=shadow,
    )
    holder.refresh()
    if not model_dir:
        holder.start()
    writer = writer_for(log_uri or options.log_uri or default_log_uri(), synchronous=options.log_sync)
    return create_app(holder, writer, settings, worker=worker), holder


def uvicorn_config(app, options: ServeOptions, **kwargs):
    import uvicorn

    return uvicorn.Config(
        app,
        http=guarded_protocol(options.header_timeout_s, options.max_connections),
        loop="uvloop",
        lifespan="on",
        timeout_keep_alive=options.keep_alive_s,
        access_log=options.access_log,
        log_level="info",
        **kwargs,
    )


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def serve(options: ServeOptions) -> None:
    import uvicorn

    options = dataclasses.replace(
        options, workers=options.worker_count(), threads=options.threads_per_worker()
    )
    log.info("%d worker(s), %d intra-op thread(s) each", options.workers, options.threads)
    if options.workers == 1:
        app, _ = build_app(options=options)
        uvicorn.Server(uvicorn_config(app, options, host=options.host, port=options.port)).run()
        return
    from serving.supervisor import Supervisor

    if options.cache_dir is None and not options.model_dir:  # workers share downloaded champions
        from manga_intent.home import manga_home

        options = dataclasses.replace(options, cache_dir=str(manga_home() / "serving-cache"))
        Path(options.cache_dir).mkdir(parents=True, exist_ok=True)
    if options.model_dir and (Path(options.model_dir) / "model_card.json").is_file():
        # compile a plain trained model once, not once per worker
        compiled = fixed_model_source(options.model_dir)
        options = dataclasses.replace(
            options, model_dir=str(compiled.directory), model_version=compiled.version
        )
    sock = listening_socket(options.host, options.port)
    Supervisor(options, sock).run()
