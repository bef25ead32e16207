"""The MangaAssist intent platform's Dagster code location (loaded by workspace.yaml): the whole graph.

Embedded defaults need no configuration: local artifact storage and SQLite files under $MANGA_HOME
(default ./.manga_home) and the packaged MiniLM. Environment variables switch them:
  MANGA_ARTIFACT_URI=s3://bucket/prefix   artifacts in S3 (MANGA_S3_ENDPOINT for MinIO/moto)
  MLFLOW_TRACKING_URI=...                 another MLflow tracking server / database
  MANGA_BASE_MODEL=distilbert-base-uncased (or a local directory)
  MANGA_PREDICTION_LOG=...                SQLite path, s3://bucket/prefix or postgresql://...
  LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY  the Label Studio the labelling assets and sensor talk to
  LABEL_STUDIO_PROJECT=...               its project (default "MangaAssist intents")
  MANGA_SENSOR_INTERVAL_SECONDS=...      every sensor's minimum interval between ticks
  MANGA_RETRAIN_RUN_CONFIG=retrain.yaml  the run config sensor/schedule retrains start from
"""

import os

import dagster as dg

from manga_assets.calibrator import calibrator
from manga_assets.golden_gate import golden_gate

# the decision tree's golden-set audit (C→J) is a gate report
from manga_assets.golden_set_audit import golden_set_audit

# training, per seed partition: search → fine-tune → calibrate → compile → gate
from manga_assets.hpo_study import hpo_study
from manga_assets.intent_dataset import intent_dataset

# what runs them
from manga_assets.jobs import (
    REMEDY_JOBS,
    audit_job,
    dataset_job,
    hpo_job,
    labeling_job,
    methods_comparison_job,
    methods_comparison_report_job,
    retrain_job,
    seed_sweep_job,
    shadow_job,
)

# data: Label Studio exports → the labelled pool → consensus-filtered synthetic rows
from manga_assets.labeling import audit_batch, audit_labels, human_labels, labeling_batch

# the comparative-methods table
from manga_assets.methods_comparison import methods_comparison, methods_comparison_report

# monitoring: the champion's baseline and the decision tree's remedies
from manga_assets.monitoring_actions import (
    calibrator_refit,
    intent_discovery,
    monitoring_baseline,
    multi_intent_pairs,
    serving_tuning,
)
from manga_assets.neuron_artifact import neuron_artifact
from manga_assets.seed_corpus import seed_corpus

# reporting
from manga_assets.seed_sweep_report import seed_sweep_report

# serving: the challenger's shadow window → cutover or not
from manga_assets.shadow_report import shadow_report
from manga_assets.synthetic_set import synthetic_set
from manga_assets.trained_model import trained_model

# resources, by environment
from manga_intent.model_io import PACKAGED_MINILM
from resources.gate_settings import GateSettings
from resources.label_studio import LabelStudioResource
from resources.mlflow_registry import MlflowRegistry, mlflow_run, mlflow_run_config
from resources.model_settings import BaseModelResource, CompileSettings
from resources.monitoring_settings import MonitoringSettings
from resources.prediction_log import prediction_log_from_env
from resources.s3 import s3_resource_from_env
from resources.shadow import ShadowSettings, shadow_log_from_env
from resources.storage import store_from_env
from sensors.decision_tree import decision_tree_sensor
from sensors.labels import labels_ready_sensor
from sensors.monitoring import drift_sensor, low_confidence_sensor
from sensors.schedules import daily_audit_slice, monthly_retrain, weekly_hpo
from sensors.shadow import shadow_window_sensor

#: The training graph, from human labels to the seed-sweep report (what `make demo` materializes).
ALL_ASSETS = [
    human_labels,
    seed_corpus,
    intent_dataset,
    synthetic_set,
    hpo_study,
    trained_model,
    calibrator,
    neuron_artifact,
    monitoring_baseline,
    seed_sweep_report,
]
#: Everything else: labelling batches and the decision tree's remedies.
LOOP_ASSETS = [
    labeling_batch,
    audit_batch,
    audit_labels,
    calibrator_refit,
    golden_set_audit,
    serving_tuning,
    intent_discovery,
    multi_intent_pairs,
]


def build_resources() -> dict:
    registry = MlflowRegistry(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""))
    api_key = dg.EnvVar("LABEL_STUDIO_API_KEY") if os.environ.get("LABEL_STUDIO_API_KEY") else ""
    return {
        "artifact_store": store_from_env(),
        "s3": s3_resource_from_env(),
        "mlflow_registry": registry,
        "mlflow": mlflow_run.configured(mlflow_run_config(registry)),
        "base_model": BaseModelResource(name_or_path=os.environ.get("MANGA_BASE_MODEL", PACKAGED_MINILM)),
        "compile_settings": CompileSettings(),
        "gate_settings": GateSettings(),
        "prediction_log": prediction_log_from_env(),
        "label_studio": LabelStudioResource(
            url=os.environ.get("LABEL_STUDIO_URL", "http://127.0.0.1:8080"),
            api_key=api_key,
            project_title=os.environ.get("LABEL_STUDIO_PROJECT", "MangaAssist intents"),
        ),
        "monitoring": MonitoringSettings(),
        "shadow_log": shadow_log_from_env(),
        "shadow_settings": ShadowSettings(),
    }


#: The comparative-methods grid (method x seed partitions; a backfill runs it) and its report.
COMPARISON_ASSETS = [methods_comparison, methods_comparison_report]

defs = dg.Definitions(
    assets=[*ALL_ASSETS, *LOOP_ASSETS, *COMPARISON_ASSETS, shadow_report],
    asset_checks=[golden_gate],
    jobs=[
        retrain_job,
        hpo_job,
        seed_sweep_job,
        shadow_job,
        labeling_job,
        audit_job,
        dataset_job,
        methods_comparison_job,
        methods_comparison_report_job,
        *REMEDY_JOBS,
    ],
    sensors=[
        drift_sensor,
        low_confidence_sensor,
        labels_ready_sensor,
        decision_tree_sensor,
        shadow_window_sensor,
    ],
    schedules=[monthly_retrain, daily_audit_slice, weekly_hpo],
    resources=build_resources(),
)
