"""An int8 serving graph, chosen only when it provably behaves like the fp32 one.

ONNX Runtime's dynamic quantization (`onnxruntime.quantization.quantize_dynamic`: int8 weights per output
channel, activations quantized per call) roughly halves single-message latency on a CPU, but done naively
it flips the argmax on a few percent of messages. So every candidate is judged against the fp32 graph of
the same artifact on the *validation* split: it must agree on the predicted intent for at least
`min_agreement` of the messages and move the calibrated ECE (the artifact's own calibrator -- its fitted
serving calibration, or its temperature -- on both graphs) by at most `max_ece_delta`. The ECE change is
measured over the fp32 graph's confidence bins (`metrics.paired_ece_delta`): each graph's own binning moves
the difference by ~0.01 on 160 messages from bin-edge crossings alone, twice the tolerance; every candidate
row also reports that re-binned difference. Where the artifact carries a serving calibration (an OOD
detector and a route policy), a candidate must also keep the OOD flag and the fitted route of the pooled
messages (below) as the fp32 graph sets them (`min_ood_flag_agreement`, `min_route_agreement`): int8 moves
the pooled features and logits those decisions read, and agreeing on every intent does not imply agreeing on
them (one artifact agreed on all 1,685 intents of seed-corpus and OOD-pool messages and moved 17 routes and
6 flags). The pooled messages are all in scope, so the caller also gives out-of-scope messages (the asset
graph: the OOD validation pool), whose flag must match on `min_out_of_scope_flag_agreement` of them: those
are the messages the flag is for. The candidates, in order:

1. every weight MatMul in int8, per output channel: on CPUs without VNNI first with 7-bit weights (8-bit
   u8×s8 products can saturate there), then with 8-bit weights (finer; saturation is measured, not assumed);
2. if that fails, the same graph with *near ties re-checked*: a message whose calibrated top-2 margin
   under int8 is below twice the largest probability error int8 made on training messages is re-run on
   the fp32 graph (above that margin the two graphs cannot disagree on the argmax unless int8's error
   there exceeds anything seen in training). Flips only happen on near ties (on the seed corpus every
   int8 flip had an fp32 probability margin under 0.04), so 2-4% of messages pay for a second, fp32 run
   and the rest keep int8's speed; at most `max_recheck_rate` of validation may be re-run (P95);
3. then the graph *smoothed* (SmoothQuant, `smooth_activations`): each weight MatMul's input divided per
   channel by a scale that its weight rows absorb, so the outlier channels described next no longer set
   the per-call activation scale; it costs one elementwise Mul per input tensor (on the seed corpus:
   single-message P50 1.07 ms vs the split graph's 1.83 and plain int8's 1.21, mean logit error like the
   split's); the migration strength is picked on the ranking half of the training messages; alone, then
   with near ties re-checked;
4. then the whole graph in int8 with its *outlier input channels* split off in fp32 (LLM.int8()-style
   decomposition, `split_outlier_channels`), alone and then with near ties re-checked. MiniLM's
   residual stream carries a handful of channels 10-30x larger than the rest (channel 99 reaches 28
   where the 99th percentile is 2), and one per-tensor activation scale per call spends most of its 256
   levels on them. The split graph computes what the fp32 graph does (checked to 1e-3 on training
   messages); on 320 validation and test messages it cut the int8 graph's mean logit error from 0.104
   to 0.042 and its flips from 3 to 1, at 7-15% more time per message (2.83 vs 2.45 ms) - which is why
   it comes after the re-checked plain graph, whose P50 is int8's own;
5. if that fails, the single weight MatMuls that hurt most are kept in fp32, one more at a time (a
   whole encoder layer is six MatMuls; on MiniLM two FFN-down matrices in fp32 remove most of the flips at
   a few percent of int8's speed-up);
6. if that fails too, whole encoder layers (and the pooler/head), one group at a time.
   Both ladders quantize the split graph and are ranked by how much keeping each MatMul (or group) alone
   in fp32 reduces the error on *training* messages (the ranking never looks at validation nor at the
   training messages the guard judges on; the MatMul ranking uses the first `rank_messages` of them, as
   it builds one graph per MatMul);
7. optionally a static QDQ graph calibrated on training messages (`methods` includes "static").

Validation alone cannot certify the bound: 160 messages are 0.6 pp each, so "no flip on validation" is
compatible with a true flip rate of 1-2%, and the gate then finds it on the golden set (3 flips in 547
rejected a candidate that had none on validation). A candidate must therefore also agree on a larger
*pooled* sample - validation plus the half of the training messages that the ranking never sees (even
positions rank, odd positions judge) - at `min_pooled_agreement` (99.8%: a graph whose true agreement is
that high shows more than 2 flips in 547 golden messages about one time in ten).

Every candidate is judged the way the service will run it: one message at a time (a lone request) and in
consecutive batches of `serving_batch` messages, each split by length bucket (the service's micro-batches
under load). Dynamic quantization scales activations per call, so an int8 answer depends a little on its
batch-mates; judging one batching only once let a graph through that flipped 1 of 160 validation messages
in batches of 8 and none one at a time. Agreement, pooled agreement, ECE change and re-check rate must meet
their bounds in every batching; the candidate's row reports the worst, and `by_batching` each.

The first candidate that passes is served (method order above is cheapest-first). If none does, fp32 is
served and the report says why. The golden set is not read here: the gate checks agreement on it itself.
bf16 is only worth trying where the CPU has AMX/AVX-512-BF16; elsewhere the report says it was not tried.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from manga_intent.cpu import BF16_FLAGS, cpu_flags
from manga_intent.metrics import expected_calibration_error, paired_ece_delta

INT8_FILE = "model.int8.onnx"
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
_LAYER = re.compile(r"layers?[._/](\d+)[./]")


@dataclass(frozen=True)
class QuantizationGuard:
    min_agreement: float = 0.995
    """Share of validation messages whose predicted intent must match the fp32 graph's."""
    max_ece_delta: float = 0.005
    """Largest allowed |ECE(int8) − ECE(fp32)|, both with the artifact's calibrator, on validation, over the
    fp32 graph's confidence bins (`metrics.paired_ece_delta`)."""
    min_pooled_agreement: float = 0.998
    """Agreement required on validation + the judging half of the training messages (see above)."""
    min_ood_flag_agreement: float = 0.995
    """Where the artifact has a serving calibration (an OOD detector and a route policy): share of the pooled
    messages whose OOD flag must match the fp32 graph's. The flag sends a shopper to the fallback, so it is
    held to the intent's bound; int8 moves the pooled features and logits the detector scores."""
    min_out_of_scope_flag_agreement: float = 0.99
    """Share of the out-of-scope messages given to the guard (the OOD validation pool, never the held-out
    half the gate reads) whose flag must match the fp32 graph's. The pooled messages are all in scope, so
    without these the guard never sees the messages the flag exists for; the bound is looser than the
    pooled one because out-of-scope scores crowd the threshold (a few hundred messages, 1% = a few)."""
    min_route_agreement: float = 0.99
    """Likewise for the fitted route (route / clarify / fallback). Looser than the flag's: a message whose joint
    confidence sits on the clarify threshold moves between route and clarify for any small change (the
    threshold's own sampling error on validation is far larger), and on one artifact int8 moved 17 routes
    of 1,685 seed-corpus and OOD-pool messages while agreeing on every intent."""
    max_fp32_matmuls: int = 3
    """At most this many single weight MatMuls may be kept in fp32 before trying whole layers."""
    max_fp32_groups: int = 3
    """At most this many encoder layers (or the head) may be kept in fp32 before giving up on int8."""
    rank_messages: int = 256
    """Training messages the single-MatMul ranking scores each of its graphs on."""
    outlier_ratio: float = 3.0
    """An input channel of a weight MatMul is an outlier (kept in fp32) when its largest |activation| on
    training messages exceeds this multiple of the median channel's; 0 turns the split off."""
    max_outlier_channels: int = 16
    """At most this many outlier channels per MatMul (the largest)."""
    smooth_alphas: tuple[float, ...] = (0.5, 0.7, 0.85)
    """SmoothQuant migration strengths tried (`smooth_activations`); the one whose int8 graph errs least on
    the ranking half of the training messages is judged. Empty: not tried."""
    recheck_near_ties: bool = True
    """If a whole int8 graph fails, try it with near ties re-run on the fp32 graph."""
    max_recheck_rate: float = 0.05
    """Largest share of validation messages a re-check candidate may re-run in fp32 (above 5% the
    re-runs would set the P95 latency)."""
    methods: tuple[str, ...] = ("dynamic",)
    """"dynamic" (the ladder above) and/or "static" (QDQ calibrated on training messages)."""
    latency_messages: int = 100
    serving_batch: int = 8
    """Candidates are judged as the service runs them: one message at a time and in consecutive batches of
    this many (the service's micro-batch default); each threshold must hold in both."""


