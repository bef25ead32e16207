"""`golden_gate`: the blocking check on `neuron_artifact` that decides whether a version may go towards shoppers.

Load → judge → record, fail closed:

1. read the champion and challenger aliases (a registry error here is an error, never "no champion");
2. download the candidate and the references *as registered* (pyfunc artifacts, checksums verified), score
   them on the golden set and measure the candidate's single-message P95 in this run (`gather_evidence`);
3. judge every criterion as a row of one table (`manga_intent.gate.judge`); when an int8 serving graph
   fails only its agreement with the artifact's fp32 graph, judge the fp32 graph on the same rows and,
   if it passes, pass the version with the `serving_graph=fp32` tag, which serving obeys;
4. record: a pass moves an alias by compare-and-set — `challenger` (shadow mode) when a champion exists,
   `champion` for the very first model — and is rejected with "champion moved during evaluation" if the
   aliases changed since step 1; a failure tags the version `gate=rejected` with its reasons.

Any exception on the way fails the check with the error as its reason and tags the version `gate=error`;
the aliases are only ever moved by the one compare-and-set call, so an error leaves the champion unchanged.
"""

import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from manga_assets.instance import REGISTRY_POOL  # noqa: F401  (re-exported: the gate and shadow_report use it)
from manga_assets.manifests import CompiledModel
from manga_assets.metadata import markdown_table, md
from manga_assets.neuron_artifact import neuron_artifact
from manga_assets.partitions import seed_partitions
from manga_intent.compiled import CompiledClassifier
from manga_intent.gate import (
    CHALLENGER,
    CHAMPION,
    GateVerdict,
    judge,
    only_quantization_failed,
    with_fp32_fallback,
)
from manga_intent.gate_evidence import gather_evidence
from manga_intent.shipped_data import ood_heldout_pool
from resources.gate_settings import GateSettings
from resources.mlflow_registry import MlflowRegistry
from serving.registry import (
    ERROR,
    GATE_TAG,
    PASSED,
    REASONS_TAG,
    REJECTED,
    SERVING_GRAPH_TAG,
    AliasMoved,
    ModelRegistry,
)


@dataclass(frozen=True)
class GateOutcome:
    version: str
    verdict: GateVerdict
    passed: bool
    reasons: tuple[str, ...]
    headline: str
    aliases_at_start: dict[str, str | None]
    golden_messages: int
    serving_graph: str = "fp32"
    """The graph judged (and, on a pass, served): "fp32" after an int8 fallback."""


def _reference_dirs(registry: ModelRegistry, version: str, start: dict, tmp: Path):
    """(role, version, artifact) for the champion and a challenger in shadow, downloaded as registered."""
    seen, references = {version}, []
    for role, alias in ((CHAMPION, registry.champion_alias), (CHALLENGER, registry.challenger_alias)):
        reference = start[alias]
        if reference and reference not in seen:
            seen.add(reference)
            model_dir = registry.download(reference, tmp / role)
            graph = registry.version_tags(reference).get(SERVING_GRAPH_TAG)  # what shoppers get from it
            compiled = CompiledClassifier(registry.compiled_dir(model_dir), graph=graph or None)
            references.append((role, reference, compiled))
    return references


def evaluate_and_record(
    registry: ModelRegistry, version: str, settings: GateSettings, log=print
) -> GateOutcome:
    """Steps 1–4 above; raises on any registry, storage or evaluation error (the caller fails closed)."""
    start = registry.alias_versions()
    champion_before = start[registry.champion_alias]
    challenger_before = start[registry.challenger_alias]
    rows = settings.golden_rows()
    with tempfile.TemporaryDirectory() as tmp:
        compiled_dir = registry.compiled_dir(registry.download(version, Path(tmp) / "candidate"))
        candidate = CompiledClassifier(compiled_dir)
        references = _reference_dirs(registry, version, start, Path(tmp))

        def evidence_for(model: CompiledClassifier):
            return gather_evidence(
                model,
                rows,
                rare_labels=settings.rare_labels(),
                references=references,
                relabel=settings.relabel_map,
                latency_warmup=settings.latency_warmup,
                ood_texts=[row["text"] for row in ood_heldout_pool()],
            )

        evidence = evidence_for(candidate)
        verdict = judge(evidence, settings.thresholds())
        served_graph = candidate.graph
        if served_graph == "int8" and only_quantization_failed(verdict):
            log(f"v{version}: the int8 graph disagrees with fp32 on golden; judging the fp32 graph")
            evidence = evidence_for(CompiledClassifier(compiled_dir, graph="fp32"))
            verdict = with_fp32_fallback(verdict, judge(evidence, settings.thresholds()))
            served_graph = "fp32"
    p95 = next((r.value for r in verdict.rows if r.check.startswith("P95")), None)
    summary = {
        "gate_compared_to": champion_before or "none",
        "gate_challenger_compared": challenger_before if challenger_before != version else "none",
        "gate_accuracy": f"{evidence.candidate_correct.mean():.4f}",
        "gate_p95_ms": f"{p95:.2f}" if isinstance(p95, float) else "n/a",
        "gate_evaluated_at": f"{time.time():.0f}",
        SERVING_GRAPH_TAG: served_graph,
    }
    run_id = registry.client().get_model_version(registry.model_name, version).run_id
    if run_id:
        registry.client().log_dict(run_id, verdict.as_dict(), f"gate/version-{version}.json")
    if not verdict.passed:
        registry.set_tags(version, {GATE_TAG: REJECTED, REASONS_TAG: "; ".join(verdict.reasons), **summary})
        return GateOutcome(
            version,
            verdict,
            False,
            verdict.reasons,
            "rejected: champion unchanged",
            start,
            len(rows),
            served_graph,
        )
    shadow = champion_before is not None and champion_before != version and settings.shadow_before_cutover
    target = registry.challenger_alias if shadow else registry.champion_alias
    tags = {GATE_TAG: PASSED, REASONS_TAG: "", "stage": target, **summary}
    if shadow:
        tags |= {"shadow": "pending", "shadow_vs": champion_before, "shadow_started": f"{time.time():.3f}"}
    try:
        registry.move_alias(target, version, expected=start, tags=tags, during="evaluation")
    except AliasMoved as moved:
        reasons = (str(moved),)
        registry.set_tags(version, {GATE_TAG: REJECTED, REASONS_TAG: reasons[0], **summary})
        return GateOutcome(
            version, verdict, False, reasons, "rejected: champion unchanged", start, len(rows), served_graph
        )
    if shadow and challenger_before and challenger_before != version:
        with suppress(Exception):  # informational; the alias has already moved
            registry.set_tags(challenger_before, {"shadow": f"superseded by v{version}"})
    headline = (
        f"passed: v{version} is the challenger, in shadow mode beside champion v{champion_before}"
        if shadow
        else f"passed: v{version} is the champion"
        + ("" if champion_before is None else f" (replaces v{champion_before}; shadow mode off)")
    )
    if any(row.check == "served graph" for row in verdict.rows):
        headline += " (served in fp32: its int8 graph disagreed with fp32 on golden)"
    log(headline)
    return GateOutcome(version, verdict, True, (), headline, start, len(rows), served_graph)


