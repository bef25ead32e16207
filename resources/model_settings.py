"""Typed settings for the base model and for compiling the serving artifact."""

import dagster as dg

from manga_intent.model_io import PACKAGED_MINILM, resolve_base_model


class BaseModelResource(dg.ConfigurableResource):
    """Which pre-trained encoder to fine-tune: the packaged MiniLM, a local HF directory or a cached hub id."""

    name_or_path: str = PACKAGED_MINILM

    def resolved(self) -> str:
        return resolve_base_model(self.name_or_path)


class CompileSettings(dg.ConfigurableResource):
    """How `neuron_artifact` compiles: Neuron when torch_neuronx is importable, else ONNX Runtime on CPU.

    `backend` "auto" picks by machine; "neuron" fails clearly where the Neuron SDK is missing;
    "onnx" forces the CPU artifact. Neuron graphs need static shapes, one per sequence bucket.
    """

    backend: str = "auto"
    sequence_buckets: list[int] = [16, 32, 64, 128]
    parity_tolerance: float = 1e-3
    latency_warmup: int = 20
