"""`shadow_window_sensor`: when the challenger's shadow window is complete, run `shadow_report` once for it."""

import time

import dagster as dg

from manga_assets.jobs import SHADOW_JOB, shadow_job
from resources.mlflow_registry import MlflowRegistry
from resources.shadow import ShadowLogResource, ShadowSettings
from sensors.intervals import tick_interval


@dg.sensor(
    jobs=[shadow_job],
    minimum_interval_seconds=tick_interval(300),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests the shadow report (promote or reject) once the challenger's window is complete.",
)
def shadow_window_sensor(
    context: dg.SensorEvaluationContext,
    mlflow_registry: MlflowRegistry,
    shadow_log: ShadowLogResource,
    shadow_settings: ShadowSettings,
):
    try:
        challenger = mlflow_registry.challenger()
        champion = mlflow_registry.champion()
    except Exception as exc:  # the registry being down must not crash the daemon; nothing is decided
        return dg.SkipReason(f"registry unavailable: {type(exc).__name__}: {exc}")
    if challenger is None:
        return dg.SkipReason("no challenger in shadow")
    started = float(challenger.tags.get("shadow_started", "0") or 0)
    champion_version = str(champion.version) if champion is not None else None
    if challenger.tags.get("shadow_vs") != champion_version:  # the report rejects it: champion moved
        return dg.RunRequest(run_key=f"shadow:v{challenger.version}:champion-moved", job_name=SHADOW_JOB)
    rows = [
        r
        for r in shadow_log.open().read(str(challenger.version), since_ts=started)
        if r["champion_version"] == champion_version
    ]
    hours = (time.time() - started) / 3600
    if len(rows) < max(shadow_settings.window_messages, 1) or hours < shadow_settings.window_hours:
        return dg.SkipReason(
            f"challenger v{challenger.version}: {len(rows)}/{shadow_settings.window_messages} messages, "
            f"{hours:.2f}/{shadow_settings.window_hours:g} h in shadow"
        )
    return dg.RunRequest(
        run_key=f"shadow:v{challenger.version}",
        job_name=SHADOW_JOB,
        tags={"challenger": str(challenger.version), "shadow_messages": str(len(rows))},
    )
