"""The registered model itself: an MLflow `pyfunc` whose artifacts are the compiled classifier and its manifest.

    mlflow.pyfunc.load_model("models:/manga-intent-classifier@champion").predict(["where is my order?"])

returns one `IntentPrediction` per message (intent, calibrated confidence, top-3, OOD flag) on any machine with
MLflow and this project installed: no Dagster, no artifact store, no training code. The signature comes from
the type hints (a list of strings in, a list of predictions out).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow.pyfunc
from pydantic import BaseModel

COMPILED_ARTIFACT = "compiled"
INPUT_EXAMPLE = ["where is my order?", "any isekai like Frieren?"]


class IntentScore(BaseModel):
    intent: str
    confidence: float


class IntentPrediction(BaseModel):
    intent: str
    confidence: float
    """Temperature-calibrated probability of `intent`."""
    top: list[IntentScore]
    is_ood: bool
    energy: float


class IntentClassifierPyfunc(mlflow.pyfunc.PythonModel):
    """Loads `artifacts/compiled` (ONNX Runtime or Neuron graphs + tokenizer + calibrator) and classifies."""

    def __getstate__(self) -> dict:
        # what is pickled into the model is the wrapper, never a loaded runtime session
        return {k: v for k, v in self.__dict__.items() if k != "_classifier"}

    def load_context(self, context) -> None:
        from manga_intent.compiled import CompiledClassifier

        self._classifier = CompiledClassifier(Path(context.artifacts[COMPILED_ARTIFACT]))

    def predict(self, context, model_input: list[str], params=None) -> list[IntentPrediction]:
        predictions = self._classifier.classify(list(model_input), top_k=3)
        return [
            IntentPrediction(
                intent=p.intent,
                confidence=p.confidence,
                top=[IntentScore(**t) for t in p.top],
                is_ood=p.is_ood,
                energy=p.energy,
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
        )
    return Path(out_dir)
