"""`decision_tree_sensor`: the seed's failure-mode decision tree, evaluated by the daemon.

Each tick gathers the signals — accuracy, per-segment accuracy, ECE, OOD precision and multi-intent recall
from the newest export of human labels on the RANDOM audit slice; P95 latency (single and batched
requests) and intent KL from the newest full window of the prediction log; the outcome of a pending
calibrator refit — compares them with the champion's `monitoring_baseline` tag and launches one run per
leaf reached (`manga_intent.decision_tree`). Every piece of evidence is judged once: the cursor remembers
the audit export, the log window (with the log's epoch) and the refit it has acted on, and run keys name
them.
"""

import hashlib
import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np

from manga_assets.jobs import REMEDY_JOBS, retrain_job
from manga_assets.labeling import latest_manifest
from manga_assets.manifests import AuditExport
from manga_assets.monitoring_actions import BASELINE_TAG, champion_compiled_dir
from manga_intent.audit import audit_metrics
from manga_intent.compiled import CompiledClassifier
from manga_intent.decision_tree import Baseline, Signals, TreeThresholds, decide
from manga_intent.drift_test import drift_test
from manga_intent.home import manga_home
from manga_intent.remedies import tokenizer_fingerprint
from resources.mlflow_registry import MlflowRegistry
from resources.monitoring_settings import MonitoringSettings
from resources.prediction_log import PredictionLogResource
from resources.storage import ArtifactStore
from sensors.intervals import tick_interval
from serving.log_cursor import LogCursor


def _baseline(raw: dict) -> Baseline:
    return Baseline(
        accuracy=float(raw.get("accuracy", float("nan"))),
        segment_accuracy=raw.get("segment_accuracy", {}),
        ece=float(raw.get("ece") or 0.0),
        p95_latency_ms=float(raw.get("p95_latency_ms", 0.0)),
        ood_precision=float(raw.get("ood_precision", float("nan"))),
        multi_intent_recall=float(raw.get("multi_intent_recall", float("nan"))),
        tokenizer_fingerprint=raw.get("tokenizer_fingerprint", ""),
    )


