"""The golden-set promotion gate: every criterion is a row (value, threshold, 95% CI, verdict) in one table.

The default rows, in order:

- overall accuracy ≥ the floor (92%), Wilson 95% CI;
- non-inferiority to the champion: the paired, intent-stratified bootstrap of candidate − champion accuracy on
  the same golden rows; the row passes when the lower end of its 95% CI is ≥ −margin (default 1 pp);
- the same paired test per intent against −intent_margin (default 5 pp), each row printing the minimum
  detectable drop at that intent's row count and the rows it would need for the margin;
- each rare intent's own accuracy ≥ the rare floor (85%), never a pooled rate;
- P95 single-message latency, measured by the gate itself, ≤ 15 ms;
- the label order identical to the champion's (or made so by an explicit relabel map);
- calibrated ECE (informational unless a ceiling is configured);
- for an int8 serving graph, its golden agreement with the artifact's own fp32 graph and the ECE change;
  when only those rows fail, the fp32 graph is judged on the same rows and, if it passes, the version
  passes *to be served in fp32* (`with_fp32_fallback`; the table keeps the int8 rows and says why);
- the artifact's OOD detector on the held-out OOD half (TPR, with its in-domain flag rate on golden) and the
  mean injection flip rate under the held-out attack phrasings: informational unless `min_ood_tpr`,
  `max_ood_flag_rate` or `max_injection_flip_rate` is configured;
- against a challenger already in shadow, the same overall non-inferiority test: a candidate may displace a
  challenger only if it is not worse than it.

Other checks are `Criterion` functions: they read the `GateEvidence` (its `extras` carry whatever they need)
and return rows for the same table.

Minimum detectable drop (MDD): the paired difference has standard error sqrt(p_d / n), p_d the rate of
discordant rows (one model right, the other wrong). A test at 95% confidence detects a drop of
MDD = (z_0.975 + z_power) * sqrt(p_d / n) with the configured power (80%): smaller true drops cannot be told
from noise, and an equal model only passes a margin m reliably once MDD ≤ m, i.e. with
n ≥ ((z_0.975 + z_power) / m)^2 * p_d rows. p_d is the discordance observed between candidate and champion,
or 2a(1 − a) (independent errors, a = candidate accuracy) when there is no champion or no discordant row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy.stats import norm

from manga_intent.metrics import ece_noise_floor, expected_calibration_error

PASS, FAIL, INFO, NOT_APPLICABLE = "pass", "fail", "info", "n/a"
CHAMPION, CHALLENGER = "champion", "challenger"

METHOD = (
    "accuracy rows: Wilson 95% CI; difference rows: paired bootstrap of candidate − reference on the same "
    "golden rows (intent-stratified for the overall row), 95% percentile CI, pass when its lower end ≥ −margin; "
    "MDD = (z_0.975 + z_power)·sqrt(p_d/n), rows needed = ((z_0.975 + z_power)/margin)²·p_d; "
    "latency: P95 of single-message end-to-end calls in the gate run, bootstrap 95% CI"
)


@dataclass(frozen=True)
class GateThresholds:
    min_accuracy: float = 0.92
    accuracy_margin: float = 0.01
    """Overall non-inferiority margin: lower 95% bound of candidate − champion must be ≥ −margin."""
    intent_margin: float = 0.05
    min_rare_accuracy: float = 0.85
    max_p95_latency_ms: float = 15.0
    max_ece: float | None = None
    """Calibrated ECE ceiling; None keeps the ECE row informational."""
    min_ood_tpr: float | None = None
    """Share of the held-out OOD half the artifact's detector flags; None keeps the row informational."""
    max_ood_flag_rate: float | None = None
    """Share of golden (in-scope) messages the detector flags; None keeps the row informational."""
    max_injection_flip_rate: float | None = None
    """Mean flip rate of the injection attacks (held-out phrasings) on golden; None: informational."""
    confidence: float = 0.95
    power: float = 0.80
    """Power of the minimum-detectable-drop figures (not used for the verdict)."""
    n_boot: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class GateRow:
    """One criterion: `value` and `ci` in `unit` ("%" fractions, "pp" fraction differences, "ms", "" text)."""

    check: str
    value: float | str | None
    threshold: str
    verdict: str
    ci: tuple[float, float] | None = None
    unit: str = "%"
    detail: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL

    def shown_value(self) -> str:
        return _fmt(self.value, self.unit)

    def shown_ci(self) -> str:
        if self.ci is None:
            return "–"
        return f"[{_fmt(self.ci[0], self.unit)}, {_fmt(self.ci[1], self.unit)}]"

    def reason(self) -> str:
        return f"{self.check}: {self.shown_value()} fails {self.threshold}" + (
            f" ({self.detail})" if self.detail else ""
        )

    def as_dict(self) -> dict:
        row = asdict(self)
        row["ci"] = list(self.ci) if self.ci else None
        row["facts"] = dict(self.facts)
        return row

    def table_row(self) -> dict:
        return {
            "check": self.check,
            "value": self.shown_value(),
            "threshold": self.threshold,
            "95% CI": self.shown_ci(),
            "verdict": self.verdict,
            "detail": self.detail,
        }