@dataclass(frozen=True)
class QuantizationReport:
    served: str
    """The graph the artifact serves: "int8" or "fp32"."""
    reason: str
    validation_messages: int
    agreement: float | None
    """Validation agreement of the served int8 graph with fp32 (None when fp32 is served)."""
    ece_delta: float | None
    pooled_messages: int = 0
    """Messages of the pooled agreement check (validation + the judging half of training)."""
    pooled_agreement: float | None = None
    ood_flag_agreement: float | None = None
    """Pooled OOD-flag agreement of the served int8 graph with fp32 (None: fp32 served, or no detector)."""
    route_agreement: float | None = None
    """Pooled route agreement likewise."""
    out_of_scope_messages: int = 0
    """Out-of-scope messages the flag was also judged on (0: none given, or no detector)."""
    out_of_scope_flag_agreement: float | None = None
    """Their OOD-flag agreement with fp32 for the served int8 graph (None: fp32 served, or none judged)."""
    candidates: list[dict] = field(default_factory=list)
    kept_fp32: list[str] = field(default_factory=list)
    recheck_margin: float | None = None
    """When set, serving re-runs on the fp32 graph every message whose calibrated top-2 margin under int8
    is below it (`CompiledClassifier`); None: int8 answers alone."""
    outlier_channels: dict = field(default_factory=dict)
    """The fp32 outlier-channel split the later candidates quantize: {"matmuls": n, "channels": n,
    "by_matmul": {short name: [channel, ...]}, "served": whether the served graph uses it} or
    {"skipped": why, "served": False}."""
    smoothing: dict = field(default_factory=dict)
    """The SmoothQuant candidate: {"tried": [...], "training_error": {alpha: error}, "alpha": chosen,
    "served": bool}, or {"skipped": why, "served": False}."""
    reduce_range: bool = True
    """7-bit weights (the non-VNNI-safe choice) in the served graph."""
    bf16: str = ""
    guard: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> QuantizationReport:
        return cls(**payload)


def bf16_note(flags: set[str]) -> str:
    if flags & set(BF16_FLAGS):
        return "not tried: ONNX Runtime's CPU provider has no bf16 kernels for this graph; int8 only"
    return "not tried: this CPU has no AMX or AVX-512-BF16 (bf16 would be emulated, slower than fp32)"


def weight_matmuls(model) -> list[str]:
    """Names of MatMul/Gemm nodes whose second input is a constant (the layers dynamic int8 quantizes)."""
    constants = {init.name for init in model.graph.initializer}
    constants |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    return [
        node.name
        for node in model.graph.node
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in constants
    ]


def layer_groups(node_names: Sequence[str]) -> dict[str, list[str]]:
    """Weight MatMuls by encoder layer ("layer 3"); nodes outside the layers form "pooler/head"."""
    groups: dict[str, list[str]] = {}
    for name in node_names:
        match = _LAYER.search(name)
        key = f"layer {int(match.group(1))}" if match else "pooler/head"
        groups.setdefault(key, []).append(name)
    return groups