def latency_signals(rows: list[dict]) -> tuple[float | None, float | None]:
    """(P95 of single-message requests, P95 per message of batched requests); a request's rows share ts+client."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["ts"], r.get("client")), []).append(r["latency_ms"])
    single = [v[0] for v in groups.values() if len(v) == 1]
    batched = [x for v in groups.values() if len(v) > 1 for x in v]
    p95 = lambda xs: float(np.percentile(xs, 95)) if len(xs) >= 20 else None  # noqa: E731
    return p95(single), p95(batched)


def _current_fingerprint(champion, registry: MlflowRegistry) -> str:
    """The tokenizer fingerprint of the champion's artifact as this environment loads it (cached per version)."""
    cache = manga_home() / "monitoring-cache" / f"v{champion.version}.fingerprint"
    if cache.is_file():
        return cache.read_text().strip()
    with tempfile.TemporaryDirectory() as tmp:
        fingerprint = tokenizer_fingerprint(
            CompiledClassifier(champion_compiled_dir(registry, champion, Path(tmp))).tokenizer
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(fingerprint)
    return fingerprint


def _request(action, evidence: str, champion, baseline_raw: dict) -> dg.RunRequest:
    tags = {
        "trigger": "decision_tree",
        "leaf": action.leaf,
        "action": action.name,
        "reason": action.reason[:200],
    }
    run_config, partition = {}, None
    if action.name == "targeted_relabel":
        run_config = {"ops": {"labeling_batch": {"config": {"segment": action.config["segment"]}}}}
    if action.job in ("retrain_job", "rebuild_artifact_job"):
        partition = champion.tags.get("seed", "42")
    key = hashlib.sha1(f"{action.leaf}:{action.config}:{evidence}".encode()).hexdigest()[:12]
    return dg.RunRequest(
        run_key=f"tree:{action.leaf}:{key}",
        job_name=action.job,
        tags=tags,
        run_config=run_config,
        partition_key=partition,
    )


@dg.sensor(
    jobs=[retrain_job, *REMEDY_JOBS],
    minimum_interval_seconds=tick_interval(600),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="The seed's failure-mode decision tree: audit labels, latency and KL in, one run per leaf out.",
)
def decision_tree_sensor(
    context: dg.SensorEvaluationContext,
    prediction_log: PredictionLogResource,
    mlflow_registry: MlflowRegistry,
    monitoring: MonitoringSettings,
    artifact_store: ArtifactStore,
):
    state = json.loads(context.cursor) if context.cursor else {}
    champion = mlflow_registry.champion()
    raw = json.loads(champion.tags.get(BASELINE_TAG, "{}")) if champion is not None else {}
    if not raw:
        return dg.SkipReason("no champion with a monitoring baseline yet")
    baseline = _baseline(raw)
    evidence = []
    signal_args: dict = {}

    # audit labels (a random slice): accuracy-type signals, judged once per export
    export = latest_manifest(context.instance, "audit_labels", AuditExport)
    if export is not None and export.uri != state.get("export"):
        items = [
            json.loads(line)
            for line in artifact_store.get_file(export.uri, Path(tempfile.mkdtemp()) / "audit.jsonl")
            .read_text(encoding="utf-8")
            .splitlines()
            if line.strip()
        ]
        items = [i for i in items if str(i.get("model_version")) == str(champion.version)] or items
        metrics = audit_metrics(items)
        signal_args.update(
            accuracy=metrics["accuracy"],
            segment_accuracy=metrics["segment_accuracy"],
            rest_accuracy=metrics["rest_accuracy"],
            ece=metrics["ece"],
            ece_labels=metrics["ece_labels"],
            ood_precision=metrics["ood_precision"],
            multi_intent_recall=metrics["multi_intent_recall"],
        )
        evidence.append(export.uri)
        state["export"] = export.uri

    # the newest full window of the log: latency and intent KL
    log = prediction_log.open()
    cursor, _ = LogCursor.parse(json.dumps(state.get("log", {})))
    epoch = log.epoch()
    recent = log.read_recent(monitoring.window) if epoch else []
    if len(recent) == monitoring.window and (epoch != cursor.epoch or recent[-1]["id"] > cursor.last_id):
        single, batched = latency_signals(recent)
        shares = raw.get("val_predicted_shares")
        kl = drift_test([r["intent"] for r in recent if not r["is_ood"]], shares).kl if shares else None
        signal_args.update(
            p95_latency_ms=single,
            p95_batched_latency_ms=batched,
            baseline_batched_p95_ms=raw.get("p95_batched_latency_ms"),
            intent_kl=kl,
        )
        single_rise = (single or 0) - baseline.p95_latency_ms
        batched_rise = (batched or 0) - (raw.get("p95_batched_latency_ms") or 0)
        if max(single_rise, batched_rise if batched else 0) >= TreeThresholds().p95_latency_rise_ms:
            signal_args["tokenizer_fingerprint"] = _current_fingerprint(champion, mlflow_registry)
        evidence.append(f"{(epoch or '')[:8]}:{recent[0]['id']}-{recent[-1]['id']}")
        state["log"] = {"epoch": epoch, "last_id": recent[-1]["id"]}
    elif recent:
        signal_args["intent_kl"] = None

    # a calibrator refit launched by an earlier tick: did ECE recover?
    refits = context.instance.fetch_materializations(dg.AssetKey("calibrator_refit"), limit=1).records
    if refits and refits[0].storage_id != state.get("refit"):
        metadata = refits[0].asset_materialization.metadata
        if metadata.get("model_version") and metadata["model_version"].value == str(champion.version):
            signal_args["calibrator_refit_recovered"] = bool(metadata["recovered"].value)
            evidence.append(f"refit:{refits[0].storage_id}")
        state["refit"] = refits[0].storage_id
        state["refit_pending"] = False
    elif state.get("refit_pending"):
        signal_args["calibrator_refit_recovered"] = True  # pending: do not launch another refit

    actions = decide(Signals(**signal_args), baseline) if evidence else []
    if any(a.leaf == "E→K" for a in actions):
        state["refit_pending"] = True
    context.update_cursor(json.dumps(state))
    if not actions:
        return dg.SkipReason(f"decision tree: no leaf reached ({', '.join(evidence) or 'no new evidence'})")
    for action in actions:
        context.log.info(f"{action.leaf} {action.name}: {action.reason}")
    return [_request(a, "|".join(evidence), champion, raw) for a in actions]
