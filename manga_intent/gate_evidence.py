"""Scoring compiled artifacts on the golden set for the gate: predictions, references and the gate's own latency.

The gate measures P95 itself, on the golden messages, in its own run: a latency figure carried over from the
build step would be a number measured somewhere else, on other messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from manga_intent.compiled import CompiledClassifier, single_message_latencies
from manga_intent.gate import GateEvidence, Reference
from manga_intent.metrics import expected_calibration_error, paired_ece_delta
from manga_intent.quantization import QuantizationGuard


def golden_labels(rows: Sequence[dict], labels: Sequence[str]) -> np.ndarray:
    """Golden labels as indices into the candidate's labels; a label the candidate lacks is an error, not a skip."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({row["label"] for row in rows} - set(index))
    if unknown:
        raise ValueError(f"golden labels {unknown} are not in the candidate's label set {list(labels)}")
    return np.array([index[row["label"]] for row in rows])


def gather_evidence(
    candidate: CompiledClassifier,
    rows: Sequence[dict],
    *,
    rare_labels: Sequence[str],
    references: Sequence[tuple[str, str, CompiledClassifier]] = (),
    relabel: Mapping[str, str] | None = None,
    latency_warmup: int = 20,
    ood_texts: Sequence[str] = (),
    injection: bool = True,
) -> GateEvidence:
    """Golden predictions of the candidate and of each (role, version, artifact) reference, plus latency, the
    served OOD detector on `ood_texts` (the held-out OOD half) and golden, and the injection flip rates."""
    if not rows:
        raise ValueError("the golden set is empty")
    texts = [row["text"] for row in rows]
    y_true = golden_labels(rows, candidate.labels)
    probs = candidate.probabilities(texts)
    return GateEvidence(
        labels=tuple(candidate.labels),
        y_true=y_true,
        candidate_probs=probs,
        latency_ms=single_message_latencies(candidate, texts, warmup=latency_warmup),
        rare_labels=tuple(rare_labels),
        references=tuple(
            Reference(role, str(version), tuple(model.labels), model.probabilities(texts))
            for role, version, model in references
        ),
        relabel=dict(relabel or {}),
        extras={
            "quantization": quantization_evidence(candidate, texts, y_true),
            **({"ood": ood_evidence(candidate, texts, ood_texts)} if ood_texts else {}),
            **({"injection": injection_evidence(candidate, rows)} if injection else {}),
        },
    )


def ood_evidence(
    candidate: CompiledClassifier, golden_texts: Sequence[str], ood_texts: Sequence[str]
) -> dict:
    """The artifact's own OOD flag (its detector, its validation threshold) on both sides."""
    golden = candidate.classify(list(golden_texts))
    ood = candidate.classify(list(ood_texts))
    return {
        "detector": golden[0].ood_detector,
        "tpr": float(np.mean([p.is_ood for p in ood])),
        "n_ood": len(ood),
        "golden_flag_rate": float(np.mean([p.is_ood for p in golden])),
    }


def injection_evidence(candidate: CompiledClassifier, rows: Sequence[dict]) -> dict:
    """Flip and goal rates of the injection attacks on the golden messages, phrasings training never sees."""
    from manga_intent.data import Example
    from manga_intent.robustness import ATTACKS, run_robustness

    report = run_robustness(
        lambda texts: candidate.probabilities(texts).argmax(axis=1),
        [Example(row["text"], row["label"]) for row in rows],
        candidate.labels,
        attacks=[a for a in ATTACKS if a.family == "injection"],
        phrasings="heldout",
    )
    return report.summary()


def quantization_evidence(candidate: CompiledClassifier, texts, y_true: np.ndarray) -> dict:
    """For an int8 serving graph: its golden agreement with the artifact's own fp32 graph and the ECE change,
    each the worst of one message at a time and consecutive batches of the guard's `serving_batch`."""
    served = getattr(candidate, "graph", "fp32")
    if served != "int8":
        return {"served_graph": served}
    reference = CompiledClassifier(candidate.directory, graph="fp32")
    fp32 = reference.probabilities(texts)
    decides = candidate.detector is not None
    fp32_decisions = _decisions(reference.classify(texts)) if decides else None
    guard = (candidate.manifest.get("quantization") or {}).get("guard") or {}
    serving_batch = int(guard.get("serving_batch", 8))
    by_batching = {}
    for name, batch in (("one at a time", 1), (f"batches of {serving_batch}", serving_batch)):
        # as the quantization guard judges it: an int8 answer depends a little on its batch-mates
        chunks = [candidate.logits_and_features(texts[i : i + batch]) for i in range(0, len(texts), batch)]
        served_probs = np.concatenate([candidate.calibrated_probabilities(logits) for logits, _ in chunks])
        by_batching[name] = {
            "agreement": float((served_probs.argmax(1) == fp32.argmax(1)).mean()),
            "ece_delta": paired_ece_delta(served_probs, fp32, y_true),  # over fp32's bins, as the guard
            "ece_delta_rebinned": expected_calibration_error(served_probs, y_true)
            - expected_calibration_error(fp32, y_true),
        }
        if decides:  # from the same model calls: flags and routes as the service derives them
            flags, routes = _decisions(
                [p for logits, features in chunks for p in candidate.predictions(logits, features=features)]
            )
            by_batching[name]["ood_flag_agreement"] = float((flags == fp32_decisions[0]).mean())
            by_batching[name]["route_agreement"] = float((routes == fp32_decisions[1]).mean())
    worst_ece = max(by_batching.values(), key=lambda r: abs(r["ece_delta"]))
    evidence = {
        "served_graph": served,
        "agreement": min(r["agreement"] for r in by_batching.values()),
        "ece_delta": worst_ece["ece_delta"],
        "ece_delta_rebinned": worst_ece["ece_delta_rebinned"],
        "by_batching": by_batching,
        "min_agreement": guard.get("min_agreement", 0.995),
        "max_ece_delta": guard.get("max_ece_delta", 0.005),
    }
    if decides:
        defaults = QuantizationGuard()
        for key in ("ood_flag_agreement", "route_agreement"):
            evidence[key] = min(r[key] for r in by_batching.values())
            evidence[f"min_{key}"] = guard.get(f"min_{key}", getattr(defaults, f"min_{key}"))
    return evidence


def _decisions(predictions) -> tuple[np.ndarray, np.ndarray]:
    """(OOD flags, routes) of served predictions."""
    return np.array([p.is_ood for p in predictions]), np.array([p.route for p in predictions])
