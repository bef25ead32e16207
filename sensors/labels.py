"""`labels_ready_sensor`: enough new human labels → retrain from `human_labels` through the gate."""

import json

import dagster as dg

from labeling.client import LabelStudioUnavailable
from manga_assets.jobs import RETRAIN_JOB, audit_export_job, retrain_job
from resources.label_studio import LabelStudioResource
from resources.monitoring_settings import MonitoringSettings
from sensors.intervals import tick_interval


@dg.sensor(
    jobs=[retrain_job, audit_export_job],
    minimum_interval_seconds=tick_interval(600),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Polls Label Studio; once N new completed labels exist, re-materializes from human_labels.",
)
def labels_ready_sensor(
    context: dg.SensorEvaluationContext, label_studio: LabelStudioResource, monitoring: MonitoringSettings
):
    cursor = json.loads(context.cursor) if context.cursor else {}
    last_seen = cursor.get("last_annotation_id", 0)
    client = label_studio.get_client()
    try:
        client.ping()
        fresh = client.completed_annotations(client.ensure_project(), after_id=last_seen)
    except LabelStudioUnavailable as exc:
        # cursor untouched: the labels will be counted on the first tick Label Studio answers
        return dg.SkipReason(f"skipped: {exc}")
    requests = []
    audits = [a for a in fresh if a.get("purpose") == "audit"]
    last_audit = cursor.get("last_audit_id", last_seen)
    new_audits = [a for a in audits if a["annotation_id"] > last_audit]
    if len(new_audits) >= monitoring.min_new_audit_labels:
        # enough fresh random-slice labels: export them for the decision tree
        newest_audit = new_audits[-1]["annotation_id"]
        cursor["last_audit_id"] = newest_audit
        context.update_cursor(json.dumps({**cursor, "last_annotation_id": last_seen}))
        requests.append(
            dg.RunRequest(
                run_key=f"audit-export:{last_audit + 1}-{newest_audit}",
                job_name="audit_export_job",
                tags={"trigger": "audit_labels_ready", "audit_labels": str(len(new_audits))},
            )
        )
    if len(fresh) < monitoring.min_new_labels:
        if requests:
            return requests
        return dg.SkipReason(
            f"{len(fresh)} new completed label(s) since annotation {last_seen}; "
            f"waiting for {monitoring.min_new_labels}"
        )
    newest = fresh[-1]["annotation_id"]
    context.update_cursor(json.dumps({**cursor, "last_annotation_id": newest}))
    return requests + [
        dg.RunRequest(
            run_key=f"labels:{last_seen + 1}-{newest}",
            job_name=RETRAIN_JOB,
            partition_key=monitoring.retrain_partition,
            tags={
                "trigger": "labels_ready",
                "new_labels": str(len(fresh)),
                "annotations": f"{last_seen + 1}-{newest}",
            },
        )
    ]
