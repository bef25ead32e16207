"""The seed's failure-mode decision tree as code: monitoring signals in, concrete actions out.

Every leaf of the seed's tree is an `Action` with the job that carries it out; no leaf says "investigate".

  accuracy ↓ ≥ 1pp overall ──── KL > 0.025 → full retrain with the last 30 days    (I → R, the gate)
                           └─── KL ≤ 0.025 → audit the golden set for stale labels (J)
  accuracy ↓ ≥ 2pp on one segment → targeted re-label sweep on that segment, then retrain (D → O)
  ECE ↑ ≥ 0.01 → re-fit temperature on the last 14 days → recovers: hot-swap the calibrator only (E → K)
                                                       └ persists: full retrain (E → I)
  P95 latency ↑ ≥ 2 ms → tokenizer changed: pin the tokenizer, revert (F → L)
                       → model graph: re-trace, rebuild the compiled artifact (F → M)
                       → batching: tune batch size and timeout in serving (F → N)
  OOD precision ↓ ≥ 2pp → cluster-based new-intent discovery, 200 candidates for review (G → P)
  multi-intent recall ↓ ≥ 2pp → sample new pair co-occurrences from production (H → Q)

Accuracy-type signals come from human labels of a RANDOM slice of traffic (never the uncertainty-picked
active-learning batch, whose accuracy is biased low by construction). A drop counts only when it is both
at least the seed's size and significant (one-sided binomial test against the champion's baseline), so
a few unlucky audit labels do not start a retrain. An overall drop that vanishes once the dropped
segments are set aside is that segment's problem, and only the segment leaf fires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from scipy.stats import binomtest


@dataclass(frozen=True)
class TreeThresholds:
    """The seed's numbers."""

    overall_accuracy_drop: float = 0.01
    segment_accuracy_drop: float = 0.02
    ece_rise: float = 0.01
    p95_latency_rise_ms: float = 2.0
    ood_precision_drop: float = 0.02
    multi_intent_recall_drop: float = 0.02
    data_drift_kl: float = 0.025
    significance: float = 0.01
    min_labels: int = 100
    """Fewest audit labels an accuracy-type signal is judged on (overall and per segment)."""


@dataclass(frozen=True)
class Rate:
    """k successes of n (accuracy, precision or recall) measured on audit labels."""

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")


@dataclass(frozen=True)
class Baseline:
    """The champion's numbers when it was crowned (validation split, its compiled artifact)."""

    accuracy: float
    segment_accuracy: Mapping[str, float]
    ece: float
    p95_latency_ms: float
    ood_precision: float
    multi_intent_recall: float
    tokenizer_fingerprint: str = ""


@dataclass(frozen=True)
class Signals:
    """What monitoring measured on recent production traffic."""

    accuracy: Rate | None = None
    segment_accuracy: Mapping[str, Rate] = field(default_factory=dict)
    rest_accuracy: Mapping[str, Rate] = field(default_factory=dict)
    """Accuracy on everything except each segment (to tell a segment's drop from an overall one)."""
    ece: float | None = None
    ece_labels: int = 0
    p95_latency_ms: float | None = None
    p95_batched_latency_ms: float | None = None
    baseline_batched_p95_ms: float | None = None
    tokenizer_fingerprint: str = ""
    ood_precision: Rate | None = None
    multi_intent_recall: Rate | None = None
    intent_kl: float | None = None
    calibrator_refit_recovered: bool | None = None
    """Outcome of the last calibrator refit launched for an ECE rise (None: none pending)."""


@dataclass(frozen=True)
class Action:
    leaf: str
    """The seed tree's node letters, e.g. "C→I"."""
    name: str
    job: str
    reason: str
    config: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


#: leaf → (action name, job). The single table the sensors, the README and the tests read.
LEAVES: dict[str, tuple[str, str]] = {
    "C→I": ("full_retrain", "retrain_job"),
    "C→J": ("golden_set_audit", "golden_audit_job"),
    "D→O": ("targeted_relabel", "segment_relabel_job"),
    "E→K": ("calibrator_refit", "calibrator_refit_job"),
    "E→I": ("full_retrain", "retrain_job"),
    "F→L": ("pin_tokenizer", "rebuild_artifact_job"),
    "F→M": ("retrace_artifact", "rebuild_artifact_job"),
    "F→N": ("tune_serving_batching", "serving_tuning_job"),
    "G→P": ("new_intent_discovery", "intent_discovery_job"),
    "H→Q": ("multi_intent_pairs", "multi_intent_pairs_job"),
}


def _action(leaf: str, reason: str, **config) -> Action:
    name, job = LEAVES[leaf]
    return Action(leaf, name, job, reason, config)


