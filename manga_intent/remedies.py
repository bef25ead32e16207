"""The decision tree's remedies that are pure computation: temperature refit on recent audit labels,
cluster-based new-intent discovery, and multi-intent pair sampling. Assets wrap them."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from manga_intent.audit import OUT_OF_SCOPE, top_label_ece
from manga_intent.calibration import fit_temperature


@dataclass(frozen=True)
class TemperatureRefit:
    temperature: float
    """The new serving temperature (the old one times the fitted correction)."""
    correction: float
    ece_before: float
    ece_after: float
    fit_labels: int
    check_labels: int
    unknown_labels: dict[str, int]
    """Audited rows left out because the model has no such intent (a new intent people labelled): they say
    nothing about this model's temperature, and are counted here rather than dropped silently."""

    def as_dict(self) -> dict:
        return asdict(self)


def refit_temperature(
    items: Sequence[dict], labels: Sequence[str], current_temperature: float
) -> TemperatureRefit:
    """Fit a temperature correction on the older 70% of audited rows, check ECE on the newest 30%.

    Audited rows carry the calibrated probabilities the service returned; log-probabilities are the
    logits divided by the current temperature (up to a constant), so fitting a temperature on them yields
    the correction factor.
    """
    index = {label: i for i, label in enumerate(labels)}
    in_scope = [i for i in items if i["label"] != OUT_OF_SCOPE and i.get("probs")]
    unknown = Counter(i["label"] for i in in_scope if i["label"] not in index)
    rows = sorted((i for i in in_scope if i["label"] in index), key=lambda i: i.get("ts") or 0)
    if len(rows) < 20:
        also = (
            f" ({sum(unknown.values())} more carry labels it does not know: {dict(unknown)})"
            if unknown
            else ""
        )
        raise ValueError(
            f"need at least 20 audited in-scope rows with probabilities and a label the model knows, got "
            f"{len(rows)}{also}"
        )
    logp = np.log(
        np.clip(np.array([[r["probs"].get(name, 0.0) for name in labels] for r in rows]), 1e-12, 1.0)
    )
    y = np.array([index[r["label"]] for r in rows])
    cut = int(len(rows) * 0.7)
    correction = fit_temperature(logp[:cut], y[:cut]).temperature

    def ece(scale: float) -> float:
        z = logp[cut:] / scale
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return top_label_ece(p.max(axis=1), (p.argmax(axis=1) == y[cut:]).astype(float))

    return TemperatureRefit(
        temperature=current_temperature * correction,
        correction=correction,
        ece_before=ece(1.0),
        ece_after=ece(correction),
        fit_labels=cut,
        check_labels=len(rows) - cut,
        unknown_labels=dict(unknown),
    )


def discovery_candidates(rows: Sequence[dict], n: int = 200, clusters: int = 8, seed: int = 0) -> list[dict]:
    """Cluster messages the model could not place (OOD-flagged or unsure) and pick `n` for human review,
    round-robin over clusters, nearest to each centroid first; each pick gains `cluster`."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    rows = list(rows)
    if not rows:
        return []
    k = max(1, min(clusters, len(rows) // 5 or 1))
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=1).fit_transform(
        [r["text"] for r in rows]
    )
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(vectors)
    distances = model.transform(vectors)
    members: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(model.labels_):
        members[int(c)].append(i)
    for c in members:
        members[c].sort(key=lambda i: distances[i, c])
    order = sorted(members, key=lambda c: -len(members[c]))  # biggest (most likely a new intent) first
    picked: list[dict] = []
    depth = 0
    while len(picked) < min(n, len(rows)):
        for c in order:
            if depth < len(members[c]) and len(picked) < n:
                picked.append({**rows[members[c][depth]], "cluster": c, "cluster_size": len(members[c])})
        depth += 1
    return picked


def pair_candidates(rows: Sequence[dict], n: int = 200, min_second: float = 0.25) -> list[dict]:
    """Messages that look like two intents (runner-up ≥ `min_second`), balanced over intent pairs."""
    by_pair: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        ranked = sorted(row.get("probs", {}).items(), key=lambda kv: -kv[1])
        if len(ranked) >= 2 and ranked[1][1] >= min_second and not row.get("is_ood"):
            pair = tuple(sorted((ranked[0][0], ranked[1][0])))
            by_pair[pair].append({**row, "pair": "+".join(pair), "second_share": ranked[1][1]})
    for members in by_pair.values():
        members.sort(key=lambda r: -r["second_share"])
    picked, depth = [], 0
    quota = math.inf if not by_pair else n
    while len(picked) < quota and any(depth < len(m) for m in by_pair.values()):
        for pair in sorted(by_pair):
            if depth < len(by_pair[pair]) and len(picked) < n:
                picked.append(by_pair[pair][depth])
        depth += 1
    return picked


PROBE_TEXTS = (
    "where is my order #12345?",
    "any isekai like Frieren? tankōbon only",
    "この漫画は英語ですか? vol 12 out?",
    "is this peak or mid lol",
    "i want to return this and find something better",
)


def tokenizer_fingerprint(tokenizer) -> str:
    """What the tokenizer does to fixed probe texts, hashed: changes when the tokenizer (or its library) does."""
    import hashlib
    import json

    ids = [tokenizer(t, truncation=True, max_length=64)["input_ids"] for t in PROBE_TEXTS]
    payload = json.dumps({"class": type(tokenizer).__name__, "ids": ids}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def latency_p95_ms(classify, texts: Sequence[str], batch_size: int, repeats: int = 3) -> float:
    """P95 per-message latency (ms) of `classify(list_of_texts)` at a batch size."""
    import time

    per_message = []
    for _ in range(repeats):
        for i in range(0, len(texts), batch_size):
            chunk = list(texts[i : i + batch_size])
            started = time.perf_counter()
            classify(chunk)
            per_message.append((time.perf_counter() - started) * 1000 / len(chunk))
    return float(np.percentile(per_message, 95))
