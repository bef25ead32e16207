"""The serving artifact: a compiled classifier plus its calibrator and OOD threshold.

On an AWS Neuron machine the model is compiled with `torch_neuronx.trace` once per sequence-length
bucket (Neuron graphs have static shapes; messages are padded up to the smallest bucket that fits).
Everywhere else it is exported to ONNX and run by ONNX Runtime. Both sit behind `CompiledClassifier`,
so serving code, the golden-set gate and the latency benchmark never branch on the backend.

Artifact directory layout: `manifest.json`, the tokenizer files, then `model.onnx` or
`neuron_<bucket>.pt` per bucket. An ONNX artifact may also hold an int8 graph (`model.int8.onnx`, see
`manga_intent.quantization`): `manifest["graphs"]` names every graph, `manifest["serving_graph"]` the one
served, and `manifest["quantization"]` why (agreement with fp32 and the calibrated-ECE change on validation).
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
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


def pad_batch(rows: Sequence[Sequence[int]], pad_token_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) int64 arrays, right-padded to the longest row."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def _fixed_encoder(tokenizer, max_length: int):
    """A private copy of the fast tokenizer with truncation set once and padding off, or None."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    encoder = Tokenizer.from_str(backend.to_str())
    encoder.no_padding()
    encoder.enable_truncation(max_length)
    return encoder


def compile_classifier(
    model,
    tokenizer,
    out_dir: str | Path,
    *,
    labels: Sequence[str],
    temperature: float | None = None,
    ood_threshold: float | None = None,
    max_length: int = 128,
    backend: str = "auto",
    sequence_buckets: Sequence[int] = (16, 32, 64, 128),
    calibration=None,
) -> dict:
    """Compile `model` into `out_dir` and write the manifest; returns the manifest.

    `calibration` (a `calibrator_fit.ServingCalibration`) puts the fitted calibrator, OOD detector (with
    the class means/precision or neighbour bank it needs) and routing policy into the artifact; without it
    the artifact carries only `temperature` and an energy `ood_threshold` (the format before the detector).
    """
    if calibration is not None:
        temperature, ood_threshold = calibration.temperature, calibration.detector.threshold
    if temperature is None or ood_threshold is None:
        raise ValueError("give either a serving calibration or both temperature and ood_threshold")
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
            with _eager_attention(model):
                _export_onnx(wrapped, tokenizer, out / "model.onnx")
            files["dynamic"] = "model.onnx"
    tokenizer.save_pretrained(out)
    serving = (
        {"files": calibration.save(out), "ood_detector": calibration.detector.kind} if calibration else None
    )
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
    if serving is not None:
        manifest["serving_calibration"] = serving
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


@contextmanager
def _eager_attention(model):
    """Export with the eager attention path: SDPA traces into ~150 more shape nodes (Shape, Gather,
    Unsqueeze, Concat, Where) that the CPU runs for every message; the eager graph computes the same
    logits and is 5-9% faster in int8 here (2.22 vs 2.43 ms P50 on one thread back to back, 3.17 vs
    3.32 ms with idle gaps between messages; 320 validation + test messages). Every Hugging Face model inside (a pooled classifier wraps its encoder) is switched;
    ones without an eager path export as they are; the caller's settings are restored."""
    from transformers import PreTrainedModel

    switched = []
    for module in model.modules():
        before = getattr(getattr(module, "config", None), "_attn_implementation", None)
        if isinstance(module, PreTrainedModel) and before not in (None, "eager"):
            try:
                module.set_attn_implementation("eager")
            except (ValueError, NotImplementedError):  # an architecture without an eager path
                continue
            switched.append((module, before))
    try:
        yield
    finally:
        for module, before in reversed(switched):
            module.set_attn_implementation(before)


