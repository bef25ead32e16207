"""The `manga-intent serve` subcommand, plugged into the core CLI through the `manga_intent.cli` entry point.

The core CLI never imports the service layer: it loads subcommand plugins by entry point, and this one
imports FastAPI and uvicorn only when `serve` actually runs.
"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="run the inference service (champion from the registry, or --model)"
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
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=run_serve)


def run_serve(args) -> int:
    from serving.server import serve

    serve(args.model, args.host, args.port, log_uri=args.log)
    return 0
