"""Unbiased production accuracy: human labels of a random slice of traffic, scored per seed segment.

The active-learning batch is chosen for uncertainty, so the model's accuracy on it is low by construction;
judging the model on it would start retrains for nothing. The audit slice is chosen by a hash of the
request id alone (`in_audit_slice`), so it is a uniform random sample of traffic whatever the model
thought. Segments follow the seed's tables: language (en / jp_en / romaji), rarity tier of the true
intent, and traffic source (mobile / web / voice).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from manga_intent.decision_tree import Rate
from manga_intent.synthetic.matching import detect_tags
from manga_intent.taxonomy import rarity_tier

OUT_OF_SCOPE = "out_of_scope"


def in_audit_slice(request_id: str, share: float) -> bool:
    """Deterministic uniform sampling by request id: independent of the text and of the model's output."""
    digest = hashlib.sha256(f"audit:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def segments_of(text: str, channel: str | None, label: str | None) -> list[str]:
    tags = detect_tags(text)
    language = "jp_en" if "jp_en" in tags else "romaji" if "romaji" in tags else "en"
    out = [f"language:{language}"]
    if channel:
        out.append(f"source:{channel}")
    if label and label != OUT_OF_SCOPE:
        out.append(f"rarity:{rarity_tier(label)}")
    return out


def top_label_ece(confidences: np.ndarray, hits: np.ndarray, n_bins: int = 10) -> float:
    """ECE of the model's answer: |accuracy − mean confidence| per confidence bin, weighted by bin size."""
    bins = np.minimum((np.asarray(confidences) * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            total += mask.sum() * abs(hits[mask].mean() - confidences[mask].mean())
    return float(total / len(confidences))


def _rate(flags: Iterable[bool]) -> Rate:
    flags = list(flags)
    return Rate(int(sum(flags)), len(flags))


def audit_metrics(items: Sequence[Mapping]) -> dict:
    """Metrics from audited rows: each has the model's `intent`, `confidence`, `is_ood`, `secondary_intent`,
    `text`, `channel` and the humans' `label` (an intent or out_of_scope) and `secondary`."""
    # accuracy of what the model routed: in-scope by the humans, not sent to the fallback by the model
    # (fallback mistakes are OOD precision's business, so each failure shows in one signal)
    in_scope = [i for i in items if i["label"] != OUT_OF_SCOPE and not i["is_ood"]]
    correct = {id(i): i["intent"] == i["label"] for i in in_scope}
    segments: dict[str, list[bool]] = {}
    for item in in_scope:
        for segment in segments_of(item["text"], item.get("channel"), item["label"]):
            segments.setdefault(segment, []).append(correct[id(item)])
    rest = {
        segment: _rate(
            correct[id(i)]
            for i in in_scope
            if segment not in segments_of(i["text"], i.get("channel"), i["label"])
        )
        for segment in segments
    }
    flagged = [i for i in items if i["is_ood"]]
    pairs = [i for i in in_scope if i.get("secondary")]
    ece = None
    if in_scope:
        confidences = np.array([float(i["confidence"]) for i in in_scope])
        hits = np.array([correct[id(i)] for i in in_scope], dtype=float)
        ece = top_label_ece(confidences, hits)
    return {
        "accuracy": _rate(correct.values()) if in_scope else None,
        "segment_accuracy": {s: _rate(v) for s, v in segments.items()},
        "rest_accuracy": rest,
        "ece": ece,
        "ece_labels": len(in_scope),
        "ood_precision": _rate(i["label"] == OUT_OF_SCOPE for i in flagged) if flagged else None,
        "multi_intent_recall": _rate(
            {i["intent"], i.get("secondary_intent")} == {i["label"], i["secondary"]} for i in pairs
        )
        if pairs
        else None,
    }