def _export_onnx(wrapped, tokenizer, path: Path) -> None:
    torch.onnx.export(
        wrapped,
        _example(tokenizer, 16),
        str(path),
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


@dataclass
class Prediction:
    intent: str
    confidence: float
    top: list[dict]
    energy: float
    is_ood: bool
    ood_score: float | None = None
    """The artifact's OOD detector score (higher = more out of scope); `is_ood` is it above the threshold."""
    ood_detector: str = "energy"
    """Which detector decided `is_ood` (`mahalanobis`, `knn`, `combined:...`, or `energy`)."""
    route: str | None = None
    """`route` / `clarify` / `fallback` by the artifact's fitted policy (None: the artifact has none)."""
    joint_confidence: float | None = None
    """P(in scope) x calibrated top probability, what the clarify threshold is compared with."""


def served_graph(manifest: dict) -> str:
    """The graph an artifact runs unless told otherwise: "neuron" for a Neuron artifact, else the manifest's
    serving graph ("int8" when the quantization guard passed it; "fp32" for artifacts from before it)."""
    if manifest.get("backend") == "neuron":
        return "neuron"
    return manifest.get("serving_graph") or "fp32"


def graph_file(manifest: dict, graph: str | None = None) -> tuple[str, str]:
    """(graph name, file) of an ONNX artifact: `graph` if given, else the manifest's serving graph."""
    graphs = manifest.get("graphs") or {"fp32": manifest["files"]["dynamic"]}
    name = graph or served_graph(manifest)
    if name not in graphs:
        raise ValueError(f"artifact has no {name!r} graph (it has {sorted(graphs)})")
    return name, graphs[name]


def session_options(intra_op_threads: int | None = None, inter_op_threads: int | None = None):
    """ORT options with explicit threads: `intra_op_threads` per session (a serving worker's share of the
    cores), inter-op 1 and sequential execution (a small encoder has no parallel branches worth a pool)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads:
        options.intra_op_num_threads = int(intra_op_threads)
        options.inter_op_num_threads = int(inter_op_threads or 1)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


class CompiledClassifier:
    """tokenize → compiled logits (and pooled features) → calibrated probabilities → OOD score → route.

    The calibrator, OOD detector and routing policy are the artifact's serving calibration when it has one
    (`calibrator_fit.ServingCalibration`); older artifacts give the temperature and an energy threshold.

    Safe to call from several threads: the tokenizer is a private copy whose truncation is fixed once
    (HF tokenizers mutate padding state per call, which races as "Already borrowed"), and ONNX Runtime
    sessions are thread-safe. `graph` picks an ONNX graph ("fp32", "int8"; default: the served one).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        graph: str | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
    ):
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
        self._encoder = _fixed_encoder(self.tokenizer, self.max_length)
        self._tokenizer_lock = threading.Lock()  # only used when there is no fast (Rust) tokenizer
        self.graph = "neuron"
        self.recheck_margin: float | None = None
        """Serving int8: rows whose calibrated top-2 margin is below this are re-run on the fp32 graph."""
        self.rechecked = 0
        """Rows re-run on the fp32 graph so far (near ties)."""
        self.calibration = None
        self.detector = None
        if "serving_calibration" in self.manifest:
            from manga_intent.calibrator_fit import ServingCalibration

            self.calibration = ServingCalibration.load(self.directory)
            self.detector = self.calibration.detector
            self.temperature = self.calibration.temperature
            if self.detector.needs_features and "features" not in self.manifest.get("outputs", []):
                raise ValueError(f"{self.directory}: detector {self.detector.kind} needs a `features` output")
        if self.backend == "onnx":
            import onnxruntime as ort

            self.graph, filename = graph_file(self.manifest, graph)
            self._session = ort.InferenceSession(
                str(self.directory / filename),
                session_options(intra_op_threads, inter_op_threads),
                providers=["CPUExecutionProvider"],
            )
            self._output_names = [o.name for o in self._session.get_outputs()]
            margin = (self.manifest.get("quantization") or {}).get("recheck_margin")
            if self.graph == "int8" and margin:
                # near ties are re-run on the fp32 graph (the quantization guard's cascade candidate)
                self.recheck_margin = float(margin)
                self._fp32_session = ort.InferenceSession(
                    str(self.directory / graph_file(self.manifest, "fp32")[1]),
                    session_options(intra_op_threads, inter_op_threads),
                    providers=["CPUExecutionProvider"],
                )
        else:
            import torch_neuronx  # noqa: F401 - registers the Neuron runtime ops for torch.jit.load

            self._neuron = {
                int(b): torch.jit.load(str(self.directory / f)) for b, f in self.manifest["files"].items()
            }

    def _bucket(self, length: int) -> int:
        return next((b for b in self.manifest["buckets"] if b >= length), self.manifest["buckets"][-1])

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of the cleaned texts, truncated to max_length, unpadded."""
        cleaned = [clean_text(t) for t in texts]
        if self._encoder is not None:
            return [e.ids for e in self._encoder.encode_batch(cleaned)]
        with self._tokenizer_lock:
            return self.tokenizer(cleaned, truncation=True, max_length=self.max_length)["input_ids"]

    def length_groups(self, lengths: Sequence[int]) -> list[list[int]]:
        """Row indices grouped by sequence bucket, so a batch is padded only within its bucket."""
        groups: dict[int, list[int]] = {}
        for index, length in enumerate(lengths):
            groups.setdefault(self._bucket(length), []).append(index)
        return [groups[b] for b in sorted(groups)]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits in input order; rows are run per length bucket, each padded to its longest row."""
        return self.logits_for_ids(self.encode(texts))

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled sentence features (before the head's dropout/linear), for feature-space OOD detectors."""
        features = self.logits_and_features(texts)[1]
        if features is None:
            raise ValueError(f"{self.directory}: this artifact was compiled without a `features` output")
        return features

    def logits_and_features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
        return self._outputs_for_ids(self.encode(texts), with_features=True)

    def logits_for_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        return self._outputs_for_ids(ids, with_features=False)[0]

    def _outputs_for_ids(
        self, ids: Sequence[Sequence[int]], *, with_features: bool, session=None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        logits = features = None
        for group in self.length_groups([len(row) for row in ids]):
            group_logits, group_features = self._run_padded([ids[i] for i in group], with_features, session)
            if logits is None:
                logits = np.empty((len(ids), group_logits.shape[1]), dtype=group_logits.dtype)
                if group_features is not None:
                    features = np.empty((len(ids), group_features.shape[1]), dtype=group_features.dtype)
            logits[group] = group_logits
            if features is not None:
                features[group] = group_features
        if logits is None:
            return np.zeros((0, len(self.labels)), dtype=np.float32), None
        if self.recheck_margin is not None and session is None:
            self._recheck_near_ties(ids, logits, features, with_features)
        return logits, features

    def _recheck_near_ties(self, ids, logits: np.ndarray, features, with_features: bool) -> None:
        """Replace, in place, the int8 outputs of rows whose calibrated top-2 margin is below
        `recheck_margin` by the fp32 graph's: the guard set the margin at twice the largest probability
        error int8 made on training messages, so above it the two graphs cannot disagree on the argmax."""
        top2 = np.partition(self.calibrated_probabilities(logits), -2, axis=1)[:, -2:]
        near = np.flatnonzero(top2[:, 1] - top2[:, 0] < self.recheck_margin)
        if near.size == 0:
            return
        exact_logits, exact_features = self._outputs_for_ids(
            [ids[i] for i in near], with_features=with_features, session=self._fp32_session
        )
        logits[near] = exact_logits
        if features is not None and exact_features is not None:
            features[near] = exact_features
        self.rechecked += int(near.size)

    def fp32_logits_for_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits of the re-check (fp32) graph; of the served graph when it has none."""
        session = getattr(self, "_fp32_session", None)
        return self._outputs_for_ids(ids, with_features=False, session=session or self._session)[0]

    def _run_padded(self, rows: Sequence[Sequence[int]], with_features: bool = False, session=None):
        """(logits, features or None) for rows padded to their longest (to a bucket on Neuron)."""
        ids, mask = pad_batch(rows, self.manifest["pad_token_id"])
        if self.backend == "onnx":
            session = session or self._session
            feeds = {"input_ids": ids, "attention_mask": mask}
            if not with_features:
                return session.run(["logits"], feeds)[0], None
            by_name = dict(zip(self._output_names, session.run(None, feeds)))
            return by_name["logits"], by_name.get("features")  # artifacts before format 2 have none
        bucket = self._bucket(ids.shape[1])
        pad = bucket - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=self.manifest["pad_token_id"])
        mask = np.pad(mask, ((0, 0), (0, pad)))
        with torch.inference_mode():  # compiled for batch size 1
            outputs = [
                self._neuron[bucket](torch.from_numpy(ids[i : i + 1]), torch.from_numpy(mask[i : i + 1]))
                for i in range(len(ids))
            ]
        if outputs and isinstance(outputs[0], tuple | list):
            return (
                torch.cat([r[0] for r in outputs]).float().numpy(),
                torch.cat([r[1] for r in outputs]).float().numpy(),
            )
        return torch.cat(outputs).float().numpy(), None

    def outputs(self, texts: Sequence[str]):
        """`calibrator_fit.Outputs` (logits and features) of `texts`, for scoring a serving calibration."""
        from manga_intent.calibrator_fit import Outputs

        logits, features = self.logits_and_features(texts)
        return Outputs(logits, features)

    def calibrated_probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The artifact's calibrator (fitted family, or its temperature for artifacts without one)."""
        if self.calibration is not None:
            return self.calibration.probabilities(logits)
        return softmax(logits, self.temperature)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.calibrated_probabilities(self.logits(texts))

    def classify(self, texts: Sequence[str], top_k: int = 3) -> list[Prediction]:
        return self.predictions_for_ids(self.encode(texts), top_k)

    @property
    def needs_features(self) -> bool:
        """Whether the served OOD detector scores the pooled features (Mahalanobis, kNN, combined)."""
        return self.detector is not None and self.detector.needs_features

    def predictions_for_ids(self, ids: Sequence[Sequence[int]], top_k: int = 3) -> list[Prediction]:
        """`predictions` of token ids (from `encode`); the features are computed only when the detector
        needs them, so an artifact served by a logit score pays nothing for the second output."""
        if not ids:
            return []
        logits, features = self._outputs_for_ids(ids, with_features=self.needs_features)
        return self.predictions(logits, top_k, features=features)

    def predictions(
        self, logits: np.ndarray, top_k: int = 3, *, features: np.ndarray | None = None
    ) -> list[Prediction]:
        """Calibrated top-k, energy, the artifact's OOD score and flag, and its fitted route per row.

        `features` (the pooled output for the same rows) is required when the detector needs them.
        """
        if self.needs_features and features is None:
            raise ValueError(f"the {self.detector.kind} OOD detector needs the pooled features of these rows")
        probs = self.calibrated_probabilities(logits)
        energies = energy_score(logits)
        if self.detector is not None:
            scores = self.detector.score(logits, features)
            flagged = scores > self.detector.threshold
            policy = self.calibration.policy
            joint = policy.joint_confidence(probs.max(1), scores)
            routes = policy.decide(probs.max(1), scores)
        else:  # an artifact from before the detector: energy at the stored threshold, no fitted policy
            scores, flagged, joint, routes = energies, energies > self.ood_threshold, None, None
        kind = self.detector.kind if self.detector is not None else "energy"
        out = []
        for i, (row, energy) in enumerate(zip(probs, energies)):
            order = np.argsort(-row)[:top_k]
            top = [{"intent": self.labels[j], "confidence": float(row[j])} for j in order]
            out.append(
                Prediction(
                    top[0]["intent"],
                    top[0]["confidence"],
                    top,
                    float(energy),
                    bool(flagged[i]),
                    float(scores[i]),
                    kind,
                    None if routes is None else str(routes[i]),
                    None if joint is None else float(joint[i]),
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


def single_message_latencies(
    compiled: CompiledClassifier, texts: Sequence[str], warmup: int = 20
) -> np.ndarray:
    """End-to-end milliseconds per message (tokenize → logits → calibrated probs → OOD), one call each."""
    for text in list(texts)[:warmup]:
        compiled.classify([text])
    samples = []
    for text in texts:
        start = time.perf_counter()
        compiled.classify([text])
        samples.append((time.perf_counter() - start) * 1000)
    return np.array(samples)


def latency_profile(compiled: CompiledClassifier, texts: Sequence[str], warmup: int = 20) -> dict:
    """P50/P95/P99/mean of `single_message_latencies`, in ms."""
    values = single_message_latencies(compiled, texts, warmup)
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
    """fp32 graph vs the eager model."""
    latency: dict
    """Single-message latency of the served graph."""
    quantization: dict | None = None
    """`QuantizationReport.as_dict()` when int8 was considered."""


def build_artifact(
    model,
    tokenizer,
    out_dir: str | Path,
    *,
    labels: Sequence[str],
    temperature: float | None = None,
    ood_threshold: float | None = None,
    check_texts: Sequence[str],
    max_length: int = 128,
    backend: str = "auto",
    sequence_buckets: Sequence[int] = (16, 32, 64, 128),
    parity_tolerance: float = 1e-3,
    latency_warmup: int = 20,
    quantize: str = "off",
    validation: Sequence[tuple[str, str]] = (),
    calibration_texts: Sequence[str] = (),
    out_of_scope_texts: Sequence[str] = (),
    quantization_guard=None,
    calibration=None,
) -> BuiltArtifact:
    """Compile, then prove it: logit parity with the eager model and single-message latency on `check_texts`.

    `quantize="auto"` adds an int8 graph and serves it only if it passes the accuracy guard on `validation`
    ((text, label) pairs; see `manga_intent.quantization`), ranking sensitive layers on `calibration_texts`
    (training messages) and judging the OOD flag on `out_of_scope_texts` too (the OOD validation pool).
    `calibration` puts the serving calibration into the artifact (`compile_classifier`); the guard then
    judges calibrated predictions with its calibrator. Raises ParityError (nothing is
    returned) when the fp32 graph disagrees with the eager model.
    """
    if quantize not in ("off", "auto"):
        raise ValueError(f"quantize must be 'off' or 'auto', got {quantize!r}")
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
        calibration=calibration,
    )
    compiled = CompiledClassifier(out_dir, graph="fp32" if manifest["backend"] == "onnx" else None)
    parity = parity_max_abs_diff(compiled, model, check_texts)
    if parity > parity_tolerance:
        raise ParityError(parity, parity_tolerance)
    report = None
    if quantize == "auto" and manifest["backend"] == "onnx":
        from manga_intent.quantization import quantize_with_guard

        report = quantize_with_guard(
            out_dir,
            validation_texts=[text for text, _ in validation],
            validation_labels=[label for _, label in validation],
            calibration_texts=calibration_texts,
            out_of_scope_texts=out_of_scope_texts,
            guard=quantization_guard,
        ).as_dict()
        manifest = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
        compiled = CompiledClassifier(out_dir)
    latency = latency_profile(compiled, check_texts, warmup=latency_warmup)
    return BuiltArtifact(manifest, parity, latency, report)