class _GraphScorer:
    """Logits of any graph file on pre-tokenized messages, bucketed like the serving path."""

    def __init__(self, compiled, texts: Sequence[str]):
        from manga_intent.compiled import pad_batch

        self.compiled, self._pad = compiled, pad_batch
        self.ids = compiled.encode(texts)
        self.groups = compiled.length_groups([len(r) for r in self.ids])

    @classmethod
    def of_ids(cls, other: _GraphScorer, n: int) -> _GraphScorer:
        """The first `n` messages of `other`, without tokenizing again."""
        scorer = cls.__new__(cls)
        scorer.compiled, scorer._pad, scorer.ids = other.compiled, other._pad, other.ids[:n]
        scorer.groups = other.compiled.length_groups([len(r) for r in scorer.ids])
        return scorer

    def logits(self, path: str | Path, serving_batch: int | None = None) -> np.ndarray:
        return self.outputs(path, serving_batch)[0]

    def outputs(
        self, path: str | Path, serving_batch: int | None = None, *, features: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(logits, pooled features or None) in message order; features only when asked for and the graph
        has them. Without `serving_batch`: messages of one length bucket together, 64 per
        call (fast; for graphs whose answers do not depend on their batch-mates, like fp32). With it: the
        messages in their own order, `serving_batch` at a time, each batch split by bucket as the service's
        micro-batches are - an int8 graph quantizes activations per call, so its answer for a message
        depends a little on the messages that share the call, and this is how serving shares them."""
        import onnxruntime as ort

        from manga_intent.compiled import session_options

        session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        if serving_batch is None:
            calls = [group[i : i + 64] for group in self.groups for i in range(0, len(group), 64)]
        else:
            calls = []
            for start in range(0, len(self.ids), serving_batch):
                batch = range(start, min(start + serving_batch, len(self.ids)))
                lengths = [len(self.ids[i]) for i in batch]
                calls += [[batch[j] for j in group] for group in self.compiled.length_groups(lengths)]
        out = feats = None
        want = ["logits", "features"] if features and "features" in names else ["logits"]
        for chunk in calls:
            ids, mask = self._pad([self.ids[i] for i in chunk], self.compiled.manifest["pad_token_id"])
            outputs = dict(zip(want, session.run(want, {"input_ids": ids, "attention_mask": mask})))
            if out is None:
                out = np.empty((len(self.ids), outputs["logits"].shape[1]), dtype=np.float32)
                if "features" in outputs:
                    feats = np.empty((len(self.ids), outputs["features"].shape[1]), dtype=np.float32)
            out[chunk] = outputs["logits"]
            if feats is not None:
                feats[chunk] = outputs["features"]
        return out, feats


def _decisions(compiled, logits: np.ndarray, features: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The OOD flags and fitted routes the artifact's serving calibration makes of these outputs, as
    `CompiledClassifier.predictions` makes them."""
    scores = compiled.detector.score(logits, features)
    routes = compiled.calibration.policy.decide(compiled.calibrated_probabilities(logits).max(1), scores)
    return scores > compiled.detector.threshold, np.asarray(routes)


def _near_ties(probs: np.ndarray, margin: float) -> np.ndarray:
    """Rows whose top-2 calibrated probabilities are closer than `margin`."""
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0] < margin


def _fp32_answers_near_ties(
    probs: np.ndarray, margin: float | None, *served_and_fp32: tuple[np.ndarray | None, np.ndarray | None]
) -> np.ndarray:
    """As serving re-runs them: rows whose calibrated top-2 margin under the candidate is below `margin`
    take the fp32 graph's outputs, in place in each (served, fp32) pair (None arrays are skipped). Returns
    the re-checked rows (none without a margin)."""
    if margin is None:
        return np.zeros(len(probs), dtype=bool)
    near = _near_ties(probs, margin)
    for served, fp32 in served_and_fp32:
        if served is not None:
            served[near] = fp32[near]
    return near


