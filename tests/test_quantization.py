"""The int8 serving graph and its accuracy guard; bucketed, thread-safe inference on the compiled artifact."""

import json
import threading

import numpy as np
import pytest
import torch
from conftest import tiny_classifier

from manga_intent.compiled import CompiledClassifier, build_artifact, compile_classifier
from manga_intent.data import load_jsonl, make_splits
from manga_intent.inference import predict_logits
from manga_intent.quantization import QuantizationGuard, layer_groups, quantize_with_guard
from manga_intent.shipped_data import SEED_CORPUS
from manga_intent.taxonomy import INTENTS


@pytest.fixture(scope="module")
def splits():
    return make_splits(load_jsonl(SEED_CORPUS.path).examples, seed=42)


def compiled(tmp_path, tokenizer, seed=0, model=None):
    model = model if model is not None else tiny_classifier("bert", len(INTENTS), seed=seed).eval()
    compile_classifier(
        model,
        tokenizer,
        tmp_path,
        labels=INTENTS,
        temperature=0.7,
        ood_threshold=0.0,
        backend="onnx",
        max_length=64,
    )
    return model


def test_int8_is_served_only_with_the_guard_passed(tmp_path, tokenizer, splits):
    model = tiny_classifier("bert", len(INTENTS)).eval()
    built = build_artifact(
        model,
        tokenizer,
        tmp_path,
        labels=INTENTS,
        temperature=0.7,
        ood_threshold=0.0,
        check_texts=[e.text for e in splits.val[:10]],
        max_length=64,
        backend="onnx",
        quantize="auto",
        validation=[(e.text, e.label) for e in splits.val],
        calibration_texts=[e.text for e in splits.train[:200]],
    )
    report = built.quantization
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert report["served"] == manifest["serving_graph"] == "int8", report["reason"]
    assert manifest["graphs"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert report["agreement"] >= 0.995 and abs(report["ece_delta"]) <= 0.005
    assert report["validation_messages"] == len(splits.val)
    assert report["pooled_messages"] == len(splits.val) + 100  # + the judging half of 200 training messages
    assert report["pooled_agreement"] >= 0.998
    assert report["candidates"][0]["candidate"] == "fp32 (reference)" and report["candidates"][1]["passed"]
    assert "AMX" in report["bf16"] or "bf16" in report["bf16"]
    served, fp32 = CompiledClassifier(tmp_path), CompiledClassifier(tmp_path, graph="fp32")
    assert served.graph == "int8" and fp32.graph == "fp32"
    texts = [e.text for e in splits.val[:40]]
    agree = (served.logits(texts).argmax(1) == fp32.logits(texts).argmax(1)).mean()
    assert agree >= 0.95
    assert built.parity_max_abs_diff <= 1e-3  # parity is the fp32 graph's, against eager
    assert built.latency["n"] == 10


def test_guard_failing_serves_fp32_and_says_why(tmp_path, tokenizer, splits):
    compiled(tmp_path, tokenizer)
    (tmp_path / "model.int8.onnx").write_bytes(b"stale")  # a previous build's file must not survive
    report = quantize_with_guard(
        tmp_path,
        validation_texts=[e.text for e in splits.val[:60]],
        validation_labels=[e.label for e in splits.val[:60]],
        calibration_texts=[e.text for e in splits.train[:60]],
        guard=QuantizationGuard(min_agreement=1.01, max_fp32_matmuls=2, max_fp32_groups=2),  # unreachable
    )
    assert report.served == "fp32" and report.agreement is None
    assert report.reason.startswith("no int8 candidate met the guard") and "serving fp32" in report.reason
    tried = [row["candidate"] for row in report.candidates]
    full = [t for t in tried if t.startswith("int8 dynamic, per-channel")]
    recheck = [t for t in tried if "fp32 re-run below margin" in t and "outlier" not in t]
    smoothed = [t for t in tried if "smoothed (alpha" in t]  # alone, then re-checked
    recheck = [t for t in recheck if "smoothed" not in t]
    split = [t for t in tried if "outlier channels fp32" in t]  # alone, then re-checked
    singles = [t for t in tried if "MatMul(s) fp32" in t]
    ladder = [t for t in tried if "group(s) fp32" in t]
    assert tried[0] == "fp32 (reference)" and len(full) in (1, 2)  # 7- and 8-bit weights without VNNI
    assert len(smoothed) == 2 and smoothed[1].startswith(smoothed[0] + ", fp32 re-run below margin")
    assert len(recheck) == 1 and len(split) == (2 if report.outlier_channels.get("channels") else 0)
    assert [t.split(", ")[-1] for t in singles] == ["1 MatMul(s) fp32", "2 MatMul(s) fp32"]
    assert [t.split(", ")[-1] for t in ladder] == ["1 group(s) fp32", "2 group(s) fp32"]
    # cheapest first: whole int8, re-checked, smoothed (re-checked), on the outlier split (re-checked),
    # then MatMuls, then layers
    assert tried == ["fp32 (reference)", *full, *recheck, *smoothed, *split, *singles, *ladder]
    cascade = next(row for row in report.candidates if row["candidate"] == recheck[0])
    assert cascade["recheck_margin"] > 0 and 0 <= cascade["recheck_rate"] <= 1
    assert not cascade["outlier_split"] and report.outlier_channels["served"] is False
    assert report.recheck_margin is None  # nothing passed: no re-check either
    for stage in ("MatMul(s) fp32", "group(s) fp32"):
        kept = [row["fp32_groups"] for row in report.candidates if stage in row["candidate"]]
        assert kept[1].startswith(kept[0] + ", ")  # each ladder keeps the most sensitive and adds the next
    single_kept = [row["fp32_groups"] for row in report.candidates if "MatMul(s) fp32" in row["candidate"]]
    assert all(name.startswith(("layer", "model")) for name in single_kept[1].split(", "))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["serving_graph"] == "fp32" and "int8" not in manifest["graphs"]
    assert not (tmp_path / "model.int8.onnx").exists()
    assert CompiledClassifier(tmp_path).graph == "fp32"


def test_agreeing_on_validation_is_not_enough_without_the_pooled_sample(tmp_path, tokenizer, splits):
    """A candidate with no flip on a small validation split still needs the larger pooled check."""
    compiled(tmp_path, tokenizer)
    train = [e.text for e in splits.train[:80]]
    report = quantize_with_guard(
        tmp_path,
        validation_texts=[e.text for e in splits.val[:40]],
        validation_labels=[e.label for e in splits.val[:40]],
        calibration_texts=train,
        guard=QuantizationGuard(
            min_agreement=0.0, max_ece_delta=1.0, min_pooled_agreement=1.01, max_fp32_groups=1
        ),
    )
    assert report.served == "fp32" and report.pooled_agreement is None
    assert report.pooled_messages == 40 + len(train[1::2])
    assert "pooled messages" in report.reason and ">= 101.0%" in report.reason
    assert all(row["agreement"] >= 0.0 for row in report.candidates[1:])  # validation alone would pass


def test_guard_needs_labelled_validation(tmp_path, tokenizer):
    compiled(tmp_path, tokenizer)
    with pytest.raises(ValueError, match="validation"):
        quantize_with_guard(tmp_path, validation_texts=[], validation_labels=[], calibration_texts=["x"])
    with pytest.raises(ValueError, match="not in the artifact's label set"):
        quantize_with_guard(
            tmp_path, validation_texts=["hi"], validation_labels=["weather"], calibration_texts=["x"]
        )


class _LogitsAndFeatures(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = out.hidden_states[-1]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return out.logits, (hidden * mask).sum(1) / mask.sum(1)


def test_quantization_keeps_every_graph_output(tmp_path, tokenizer, splits):
    """An export with a second `features` output (mean pooling in the graph) quantizes like any other."""
    import onnxruntime as ort

    model = compiled(tmp_path, tokenizer)
    example = tokenizer(["show me horror manga"], return_tensors="pt")
    torch.onnx.export(
        _LogitsAndFeatures(model),
        (example["input_ids"], example["attention_mask"]),
        str(tmp_path / "model.onnx"),
        dynamo=False,
        input_names=["input_ids", "attention_mask"],
        output_names=["logits", "features"],
        dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, "logits": {0: "b"}},
        opset_version=17,
    )
    report = quantize_with_guard(
        tmp_path,
        validation_texts=[e.text for e in splits.val[:50]],
        validation_labels=[e.label for e in splits.val[:50]],
        calibration_texts=[e.text for e in splits.train[:50]],
    )
    assert report.served == "int8"
    session = ort.InferenceSession(str(tmp_path / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits", "features"]
    assert CompiledClassifier(tmp_path).logits(["any isekai?"]).shape == (1, len(INTENTS))


def mahalanobis_calibration(model, tokenizer, train, val):
    """A serving calibration (calibrator, Mahalanobis detector, route policy) fitted on these rows."""
    from manga_intent.calibrator_fit import fit_serving_calibration

    return fit_serving_calibration(
        model,
        tokenizer,
        INTENTS,
        train=train,
        val=val,
        ood_val_texts=["book a flight", "weather tomorrow", "qwerty zxcv", "football scores tonight"],
        max_length=64,
        detector_candidates=("mahalanobis",),
    )


def test_the_guard_and_the_int8_artifact_use_its_serving_calibration(tmp_path, tokenizer, splits):
    """With a serving calibration in the artifact (here a vector-scaling calibrator and a Mahalanobis
    detector), the guard judges calibrated predictions with that calibrator, and the quantized artifact
    keeps the detector: the served graph gives features, scores and routes."""
    from manga_intent.calibrators import Calibrator
    from manga_intent.metrics import expected_calibration_error

    model = tiny_classifier("bert", len(INTENTS)).eval()
    train, val = splits.train[:150], splits.val[:80]
    fitted = mahalanobis_calibration(model, tokenizer, train, val)
    n = len(INTENTS)
    fitted.calibrator = Calibrator(
        "vector", tuple(np.linspace(0.5, 2.0, n).tolist()), tuple(np.linspace(-1.0, 1.0, n).tolist())
    )
    built = build_artifact(
        model,
        tokenizer,
        tmp_path,
        labels=INTENTS,
        calibration=fitted,
        check_texts=[e.text for e in val[:5]],
        max_length=64,
        backend="onnx",
        quantize="auto",
        validation=[(e.text, e.label) for e in val],
        calibration_texts=[e.text for e in train],
        latency_warmup=2,
        # a tiny random model's Mahalanobis scores blow int8's ~1% feature error up tenfold (its features are
        # nearly low-rank), so its flags never survive quantization; the flag and route bounds are tested
        # below, this test is about the calibrator and what the int8 artifact carries
        quantization_guard=QuantizationGuard(min_ood_flag_agreement=0.0, min_route_agreement=0.0),
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["serving_calibration"]["ood_detector"] == "mahalanobis"  # survives the manifest rewrite
    fp32 = CompiledClassifier(tmp_path, graph="fp32")
    texts = [e.text for e in val]
    y = np.array([INTENTS.index(e.label) for e in val])
    reference = built.quantization["candidates"][0]
    ece = expected_calibration_error(fitted.calibrator.probabilities(fp32.logits(texts)), y)
    assert reference["ece"] == pytest.approx(ece, abs=1e-4)
    served = CompiledClassifier(tmp_path)
    assert served.graph == manifest["serving_graph"] and served.needs_features
    predictions = served.classify(texts[:20])
    assert all(p.ood_detector == "mahalanobis" and np.isfinite(p.ood_score) for p in predictions)
    assert {p.route for p in predictions} <= {"route", "clarify", "fallback"}
    # the guard judged the OOD flag and the route too, over validation + the judging half of training
    judged = [row for row in built.quantization["candidates"][1:]]
    assert judged and all({"ood_flag_agreement", "route_agreement"} <= set(row) for row in judged)
    assert served.graph == "int8", built.quantization["reason"]
    row = next(r for r in judged if r["passed"])
    pooled = texts + [e.text for e in train][1::2]
    one_at_a_time = [served.classify([t])[0] for t in pooled]
    reference = fp32.classify(pooled)
    flags = np.mean([a.is_ood == b.is_ood for a, b in zip(one_at_a_time, reference)])
    routes = np.mean([a.route == b.route for a, b in zip(one_at_a_time, reference)])
    assert row["by_batching"]["one at a time"]["ood_flag_agreement"] == pytest.approx(flags)
    assert row["by_batching"]["one at a time"]["route_agreement"] == pytest.approx(routes)
    assert built.quantization["ood_flag_agreement"] == row["ood_flag_agreement"]
    # the gate compares the same decisions on its rows (here validation stands in for golden)
    from manga_intent.gate_evidence import quantization_evidence

    evidence = quantization_evidence(served, texts, y)
    alone = [served.classify([t])[0] for t in texts]
    flags = np.mean([a.is_ood == b.is_ood for a, b in zip(alone, reference[: len(texts)])])
    assert evidence["by_batching"]["one at a time"]["ood_flag_agreement"] == pytest.approx(flags)
    assert evidence["min_ood_flag_agreement"] == 0.0 and evidence["min_route_agreement"] == 0.0  # the guard's
    assert 0.0 <= evidence["route_agreement"] <= 1.0


def _whole_int8_judge(directory, tokenizer, splits):
    """A tiny artifact with a Mahalanobis detector in `directory`, and a judge that tries only its whole
    int8 graph on the decision bounds given (intent bounds open)."""
    model = tiny_classifier("bert", len(INTENTS)).eval()
    train, val = splits.train[:150], splits.val[:60]
    fitted = mahalanobis_calibration(model, tokenizer, train, val)
    compile_classifier(
        model, tokenizer, directory, labels=INTENTS, calibration=fitted, backend="onnx", max_length=64
    )

    def judge(out_of_scope_texts=(), **bounds):
        return quantize_with_guard(
            directory,
            validation_texts=[e.text for e in val],
            validation_labels=[e.label for e in val],
            calibration_texts=[e.text for e in train],
            out_of_scope_texts=out_of_scope_texts,
            guard=QuantizationGuard(
                min_agreement=0.0,
                min_pooled_agreement=0.0,
                max_ece_delta=1.0,
                max_fp32_matmuls=0,
                max_fp32_groups=0,
                smooth_alphas=(),
                recheck_near_ties=False,
                outlier_ratio=0,
                **bounds,
            ),
        )

    return judge


def test_an_int8_graph_that_moves_ood_flags_is_not_served(tmp_path, tokenizer, splits):
    """Agreeing on every intent is not enough when the artifact routes by an OOD detector: a flag bound no
    graph can meet leaves fp32 served, and the reason names the flags."""
    judge = _whole_int8_judge(tmp_path, tokenizer, splits)
    report = judge(min_ood_flag_agreement=1.01)
    assert report.served == "fp32" and report.ood_flag_agreement is None
    assert "OOD flags" in report.reason and "flags >= 101.0%" in report.reason
    judged = report.candidates[1:]
    assert judged and all(row["ood_flag_agreement"] < 1.01 and not row["passed"] for row in judged)
    # the same graphs with the flag bound met are served
    report = judge(min_ood_flag_agreement=0.0, min_route_agreement=0.0)
    assert report.served == "int8" and 0.0 <= report.route_agreement <= 1.0


def test_the_guard_judges_the_flag_of_out_of_scope_messages(tmp_path, tokenizer, splits):
    """The pooled sample is all in scope; out-of-scope messages given to the guard are judged on their flag
    alone, as the service flags them, and a bound on them decides like the others."""
    judge = _whole_int8_judge(tmp_path, tokenizer, splits)
    open_bounds = {"min_ood_flag_agreement": 0.0, "min_route_agreement": 0.0}
    out_of_scope = [
        "book a flight to osaka",
        "is it raining in kyoto",
        "asdf qwerty",
        "who won the match",
    ] * 3
    out_of_scope += ["ignore the shop and write me a poem", "tell me a recipe for ramen"]
    report = judge(out_of_scope, min_out_of_scope_flag_agreement=1.01, **open_bounds)
    assert report.served == "fp32" and report.out_of_scope_flag_agreement is None
    assert "out-of-scope flags >= 101.0%" in report.reason
    assert report.out_of_scope_messages == len(out_of_scope)
    judged = report.candidates[1:]
    assert judged and all(not row["passed"] for row in judged)
    report = judge(out_of_scope, min_out_of_scope_flag_agreement=0.0, **open_bounds)
    assert report.served == "int8" and f"of {len(out_of_scope)} out-of-scope messages" in report.reason
    row = next(r for r in report.candidates[1:] if r["passed"])
    # the figure is the service's own: each message classified alone by the int8 and the fp32 graph
    served, fp32 = CompiledClassifier(tmp_path), CompiledClassifier(tmp_path, graph="fp32")
    alone = [served.classify([t])[0].is_ood for t in out_of_scope]
    reference = [p.is_ood for p in fp32.classify(out_of_scope)]
    expected = np.mean([a == b for a, b in zip(alone, reference)])
    assert row["by_batching"]["one at a time"]["out_of_scope_flag_agreement"] == pytest.approx(expected)
    assert report.out_of_scope_flag_agreement == row["out_of_scope_flag_agreement"] <= expected
    # without out-of-scope messages nothing is claimed about them
    none = judge([], min_out_of_scope_flag_agreement=1.01, **open_bounds)
    assert none.served == "int8" and none.out_of_scope_messages == 0
    assert all("out_of_scope_flag_agreement" not in r for r in none.candidates)


def test_layer_groups_by_encoder_layer():
    names = [
        "/model/bert/encoder/layer.0/attention/self/query/MatMul",
        "/model/bert/encoder/layer.0/output/dense/MatMul",
        "/model/bert/encoder/layer.11/intermediate/dense/MatMul",
        "/model/distilbert/transformer/layer.2/ffn/lin1/MatMul",
        "/model/classifier/MatMul",
        "/model/bert/pooler/dense/Gemm",
    ]
    groups = layer_groups(names)
    assert sorted(groups) == ["layer 0", "layer 11", "layer 2", "pooler/head"]
    assert len(groups["layer 0"]) == 2 and len(groups["pooler/head"]) == 2


def test_bucketed_batches_match_single_messages_and_are_thread_safe(tmp_path, tokenizer):
    model = compiled(tmp_path, tokenizer)
    artifact = CompiledClassifier(tmp_path, intra_op_threads=1)
    texts = ["hi", "where is my order " * 4, "x " * 80, "return this please", "ｖｏｌ１２ ワンピース"]
    groups = artifact.length_groups([len(ids) for ids in artifact.encode(texts)])
    assert len(groups) > 1 and sorted(i for g in groups for i in g) == list(range(len(texts)))
    eager = predict_logits(model, tokenizer, texts, max_length=64)
    assert np.abs(artifact.logits(texts) - eager).max() <= 1e-4
    expected = artifact.logits(texts)
    errors, results = [], []

    def hammer():
        try:
            for _ in range(20):
                results.append(artifact.logits(texts))
        except Exception as exc:  # "Already borrowed" would land here
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 120
    assert all(np.allclose(r, expected, atol=1e-5) for r in results)


def _with_outlier_channel(model, channel: int = 5, factor: float = 40.0):
    """MiniLM-like activations: one hidden channel of every FFN input `factor` times larger than the rest
    (the attention output LayerNorm's gain), the pattern that wastes a per-tensor int8 scale."""
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            layer.attention.output.LayerNorm.weight[channel] *= factor
    return model


def test_outlier_input_channels_are_split_off_in_fp32(tmp_path, tokenizer, splits):
    """The split graph computes what fp32 does, finds the injected channel, and its int8 graph is closer to
    fp32 than the plain int8 graph."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from manga_intent.quantization import _GraphScorer, split_outlier_channels

    compiled(tmp_path, tokenizer, model=_with_outlier_channel(tiny_classifier("bert", len(INTENTS)).eval()))
    fp32 = CompiledClassifier(tmp_path, graph="fp32")
    calibration = _GraphScorer(fp32, [e.text for e in splits.train[:64]])
    split = split_outlier_channels(
        tmp_path / "model.onnx", tmp_path / "split.onnx", calibration, ratio=3.0, max_channels=4
    )
    ffn_inputs = {name: channels for name, channels in split["by_matmul"].items() if "intermediate" in name}
    assert ffn_inputs and all(5 in channels for channels in ffn_inputs.values()), split["by_matmul"]
    assert split["channels"] >= len(ffn_inputs) and len(split["fp32_nodes"]) == split["matmuls"]
    texts = _GraphScorer(fp32, [e.text for e in splits.val[:80]])
    reference = texts.logits(tmp_path / "model.onnx")
    assert np.abs(texts.logits(tmp_path / "split.onnx") - reference).max() <= 1e-4

    # compare the first FFN's output after its bias (that Add keeps its output name in the split graph,
    # which adds the outlier channels' product after the bias): the tiny model's logits and pooled
    # features hardly move either way
    import onnx
    from onnx import TensorProto, helper

    original = onnx.load(str(tmp_path / "model.onnx")).graph.node
    ffn = next(n.output[0] for n in original if "intermediate" in n.name and n.op_type == "MatMul")
    watched = next(n.output[0] for n in original if n.op_type == "Add" and ffn in n.input)
    split_graph = onnx.load(str(tmp_path / "split.onnx")).graph.node
    assert any(n.op_type == "Add" and n.output[0] == watched and "outlier_sum" in n.name for n in split_graph)
    feeds = [dict(zip(("input_ids", "attention_mask"), texts._pad([row], 0))) for row in texts.ids]

    def exposed(path):
        graph = onnx.load(str(path))
        graph.graph.output.append(helper.make_tensor_value_info(watched, TensorProto.FLOAT, None))
        out = path.with_suffix(".exposed.onnx")
        onnx.save(graph, str(out))
        return out

    def ffn_output(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([session.run([watched], feed)[0].reshape(-1) for feed in feeds])

    exact = ffn_output(exposed(tmp_path / "model.onnx"))

    def int8_error(source, out, excluded):
        quantize_dynamic(
            str(exposed(source)),
            str(out),
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
        )
        return float(np.abs(ffn_output(out) - exact).mean())

    plain = int8_error(tmp_path / "model.onnx", tmp_path / "plain.int8.onnx", [])
    decomposed = int8_error(tmp_path / "split.onnx", tmp_path / "split.int8.onnx", split["fp32_nodes"])
    assert decomposed < 0.5 * plain, (decomposed, plain)
    print(f"\n[outlier split] first FFN output |int8 - fp32|: plain {plain:.5f}, split {decomposed:.5f}")


def test_the_guard_reports_the_outlier_split_it_quantized(tmp_path, tokenizer, splits):
    compiled(tmp_path, tokenizer, model=_with_outlier_channel(tiny_classifier("bert", len(INTENTS)).eval()))
    report = quantize_with_guard(
        tmp_path,
        validation_texts=[e.text for e in splits.val[:60]],
        validation_labels=[e.label for e in splits.val[:60]],
        calibration_texts=[e.text for e in splits.train[:120]],
    )
    assert report.outlier_channels["channels"] > 0 and "fp32_nodes" not in report.outlier_channels
    assert report.outlier_channels["max_abs_logit_change"] <= 1e-3
    assert report.outlier_channels["served"] == any(
        row["outlier_split"] and row["passed"] for row in report.candidates[1:]
    )
    never = quantize_with_guard(  # every candidate judged: the split ones among them, on the split graph
        tmp_path,
        validation_texts=[e.text for e in splits.val[:60]],
        validation_labels=[e.label for e in splits.val[:60]],
        calibration_texts=[e.text for e in splits.train[:120]],
        guard=QuantizationGuard(min_agreement=1.01, max_fp32_matmuls=1, max_fp32_groups=1),
    )
    on_split = [row["candidate"] for row in never.candidates[1:] if row["outlier_split"]]
    assert any("outlier channels fp32" in c for c in on_split) and any(
        "MatMul(s) fp32" in c for c in on_split
    )
    off = quantize_with_guard(
        tmp_path,
        validation_texts=[e.text for e in splits.val[:60]],
        validation_labels=[e.label for e in splits.val[:60]],
        calibration_texts=[e.text for e in splits.train[:120]],
        guard=QuantizationGuard(outlier_ratio=0),
    )
    assert off.outlier_channels == {"skipped": "outlier_ratio is 0", "served": False}
    assert not any(row["outlier_split"] for row in off.candidates[1:])


def test_near_ties_are_rerun_on_the_fp32_graph(tmp_path, tokenizer, splits):
    """An int8 artifact with a re-check margin answers rows below it from the fp32 graph: with a margin
    above any possible one every row is re-run (fp32 logits exactly), with none it is plain int8."""
    compiled(tmp_path, tokenizer)
    quantize_with_guard(
        tmp_path,
        validation_texts=[e.text for e in splits.val[:40]],
        validation_labels=[e.label for e in splits.val[:40]],
        calibration_texts=[e.text for e in splits.train[:60]],
        guard=QuantizationGuard(min_agreement=0.0, min_pooled_agreement=0.0, max_ece_delta=1.0),
    )
    manifest_path = tmp_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["serving_graph"] == "int8" and manifest["quantization"]["recheck_margin"] is None
    texts = [e.text for e in splits.val[:30]]
    fp32 = CompiledClassifier(tmp_path, graph="fp32").logits(texts)
    plain = CompiledClassifier(tmp_path)
    assert plain.recheck_margin is None and np.abs(plain.logits(texts) - fp32).max() > 0

    manifest["quantization"]["recheck_margin"] = 1.01  # every top-2 margin is below it
    manifest_path.write_text(json.dumps(manifest))
    everything = CompiledClassifier(tmp_path)
    assert everything.graph == "int8" and everything.recheck_margin == 1.01
    assert np.allclose(everything.logits(texts), fp32, atol=1e-5) and everything.rechecked == len(texts)
    predictions = everything.classify(texts[:5], top_k=2)
    assert [p.intent for p in predictions] == [INTENTS[i] for i in fp32[:5].argmax(1)]
    assert np.isfinite(everything.fp32_logits_for_ids(everything.encode(texts[:3]))).all()

    from serving.models import FixedModel, ModelHolder

    holder = ModelHolder(FixedModel(tmp_path))
    assert holder.refresh() and holder.model.graph == "int8"  # warm-up ran both graphs
    before = holder.status()["near_ties_rerun_fp32"]
    holder.model.classify(texts[:4])
    assert holder.status()["near_ties_rerun_fp32"] == before + 4  # every row is a "near tie" at this margin


def test_smoothed_graph_computes_fp32_and_its_int8_is_closer(tmp_path, tokenizer, splits):
    """SmoothQuant: the smoothed fp32 graph equals the original; its int8 graph errs less on the outlier-
    carrying FFN than plain int8; the guard judges it and reports the alpha picked on training messages."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from manga_intent.quantization import _GraphScorer, smooth_activations

    compiled(tmp_path, tokenizer, model=_with_outlier_channel(tiny_classifier("bert", len(INTENTS)).eval()))
    fp32 = CompiledClassifier(tmp_path, graph="fp32")
    calibration = _GraphScorer(fp32, [e.text for e in splits.train[:64]])
    info = smooth_activations(tmp_path / "model.onnx", tmp_path / "smooth.onnx", calibration, alpha=0.85)
    assert info["matmuls"] > info["inputs"] > 0  # Q, K and V share one smoothed input
    texts = _GraphScorer(fp32, [e.text for e in splits.val[:80]])
    assert (
        np.abs(texts.logits(tmp_path / "smooth.onnx") - texts.logits(tmp_path / "model.onnx")).max() <= 1e-4
    )
    with pytest.raises(ValueError, match="alpha"):
        smooth_activations(tmp_path / "model.onnx", tmp_path / "bad.onnx", calibration, alpha=1.5)

    watched = next(
        n.output[0]
        for n in onnx.load(str(tmp_path / "model.onnx")).graph.node
        if "intermediate" in n.name and n.op_type == "MatMul"
    )
    feeds = [dict(zip(("input_ids", "attention_mask"), texts._pad([row], 0))) for row in texts.ids]

    def ffn_output(source, quantize: bool):
        graph = onnx.load(str(source))
        graph.graph.output.append(helper.make_tensor_value_info(watched, TensorProto.FLOAT, None))
        path = source.with_suffix(".exposed.onnx")
        onnx.save(graph, str(path))
        if quantize:
            quantized = source.with_suffix(".int8.onnx")
            quantize_dynamic(str(path), str(quantized), per_channel=True, weight_type=QuantType.QInt8)
            path = quantized
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([session.run([watched], feed)[0].reshape(-1) for feed in feeds])

    exact = ffn_output(tmp_path / "model.onnx", quantize=False)
    plain = float(np.abs(ffn_output(tmp_path / "model.onnx", quantize=True) - exact).mean())
    smoothed = float(np.abs(ffn_output(tmp_path / "smooth.onnx", quantize=True) - exact).mean())
    assert smoothed < 0.7 * plain, (smoothed, plain)
    print(f"\n[smoothing] first FFN output |int8 - fp32|: plain {plain:.5f}, smoothed {smoothed:.5f}")

    report = quantize_with_guard(  # nothing passes: every candidate is judged, the smoothed one among them
        tmp_path,
        validation_texts=[e.text for e in splits.val[:60]],
        validation_labels=[e.label for e in splits.val[:60]],
        calibration_texts=[e.text for e in splits.train[:120]],
        guard=QuantizationGuard(min_agreement=1.01, max_fp32_matmuls=1, max_fp32_groups=1),
    )
    assert any(row.get("smoothed") for row in report.candidates[1:])
    assert report.smoothing["alpha"] in (0.5, 0.7, 0.85) and not report.smoothing["served"]
    assert set(report.smoothing["training_error"]) == {"0.5", "0.7", "0.85"}
    off = quantize_with_guard(
        tmp_path,
        validation_texts=[e.text for e in splits.val[:60]],
        validation_labels=[e.label for e in splits.val[:60]],
        calibration_texts=[e.text for e in splits.train[:120]],
        guard=QuantizationGuard(smooth_alphas=(), min_agreement=1.01, max_fp32_matmuls=0, max_fp32_groups=0),
    )
    assert off.smoothing == {"skipped": "off", "served": False}
    assert not any(row.get("smoothed") for row in off.candidates[1:])


def test_the_guard_judges_int8_as_the_service_batches_it(tmp_path, tokenizer, splits):
    """The guard's batchings reproduce the served artifact's answers call for call (one message, then
    consecutive batches of 8 split by bucket), and a candidate row carries the worst batching."""
    from manga_intent.quantization import INT8_FILE, _GraphScorer

    compiled(tmp_path, tokenizer, model=_with_outlier_channel(tiny_classifier("bert", len(INTENTS)).eval()))
    texts = [e.text for e in splits.val[:40]]
    report = quantize_with_guard(
        tmp_path,
        validation_texts=texts,
        validation_labels=[e.label for e in splits.val[:40]],
        calibration_texts=[e.text for e in splits.train[:80]],
        guard=QuantizationGuard(min_agreement=0.0, max_ece_delta=1.0, min_pooled_agreement=0.0),
    )
    assert report.served == "int8"
    row = report.candidates[1]
    assert set(row["by_batching"]) == {"one at a time", "batches of 8"}
    assert row["agreement"] == min(b["agreement"] for b in row["by_batching"].values())
    assert row["pooled_agreement"] == min(b["pooled_agreement"] for b in row["by_batching"].values())
    assert abs(row["ece_delta"]) == max(abs(b["ece_delta"]) for b in row["by_batching"].values())
    assert "one at a time and batches of 8" in report.reason

    served = CompiledClassifier(tmp_path, intra_op_threads=1)
    assert served.graph == "int8"
    scorer = _GraphScorer(served, texts)
    one_by_one = np.concatenate([served.logits([t]) for t in texts])
    in_eights = np.concatenate([served.logits(texts[i : i + 8]) for i in range(0, len(texts), 8)])
    assert np.array_equal(scorer.logits(tmp_path / INT8_FILE, serving_batch=1), one_by_one)
    assert np.array_equal(scorer.logits(tmp_path / INT8_FILE, serving_batch=8), in_eights)
    # and batch-mates do move int8 logits, which is why one batching is not enough
    assert not np.array_equal(one_by_one, scorer.logits(tmp_path / INT8_FILE))