def gate_metadata(outcome: GateOutcome) -> dict:
    verdict = outcome.verdict
    by_check = {row.check: row for row in verdict.rows}
    accuracy = by_check.get("overall accuracy")
    metadata = {
        "verdict": outcome.headline,
        "model_version": outcome.version,
        "champion_at_start": outcome.aliases_at_start.get("champion") or "none",
        "challenger_at_start": outcome.aliases_at_start.get("challenger") or "none",
        "gate_table": md(markdown_table(verdict.table())),
        "per_intent": md(markdown_table(verdict.intent_table())),
        "gate_rows": dg.MetadataValue.json([row.as_dict() for row in verdict.rows]),
        "reasons": dg.MetadataValue.json(list(outcome.reasons)),
        "method": verdict.method,
        "golden_messages": outcome.golden_messages,
        "serving_graph": outcome.serving_graph,
    }
    if accuracy is not None:
        metadata["accuracy"] = float(accuracy.value)
        metadata["accuracy_ci95"] = dg.MetadataValue.json(list(accuracy.ci))
    return metadata


@dg.asset_check(asset=neuron_artifact, blocking=True, partitions_def=seed_partitions, pool=REGISTRY_POOL)
def golden_gate(
    context: dg.AssetCheckExecutionContext,
    neuron_artifact: CompiledModel,
    gate_settings: GateSettings,
    mlflow_registry: MlflowRegistry,
) -> dg.AssetCheckResult:
    """Judge the registered version on the golden set; a pass moves `challenger` (or the first `champion`).

    Rows: overall accuracy ≥ floor; non-inferiority to the champion (paired bootstrap, lower 95% bound ≥ −1 pp);
    per intent the same test at −5 pp with the minimum detectable drop and rows needed; each rare intent ≥ 85%;
    P95 latency measured here ≤ 15 ms; label order identical to the champion's; calibrated ECE; and, when a
    challenger is in shadow, non-inferiority to it. Any error fails the check, champion unchanged.
    """
    registry = mlflow_registry.registry()
    version = neuron_artifact.model_version
    try:
        outcome = evaluate_and_record(registry, version, gate_settings, log=context.log.info)
    except Exception as exc:
        reason = f"gate error ({type(exc).__name__}): {exc}"
        recorded = "tagged gate=error"
        try:
            registry.set_tags(version, {GATE_TAG: ERROR, REASONS_TAG: reason})
        except Exception as tagging:
            recorded = f"could not tag the version either ({type(tagging).__name__}: {tagging})"
        context.log.error(f"version {version}: {reason}; {recorded}; champion unchanged")
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "verdict": "error: champion unchanged",
                "model_version": version,
                "reasons": dg.MetadataValue.json([reason]),
                "recorded": recorded,
            },
        )
    if not outcome.passed:
        context.log.warning(f"version {version} rejected: {'; '.join(outcome.reasons)}")
    return dg.AssetCheckResult(
        passed=outcome.passed, severity=dg.AssetCheckSeverity.ERROR, metadata=gate_metadata(outcome)
    )


def gate_table_text(metadata) -> str:
    """The gate and per-intent tables of a check evaluation's metadata, as printed by the demo."""
    values = {k: v.value if hasattr(v, "value") else v for k, v in metadata.items()}
    parts = [f"verdict: {values.get('verdict')}"]
    for key in ("gate_table", "per_intent"):
        if key in values:
            parts.append(values[key])
    reasons = values.get("reasons") or []
    parts += [f"reason: {r}" for r in reasons]
    return "\n\n".join(parts) + f"\n\nmethod: {values.get('method')}"
