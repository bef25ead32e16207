"""The registered model itself: an MLflow `pyfunc` whose artifacts are the compiled classifier and its manifest.

    mlflow.pyfunc.load_model("models:/manga-intent-classifier@champion").predict(["where is my order?"])

returns one `IntentPrediction` per message (intent, calibrated confidence, top-3, OOD flag and the detector that
decided it, route) on any machine with MLflow and this project installed: no Dagster, no artifact store, no
training code. The signature comes from the type hints (a list of strings in, a list of predictions out).

Which graph runs is the pyfunc's `model_config["graph"]`, saved as the manifest's serving graph ("int8" when
the quantization guard passed it). The gate may pass a version with its fp32 graph instead (the version's
`serving_graph` tag); a plain alias load cannot see that tag, so load the gated graph with
`serving.registry.ModelRegistry.load_pyfunc(alias)`, or pass `model_config={"graph": "fp32"}` yourself.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import mlflow.pyfunc
from pydantic import BaseModel

COMPILED_ARTIFACT = "compiled"
GRAPH_CONFIG_KEY = "graph"
"""`model_config` key naming the ONNX graph to load; MLflow only lets a load override keys saved with the model."""
INPUT_EXAMPLE = ["where is my order?", "any isekai like Frieren?"]


class IntentScore(BaseModel):
    intent: str
    confidence: float


class IntentPrediction(BaseModel):
    intent: str
    confidence: float
    """Calibrated probability of `intent` (the artifact's fitted calibrator)."""
    top: list[IntentScore]
    is_ood: bool
    energy: float
    ood_detector: str = "energy"
    """Which OOD detector decided `is_ood` (`mahalanobis`, `knn`, `combined:...`, `msp` or `energy`)."""
    ood_score: float | None = None
    route: str | None = None
    """`route` / `clarify` / `fallback` by the artifact's fitted policy (None: the artifact has none)."""


class IntentClassifierPyfunc(mlflow.pyfunc.PythonModel):
    """Loads `artifacts/compiled` (ONNX Runtime or Neuron graphs + tokenizer + calibrator) and classifies."""

    def __getstate__(self) -> dict:
        # what is pickled into the model is the wrapper, never a loaded runtime session
        return {k: v for k, v in self.__dict__.items() if k != "_classifier"}

    def load_context(self, context) -> None:
        from manga_intent.compiled import CompiledClassifier

        graph = (context.model_config or {}).get(GRAPH_CONFIG_KEY)
        self._classifier = CompiledClassifier(Path(context.artifacts[COMPILED_ARTIFACT]), graph=graph or None)

    @property
    def graph(self) -> str:
        """The graph this loaded model runs ("int8", "fp32" or "neuron")."""
        return self._classifier.graph

    def predict(self, context, model_input: list[str], params=None) -> list[IntentPrediction]:
        predictions = self._classifier.classify(list(model_input), top_k=3)
        return [
            IntentPrediction(
                intent=p.intent,
                confidence=p.confidence,
                top=[IntentScore(**t) for t in p.top],
                is_ood=p.is_ood,
                energy=p.energy,
                ood_detector=p.ood_detector,
                ood_score=p.ood_score,
                route=p.route,
            )
            for p in predictions
        ]


def save_pyfunc(compiled_dir: str | Path, out_dir: str | Path, pip_requirements: list[str]) -> Path:
    """Write the MLflow model directory (MLmodel, pickled wrapper, artifacts/compiled, signature, example)."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / COMPILED_ARTIFACT  # MLflow names the copy after the directory
        shutil.copytree(compiled_dir, staged)
        mlflow.pyfunc.save_model(
            path=str(out_dir),
            python_model=IntentClassifierPyfunc(),
            artifacts={COMPILED_ARTIFACT: str(staged)},
            input_example=INPUT_EXAMPLE,
            pip_requirements=pip_requirements,
            model_config={GRAPH_CONFIG_KEY: _manifest_serving_graph(Path(compiled_dir))},
        )
    return Path(out_dir)


def _manifest_serving_graph(compiled_dir: Path) -> str:
    from manga_intent.compiled import MANIFEST, served_graph

    path = compiled_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{compiled_dir}: no {MANIFEST}; only a compiled artifact can be registered")
    return served_graph(json.loads(path.read_text()))