def significant_drop(observed: Rate | None, baseline: float, min_drop: float, t: TreeThresholds) -> bool:
    """observed is at least `min_drop` below baseline, and a one-sided binomial test agrees."""
    if observed is None or observed.n < t.min_labels or baseline != baseline:
        return False
    if baseline - observed.value < min_drop:
        return False
    return (
        binomtest(observed.k, observed.n, min(max(baseline, 1e-9), 1 - 1e-9), "less").pvalue < t.significance
    )


def latency_cause(signals: Signals, baseline: Baseline, t: TreeThresholds) -> str:
    """F's three branches: a different tokenizer, slower batching alone, or the model graph."""
    if (
        signals.tokenizer_fingerprint
        and baseline.tokenizer_fingerprint
        and (signals.tokenizer_fingerprint != baseline.tokenizer_fingerprint)
    ):
        return "tokenizer"
    single_rise = (signals.p95_latency_ms or 0.0) - baseline.p95_latency_ms
    if (
        signals.p95_batched_latency_ms is not None
        and signals.baseline_batched_p95_ms is not None
        and signals.p95_batched_latency_ms - signals.baseline_batched_p95_ms >= t.p95_latency_rise_ms
        and single_rise < t.p95_latency_rise_ms
    ):
        return "batching"
    return "model_graph"


def decide(signals: Signals, baseline: Baseline, t: TreeThresholds = TreeThresholds()) -> list[Action]:
    """Every leaf the signals reach, each with its reason; [] when nothing fired."""
    actions: list[Action] = []

    def segment_dropped(segment: str) -> bool:
        rate = signals.segment_accuracy.get(segment)
        return segment in baseline.segment_accuracy and significant_drop(
            rate, baseline.segment_accuracy[segment], t.segment_accuracy_drop, t
        )

    def rest_dropped(segment: str) -> bool:
        return significant_drop(
            signals.rest_accuracy.get(segment), baseline.accuracy, t.overall_accuracy_drop, t
        )

    # a single segment's problem: it dropped, and the traffic outside it (enough of it to judge) did not
    single = sorted(
        s
        for s in signals.segment_accuracy
        if segment_dropped(s)
        and (signals.rest_accuracy.get(s) or Rate(0, 0)).n >= t.min_labels
        and not rest_dropped(s)
    )
    for segment in single:
        rate = signals.segment_accuracy[segment]
        actions.append(
            _action(
                "D→O",
                f"segment {segment}: accuracy {rate.value:.3f} on {rate.n} audit labels vs baseline "
                f"{baseline.segment_accuracy[segment]:.3f}; the rest of traffic holds",
                segment=segment,
            )
        )
    if not single and significant_drop(signals.accuracy, baseline.accuracy, t.overall_accuracy_drop, t):
        kl = signals.intent_kl or 0.0
        why = f"accuracy {signals.accuracy.value:.3f} vs baseline {baseline.accuracy:.3f}; intent KL {kl:.4f}"
        actions.append(_action("C→I" if kl > t.data_drift_kl else "C→J", why))
    if signals.calibrator_refit_recovered is False:
        actions.append(_action("E→I", "temperature refit did not bring ECE back: the model needs retraining"))
    elif (
        signals.ece is not None
        and signals.ece_labels >= t.min_labels
        and signals.ece - baseline.ece >= t.ece_rise
        and signals.calibrator_refit_recovered is None
    ):
        actions.append(_action("E→K", f"ECE {signals.ece:.4f} vs baseline {baseline.ece:.4f}"))
    single_rise = (
        signals.p95_latency_ms - baseline.p95_latency_ms if signals.p95_latency_ms is not None else 0.0
    )
    batched_rise = (
        signals.p95_batched_latency_ms - signals.baseline_batched_p95_ms
        if signals.p95_batched_latency_ms is not None and signals.baseline_batched_p95_ms is not None
        else 0.0
    )
    if max(single_rise, batched_rise) >= t.p95_latency_rise_ms:
        cause = latency_cause(signals, baseline, t)
        leaf = {"tokenizer": "F→L", "batching": "F→N", "model_graph": "F→M"}[cause]
        actions.append(
            _action(
                leaf,
                f"P95 single-message latency +{single_rise:.2f} ms, batched +{batched_rise:.2f} ms; cause {cause}",
                cause=cause,
            )
        )
    if significant_drop(signals.ood_precision, baseline.ood_precision, t.ood_precision_drop, t):
        actions.append(
            _action(
                "G→P",
                f"OOD precision {signals.ood_precision.value:.3f} vs baseline {baseline.ood_precision:.3f}",
                candidates=200,
            )
        )
    if significant_drop(
        signals.multi_intent_recall, baseline.multi_intent_recall, t.multi_intent_recall_drop, t
    ):
        actions.append(
            _action(
                "H→Q",
                f"multi-intent recall {signals.multi_intent_recall.value:.3f} vs baseline "
                f"{baseline.multi_intent_recall:.3f}",
            )
        )
    return actions
