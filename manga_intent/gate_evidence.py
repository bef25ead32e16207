"""Scoring compiled artifacts on the golden set for the gate: predictions, references and the gate's own latency.

The gate measures P95 itself, on the golden messages, in its own run: a latency figure carried over from the
build step would be a number measured somewhere else, on other messages.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from manga_intent.compiled import CompiledClassifier
from manga_intent.gate import GateEvidence, Reference
from manga_intent.metrics import expected_calibration_error, paired_ece_delta


def golden_labels(rows: Sequence[dict], labels: Sequence[str]) -> np.ndarray:
    """Golden labels as indices into the candidate's labels; a label the candidate lacks is an error, not a skip."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({row["label"] for row in rows} - set(index))
    if unknown:
        raise ValueError(f"golden labels {unknown} are not in the candidate's label set {list(labels)}")
    return np.array([index[row["label"]] for row in rows])


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


def gather_evidence(
    candidate: CompiledClassifier,
    rows: Sequence[dict],
    *,
    rare_labels: Sequence[str],
    references: Sequence[tuple[str, str, CompiledClassifier]] = (),
    relabel: Mapping[str, str] | None = None,
    latency_warmup: int = 20,
) -> GateEvidence:
    """Golden predictions of the candidate and of each (role, version, artifact) reference, plus latency."""
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
        extras={"quantization": quantization_evidence(candidate, texts, y_true, probs)},
    )


def quantization_evidence(
    candidate: CompiledClassifier, texts, y_true: np.ndarray, probs: np.ndarray
) -> dict:
    """For an int8 serving graph: its golden agreement with the artifact's own fp32 graph and the ECE change."""
    served = getattr(candidate, "graph", "fp32")
    if served != "int8":
        return {"served_graph": served}
    fp32 = CompiledClassifier(candidate.directory, graph="fp32").probabilities(texts)
    guard = (candidate.manifest.get("quantization") or {}).get("guard") or {}
    return {
        "served_graph": served,
        "agreement": float((probs.argmax(1) == fp32.argmax(1)).mean()),
        "ece_delta": paired_ece_delta(probs, fp32, y_true),  # over fp32's bins, as the guard measured it
        "ece_delta_rebinned": expected_calibration_error(probs, y_true)
        - expected_calibration_error(fp32, y_true),
        "min_agreement": guard.get("min_agreement", 0.995),
        "max_ece_delta": guard.get("max_ece_delta", 0.005),
    }
