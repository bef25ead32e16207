"""The serving artifact: a compiled classifier plus its calibrator and OOD threshold.

On an AWS Neuron machine the model is compiled with `torch_neuronx.trace` once per sequence-length
bucket (Neuron graphs have static shapes; messages are padded up to the smallest bucket that fits).
Everywhere else it is exported to ONNX and run by ONNX Runtime. Both sit behind `CompiledClassifier`,
so serving code, the golden-set gate and the latency benchmark never branch on the backend.

Artifact directory layout: `manifest.json`, the tokenizer files, then `model.onnx` or
`neuron_<bucket>.pt` per bucket.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from manga_intent.data import clean_text
from manga_intent.inference import softmax
from manga_intent.ood import energy_score

MANIFEST = "manifest.json"


class _LogitsAndFeatures(torch.nn.Module):
    """Positional (input_ids, attention_mask) → (logits, features): the signature tracers and exporters want.

    `features` are the pooled sentence features before the head's dropout and linear layer (the
    pooling is inside the graph). A pooled classifier returns them itself; for any other Hugging Face
    classifier they are the input of its final linear layer, captured by a forward hook.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        self._captured = None
        self._native = hasattr(model, "features") and hasattr(model.config, "pooling")
        if not self._native:
            head = _final_linear(model)
            head.register_forward_hook(lambda module, inputs, output: setattr(self, "_captured", inputs[0]))

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        features = out.features if self._native else self._captured
        return out.logits, features


def _final_linear(model) -> torch.nn.Linear:
    for name in ("classifier", "score", "head"):
        module = getattr(model, name, None)
        if isinstance(module, torch.nn.Linear):
            return module
        if module is not None:  # e.g. RobertaClassificationHead: its out_proj
            linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
            if linears:
                return linears[-1]
    raise ValueError(
        f"{type(model).__name__}: cannot find the classifier's final linear layer for `features`"
    )


def neuron_available() -> bool:
    return importlib.util.find_spec("torch_neuronx") is not None


def choose_backend(requested: str) -> str:
    if requested == "auto":
        return "neuron" if neuron_available() else "onnx"
    if requested == "neuron" and not neuron_available():
        raise RuntimeError(
            "backend 'neuron' needs torch_neuronx (AWS Neuron SDK on an inf2/trn1 instance); "
            "use backend 'auto' or 'onnx' on other machines"
        )
    if requested not in ("neuron", "onnx"):
        raise ValueError(f"unknown compile backend {requested!r}: use auto, neuron or onnx")
    return requested


