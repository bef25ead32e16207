"""The seed's monthly retrain, whatever the monitors say."""

import dagster as dg

from manga_assets.jobs import audit_job, hpo_job, retrain_job
from resources.monitoring_settings import MonitoringSettings


@dg.schedule(
    cron_schedule="0 3 1 * *",
    job=retrain_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    execution_timezone="UTC",
    description="The seed's monthly retrain, whatever the monitors say.",
)
def monthly_retrain(context: dg.ScheduleEvaluationContext, monitoring: MonitoringSettings):
    month = context.scheduled_execution_time.strftime("%Y-%m")
    return dg.RunRequest(
        run_key=f"monthly:{month}",
        partition_key=monitoring.retrain_partition,
        tags={"trigger": "monthly_schedule"},
    )


@dg.schedule(
    cron_schedule="0 2 * * *",
    job=audit_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    execution_timezone="UTC",
    description="A random slice of yesterday's traffic to Label Studio, unprefilled: the unbiased accuracy audit.",
)
def daily_audit_slice(context: dg.ScheduleEvaluationContext, monitoring: MonitoringSettings):
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return dg.RunRequest(
        run_key=f"audit:{day}",
        tags={"trigger": "audit_schedule"},
        run_config={"ops": {"audit_batch": {"config": {"share": monitoring.audit_share}}}},
    )


@dg.schedule(
    cron_schedule="0 1 * * 6",
    job=hpo_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    execution_timezone="UTC",
    description="A weekly hyperparameter search (off until switched on: a study is many fine-tunings); the "
    "retrain after it uses its best trial.",
)
def weekly_hpo(context: dg.ScheduleEvaluationContext):
    week = context.scheduled_execution_time.strftime("%G-W%V")
    return dg.RunRequest(run_key=f"hpo:{week}", tags={"trigger": "hpo_schedule"})
