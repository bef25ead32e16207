"""Build and run the service: `manga-intent serve [--model DIR] [--host H] [--port P]`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from serving.app import ChampionModel, FixedModel, ModelHolder, ServiceSettings, create_app
from serving.prediction_log import default_log_uri, open_prediction_log


def fixed_model_source(directory: str | Path) -> FixedModel:
    """A compiled artifact directory as is; a `manga-intent train` directory is compiled to ONNX first.

    A plain trained model is served at the temperature `manga-intent train` fitted on validation (T=1 for
    models trained before calibration was stored), with OOD off: it has no OOD threshold yet.
    """
    directory = Path(directory)
    if (directory / "manifest.json").is_file():
        return FixedModel(directory, version=f"local:{directory.name}")
    if (directory / "model_card.json").is_file():
        from manga_intent.compiled import compile_classifier
        from manga_intent.model_io import load_trained, read_temperature

        model, tokenizer, card = load_trained(directory)
        temperature = read_temperature(directory)  # fitted on validation by `manga-intent train`
        out = Path(tempfile.mkdtemp(prefix="manga-serve-compiled-"))
        compile_classifier(
            model,
            tokenizer,
            out,
            labels=card["labels"],
            temperature=temperature,
            ood_threshold=float("inf"),
            max_length=card["recipe"]["max_length"],
            backend="auto",
        )
        return FixedModel(out, version=f"local:{directory.name}")
    raise FileNotFoundError(
        f"{directory}: neither a compiled artifact (manifest.json) nor a trained model (model_card.json)"
    )


def build_app(
    model_dir: str | None = None,
    *,
    log_uri: str | None = None,
    settings: ServiceSettings | None = None,
    registry=None,
    shadow_budget_ms: float | None = None,
):
    """The app and its model holder: a fixed model, or the registry's champion with its challenger in shadow."""
    settings = settings or ServiceSettings(reload_seconds=float(os.environ.get("MANGA_RELOAD_SECONDS", "30")))
    log_uri = log_uri or default_log_uri()
    if model_dir:
        holder = ModelHolder(fixed_model_source(model_dir), settings.reload_seconds)
    else:
        from serving.registry import ModelRegistry, default_tracking_uri
        from serving.shadow import ShadowScorer, open_shadow_log

        budget = shadow_budget_ms or float(os.environ.get("MANGA_SHADOW_BUDGET_MS", "50"))
        holder = ModelHolder(
            ChampionModel(registry or ModelRegistry(default_tracking_uri())),
            settings.reload_seconds,
            shadow=ShadowScorer(open_shadow_log(log_uri), budget_ms=budget),
        )
    holder.refresh()
    if not model_dir:
        holder.start()
    return create_app(holder, open_prediction_log(log_uri), settings), holder


def serve(model_dir: str | None, host: str, port: int, log_uri: str | None = None) -> None:
    import uvicorn

    app, _ = build_app(model_dir, log_uri=log_uri)
    uvicorn.run(app, host=host, port=port, log_level="info")
