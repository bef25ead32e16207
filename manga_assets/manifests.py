"""What the assets hand each other: small frozen records with URIs, versions and headline numbers.

Weights, graphs and snapshots live in the artifact store; these records only point at them. Every record
round-trips through JSON (`as_dict` / `from_dict`), which is how it also appears in asset metadata under
`manifest`, so a report can rebuild it from the Dagster instance.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, TypeVar

T = TypeVar("T", bound="Manifest")


@dataclass(frozen=True)
class Manifest:
    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls: type[T], payload: dict[str, Any]) -> T:
        names = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in payload]
        if missing:
            raise ValueError(f"{cls.__name__} manifest lacks {missing}")
        return cls(**{k: v for k, v in payload.items() if k in names})


@dataclass(frozen=True)
class HumanLabelsExport(Manifest):
    """The agreed human labels exported from Label Studio (a JSONL file in the artifact store)."""

    uri: str | None
    """None until the first export with labels."""
    labels: int
    review_uri: str | None = None
    max_annotation_id: int = 0
    source: str = "label_studio"
    """`label_studio`, or `previous export` when Label Studio was unreachable and the last export was kept."""


@dataclass(frozen=True)
class DatasetSnapshot(Manifest):
    """The validated labelled pool (corpus + human labels) as one JSONL snapshot."""

    uri: str
    data_version: str
    rows: int


@dataclass(frozen=True)
class SyntheticSet(Manifest):
    """Consensus-filtered generated rows: `kept_uri` trains, `review_uri` goes to people."""

    uri: str
    kept_uri: str
    review_uri: str
    kept: int
    flagged: int


@dataclass(frozen=True)
class HpoResult(Manifest):
    """A finished Optuna study: its best trial and what it was searched for (base model, label set)."""

    study_name: str
    storage: str
    best_params: dict[str, Any]
    best_value: float
    n_trials: int
    best_trial: int = -1
    base_model: str = ""
    """The resolved base model the trials fine-tuned: params are only reused for the same one."""
    labels: list[str] = field(default_factory=list)
    data_version: str = ""


@dataclass(frozen=True)
class TrainedModel(Manifest):
    """A fine-tuned model directory (Hugging Face `save_pretrained` + model card) for one training seed."""

    model_uri: str
    seed: int
    mlflow_run_id: str
    split_seed: int
    data_version: str
    metrics: dict[str, Any]
    recipe: dict[str, Any]
    train_label_shares: dict[str, float] = field(default_factory=dict)
    synthetic_uri: str = ""
    """The kept synthetic set it trained on ("" = none): with the dataset, what shadow accuracy must not
    count (the whole kept set, a superset of the capped rows it trained on)."""
    synthetic_rows: int = 0
    """How many of the kept rows it trained on (`TrainedModelConfig.synthetic_share`)."""


@dataclass(frozen=True)
class Calibration(Manifest):
    """Temperature and OOD threshold fitted on validation data, with held-out scores."""

    temperature: float
    ood_threshold: float
    seed: int
    validation_fit: dict[str, Any]
    test: dict[str, float]
    ood_fit: dict[str, Any]
    ood_heldout: dict[str, Any]
    calibration_uri: str | None = None
    """The serving calibration files (calibrator, OOD detector with its statistics, routing policy)."""
    calibrator: dict[str, Any] = field(default_factory=dict)
    """`calibrators.Calibrator.as_dict()`: family, per-class scale and bias (empty for temperature-only)."""
    ood_detector: str = "energy"
    routing: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompiledModel(Manifest):
    """The serving artifact (Neuron or ONNX) registered as a model version awaiting the gate."""

    artifact_uri: str
    backend: str
    model_version: str
    seed: int
    latency: dict[str, float]
    parity_max_abs_diff: float
    serving_graph: str = "fp32"
    """`manga_intent.compiled.served_graph`: "neuron" for a Neuron artifact; "int8" when the quantized graph
    passed the accuracy guard on validation; else "fp32"."""
    quantization: dict[str, Any] = field(default_factory=dict)
    """`manga_intent.quantization.QuantizationReport.as_dict()` (empty when quantization was off)."""


@dataclass(frozen=True)
class AuditExport(Manifest):
    """Human labels of the random audit slice with the model's answers (JSONL in the artifact store)."""

    uri: str
    labels: int
    max_annotation_id: int = 0


@dataclass(frozen=True)
class MethodRun(Manifest):
    """One (method, seed) run of the comparative-methods grid, scored on the test split; the full record
    (per-example predictions for the paired tests) is JSON behind `record_uri`."""

    method: str
    seed: int
    record_uri: str
    data_version: str
    accuracy: float
    macro_f1: float
    rare_class_accuracy: float | None
    ece_calibrated: float
    p95_latency_ms: float