def _single_message_latency(
    path: str | Path, compiled, texts: Sequence[str], recheck: tuple[Path, float] | None = None
) -> dict:
    """P50/P95 ms of one message at a time on one intra-op thread (a serving worker's shape); with
    `recheck` (fp32 graph, margin), near ties also pay for the calibrator and their fp32 re-run."""
    import onnxruntime as ort

    from manga_intent.compiled import pad_batch, session_options

    session = ort.InferenceSession(str(path), session_options(1, 1), providers=["CPUExecutionProvider"])
    exact = None
    if recheck is not None:
        exact = ort.InferenceSession(
            str(recheck[0]), session_options(1, 1), providers=["CPUExecutionProvider"]
        )
    encoded = compiled.encode(texts)
    samples = []
    for round_ in range(2):  # the first round warms up
        for row in encoded:
            ids, mask = pad_batch([row], compiled.manifest["pad_token_id"])
            start = time.perf_counter()
            logits = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if exact is not None and _near_ties(compiled.calibrated_probabilities(logits), recheck[1])[0]:
                exact.run(None, {"input_ids": ids, "attention_mask": mask})
            if round_:
                samples.append((time.perf_counter() - start) * 1000)
    values = np.array(samples or [0.0])
    return {"p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95))}


def quantize_with_guard(
    artifact_dir: str | Path,
    *,
    validation_texts: Sequence[str],
    validation_labels: Sequence[str],
    calibration_texts: Sequence[str],
    out_of_scope_texts: Sequence[str] = (),
    guard: QuantizationGuard | None = None,
) -> QuantizationReport:
    """Try int8 candidates for the artifact's fp32 ONNX graph; write the first that passes the guard.

    Updates the artifact's manifest (`graphs`, `serving_graph`, `quantization`) either way and returns the
    report. Works on any graph outputs: only `logits` is compared, other outputs (pooled `features`) are
    carried through quantization untouched in name and shape. `out_of_scope_texts` (out-of-scope messages
    not used to judge anything else) are judged on their OOD flag alone when the artifact has a detector.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from manga_intent.compiled import MANIFEST, CompiledClassifier

    guard = guard or QuantizationGuard()
    directory = Path(artifact_dir)
    compiled = CompiledClassifier(directory, graph="fp32")
    if compiled.backend != "onnx":
        raise ValueError("int8 quantization applies to ONNX artifacts only")
    if not validation_texts or len(validation_texts) != len(validation_labels):
        raise ValueError("the quantization guard needs validation messages with their labels")
    if not calibration_texts:
        raise ValueError("the quantization guard needs training messages to rank sensitive layers")
    index = {label: i for i, label in enumerate(compiled.labels)}
    unknown = sorted({label for label in validation_labels if label not in index})
    if unknown:
        raise ValueError(f"validation labels not in the artifact's label set: {unknown}")
    y_val = np.array([index[label] for label in validation_labels])
    fp32_path = directory / compiled.manifest["graphs"]["fp32"] if "graphs" in compiled.manifest else None
    fp32_path = fp32_path or directory / compiled.manifest["files"]["dynamic"]

    flags = cpu_flags()
    # without VNNI, u8 x s8 products summed in int16 can saturate; 7-bit weights avoid that, but they are
    # also coarser, so both are tried there (measured, not assumed); with VNNI 8-bit is always safe
    weight_bits = (7, 8) if not flags & set(VNNI_FLAGS) else (8,)
    # judge what is served: the artifact's calibrator (a vector-scaling one can move the argmax)
    calibrated = compiled.calibrated_probabilities
    rank_texts = list(calibration_texts)[0::2] or list(calibration_texts)
    judge_texts = list(calibration_texts)[1::2]
    val, train = _GraphScorer(compiled, validation_texts), _GraphScorer(compiled, rank_texts)
    held = _GraphScorer(compiled, judge_texts) if judge_texts else None
    latency_texts = list(validation_texts)[: guard.latency_messages]
    # with a serving calibration the guard also judges the OOD flag and the route (see the guard's bounds)
    decides = compiled.detector is not None
    fp32_val, fp32_val_features = val.outputs(fp32_path, features=decides)
    fp32_train = train.logits(fp32_path)
    fp32_held_logits, fp32_held_features = held.outputs(fp32_path, features=decides) if held else (None, None)
    fp32_held_probs = (
        calibrated(fp32_held_logits) if held else np.empty((0, len(compiled.labels)), dtype=np.float32)
    )
    fp32_held = fp32_held_probs.argmax(1)
    fp32_decisions = None
    oos = _GraphScorer(compiled, out_of_scope_texts) if decides and len(out_of_scope_texts) else None
    if oos is not None:
        fp32_oos_logits, fp32_oos_features = oos.outputs(fp32_path, features=True)
        fp32_oos_flags = _decisions(compiled, fp32_oos_logits, fp32_oos_features)[0]
    if decides:
        logits = fp32_val if held is None else np.concatenate([fp32_val, fp32_held_logits])
        features = fp32_val_features
        if held is not None and features is not None:
            features = np.concatenate([features, fp32_held_features])
        fp32_decisions = _decisions(compiled, logits, features)
    pooled_n = len(y_val) + len(fp32_held)
    fp32_probs = calibrated(fp32_val)
    ece_fp32 = expected_calibration_error(fp32_probs, y_val)
    fp32_latency = _single_message_latency(fp32_path, compiled, latency_texts)
    nodes = weight_matmuls(onnx.load(str(fp32_path), load_external_data=False))
    groups = layer_groups(nodes)
    candidates: list[dict] = [
        {
            "candidate": "fp32 (reference)",
            "fp32_groups": "all",
            "agreement": 1.0,
            "pooled_agreement": 1.0,
            "ece": ece_fp32,
            "ece_delta": 0.0,
            "ece_delta_rebinned": 0.0,
            **fp32_latency,
            **({"ood_flag_agreement": 1.0, "route_agreement": 1.0} if decides else {}),
            **({"out_of_scope_flag_agreement": 1.0} if oos is not None else {}),
            "passed": None,
        }
    ]

    with tempfile.TemporaryDirectory() as tmp:

        def build_dynamic(excluded_groups: Sequence[str], name: str, bits: int) -> Path:
            return build_dynamic_nodes([n for g in excluded_groups for n in groups[g]], name, bits)

        base, split = fp32_path, {"skipped": "outlier_ratio is 0"}
        if guard.outlier_ratio > 0:
            base, split = _split_or_explain(fp32_path, Path(tmp) / "split.onnx", train, fp32_train, guard)

        has_split = base != fp32_path

        def build_dynamic_nodes(excluded: Sequence[str], name: str, bits: int, on_split: bool = True) -> Path:
            """int8 graph of the split graph (its outlier MatMuls stay fp32), or of the fp32 graph."""
            source, kept = (base, split["fp32_nodes"]) if on_split and has_split else (fp32_path, [])
            out = Path(tmp) / f"{name}-{bits}bit.onnx"
            quantize_dynamic(
                str(source),
                str(out),
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
                reduce_range=bits == 7,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=[*excluded, *kept],
                extra_options={"MatMulConstBOnly": True},
            )
            return out

        def judge_batching(path: Path, serving_batch: int, recheck: float | None) -> dict:
            """Agreement (intent and, with a serving calibration, OOD flag and route), ECE change and re-check
            rate of one candidate under one serving batching."""
            logits, features = val.outputs(path, serving_batch, features=decides)
            probs = calibrated(logits)
            rechecked = _fp32_answers_near_ties(
                probs, recheck, (probs, fp32_probs), (logits, fp32_val), (features, fp32_val_features)
            )
            same = probs.argmax(1) == fp32_probs.argmax(1)
            if held is not None:
                held_logits, held_features = held.outputs(path, serving_batch, features=decides)
                held_probs = calibrated(held_logits)
                _fp32_answers_near_ties(
                    held_probs,
                    recheck,
                    (held_probs, fp32_held_probs),
                    (held_logits, fp32_held_logits),
                    (held_features, fp32_held_features),
                )
                same_pooled = np.concatenate([same, held_probs.argmax(1) == fp32_held])
                logits = np.concatenate([logits, held_logits])
                if features is not None:
                    features = np.concatenate([features, held_features])
            else:
                same_pooled = same
            ece = expected_calibration_error(probs, y_val)
            row = {
                "agreement": float(same.mean()),
                "pooled_agreement": float(same_pooled.mean()),
                "ece": ece,
                "ece_delta": paired_ece_delta(probs, fp32_probs, y_val),
                "ece_delta_rebinned": ece - ece_fp32,
                "recheck_rate": float(rechecked.mean()),
            }
            if fp32_decisions is not None:
                flags, routes = _decisions(compiled, logits, features)
                row["ood_flag_agreement"] = float((flags == fp32_decisions[0]).mean())
                row["route_agreement"] = float((routes == fp32_decisions[1]).mean())
            if oos is not None:  # the out-of-scope messages: only their flag counts
                oos_logits, oos_features = oos.outputs(path, serving_batch, features=True)
                _fp32_answers_near_ties(
                    calibrated(oos_logits),
                    recheck,
                    (oos_logits, fp32_oos_logits),
                    (oos_features, fp32_oos_features),
                )
                oos_flags = _decisions(compiled, oos_logits, oos_features)[0]
                row["out_of_scope_flag_agreement"] = float((oos_flags == fp32_oos_flags).mean())
            return row

        batchings = {1: "one at a time", guard.serving_batch: f"batches of {guard.serving_batch}"}

        def judge(
            path: Path, label: str, kept: Sequence[str], recheck: float | None = None, on_split: bool = True
        ) -> dict:
            """Score one candidate graph (built on the split graph unless `on_split` is False) in every
            serving batching; its row carries the worst of them."""
            by_batching = {name: judge_batching(path, size, recheck) for size, name in batchings.items()}
            worst_ece = max(by_batching.values(), key=lambda r: abs(r["ece_delta"]))
            row = {
                "candidate": label,
                "fp32_groups": ", ".join(kept) or "none",
                "agreement": min(r["agreement"] for r in by_batching.values()),
                "pooled_agreement": min(r["pooled_agreement"] for r in by_batching.values()),
                "ece": worst_ece["ece"],
                "ece_delta": worst_ece["ece_delta"],
                "ece_delta_rebinned": worst_ece["ece_delta_rebinned"],
                "by_batching": by_batching,
                **_single_message_latency(
                    path, compiled, latency_texts, recheck=None if recheck is None else (fp32_path, recheck)
                ),
            }
            if decides:
                for key in ("ood_flag_agreement", "route_agreement"):
                    row[key] = min(r[key] for r in by_batching.values())
            if oos is not None:
                row["out_of_scope_flag_agreement"] = min(
                    r["out_of_scope_flag_agreement"] for r in by_batching.values()
                )
            row["outlier_split"] = has_split and on_split
            if recheck is not None:
                row["recheck_margin"] = recheck
                row["recheck_rate"] = max(r["recheck_rate"] for r in by_batching.values())
            row["passed"] = (
                row["agreement"] >= guard.min_agreement
                and row["pooled_agreement"] >= guard.min_pooled_agreement
                and abs(row["ece_delta"]) <= guard.max_ece_delta
                and row.get("recheck_rate", 0.0) <= guard.max_recheck_rate
                and row.get("ood_flag_agreement", 1.0) >= guard.min_ood_flag_agreement
                and row.get("route_agreement", 1.0) >= guard.min_route_agreement
                and (
                    oos is None or row["out_of_scope_flag_agreement"] >= guard.min_out_of_scope_flag_agreement
                )
            )
            candidates.append(row)
            return row

        chosen: tuple[Path, dict, list[str], int] | None = None
        smoothing: dict = {"tried": [], "training_error": {}} if guard.smooth_alphas else {"skipped": "off"}
        ranking = _GraphScorer.of_ids(train, guard.rank_messages)
        ranking_fp32 = fp32_train[: len(ranking.ids)]
        if "dynamic" in guard.methods:
            full = {}
            for bits in weight_bits:
                full[bits] = build_dynamic_nodes([], "all", bits, on_split=False)
                row = judge(full[bits], f"int8 dynamic, per-channel, {bits}-bit weights", [], on_split=False)
                if row["passed"]:
                    chosen = (full[bits], row, [], bits)
                    break
            if chosen is None:
                bits = min(weight_bits, key=lambda b: _error(train.logits(full[b]), fp32_train))

            def keep_fewest_in_fp32(order, limit: int, build, label: str, bits: int):
                """(path, row, kept, bits) for the shortest prefix of `order` (most sensitive first) that
                passes the guard when kept in fp32, trying at most `limit`; None if none does."""
                for k in range(1, min(limit, len(order)) + 1):
                    kept = order[:k]
                    path = build(kept, k)
                    row = judge(path, label.format(k=k), kept)
                    if row["passed"]:
                        return path, row, kept, bits
                return None

            def with_recheck(path: Path, label: str, on_split: bool) -> dict:
                """The same graph with near ties (where its error could flip the argmax) re-run in fp32:
                the margin is twice its largest calibrated-probability error on training messages."""
                error = np.abs(calibrated(train.logits(path)) - calibrated(fp32_train)).max(axis=1)
                margin = float(2 * error.max())
                return judge(path, f"{label}, fp32 re-run below margin {margin:.3f}", [], margin, on_split)

            def judge_smoothed(bits: int) -> tuple[dict | None, Path | None]:
                """The smoothed graph (best alpha on training messages) in int8, alone and then with near ties
                re-checked; (None, None) when smoothing failed or moved the fp32 logits."""
                best = None
                for alpha in guard.smooth_alphas:
                    source = Path(tmp) / f"smooth-{alpha}.onnx"
                    try:
                        smoothing["tried"].append(smooth_activations(fp32_path, source, ranking, alpha=alpha))
                    except Exception as exc:  # an exotic graph: skip this candidate, and say so
                        smoothing["skipped"] = f"smoothing failed: {type(exc).__name__}: {exc}"
                        return None, None
                    drift = float(np.abs(ranking.logits(source) - ranking_fp32).max())
                    if drift > 1e-3:
                        smoothing["skipped"] = f"the smoothed graph moved a logit by {drift:.2g} (> 1e-3)"
                        return None, None
                    out = Path(tmp) / f"smooth-{alpha}-{bits}bit.onnx"
                    quantize_dynamic(
                        str(source),
                        str(out),
                        op_types_to_quantize=["MatMul", "Gemm"],
                        per_channel=True,
                        reduce_range=bits == 7,
                        weight_type=QuantType.QInt8,
                        extra_options={"MatMulConstBOnly": True},
                    )
                    error = _error(ranking.logits(out), ranking_fp32)
                    smoothing["training_error"][str(alpha)] = error
                    if best is None or error < best[0]:
                        best = (error, alpha, out)
                smoothing["alpha"] = best[1]
                label = f"int8 dynamic, {bits}-bit, smoothed (alpha {best[1]:g})"
                row = judge(best[2], label, [], on_split=False)
                if not row["passed"] and guard.recheck_near_ties:
                    row = with_recheck(best[2], label, on_split=False)
                row["smoothed"] = True
                return row, best[2]

            if chosen is None and guard.recheck_near_ties:
                row = with_recheck(full[bits], f"int8 dynamic, {bits}-bit", on_split=False)
                if row["passed"]:
                    chosen = (full[bits], row, [], bits)
            if chosen is None and guard.smooth_alphas:
                row, path = judge_smoothed(bits)
                if row is not None and row["passed"]:
                    chosen = (path, row, [], bits)
            if chosen is None and has_split:
                label = f"int8 dynamic, {bits}-bit, outlier channels fp32"
                whole = build_dynamic_nodes([], "split-all", bits)
                row = judge(whole, label, [])
                if not row["passed"] and guard.recheck_near_ties:
                    row = with_recheck(whole, label, on_split=True)
                if row["passed"]:
                    chosen = (whole, row, [], bits)
            if chosen is None:  # keep the most sensitive MatMuls in fp32, ranked on training messages
                if guard.max_fp32_matmuls > 0:
                    ranker = _GraphScorer(compiled, rank_texts[: guard.rank_messages])
                    ranker_fp32 = ranker.logits(fp32_path)
                    singles = {_short_name(n): [n] for n in nodes}
                    order = _rank_groups(
                        singles,
                        lambda g, name: build_dynamic_nodes([n for k in g for n in singles[k]], name, bits),
                        ranker,
                        ranker_fp32,
                    )
                    chosen = keep_fewest_in_fp32(
                        order,
                        guard.max_fp32_matmuls,
                        lambda kept, k: build_dynamic_nodes(
                            [singles[m][0] for m in kept], f"matmul{k}", bits
                        ),
                        f"int8 dynamic, {bits}-bit, {{k}} MatMul(s) fp32",
                        bits,
                    )
            if chosen is None:  # then whole encoder layers
                ranking = _rank_groups(
                    groups, lambda g, name: build_dynamic(g, name, bits), train, fp32_train
                )
                chosen = keep_fewest_in_fp32(
                    ranking,
                    guard.max_fp32_groups,
                    lambda kept, k: build_dynamic(kept, f"keep{k}", bits),
                    f"int8 dynamic, {bits}-bit, {{k}} group(s) fp32",
                    bits,
                )
        if chosen is None and "static" in guard.methods:
            path = _build_static(fp32_path, Path(tmp) / "static.onnx", train, weight_bits[0] == 7)
            row = judge(path, "int8 static QDQ, per-channel", [])
            if row["passed"]:
                chosen = (path, row, [], weight_bits[0])

        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        graphs = dict(manifest.get("graphs") or {"fp32": manifest["files"]["dynamic"]})
        graphs.pop("int8", None)
        if chosen is not None:
            path, row, kept, _ = chosen
            (directory / INT8_FILE).write_bytes(path.read_bytes())
            graphs["int8"] = INT8_FILE
            served = "int8"
            reason = (
                f"{row['candidate']}: agrees with fp32 on {row['agreement']:.2%} of {len(y_val)} validation "
                f"messages (>= {guard.min_agreement:.1%}) and on {row['pooled_agreement']:.2%} of {pooled_n} "
                f"pooled messages (>= {guard.min_pooled_agreement:.1%}), ECE change {row['ece_delta']:+.4f} "
                f"(|Δ| <= {guard.max_ece_delta})"
                + (
                    f", OOD flags {row['ood_flag_agreement']:.2%} (>= {guard.min_ood_flag_agreement:.1%}) and "
                    f"routes {row['route_agreement']:.2%} (>= {guard.min_route_agreement:.1%}) of the pooled "
                    "messages"
                    if decides
                    else ""
                )
                + (
                    f", OOD flags {row['out_of_scope_flag_agreement']:.2%} of {len(out_of_scope_texts)} "
                    f"out-of-scope messages (>= {guard.min_out_of_scope_flag_agreement:.1%})"
                    if oos is not None
                    else ""
                )
                + f", each the worst of {' and '.join(batchings.values())}; "
                f"single-message P50 {row['p50_ms']:.2f} ms vs fp32 "
                f"{fp32_latency['p50_ms']:.2f} ms"
                + (
                    f"; {row['recheck_rate']:.1%} of validation messages (near ties) re-run on fp32"
                    if "recheck_rate" in row
                    else ""
                )
                + (
                    f"; {split['channels']} outlier input channel(s) of {split['matmuls']} MatMul(s) in fp32"
                    if row.get("outlier_split")
                    else ""
                )
            )
        else:
            (directory / INT8_FILE).unlink(missing_ok=True)
            served = "fp32"
            best = max(candidates[1:], key=lambda r: (r["pooled_agreement"], r["agreement"]), default=None)
            reason = "no int8 candidate met the guard" + (
                f" (best: {best['candidate']}, agreement {best['agreement']:.2%} on validation and "
                f"{best['pooled_agreement']:.2%} on {pooled_n} pooled messages, ECE change "
                f"{best['ece_delta']:+.4f}"
                + (
                    f", OOD flags {best['ood_flag_agreement']:.2%} and routes {best['route_agreement']:.2%} "
                    "of the pooled messages"
                    if decides
                    else ""
                )
                + (
                    f", OOD flags {best['out_of_scope_flag_agreement']:.2%} of the out-of-scope messages"
                    if oos is not None
                    else ""
                )
                + f"; needs >= {guard.min_agreement:.1%}, >= {guard.min_pooled_agreement:.1%} and |Δ| <= "
                f"{guard.max_ece_delta}"
                + (
                    f", flags >= {guard.min_ood_flag_agreement:.1%}, routes >= {guard.min_route_agreement:.1%}"
                    if decides
                    else ""
                )
                + (
                    f", out-of-scope flags >= {guard.min_out_of_scope_flag_agreement:.1%}"
                    if oos is not None
                    else ""
                )
                + "): serving fp32"
                if best
                else ": no method was enabled; serving fp32"
            )
    report = QuantizationReport(
        served=served,
        reason=reason,
        validation_messages=int(len(y_val)),
        agreement=chosen[1]["agreement"] if chosen else None,
        ece_delta=chosen[1]["ece_delta"] if chosen else None,
        pooled_messages=int(pooled_n),
        pooled_agreement=chosen[1]["pooled_agreement"] if chosen else None,
        ood_flag_agreement=chosen[1].get("ood_flag_agreement") if chosen else None,
        route_agreement=chosen[1].get("route_agreement") if chosen else None,
        out_of_scope_messages=len(out_of_scope_texts) if oos is not None else 0,
        out_of_scope_flag_agreement=chosen[1].get("out_of_scope_flag_agreement") if chosen else None,
        candidates=candidates,
        kept_fp32=list(chosen[2]) if chosen else [],
        recheck_margin=chosen[1].get("recheck_margin") if chosen else None,
        outlier_channels={
            **{k: v for k, v in split.items() if k != "fp32_nodes"},
            "served": bool(chosen and chosen[1].get("outlier_split")),
        },
        smoothing={**smoothing, "served": bool(chosen and chosen[1].get("smoothed"))},
        reduce_range=chosen[3] == 7 if chosen else weight_bits[0] == 7,
        bf16=bf16_note(flags),
        guard=asdict(guard),
    )
    manifest.update(graphs=graphs, serving_graph=served, quantization=report.as_dict())
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return report


def split_outlier_channels(
    fp32_path: str | Path, out: str | Path, scorer: _GraphScorer, *, ratio: float, max_channels: int
) -> dict:
    """Write a graph where each weight MatMul's outlier input channels bypass it in fp32.

    For `Y = X W` with outlier channels `o` (largest |X| over `scorer`'s messages above `ratio` × the
    median channel's, at most `max_channels`): `Y = (X ⊙ m) W + X[..., o] W[o]`, `m` zero on `o`. The first
    MatMul keeps the original node name (so ladders and layer groups still address it) and is quantized;
    the small second one is returned in "fp32_nodes" for the quantizer to leave alone. The result equals
    the fp32 graph up to float summation order; the caller checks that.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32_path))
    initializers = {init.name: init for init in model.graph.initializer}
    matmuls, peak = _matmul_input_peaks(fp32_path, scorer)

    nodes, fp32_nodes, by_matmul = [], [], {}
    shared: dict[tuple[str, tuple[int, ...]], tuple[str, str]] = {}  # Q, K and V read the same input
    bias_adds = _bias_adds(model, initializers)
    sums_after: dict[str, object] = {}  # bias Add name -> the outlier sum that must follow it
    for node in model.graph.node:
        if node.name in sums_after:  # (X_m W) + b, then + X_o W_o: see below
            nodes += [node, sums_after.pop(node.name)]
            continue
        if node.name not in matmuls:
            nodes.append(node)
            continue
        x, w_name = node.input[0], node.input[1]
        channel_peak = peak[x]
        largest = np.argsort(-channel_peak)[:max_channels]
        outliers = np.sort(largest[channel_peak[largest] > ratio * np.median(channel_peak)])
        if outliers.size == 0:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[w_name])
        tag = _short_name(node.name).replace("/", "_")
        key = (x, tuple(outliers.tolist()))
        if key not in shared:  # one mask and one gather per input tensor and channel set
            keep = np.ones(weight.shape[0], dtype=weight.dtype)
            keep[outliers] = 0
            model.graph.initializer.extend(
                [
                    numpy_helper.from_array(keep, f"{tag}_inlier_mask"),
                    numpy_helper.from_array(outliers.astype(np.int64), f"{tag}_outlier_index"),
                ]
            )
            nodes += [
                helper.make_node(
                    "Mul", [x, f"{tag}_inlier_mask"], [f"{tag}_inliers"], name=f"{tag}_inlier_mask_mul"
                ),
                helper.make_node(
                    "Gather",
                    [x, f"{tag}_outlier_index"],
                    [f"{tag}_outliers"],
                    axis=-1,
                    name=f"{tag}_outlier_gather",
                ),
            ]
            shared[key] = (f"{tag}_inliers", f"{tag}_outliers")
        inliers, outlier_values = shared[key]
        model.graph.initializer.append(
            numpy_helper.from_array(np.ascontiguousarray(weight[outliers]), f"{tag}_outlier_weight")
        )
        outlier_matmul = f"{node.name}_outlier_channels"
        nodes += [
            helper.make_node("MatMul", [inliers, w_name], [f"{tag}_inlier_out"], name=node.name),
            helper.make_node(
                "MatMul",
                [outlier_values, f"{tag}_outlier_weight"],
                [f"{tag}_outlier_out"],
                name=outlier_matmul,
            ),
        ]
        bias_add = bias_adds.get(node.output[0])
        if bias_add is None:
            nodes.append(
                helper.make_node(
                    "Add",
                    [f"{tag}_inlier_out", f"{tag}_outlier_out"],
                    list(node.output),
                    name=f"{tag}_outlier_sum",
                )
            )
        else:
            # Y + b computed as (X_m W + b) + X_o W_o: the bias Add stays right after the quantized MatMul,
            # where ONNX Runtime fuses it into the int8 kernel (and the FFN's into its Gelu), as in the
            # unsplit graph; the outlier sum comes after it (1.90 -> 1.80 ms per message on MiniLM here).
            biased = f"{tag}_inlier_biased"
            final = list(bias_add.output)
            bias_add.input[list(bias_add.input).index(node.output[0])] = f"{tag}_inlier_out"
            del bias_add.output[:]
            bias_add.output.append(biased)
            sums_after[bias_add.name] = helper.make_node(
                "Add", [biased, f"{tag}_outlier_out"], final, name=f"{tag}_outlier_sum"
            )
        fp32_nodes.append(outlier_matmul)
        by_matmul[_short_name(node.name)] = outliers.tolist()
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(out))
    return {
        "ratio": ratio,
        "max_per_matmul": max_channels,
        "matmuls": len(by_matmul),
        "channels": sum(len(c) for c in by_matmul.values()),
        "by_matmul": by_matmul,
        "fp32_nodes": fp32_nodes,
    }


