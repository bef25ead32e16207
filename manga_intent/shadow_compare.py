"""Judging a challenger's shadow window: the same rows-with-CIs table as the gate, over live traffic.

Both models answered the same messages (the champion served them, the challenger was scored off the response
path). Rows: agreement, mean confidence, OOD rate, the challenger's P95 latency under real traffic, and — on
shadowed messages that people labelled and that neither model trained on — paired accuracy.

Latency: off the response path the challenger competes with request handling for the same cores, so its raw
timings read high (the champion's own graph read 19.9 ms there against 13.1 ms as served). The scorer
therefore re-times the champion beside it, and the row estimates the challenger's P95 as it would be served:
the champion's served P95 × (challenger P95 ÷ champion P95, both timed in shadow). It fails only a challenger
that is over the bound and shown slower than the champion (the ratio's lower 95% bound above
1 + `max_p95_slowdown`): when the champion itself is served over the bound on this host (as in `make demo`,
where the shadow's own scoring loads the two cores), a challenger as fast as it is not the cause.

The decision is taken once the window (message count and/or hours) is complete: promote when no row fails,
reject otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from manga_intent.data import normalized_key
from manga_intent.gate import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    GateRow,
    paired_bootstrap,
    resample_index_chunks,
    resampled_sums,
    wilson_interval,
)

PROMOTE, REJECT, WAIT = "promote", "reject", "wait"

#: Fewest messages timed on both models for the paired latency estimate (fewer: the raw off-path P95).
MIN_TIMED_PAIRS = 20


@dataclass(frozen=True)
class ShadowThresholds:
    window_messages: int = 2000
    """Messages the challenger must have scored; 0 = no count requirement."""
    window_hours: float = 24.0
    """Hours since the challenger entered shadow (the seed: 24 h); 0 = no time requirement."""
    min_agreement: float = 0.80
    max_confidence_drop: float = 0.05
    max_ood_rate_increase: float = 0.05
    max_p95_latency_ms: float = 15.0
    """Bound on the challenger's P95 as served, estimated from the paired shadow timings."""
    max_p95_slowdown: float = 0.10
    """Over that bound a challenger still passes unless its P95 is shown more than this much above the
    champion's, both timed in shadow: the ratio's lower 95% bound. The same graph read 0.99-1.14 on 200-400
    messages (CIs about ±10%): a copy that only shadows runs a little colder than the one serving."""
    accuracy_margin: float = 0.01
    min_labelled: int = 30
    confidence: float = 0.95
    n_boot: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class ShadowVerdict:
    decision: str
    rows: tuple[GateRow, ...]
    reasons: tuple[str, ...]
    messages: int
    labelled: int
    hours: float

    def table(self) -> list[dict]:
        return [row.table_row() for row in self.rows]

    def summary(self) -> str:
        values = {row.check: row.shown_value() for row in self.rows}
        return "; ".join(f"{k} {v}" for k, v in values.items())


def labelled_messages(
    rows: Sequence[dict], labels: Mapping[str, str], exclude_keys: frozenset[str] = frozenset()
) -> list[tuple[dict, str]]:
    """(shadow row, human label) for shadowed messages people labelled, minus any either model trained on."""
    out = []
    for row in rows:
        key = normalized_key(row["text"])
        if key in labels and key not in exclude_keys:
            out.append((row, labels[key]))
    return out