def _example(tokenizer, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = tokenizer(
        "Show me horror manga like Berserk",
        padding="max_length",
        truncation=True,
        max_length=length,
        return_tensors="pt",
    )
    return encoded["input_ids"], encoded["attention_mask"]


def compile_classifier(
    model,
    tokenizer,
    out_dir: str | Path,
    *,
    labels: Sequence[str],
    temperature: float,
    ood_threshold: float,
    max_length: int = 128,
    backend: str = "auto",
    sequence_buckets: Sequence[int] = (16, 32, 64, 128),
) -> dict:
    """Compile `model` into `out_dir` and write the manifest; returns the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backend = choose_backend(backend)
    wrapped = _LogitsAndFeatures(model.eval()).eval()
    buckets = sorted({b for b in sequence_buckets if b <= max_length} | {max_length})
    files: dict[str, str] = {}
    with torch.no_grad():
        if backend == "neuron":
            import torch_neuronx  # available only on AWS Neuron machines

            for bucket in buckets:
                traced = torch_neuronx.trace(wrapped, _example(tokenizer, bucket))
                name = f"neuron_{bucket}.pt"
                torch.jit.save(traced, str(out / name))
                files[str(bucket)] = name
        else:
            torch.onnx.export(
                wrapped,
                _example(tokenizer, 16),
                str(out / "model.onnx"),
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=["logits", "features"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "logits": {0: "batch"},
                    "features": {0: "batch"},
                },
                opset_version=17,
            )
            files["dynamic"] = "model.onnx"
    tokenizer.save_pretrained(out)
    manifest = {
        "format": "manga-intent-compiled/2",
        "backend": backend,
        "files": files,
        "buckets": buckets,
        "outputs": ["logits", "features"],
        "labels": list(labels),
        "temperature": float(temperature),
        "ood_threshold": float(ood_threshold),
        "max_length": int(max_length),
        "pad_token_id": int(tokenizer.pad_token_id),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


@dataclass
class Prediction:
    intent: str
    confidence: float
    top: list[dict]
    energy: float
    is_ood: bool


class CompiledClassifier:
    """tokenize → compiled logits → temperature-calibrated probabilities → energy OOD score."""

    def __init__(self, directory: str | Path):
        from transformers import AutoTokenizer

        self.directory = Path(directory)
        manifest_path = self.directory / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{self.directory}: no {MANIFEST}; not a compiled manga-intent artifact")
        self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.labels: list[str] = self.manifest["labels"]
        self.temperature: float = self.manifest["temperature"]
        self.ood_threshold: float = self.manifest["ood_threshold"]
        self.max_length: int = self.manifest["max_length"]
        self.backend: str = self.manifest["backend"]
        self.tokenizer = AutoTokenizer.from_pretrained(self.directory, local_files_only=True)
        if self.backend == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = ort.InferenceSession(
                str(self.directory / self.manifest["files"]["dynamic"]),
                options,
                providers=["CPUExecutionProvider"],
            )
        else:
            import torch_neuronx  # noqa: F401 - registers the Neuron runtime ops for torch.jit.load

            self._neuron = {
                int(b): torch.jit.load(str(self.directory / f)) for b, f in self.manifest["files"].items()
            }

    def _bucket(self, length: int) -> int:
        return next((b for b in self.manifest["buckets"] if b >= length), self.manifest["buckets"][-1])

    def _run(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        cleaned = [clean_text(t) for t in texts]
        encoded = self.tokenizer(
            cleaned, truncation=True, max_length=self.max_length, padding="longest", return_tensors="np"
        )
        ids = encoded["input_ids"].astype(np.int64)
        mask = encoded["attention_mask"].astype(np.int64)
        if self.backend == "onnx":
            names = [o.name for o in self._session.get_outputs()]
            outs = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            by_name = dict(zip(names, outs))
            return by_name["logits"], by_name.get(
                "features"
            )  # artifacts older than format 2 have no features
        bucket = self._bucket(ids.shape[1])
        pad = bucket - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=self.manifest["pad_token_id"])
        mask = np.pad(mask, ((0, 0), (0, pad)))
        with torch.inference_mode():  # compiled for batch size 1
            rows = [
                self._neuron[bucket](torch.from_numpy(ids[i : i + 1]), torch.from_numpy(mask[i : i + 1]))
                for i in range(len(ids))
            ]
        if rows and isinstance(rows[0], (tuple, list)):
            return (
                torch.cat([r[0] for r in rows]).float().numpy(),
                torch.cat([r[1] for r in rows]).float().numpy(),
            )
        return torch.cat(rows).float().numpy(), None

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits in input order (batch padded to its longest row, or to a bucket on Neuron)."""
        return self._run(texts)[0]

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled sentence features (before the head's dropout/linear), for feature-space OOD detectors."""
        features = self._run(texts)[1]
        if features is None:
            raise ValueError(f"{self.directory}: this artifact was compiled without a `features` output")
        return features

    def logits_and_features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        return self._run(texts)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return softmax(self.logits(texts), self.temperature)

    def classify(self, texts: Sequence[str], top_k: int = 3) -> list[Prediction]:
        logits = self.logits(texts)
        probs = softmax(logits, self.temperature)
        energies = energy_score(logits)
        out = []
        for row, energy in zip(probs, energies):
            order = np.argsort(-row)[:top_k]
            top = [{"intent": self.labels[i], "confidence": float(row[i])} for i in order]
            out.append(
                Prediction(
                    top[0]["intent"],
                    top[0]["confidence"],
                    top,
                    float(energy),
                    bool(energy > self.ood_threshold),
                )
            )
        return out


def parity_max_abs_diff(
    compiled: CompiledClassifier, model, texts: Sequence[str], *, features: bool = True
) -> float:
    """Largest |compiled − eager| over `texts`, each run alone (the serving shape): logits and, when the
    artifact has them, the pooled features."""
    wrapped = _LogitsAndFeatures(model.eval()).eval()
    worst = 0.0
    for text in texts:
        batch = compiled.tokenizer(
            [clean_text(text)], truncation=True, max_length=compiled.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            eager_logits, eager_features = wrapped(batch["input_ids"], batch["attention_mask"])
        logits, feats = compiled.logits_and_features([text])
        worst = max(worst, float(np.abs(logits - eager_logits.float().numpy()).max()))
        if features and feats is not None:
            worst = max(worst, float(np.abs(feats - eager_features.float().numpy()).max()))
    return worst


def latency_profile(compiled: CompiledClassifier, texts: Sequence[str], warmup: int = 20) -> dict:
    """Single-message end-to-end latency (tokenize → logits → calibrated probs → OOD) in ms."""
    for text in list(texts)[:warmup]:
        compiled.classify([text])
    samples = []
    for text in texts:
        start = time.perf_counter()
        compiled.classify([text])
        samples.append((time.perf_counter() - start) * 1000)
    values = np.array(samples)
    return {
        "n": len(values),
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
    }


class ParityError(RuntimeError):
    """The compiled graph's logits differ from the eager model's by more than the tolerance."""

    def __init__(self, max_abs_diff: float, tolerance: float):
        self.max_abs_diff, self.tolerance = max_abs_diff, tolerance
        super().__init__(f"compiled logits differ from eager by {max_abs_diff:.2e} > {tolerance}")


@dataclass(frozen=True)
class BuiltArtifact:
    manifest: dict
    parity_max_abs_diff: float
    latency: dict


def build_artifact(
    model,
    tokenizer,
    out_dir: str | Path,
    *,
    labels: Sequence[str],
    temperature: float,
    ood_threshold: float,
    check_texts: Sequence[str],
    max_length: int = 128,
    backend: str = "auto",
    sequence_buckets: Sequence[int] = (16, 32, 64, 128),
    parity_tolerance: float = 1e-3,
    latency_warmup: int = 20,
) -> BuiltArtifact:
    """Compile, then prove it: logit parity with the eager model and single-message latency on `check_texts`.

    Raises ParityError (nothing is returned) when the compiled graph disagrees with the eager model.
    """
    manifest = compile_classifier(
        model,
        tokenizer,
        out_dir,
        labels=labels,
        temperature=temperature,
        ood_threshold=ood_threshold,
        max_length=max_length,
        backend=backend,
        sequence_buckets=sequence_buckets,
    )
    compiled = CompiledClassifier(out_dir)
    parity = parity_max_abs_diff(compiled, model, check_texts)
    if parity > parity_tolerance:
        raise ParityError(parity, parity_tolerance)
    return BuiltArtifact(manifest, parity, latency_profile(compiled, check_texts, warmup=latency_warmup))