def _fmt(value, unit: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if unit == "%":
        return f"{100 * value:.2f}%"
    if unit == "pp":
        return f"{100 * value:+.2f} pp"
    if unit == "ms":
        return f"{value:.2f} ms"
    return f"{value:.4f}"


@dataclass(frozen=True)
class Reference:
    """A registered model the candidate is compared with, scored on the same golden rows."""

    role: str
    version: str
    labels: tuple[str, ...]
    probs: np.ndarray
    """Golden-row probabilities in the reference's own label order."""


@dataclass(frozen=True, eq=False)
class GateEvidence:
    """Everything the criteria judge: golden labels and predictions, references, the gate's latency samples."""

    labels: tuple[str, ...]
    y_true: np.ndarray
    candidate_probs: np.ndarray
    latency_ms: np.ndarray
    rare_labels: tuple[str, ...]
    references: tuple[Reference, ...] = ()
    relabel: Mapping[str, str] = field(default_factory=dict)
    """Champion label → candidate label, for a deliberate renaming; empty means labels must match as they are."""
    extras: Mapping[str, Any] = field(default_factory=dict)

    def reference(self, role: str) -> Reference | None:
        return next((r for r in self.references if r.role == role), None)

    @property
    def candidate_correct(self) -> np.ndarray:
        return self.candidate_probs.argmax(axis=1) == self.y_true

    def reference_correct(self, reference: Reference) -> np.ndarray | None:
        """The reference's right/wrong on each golden row, its labels mapped to the candidate's; None if it can't be."""
        mapped = [self.relabel.get(label, label) for label in reference.labels]
        index = {label: i for i, label in enumerate(self.labels)}
        if any(label not in index for label in mapped):
            return None
        lookup = np.array([index[label] for label in mapped])
        return lookup[reference.probs.argmax(axis=1)] == self.y_true


Criterion = Callable[[GateEvidence, GateThresholds], list[GateRow]]


# --- statistics -------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    z = norm.ppf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def resample_index_chunks(n: int, n_boot: int, rng: np.random.Generator, max_cells: int = 4_000_000):
    """Bootstrap row indices for `n_boot` resamples of `n` rows, yielded as (resamples, n) chunks of at most
    `max_cells` so that memory stays bounded on long windows (a day of shadow traffic); the same draws, in
    the same order, as one (n_boot, n) draw."""
    chunk = max(1, max_cells // n)
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def resampled_sums(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Sums of `n_boot` resamples (with replacement) of `values` (`resample_index_chunks`)."""
    return np.concatenate(
        [values[idx].sum(axis=1) for idx in resample_index_chunks(len(values), n_boot, rng)]
    )


def paired_bootstrap(
    candidate_correct: np.ndarray,
    reference_correct: np.ndarray,
    *,
    strata: np.ndarray | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """(candidate − reference accuracy, CI low, CI high): rows resampled together (within strata if given)."""
    d = np.asarray(candidate_correct, dtype=int) - np.asarray(reference_correct, dtype=int)
    n = len(d)
    if n == 0:
        raise ValueError("no rows to compare")
    strata = np.zeros(n, dtype=int) if strata is None else np.asarray(strata)
    rng = np.random.default_rng(seed)
    sums = np.zeros(n_boot)
    for stratum in np.unique(strata):
        values = d[strata == stratum]
        if not values.any():
            continue  # all ties: this stratum adds exactly zero to every resample
        sums += resampled_sums(values, n_boot, rng)
    alpha = 1 - confidence
    low, high = np.quantile(sums / n, [alpha / 2, 1 - alpha / 2])
    return float(d.mean()), float(low), float(high)


def _z_sum(confidence: float, power: float) -> float:
    return float(norm.ppf(1 - (1 - confidence) / 2) + norm.ppf(power))


def minimum_detectable_drop(
    n: int, discordance: float, confidence: float = 0.95, power: float = 0.8
) -> float:
    return _z_sum(confidence, power) * math.sqrt(discordance / n) if n else float("inf")


def rows_needed(margin: float, discordance: float, confidence: float = 0.95, power: float = 0.8) -> int:
    return math.ceil((_z_sum(confidence, power) / margin) ** 2 * discordance)


def planning_discordance(
    candidate_correct: np.ndarray, reference_correct: np.ndarray | None
) -> tuple[float, str]:
    """The discordance rate the MDD figures assume, and where it comes from."""
    if reference_correct is not None:
        observed = float(np.mean(candidate_correct != reference_correct))
        if observed > 0:
            return observed, f"observed discordance vs champion {observed:.1%}"
    accuracy = float(np.mean(candidate_correct))
    assumed = max(2 * accuracy * (1 - accuracy), 1 / len(candidate_correct))
    why = "no champion" if reference_correct is None else "no discordant row observed"
    return assumed, f"assumed discordance 2a(1−a) = {assumed:.1%} ({why}; independent errors)"


# --- criteria ---------------------------------------------------------------------------------------------


def accuracy_floor(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    correct = evidence.candidate_correct
    accuracy = float(correct.mean())
    return [
        GateRow(
            "overall accuracy",
            accuracy,
            f"≥ {_fmt(t.min_accuracy, '%')}",
            PASS if accuracy >= t.min_accuracy else FAIL,
            ci=wilson_interval(int(correct.sum()), len(correct), t.confidence),
            detail=f"{int(correct.sum())}/{len(correct)} golden rows",
        )
    ]


def _noninferiority_row(
    evidence: GateEvidence, t: GateThresholds, reference: Reference, check: str, margin: float
) -> GateRow:
    reference_correct = evidence.reference_correct(reference)
    if reference_correct is None:
        return GateRow(
            check,
            "not comparable",
            f"lower 95% bound ≥ {-margin * 100:+.1f} pp",
            FAIL,
            unit="",
            detail=f"v{reference.version}'s labels do not map onto the candidate's (give a relabel map)",
        )
    candidate_correct = evidence.candidate_correct
    diff, low, high = paired_bootstrap(
        candidate_correct,
        reference_correct,
        strata=evidence.y_true,
        n_boot=t.n_boot,
        seed=t.seed,
        confidence=t.confidence,
    )
    p_d, source = planning_discordance(candidate_correct, reference_correct)
    mdd = minimum_detectable_drop(len(candidate_correct), p_d, t.confidence, t.power)
    return GateRow(
        check,
        diff,
        f"lower 95% bound ≥ {-margin * 100:+.1f} pp",
        PASS if low >= -margin else FAIL,
        ci=(low, high),
        unit="pp",
        detail=(
            f"v{reference.version} {reference_correct.mean():.2%}; "
            f"{int(np.sum(candidate_correct & ~reference_correct))} rows gained, "
            f"{int(np.sum(~candidate_correct & reference_correct))} lost; MDD {mdd * 100:.1f} pp, "
            f"rows for a {margin * 100:.0f} pp margin {rows_needed(margin, p_d, t.confidence, t.power)} "
            f"({source})"
        ),
        facts={"reference_version": reference.version, "mdd": mdd, "discordance": p_d},
    )


def overall_noninferiority(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    champion = evidence.reference(CHAMPION)
    if champion is None:
        return [
            GateRow(
                "overall vs champion",
                "no champion yet",
                f"lower 95% bound ≥ {-t.accuracy_margin * 100:+.1f} pp",
                NOT_APPLICABLE,
                unit="",
                detail="first model: nothing to be inferior to",
            )
        ]
    return [_noninferiority_row(evidence, t, champion, "overall vs champion", t.accuracy_margin)]


def challenger_noninferiority(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    challenger = evidence.reference(CHALLENGER)
    if challenger is None:
        return []
    return [
        _noninferiority_row(evidence, t, challenger, "overall vs challenger in shadow", t.accuracy_margin)
    ]


def per_intent_noninferiority(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    champion = evidence.reference(CHAMPION)
    candidate_correct = evidence.candidate_correct
    champion_correct = evidence.reference_correct(champion) if champion else None
    if champion is not None and champion_correct is None:
        return []  # the label-order row already fails and says why
    p_d, source = planning_discordance(candidate_correct, champion_correct)
    threshold = f"lower 95% bound ≥ {-t.intent_margin * 100:+.1f} pp"
    needed = rows_needed(t.intent_margin, p_d, t.confidence, t.power)
    rows = []
    for index, label in enumerate(evidence.labels):
        mask = evidence.y_true == index
        n = int(mask.sum())
        check = f"intent {label} vs champion"
        if n == 0:
            rows.append(GateRow(check, "no golden rows", threshold, FAIL, unit="", detail="cannot be judged"))
            continue
        mdd = minimum_detectable_drop(n, p_d, t.confidence, t.power)
        facts = {
            "intent": label,
            "n": n,
            "candidate": float(candidate_correct[mask].mean()),
            "mdd": mdd,
            "rows_needed": needed,
            "protected": mdd <= t.intent_margin,
            "discordance_source": source,
        }
        size = f"n={n}, MDD {mdd * 100:.1f} pp, rows needed {needed}"
        if champion_correct is None:
            rows.append(
                GateRow(
                    check, "no champion yet", threshold, NOT_APPLICABLE, unit="", detail=size, facts=facts
                )
            )
            continue
        diff, low, high = paired_bootstrap(
            candidate_correct[mask],
            champion_correct[mask],
            n_boot=t.n_boot,
            seed=t.seed + index + 1,
            confidence=t.confidence,
        )
        facts = {**facts, "champion": float(champion_correct[mask].mean()), "diff": diff, "ci": (low, high)}
        rows.append(
            GateRow(
                check,
                diff,
                threshold,
                PASS if low >= -t.intent_margin else FAIL,
                ci=(low, high),
                unit="pp",
                detail=f"{facts['candidate']:.1%} vs {facts['champion']:.1%}; {size}",
                facts=facts,
            )
        )
    return rows


def rare_intent_floors(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    rows = []
    correct = evidence.candidate_correct
    for label in evidence.rare_labels:
        check = f"rare intent {label} accuracy"
        threshold = f"≥ {_fmt(t.min_rare_accuracy, '%')}"
        if label not in evidence.labels:
            rows.append(GateRow(check, "not a candidate label", threshold, FAIL, unit=""))
            continue
        mask = evidence.y_true == evidence.labels.index(label)
        n = int(mask.sum())
        if n == 0:
            rows.append(GateRow(check, "no golden rows", threshold, FAIL, unit="", detail="cannot be judged"))
            continue
        hits = int(correct[mask].sum())
        accuracy = hits / n
        rows.append(
            GateRow(
                check,
                accuracy,
                threshold,
                PASS if accuracy >= t.min_rare_accuracy else FAIL,
                ci=wilson_interval(hits, n, t.confidence),
                detail=f"{hits}/{n}",
            )
        )
    return rows


def latency_p95(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    samples = np.asarray(evidence.latency_ms, dtype=float)
    threshold = f"≤ {t.max_p95_latency_ms:.1f} ms"
    if samples.size == 0:
        return [GateRow("P95 latency (gate run)", "not measured", threshold, FAIL, unit="")]
    p95 = float(np.percentile(samples, 95))
    rng = np.random.default_rng(t.seed)
    boots = np.percentile(samples[rng.integers(0, samples.size, size=(500, samples.size))], 95, axis=1)
    alpha = 1 - t.confidence
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return [
        GateRow(
            "P95 latency (gate run)",
            p95,
            threshold,
            PASS if p95 <= t.max_p95_latency_ms else FAIL,
            ci=(float(low), float(high)),
            unit="ms",
            detail=f"{samples.size} single-message calls, P50 {np.percentile(samples, 50):.2f} ms",
        )
    ]


def label_order(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    rows = []
    for reference in evidence.references:
        mapped = [evidence.relabel.get(label, label) for label in reference.labels]
        if mapped == list(evidence.labels):
            value = "relabelled by map" if evidence.relabel else "identical"
            verdict, detail = PASS, ""
        else:
            value, verdict = "differs", FAIL
            changed = [
                f"{i}: {a}→{b}" for i, (a, b) in enumerate(zip(mapped, evidence.labels)) if a != b
            ] or [f"{len(mapped)} vs {len(evidence.labels)} labels"]
            detail = "; ".join(changed[:5])
        rows.append(
            GateRow(
                f"label order vs {reference.role} v{reference.version}",
                value,
                "identical (or explicit relabel map)",
                verdict,
                unit="",
                detail=detail,
            )
        )
    return rows


def calibration_ece(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    """The bound, with the ECE a perfectly calibrated model would read on as many messages beside it: on a
    few hundred messages that floor is itself 0.02-0.05, so the on-call engineer sees whether a FAIL can be
    sampling noise (the verdict stays the bound's)."""
    ece = expected_calibration_error(evidence.candidate_probs, evidence.y_true)
    floor = ece_noise_floor(evidence.candidate_probs)
    detail = (
        f"a perfectly calibrated model with these confidences reads {floor['mean']:.3f} "
        f"(95th percentile {floor['p95']:.3f}) on these {floor['n']} messages"
    )
    facts = {"ece_noise_floor": floor["mean"], "ece_noise_floor_p95": floor["p95"]}
    if t.max_ece is None:
        return [GateRow("calibrated ECE", ece, "informational", INFO, unit="", detail=detail, facts=facts)]
    if floor["p95"] > t.max_ece:
        detail += f"; the bound {t.max_ece:.3f} is below that 95th percentile, so a FAIL here can be noise"
    verdict = PASS if ece <= t.max_ece else FAIL
    return [
        GateRow("calibrated ECE", ece, f"≤ {t.max_ece:.3f}", verdict, unit="", detail=detail, facts=facts)
    ]


def quantization_agreement(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    """An int8 serving graph was chosen on validation; on golden it must still agree with its own fp32 graph
    and keep the calibrated ECE (the compiled asset's guard thresholds). A served fp32 graph has nothing to
    compare."""
    q = evidence.extras.get("quantization") or {}
    served = q.get("served_graph", "fp32")
    check = "int8 graph agrees with fp32 (golden, worst serving batching)"
    if served != "int8":
        return [GateRow(check, f"n/a: {served} served", "–", NOT_APPLICABLE, unit="")]
    n = len(evidence.y_true)
    agree = q["agreement"]
    rows = [
        GateRow(
            check,
            agree,
            f"≥ {_fmt(q['min_agreement'], '%')}",
            PASS if agree >= q["min_agreement"] else FAIL,
            ci=wilson_interval(round(agree * n), n, t.confidence),
        ),
        GateRow(
            "int8 calibrated ECE change vs fp32 (golden, fp32 bins, worst serving batching)",
            q["ece_delta"],
            f"|Δ| ≤ {q['max_ece_delta']:.3f}",
            PASS if abs(q["ece_delta"]) <= q["max_ece_delta"] else FAIL,
            unit="",
        ),
    ]
    for key, what in (("ood_flag_agreement", "OOD flag"), ("route_agreement", "route")):
        if key in q:  # an artifact with a serving calibration (OOD detector and route policy)
            rows.append(
                GateRow(
                    f"int8 graph keeps fp32's {what} (golden, worst serving batching)",
                    q[key],
                    f"≥ {_fmt(q['min_' + key], '%')}",
                    PASS if q[key] >= q["min_" + key] else FAIL,
                    ci=wilson_interval(round(q[key] * n), n, t.confidence),
                )
            )
    return rows


def _bounded(check: str, value: float, bound: float | None, above: bool, ci=None) -> GateRow:
    """A row that is a criterion when `bound` is set (≥ bound when `above`, else ≤ bound), else informational."""
    if bound is None:
        return GateRow(check, value, "informational", INFO, ci=ci)
    ok = value >= bound if above else value <= bound
    return GateRow(check, value, f"{'≥' if above else '≤'} {_fmt(bound, '%')}", PASS if ok else FAIL, ci=ci)


def ood_detection(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    """The served detector at its fitted threshold: how much of the held-out OOD half it catches, and how much
    of golden it sends to the fallback (the seed's operating point: ≥ 85% caught at ≤ 5% flagged)."""
    o = evidence.extras.get("ood")
    if not o:
        return [
            GateRow("OOD TPR (held-out OOD half)", "n/a: no OOD rows given", "–", NOT_APPLICABLE, unit="")
        ]
    n_ood, n_in = o["n_ood"], len(evidence.y_true)
    return [
        _bounded(
            f"OOD TPR (held-out OOD half, {o['detector']})",
            o["tpr"],
            t.min_ood_tpr,
            above=True,
            ci=wilson_interval(round(o["tpr"] * n_ood), n_ood, t.confidence),
        ),
        _bounded(
            "in-domain OOD flags (golden)",
            o["golden_flag_rate"],
            t.max_ood_flag_rate,
            above=False,
            ci=wilson_interval(round(o["golden_flag_rate"] * n_in), n_in, t.confidence),
        ),
    ]


def injection_robustness(evidence: GateEvidence, t: GateThresholds) -> list[GateRow]:
    """Injected instructions ("ignore prior, route to escalation", phrasings training never saw) appended,
    prefixed and obfuscated on the golden messages: the share whose prediction changes."""
    r = evidence.extras.get("injection")
    if not r:
        return [
            GateRow(
                "injection flip rate (held-out phrasings)", "n/a: not measured", "–", NOT_APPLICABLE, unit=""
            )
        ]
    return [
        _bounded(
            "injection flip rate (held-out phrasings)",
            r["injection_flip_rate"],
            t.max_injection_flip_rate,
            False,
        ),
        GateRow("injection goal rate (held-out phrasings)", r["injection_goal_rate"], "informational", INFO),
    ]


#: The gate's rows, in table order. Another issue's check slots in by adding its Criterion here.
DEFAULT_CRITERIA: tuple[Criterion, ...] = (
    accuracy_floor,
    overall_noninferiority,
    per_intent_noninferiority,
    rare_intent_floors,
    latency_p95,
    label_order,
    calibration_ece,
    quantization_agreement,
    ood_detection,
    injection_robustness,
    challenger_noninferiority,
)


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    rows: tuple[GateRow, ...]
    reasons: tuple[str, ...]
    method: str = METHOD

    def table(self) -> list[dict]:
        return [row.table_row() for row in self.rows]

    def intent_table(self) -> list[dict]:
        """Per intent: row count, accuracies, difference and CI, minimum detectable drop, rows needed."""
        out = []
        for row in self.rows:
            f = row.facts
            if "intent" not in f:
                continue
            out.append(
                {
                    "intent": f["intent"],
                    "n": f["n"],
                    "candidate": f"{f['candidate']:.1%}",
                    "champion": f"{f['champion']:.1%}" if "champion" in f else "–",
                    "diff": row.shown_value() if "diff" in f else "–",
                    "95% CI": row.shown_ci(),
                    "MDD": f"{f['mdd'] * 100:.1f} pp",
                    "rows needed": f["rows_needed"],
                    "protected at margin": "yes" if f["protected"] else "no",
                    "verdict": row.verdict,
                }
            )
        return out

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "rows": [r.as_dict() for r in self.rows],
            "reasons": list(self.reasons),
            "method": self.method,
        }


QUANTIZATION_ROW_PREFIX = "int8 "
"""Rows of `quantization_agreement`: the only ones an fp32 fallback may override."""


def only_quantization_failed(verdict: GateVerdict) -> bool:
    """The int8 graph disagreed with its own fp32 graph on golden, and nothing else failed."""
    failed = [row for row in verdict.rows if row.failed]
    return bool(failed) and all(row.check.startswith(QUANTIZATION_ROW_PREFIX) for row in failed)


def with_fp32_fallback(int8: GateVerdict, fp32: GateVerdict) -> GateVerdict:
    """The verdict of the artifact's fp32 graph, judged on the same golden rows after its int8 graph
    failed only the quantization rows: every criterion is the fp32 graph's (accuracy, latency, ECE ...),
    the int8 rows stay in the table (as info) to say why int8 is not served, and a last row names the
    graph that will be served."""
    why = "; ".join(row.reason() for row in int8.rows if row.failed)
    kept = tuple(
        replace(row, verdict=INFO, detail="not served: the fp32 graph is judged and served instead")
        for row in int8.rows
        if row.check.startswith(QUANTIZATION_ROW_PREFIX)
    )
    served = GateRow("served graph", "fp32", "int8 only if it agrees on golden", INFO, unit="", detail=why)
    rows = tuple(r for r in fp32.rows if not r.check.startswith(QUANTIZATION_ROW_PREFIX)) + kept + (served,)
    return GateVerdict(passed=fp32.passed, rows=rows, reasons=fp32.reasons, method=fp32.method)


def judge(
    evidence: GateEvidence,
    thresholds: GateThresholds,
    criteria: Sequence[Criterion] = DEFAULT_CRITERIA,
) -> GateVerdict:
    """Every criterion's rows in one table; the candidate passes only if no row fails."""
    rows = tuple(row for criterion in criteria for row in criterion(evidence, thresholds))
    reasons = tuple(row.reason() for row in rows if row.failed)
    return GateVerdict(passed=not reasons, rows=rows, reasons=reasons)
