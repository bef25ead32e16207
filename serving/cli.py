"""The `manga-intent serve` subcommand, plugged into the core CLI through the `manga_intent.cli` entry point.

The core CLI never imports the service layer: it loads subcommand plugins by entry point, and this one
imports FastAPI and uvicorn only when `serve` actually runs.
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the inference service (champion from the registry, or --model)",
        description="Set MANGA_API_KEY to require `Authorization: Bearer <key>` (or `X-API-Key`) on the "
        "classify endpoints; /healthz and /readyz stay open for probes.",
    )
    p.add_argument(
        "--model", default=None, help="compiled artifact or trained model directory (default: champion)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--log",
        default=None,
        help="prediction log: SQLite path or s3://bucket/prefix "
        "(default $MANGA_PREDICTION_LOG or $MANGA_HOME/predictions.sqlite)",
    )
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: one per usable core)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="ONNX Runtime intra-op threads per worker (default: cores/workers)",
    )
    p.add_argument(
        "--graph", choices=["fp32", "int8"], default=None, help="override the artifact's serving graph"
    )
    p.add_argument("--max-batch", type=int, default=8, help="most messages per model call")
    p.add_argument(
        "--max-wait-ms", type=float, default=2.0, help="longest a request waits to share a model call"
    )
    p.add_argument("--max-pending", type=int, default=1024, help="queued messages before 503")
    p.add_argument(
        "--log-sync",
        choices=["normal", "full"],
        default="normal",
        help="SQLite synchronous mode: normal (durable across crashes) or full (also power loss; fsync)",
    )
    p.add_argument("--max-connections", type=int, default=512, help="open connections per worker")
    p.add_argument("--header-timeout", type=float, default=10.0, help="seconds to receive request headers")
    p.add_argument("--body-timeout", type=float, default=10.0, help="seconds to receive a request body")
    p.add_argument("--keep-alive", type=float, default=5.0, help="idle keep-alive seconds")
    p.add_argument("--reload-seconds", type=float, default=None, help="champion poll interval (default 30)")
    p.add_argument("--pin-workers", action="store_true", help="pin worker i to usable core i")
    p.add_argument("--access-log", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=run_serve)


def run_serve(args) -> int:
    import os

    from serving.server import ServeOptions, serve

    reload_seconds = args.reload_seconds
    if reload_seconds is None:
        reload_seconds = float(os.environ.get("MANGA_RELOAD_SECONDS", "30"))
    serve(
        ServeOptions(
            model_dir=args.model,
            host=args.host,
            port=args.port,
            log_uri=args.log,
            workers=args.workers,
            threads=args.threads,
            graph=args.graph,
            micro_batch=args.max_batch,
            micro_wait_ms=args.max_wait_ms,
            max_pending=args.max_pending,
            log_sync=args.log_sync,
            max_connections=args.max_connections,
            header_timeout_s=args.header_timeout,
            body_timeout_s=args.body_timeout,
            keep_alive_s=args.keep_alive,
            reload_seconds=reload_seconds,
            pin_workers=args.pin_workers,
            access_log=args.access_log,
        )
    )
    return 0