def judge_shadow(
    rows: Sequence[dict],
    labels: Mapping[str, str],
    thresholds: ShadowThresholds,
    *,
    hours: float,
    exclude_keys: frozenset[str] = frozenset(),
) -> ShadowVerdict:
    """`rows`: shadow-log rows of one challenger vs one champion; `labels`: normalised text → human label."""
    t = thresholds
    n = len(rows)
    window_rows = [
        GateRow(
            "window: messages",
            str(n),
            f"≥ {t.window_messages}",
            PASS if n >= t.window_messages else NOT_APPLICABLE,
            unit="",
            detail="still collecting" if n < t.window_messages else "",
        ),
        GateRow(
            "window: hours in shadow",
            f"{hours:.2f}",
            f"≥ {t.window_hours:g}",
            PASS if hours >= t.window_hours else NOT_APPLICABLE,
            unit="",
            detail="still collecting" if hours < t.window_hours else "",
        ),
    ]
    complete = n >= max(t.window_messages, 1) and hours >= t.window_hours
    if n == 0:
        return ShadowVerdict(WAIT, tuple(window_rows), (), 0, 0, hours)

    agree = np.array([r["champion_intent"] == r["challenger_intent"] for r in rows])
    champ_conf = np.array([r["champion_confidence"] for r in rows], dtype=float)
    chall_conf = np.array([r["challenger_confidence"] for r in rows], dtype=float)
    champ_ood = np.array([r["champion_is_ood"] for r in rows], dtype=bool)
    chall_ood = np.array([r["challenger_is_ood"] for r in rows], dtype=bool)

    def bootstrap_mean_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
        rng = np.random.default_rng(t.seed)
        d = a - b
        means = resampled_sums(d, t.n_boot, rng) / len(d)
        low, high = np.quantile(means, [(1 - t.confidence) / 2, 1 - (1 - t.confidence) / 2])
        return float(d.mean()), float(low), float(high)

    conf_diff, conf_low, conf_high = bootstrap_mean_diff(chall_conf, champ_conf)
    ood_diff, ood_low, ood_high = paired_bootstrap(chall_ood, champ_ood, n_boot=t.n_boot, seed=t.seed)
    latency_row = _latency_row(rows, t)
    rows_out = [
        *window_rows,
        GateRow(
            "agreement with champion",
            float(agree.mean()),
            f"≥ {t.min_agreement:.0%}",
            PASS if agree.mean() >= t.min_agreement else FAIL,
            ci=wilson_interval(int(agree.sum()), n, t.confidence),
            detail=f"{int(agree.sum())}/{n} same intent",
        ),
        GateRow(
            "mean confidence, challenger − champion",
            conf_diff,
            f"≥ {-t.max_confidence_drop * 100:+.1f} pp",
            PASS if conf_diff >= -t.max_confidence_drop else FAIL,
            ci=(conf_low, conf_high),
            unit="pp",
            detail=f"{chall_conf.mean():.3f} vs {champ_conf.mean():.3f}",
        ),
        GateRow(
            "OOD rate, challenger − champion",
            ood_diff,
            f"≤ {t.max_ood_rate_increase * 100:+.1f} pp",
            PASS if ood_diff <= t.max_ood_rate_increase else FAIL,
            ci=(ood_low, ood_high),
            unit="pp",
            detail=f"{chall_ood.mean():.1%} vs {champ_ood.mean():.1%}",
        ),
        latency_row,
    ]
    labelled = labelled_messages(rows, labels, exclude_keys)
    if len(labelled) < t.min_labelled:
        rows_out.append(
            GateRow(
                "accuracy on labelled shadow messages",
                f"{len(labelled)} labelled",
                f"needs ≥ {t.min_labelled} labelled",
                NOT_APPLICABLE,
                unit="",
                detail="not judged: too few human labels for shadowed messages",
            )
        )
    else:
        truth = [label for _, label in labelled]
        champ_right = np.array([r["champion_intent"] == y for (r, _), y in zip(labelled, truth)])
        chall_right = np.array([r["challenger_intent"] == y for (r, _), y in zip(labelled, truth)])
        diff, low, high = paired_bootstrap(
            chall_right, champ_right, n_boot=t.n_boot, seed=t.seed, confidence=t.confidence
        )
        rows_out.append(
            GateRow(
                "accuracy on labelled shadow messages, challenger − champion",
                diff,
                f"lower 95% bound ≥ {-t.accuracy_margin * 100:+.1f} pp",
                PASS if low >= -t.accuracy_margin else FAIL,
                ci=(low, high),
                unit="pp",
                detail=f"{chall_right.mean():.1%} vs {champ_right.mean():.1%} on {len(labelled)} labelled",
            )
        )
    reasons = tuple(row.reason() for row in rows_out if row.failed)
    decision = WAIT if not complete else (REJECT if reasons else PROMOTE)
    return ShadowVerdict(decision, tuple(rows_out), reasons, n, len(labelled), hours)


