import sys
import types

import numpy as np
import pytest
import torch
from conftest import tiny_classifier

from manga_intent.compiled import (
    CompiledClassifier,
    choose_backend,
    compile_classifier,
    latency_profile,
    neuron_available,
    parity_max_abs_diff,
    served_graph,
)
from manga_intent.inference import predict_logits, softmax
from manga_intent.ood import energy_score

LABELS = ["a", "b", "c"]
TEXTS = ["where is my order", "any isekai like frieren but darker?", "この漫画は英語ですか? vol 3", "hi"]


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory, tokenizer):
    model = tiny_classifier("bert", 3).eval()
    out = tmp_path_factory.mktemp("onnx")
    manifest = compile_classifier(
        model,
        tokenizer,
        out,
        labels=LABELS,
        temperature=0.5,
        ood_threshold=-1.0,
        backend="onnx",
        max_length=64,
    )
    return model, CompiledClassifier(out), manifest


def test_onnx_artifact_matches_eager_and_calibrates(onnx_artifact, tokenizer):
    model, compiled, manifest = onnx_artifact
    assert manifest["backend"] == "onnx" and manifest["buckets"][-1] == 64
    assert parity_max_abs_diff(compiled, model, TEXTS) <= 1e-4
    eager = predict_logits(model, tokenizer, TEXTS, max_length=64)
    batch = compiled.logits(TEXTS)  # batched, padded: still the same logits
    assert np.abs(batch - eager).max() <= 1e-4
    predictions = compiled.classify(TEXTS)
    expected = softmax(eager, 0.5)
    for row, prediction, energy in zip(expected, predictions, energy_score(eager)):
        assert prediction.intent == LABELS[row.argmax()]
        assert prediction.confidence == pytest.approx(row.max(), abs=1e-4)
        assert prediction.is_ood == (energy > -1.0)
        assert len(prediction.top) == 3


def test_latency_profile(onnx_artifact):
    _, compiled, _ = onnx_artifact
    profile = latency_profile(compiled, TEXTS * 5, warmup=2)
    assert profile["n"] == 20 and 0 < profile["p50_ms"] <= profile["p95_ms"] <= profile["p99_ms"]


def test_backend_choice_without_neuron_sdk():
    if neuron_available():
        pytest.skip("this machine has the Neuron SDK")
    assert choose_backend("auto") == "onnx"
    with pytest.raises(RuntimeError, match="torch_neuronx"):
        choose_backend("neuron")
    with pytest.raises(ValueError, match="unknown compile backend"):
        choose_backend("tensorrt")


def test_neuron_code_path_with_a_stand_in_tracer(tmp_path, tokenizer, monkeypatch):
    """Exercises our bucketing/saving/loading around torch_neuronx.trace.

    torch_neuronx only exists on AWS Neuron machines; here `trace` is stood in by torch.jit.trace
    (same call shape: module, example input tuple → TorchScript module), so what this covers is our
    static-shape bucket logic, not the Neuron compiler.
    """
    fake = types.ModuleType("torch_neuronx")
    fake.trace = lambda module, example_inputs: torch.jit.trace(module, example_inputs)
    monkeypatch.setitem(sys.modules, "torch_neuronx", fake)
    monkeypatch.setattr("manga_intent.compiled.neuron_available", lambda: True)
    model = tiny_classifier("bert", 3).eval()
    manifest = compile_classifier(
        model,
        tokenizer,
        tmp_path,
        labels=LABELS,
        temperature=1.0,
        ood_threshold=0.0,
        backend="neuron",
        sequence_buckets=(8, 16, 32),
        max_length=32,
    )
    assert manifest["backend"] == "neuron" and manifest["buckets"] == [8, 16, 32]
    assert sorted(manifest["files"].values()) == ["neuron_16.pt", "neuron_32.pt", "neuron_8.pt"]
    compiled = CompiledClassifier(tmp_path)
    eager = predict_logits(model, tokenizer, TEXTS, max_length=32)
    assert np.abs(compiled.logits(TEXTS) - eager).max() <= 1e-4
    assert compiled._bucket(5) == 8 and compiled._bucket(9) == 16 and compiled._bucket(100) == 32


def test_pooled_classifier_exports_logits_and_features_with_pooling_in_the_graph(tmp_path, tokenizer):
    import onnx
    from conftest import tiny_pooled_classifier

    model = tiny_pooled_classifier(3, pooling="mean").eval()
    manifest = compile_classifier(
        model,
        tokenizer,
        tmp_path,
        labels=LABELS,
        temperature=0.7,
        ood_threshold=0.0,
        backend="onnx",
        max_length=64,
    )
    assert manifest["outputs"] == ["logits", "features"]
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["logits", "features"]
    assert any(node.op_type == "ReduceSum" for node in graph.node)  # the masked mean is inside the graph
    compiled = CompiledClassifier(tmp_path)
    assert parity_max_abs_diff(compiled, model, TEXTS) <= 1e-4  # logits and features, one message at a time
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        eager = model(**batch)
    logits, features = compiled.logits_and_features(TEXTS)  # batched with padding: pooling ignores the pads
    assert np.abs(logits - eager.logits.numpy()).max() <= 1e-4
    assert np.abs(features - eager.features.numpy()).max() <= 1e-4 and features.shape == (4, 64)
    assert np.abs(compiled.features(TEXTS) - features).max() == 0
    probs = compiled.probabilities(TEXTS)
    assert np.allclose(probs, softmax(eager.logits.numpy(), 0.7), atol=1e-5)


def test_served_graph_names_what_an_artifact_runs_by_default():
    """The registration tag, the asset contract and the pyfunc all read this: a Neuron artifact is never
    tagged as an ONNX graph, and an artifact from before quantization runs fp32."""
    assert served_graph({"backend": "neuron", "serving_graph": "fp32"}) == "neuron"
    assert served_graph({"backend": "onnx", "serving_graph": "int8"}) == "int8"
    assert served_graph({"backend": "onnx"}) == "fp32"
