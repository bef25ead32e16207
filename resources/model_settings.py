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
    quantize: str = "auto"
    """"auto": add an int8 graph and serve it only if it passes the accuracy guard; "off": fp32 only."""
    quantization_min_agreement: float = 0.995
    """Share of validation messages on which int8 must predict the same intent as fp32."""
    quantization_max_ece_delta: float = 0.005
    """Largest |calibrated ECE change| int8 may cause on validation."""
    quantization_min_pooled_agreement: float = 0.998
    """Agreement int8 needs on validation + the half of the training messages that never rank layers."""
    quantization_min_ood_flag_agreement: float = 0.995
    """With an OOD detector in the artifact: pooled share of messages whose OOD flag int8 must keep."""
    quantization_min_route_agreement: float = 0.99
    """Likewise for the fitted route (route / clarify / fallback)."""
    quantization_min_out_of_scope_flag_agreement: float = 0.99
    """Share of the OOD validation pool's messages whose OOD flag int8 must keep."""
    quantization_max_fp32_matmuls: int = 3
    """Sensitive single weight MatMuls that may be kept in fp32 before whole layers are tried."""
    quantization_max_fp32_layers: int = 3
    """Sensitive encoder layers (or the head) that may be kept in fp32 before int8 is given up."""

    def quantization_guard(self):
        from manga_intent.quantization import QuantizationGuard

        return QuantizationGuard(
            min_agreement=self.quantization_min_agreement,
            max_ece_delta=self.quantization_max_ece_delta,
            min_pooled_agreement=self.quantization_min_pooled_agreement,
            min_ood_flag_agreement=self.quantization_min_ood_flag_agreement,
            min_route_agreement=self.quantization_min_route_agreement,
            min_out_of_scope_flag_agreement=self.quantization_min_out_of_scope_flag_agreement,
            max_fp32_matmuls=self.quantization_max_fp32_matmuls,
            max_fp32_groups=self.quantization_max_fp32_layers,
        )
