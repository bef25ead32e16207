"""Dagster code location of the MangaAssist intent platform (loaded by workspace.yaml).

Embedded defaults need no configuration: local artifact storage and SQLite files under
$MANGA_HOME (default ./.manga_home) and the packaged MiniLM. Environment variables switch them:
  MANGA_ARTIFACT_URI=s3://bucket/prefix   artifacts in S3 (MANGA_S3_ENDPOINT for MinIO/moto)
  MLFLOW_TRACKING_URI=...                 another MLflow tracking server / database
  MANGA_BASE_MODEL=distilbert-base-uncased (or a local directory)
"""

import os

import dagster as dg

from labeling.assets import PredictionLogResource, human_labels, labeling_batch
from manga_assets.calibration_assets import calibrator
from manga_assets.dataset import intent_dataset
from manga_assets.hpo import hpo_study
from manga_assets.jobs import dataset_job, labeling_job, retrain_job
from manga_assets.report import seed_sweep_report
from manga_assets.serving_assets import golden_gate, neuron_artifact
from manga_assets.synthetic_set import synthetic_set
from manga_assets.training_assets import trained_model
from manga_intent.model_io import PACKAGED_MINILM
from resources.gate import GateSettings
from resources.label_studio import LabelStudioResource
from resources.mlflow_tracking import MlflowRegistry, mlflow_run, mlflow_run_config
from resources.model_settings import BaseModelResource, CompileSettings
from resources.storage import s3_resource_from_env, store_from_env
from sensors.labels import labels_ready_sensor
from sensors.monitoring import MonitoringSettings, drift_sensor, low_confidence_sensor, monthly_retrain

#: The training graph, from human labels to the seed-sweep report (what `make demo` materializes).
ALL_ASSETS = [human_labels, intent_dataset, synthetic_set, hpo_study, trained_model, calibrator, neuron_artifact,
              seed_sweep_report]


def build_resources() -> dict:
    registry = MlflowRegistry(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", ""))
    return {
        "artifact_store": store_from_env(),
        "s3": s3_resource_from_env(),
        "mlflow_registry": registry,
        "mlflow": mlflow_run.configured(mlflow_run_config(registry)),
        "base_model": BaseModelResource(name_or_path=os.environ.get("MANGA_BASE_MODEL", PACKAGED_MINILM)),
        "compile_settings": CompileSettings(),
        "gate_settings": GateSettings(),
        "prediction_log": PredictionLogResource(uri=os.environ.get("MANGA_PREDICTION_LOG", "")),
        "label_studio": LabelStudioResource(),
        "monitoring": MonitoringSettings(),
    }


defs = dg.Definitions(
    assets=[*ALL_ASSETS, labeling_batch],
    asset_checks=[golden_gate],
    jobs=[retrain_job, labeling_job, dataset_job],
    sensors=[drift_sensor, low_confidence_sensor, labels_ready_sensor],
    schedules=[monthly_retrain],
    resources=build_resources(),
)