def _bias_adds(model, initializers: dict) -> dict:
    """{MatMul output: the Add that adds a constant bias to it} for outputs read by that Add alone."""
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    found = {}
    for tensor, nodes in readers.items():
        if tensor not in outputs and len(nodes) == 1 and nodes[0].op_type == "Add" and nodes[0].name:
            other = [i for i in nodes[0].input if i != tensor]
            if len(other) == 1 and other[0] in initializers:
                found[tensor] = nodes[0]
    return found


def _matmul_input_peaks(
    fp32_path: str | Path, scorer: _GraphScorer
) -> tuple[list[str], dict[str, np.ndarray]]:
    """(weight MatMul node names, largest |activation| per input channel of each MatMul input tensor) over
    `scorer`'s messages, from one fp32 run per message with those tensors exposed as outputs."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from manga_intent.compiled import session_options

    model = onnx.load(str(fp32_path))
    by_name = {node.name: node for node in model.graph.node}
    matmuls = [n for n in weight_matmuls(model) if by_name[n].op_type == "MatMul"]
    watched = sorted({by_name[n].input[0] for n in matmuls})
    model.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in watched)
    session = ort.InferenceSession(
        model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    peak: dict[str, np.ndarray] = {}
    for row in scorer.ids:
        ids, mask = scorer._pad([row], scorer.compiled.manifest["pad_token_id"])
        outputs = dict(zip(names, session.run(None, {"input_ids": ids, "attention_mask": mask})))
        for tensor in watched:
            value = np.abs(outputs[tensor]).reshape(-1, outputs[tensor].shape[-1]).max(axis=0)
            peak[tensor] = np.maximum(peak[tensor], value) if tensor in peak else value
    return matmuls, peak


def smooth_activations(fp32_path: str | Path, out: str | Path, scorer: _GraphScorer, *, alpha: float) -> dict:
    """Write a graph whose weight MatMuls see smoothed inputs (SmoothQuant, Xiao et al. 2023).

    `X W = (X / s) (s W)` per input channel j, with `s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)` (activation
    peaks over `scorer`'s training messages; weight peaks over every MatMul reading X, so Q, K and V share
    one `s`). One elementwise Mul per input tensor divides by `s`; the rows of W are multiplied by it. The
    graph computes what fp32 does, but the per-call activation scale of dynamic int8 no longer spends its
    256 levels on MiniLM's few 10-30x outlier channels: they move into the weights, which are quantized
    per output channel. Unlike the outlier split it adds no second MatMul, so it costs almost nothing.
    """
    import onnx
    from onnx import helper, numpy_helper

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    matmuls, peak = _matmul_input_peaks(fp32_path, scorer)
    model = onnx.load(str(fp32_path))
    initializers = {init.name: init for init in model.graph.initializer}
    readers: dict[str, list] = {}
    for node in model.graph.node:
        if node.name in matmuls:
            readers.setdefault(node.input[0], []).append(node)
    scales = {}
    for x, nodes in readers.items():
        weight_peak = np.max(
            [np.abs(numpy_helper.to_array(initializers[n.input[1]])).max(axis=1) for n in nodes], axis=0
        )
        scale = np.maximum(peak[x], 1e-5) ** alpha / np.maximum(weight_peak, 1e-5) ** (1 - alpha)
        scales[x] = np.clip(scale, 1e-2, 1e2).astype(np.float32)
    nodes, smoothed = [], {}
    for node in model.graph.node:
        if node.name not in matmuls:
            nodes.append(node)
            continue
        x = node.input[0]
        if x not in smoothed:
            tag = f"{_short_name(node.name).replace('/', '_')}_smooth"
            model.graph.initializer.append(numpy_helper.from_array(1.0 / scales[x], f"{tag}_inverse_scale"))
            nodes.append(helper.make_node("Mul", [x, f"{tag}_inverse_scale"], [tag], name=f"{tag}_mul"))
            smoothed[x] = tag
        weight = numpy_helper.to_array(initializers[node.input[1]])
        scaled = f"{node.input[1]}_smoothed"
        model.graph.initializer.append(numpy_helper.from_array(weight * scales[x][:, None], scaled))
        nodes.append(helper.make_node("MatMul", [smoothed[x], scaled], list(node.output), name=node.name))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    still_read = {name for node in nodes for name in node.input}
    for name in {n.input[1] for ns in readers.values() for n in ns} - still_read:  # replaced by scaled ones
        model.graph.initializer.remove(initializers[name])
    onnx.save(model, str(out))
    return {"alpha": alpha, "inputs": len(smoothed), "matmuls": sum(len(v) for v in readers.values())}


def _split_or_explain(
    fp32_path: Path, out: Path, scorer: _GraphScorer, fp32_logits: np.ndarray, guard: QuantizationGuard
) -> tuple[Path, dict]:
    """The outlier-split graph when it reproduces the fp32 logits, else the fp32 graph and the reason."""
    try:
        split = split_outlier_channels(
            fp32_path,
            out,
            _GraphScorer.of_ids(scorer, guard.rank_messages),
            ratio=guard.outlier_ratio,
            max_channels=guard.max_outlier_channels,
        )
    except Exception as exc:  # an exotic graph: quantize it as it is, and say so
        return fp32_path, {"skipped": f"outlier split failed: {type(exc).__name__}: {exc}"}
    if not split["fp32_nodes"]:
        return fp32_path, {"skipped": f"no input channel above {guard.outlier_ratio}x the median", **split}
    drift = float(np.abs(scorer.logits(out) - fp32_logits).max())
    if drift > 1e-3:
        return fp32_path, {"skipped": f"the split graph moved a logit by {drift:.2g} (> 1e-3)"}
    return out, {**split, "max_abs_logit_change": drift}


def _rank_groups(
    groups: dict[str, list[str]], build, scorer: _GraphScorer, fp32_logits: np.ndarray
) -> list[str]:
    """Groups ordered by how much keeping each one alone in fp32 cuts the int8 error on training messages.

    Error: `_error` (so groups are ranked even when nothing flips on the training messages).
    """

    scores = {
        name: _error(scorer.logits(build([name], f"rank-{i}")), fp32_logits) for i, name in enumerate(groups)
    }
    return sorted(scores, key=scores.get)


def _short_name(node_name: str) -> str:
    """`/model/encoder/encoder/layer.0/output/dense/MatMul` -> `layer.0/output/dense` (reports stay readable)."""
    match = _LAYER.search(node_name)
    name = node_name[match.start() :] if match else node_name.strip("/")
    return name.removesuffix("/MatMul").removesuffix("/Gemm")


def _error(logits: np.ndarray, fp32_logits: np.ndarray) -> float:
    """Disagreement with fp32 plus the mean absolute logit difference (the tie-breaker)."""
    flips = float((logits.argmax(1) != fp32_logits.argmax(1)).mean())
    return flips + float(np.abs(logits - fp32_logits).mean())


def _build_static(fp32_path: Path, out: Path, scorer: _GraphScorer, reduce_range: bool) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    pad_id = scorer.compiled.manifest["pad_token_id"]

    class TrainingMessages(CalibrationDataReader):
        def __init__(self):
            self._rows = iter(scorer.ids[:200])

        def get_next(self):
            row = next(self._rows, None)
            if row is None:
                return None
            ids, mask = scorer._pad([row], pad_id)
            return {"input_ids": ids, "attention_mask": mask}

    quantize_static(
        str(fp32_path),
        str(out),
        TrainingMessages(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul", "Gemm"],
        per_channel=True,
        reduce_range=reduce_range,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        extra_options={"MatMulConstBOnly": True},
    )
    return out