def p95_ratio(
    challenger_ms: np.ndarray, champion_ms: np.ndarray, *, n_boot: int, seed: int, confidence: float
) -> tuple[float, float, float]:
    """Challenger P95 ÷ champion P95 over paired timings, with a bootstrap CI that resamples messages."""
    ratio = float(np.percentile(challenger_ms, 95) / np.percentile(champion_ms, 95))
    chunks = resample_index_chunks(
        len(challenger_ms), n_boot, np.random.default_rng(seed), max_cells=2_000_000
    )
    draws = [
        np.percentile(challenger_ms[idx], 95, axis=1) / np.percentile(champion_ms[idx], 95, axis=1)
        for idx in chunks
    ]
    low, high = np.quantile(np.concatenate(draws), [(1 - confidence) / 2, 1 - (1 - confidence) / 2])
    return ratio, float(low), float(high)


def _latency_row(rows: Sequence[dict], t: ShadowThresholds) -> GateRow:
    """The challenger's P95 as it would be served, from timings paired with the champion's where there are
    enough; otherwise its raw off-path P95, which reads high (said in the row)."""
    served_p95 = float(np.percentile([r["champion_latency_ms"] for r in rows], 95))
    over = int(sum(r["over_budget"] for r in rows))
    paired = [r for r in rows if r.get("champion_shadow_latency_ms") is not None]
    threshold = f"≤ {t.max_p95_latency_ms:.1f} ms"
    if len(paired) < MIN_TIMED_PAIRS:
        raw = float(np.percentile([r["challenger_latency_ms"] for r in rows], 95))
        return GateRow(
            "challenger P95 latency (shadow, off the response path)",
            raw,
            threshold,
            PASS if raw <= t.max_p95_latency_ms else FAIL,
            unit="ms",
            detail=f"only {len(paired)} messages timed on both models (< {MIN_TIMED_PAIRS}): raw off-path P95, "
            f"which reads high; champion served P95 {served_p95:.2f} ms; {over} over the shadow budget",
        )
    challenger_ms = np.array([r["challenger_latency_ms"] for r in paired], dtype=float)
    champion_ms = np.array([r["champion_shadow_latency_ms"] for r in paired], dtype=float)
    ratio, low, high = p95_ratio(
        challenger_ms, champion_ms, n_boot=t.n_boot, seed=t.seed, confidence=t.confidence
    )
    estimate = served_p95 * ratio
    as_fast = low <= 1 + t.max_p95_slowdown  # not shown slower than the champion
    return GateRow(
        "challenger P95 latency, as served (estimated)",
        estimate,
        f"{threshold}, or not shown > {t.max_p95_slowdown:+.0%} vs the champion",
        PASS if estimate <= t.max_p95_latency_ms or as_fast else FAIL,
        ci=(served_p95 * low, served_p95 * high),
        unit="ms",
        detail=(
            f"over the bound but not shown slower than the champion (ratio's lower bound ≤ "
            f"{1 + t.max_p95_slowdown:.2f}); "
            if estimate > t.max_p95_latency_ms and as_fast
            else ""
        )
        + f"champion served P95 {served_p95:.2f} ms × challenger/champion P95 in shadow {ratio:.3f} "
        f"[{low:.3f}, {high:.3f}] over {len(paired)} messages timed on both "
        f"({np.percentile(challenger_ms, 95):.2f} vs {np.percentile(champion_ms, 95):.2f} ms off the path); "
        f"{over} over the shadow budget",
        facts={"p95_ratio": ratio, "p95_ratio_ci": [low, high], "timed_pairs": len(paired)},
    )
