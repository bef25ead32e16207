"""Jobs the sensors, schedules and backfills launch (defined by asset selection, so no asset import cycles).

Every job that can end in an alias move (retrain, seed sweep, shadow report) carries `SERIAL_RUN_TAGS`: the
instance config (`dagster.yaml`, copied into $DAGSTER_HOME by `make demo` / `make dev`) lets one such run be
in progress at a time, so a drift retrain, a labels retrain, the monthly schedule and a seed backfill queue
behind each other instead of comparing against the same old champion. A new purpose-specific job joins the
queue by taking `serial_run_tags(purpose)`.
"""

import os
from pathlib import Path

import dagster as dg

from manga_assets.partitions import method_seed_partitions, seed_partitions

#: Kubernetes requests per step when MANGA_EXECUTOR=k8s: fine-tuning and the search get whole cores.
STEP_RESOURCES = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
TRAINING_STEPS = {
    "trained_model": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"memory": "12Gi"}},
    "hpo_study": {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"memory": "12Gi"}},
    "synthetic_set": {"requests": {"cpu": "2", "memory": "4Gi"}},
}


K8S_EXECUTOR_CONFIG = {
    "max_concurrent": 4,
    "step_k8s_config": {"container_config": {"resources": STEP_RESOURCES}},
    "per_step_k8s_config": {
        step: {"container_config": {"resources": resources}} for step, resources in TRAINING_STEPS.items()
    },
}


def retrain_defaults(ops: tuple[str, ...] | None = None) -> dict | None:
    """`MANGA_RETRAIN_RUN_CONFIG`: a YAML file of the run config a training run gets when launched without
    one (sensors, schedules, `dagster job backfill`, which takes no config) — a deployment's training budget,
    executor, gate settings. `ops` keeps only those assets' entries, so one file serves the retrain, the seed
    sweep and the HPO job. Unset: every asset's own defaults. A run launched with its own config uses that."""
    path = os.environ.get("MANGA_RETRAIN_RUN_CONFIG", "").strip()
    if not path:
        return None
    import yaml

    config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"MANGA_RETRAIN_RUN_CONFIG={path}: expected a YAML mapping of run config")
    if ops is not None and "ops" in config:
        config = {**config, "ops": {k: v for k, v in config["ops"].items() if k in ops}}
    return config


def training_executor():
    """`k8s_job_executor` (one pod per step, training steps with their own requests) when
    MANGA_EXECUTOR=k8s; None keeps Dagster's default multiprocess executor."""
    if os.environ.get("MANGA_EXECUTOR", "") != "k8s":
        return None
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(K8S_EXECUTOR_CONFIG, name="training_k8s_executor")


RETRAIN_JOB = "retrain_job"
HPO_JOB = "hpo_job"
SEED_SWEEP_JOB = "seed_sweep_job"
SHADOW_JOB = "shadow_job"
LABELING_JOB = "labeling_job"
AUDIT_JOB = "audit_job"

#: The run-queue key dagster.yaml limits to one run in progress.
SERIAL_TAG = "manga/serial"
PURPOSE_TAG = "manga/purpose"
#: The run-queue key dagster.yaml limits to two runs importing into Label Studio at once (the ledger makes
#: parallel imports safe; the limit keeps a burst of sensor requests from piling onto Label Studio).
LABELING_TAG = "manga/labeling"
LABELING_RUN_TAGS = {LABELING_TAG: "label_studio"}


def serial_run_tags(purpose: str) -> dict[str, str]:
    """Tags for a job whose runs may move the champion/challenger aliases: one at a time.

    Given as the job's `tags` (not `run_tags`): Dagster then puts them on runs from every launch path —
    sensors, schedules, backfills, the UI and `dagster job launch`, which reads only the job's `tags`.
    """
    return {SERIAL_TAG: "registry", PURPOSE_TAG: purpose}


#: The seed-partitioned assets: one training seed's model → calibrator → compiled artifact (→ golden gate).
SEED_PARTITIONED = ("trained_model", "calibrator", "neuron_artifact")

#: assets no retrain touches: labelling batches, the shadow report and the decision tree's remedies
NOT_RETRAINED = (
    "labeling_batch",
    "audit_batch",
    "audit_labels",
    "calibrator_refit",
    "golden_set_audit",
    "serving_tuning",
    "intent_discovery",
    "multi_intent_pairs",
    "shadow_report",
)

#: human labels → dataset → model → calibrator → compiled artifact → gate → baseline, with the seed corpus
#: re-read (cheap) and the synthetic set reused unless its content key changed; the HPO study is its own job.
#: the retrain's assets that take config (what `retrain_defaults` keeps for it)
RETRAINED_OPS = (
    "human_labels",
    "seed_corpus",
    "intent_dataset",
    "synthetic_set",
    "trained_model",
    "calibrator",
    "neuron_artifact",
    "monitoring_baseline",
    "seed_sweep_report",
)
RETRAIN_SELECTION = (
    dg.AssetSelection.all()
    - dg.AssetSelection.assets(*NOT_RETRAINED, "hpo_study")
    - dg.AssetSelection.groups("comparison")
)
retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=RETRAIN_SELECTION,
    partitions_def=seed_partitions,
    executor_def=training_executor(),
    config=retrain_defaults(RETRAINED_OPS),
    tags=serial_run_tags("retrain"),
    description="Re-materialize from human_labels through the golden gate (drift, new labels, monthly); the "
    "synthetic set's consensus is reused when the seed corpus is unchanged, the newest HPO study is used.",
)
#: The Optuna search alone (on demand and weekly): the next trained_model picks up its best trial.
hpo_job = dg.define_asset_job(
    HPO_JOB,
    selection=["hpo_study"],
    executor_def=training_executor(),
    config=retrain_defaults(("hpo_study",)),
    tags={PURPOSE_TAG: "hpo"},
    description="Search the recipe's hyperparameters over the latest dataset and synthetic set; the next "
    "trained_model uses the best trial when it searched the same base model and label set.",
)
#: A seed sweep: only the seed-partitioned assets, over the latest dataset / synthetic set / HPO snapshot.
seed_sweep_job = dg.define_asset_job(
    SEED_SWEEP_JOB,
    selection=dg.AssetSelection.assets(*SEED_PARTITIONED),
    partitions_def=seed_partitions,
    config=retrain_defaults(SEED_PARTITIONED),
    tags=serial_run_tags("seed_sweep"),
    description="Train, calibrate, compile and gate one seed over the shared upstream snapshot (backfill it).",
)
#: Compare the challenger's shadow predictions with the champion's and promote or reject it.
shadow_job = dg.define_asset_job(
    SHADOW_JOB, selection=["shadow_report"], tags=serial_run_tags("shadow_report")
)
#: Pick the most informative logged messages and import them into Label Studio (also: segment sweeps).
labeling_job = dg.define_asset_job(LABELING_JOB, selection=["labeling_batch"], tags=LABELING_RUN_TAGS)
#: A random slice of traffic into Label Studio, without the model's guess.
audit_job = dg.define_asset_job(AUDIT_JOB, selection=["audit_batch"], tags=LABELING_RUN_TAGS)
#: Only the dataset snapshot: a quick smoke test of a deployment.
dataset_job = dg.define_asset_job("dataset_job", selection=["seed_corpus", "intent_dataset"])

# the decision tree's remedies (manga_intent.decision_tree.LEAVES names these jobs)
audit_export_job = dg.define_asset_job("audit_export_job", selection=["audit_labels"])
segment_relabel_job = dg.define_asset_job(
    "segment_relabel_job", selection=["labeling_batch"], tags=LABELING_RUN_TAGS
)
calibrator_refit_job = dg.define_asset_job("calibrator_refit_job", selection=["calibrator_refit"])
golden_audit_job = dg.define_asset_job("golden_audit_job", selection=["golden_set_audit"])
rebuild_artifact_job = dg.define_asset_job(
    "rebuild_artifact_job",
    selection=["neuron_artifact", "monitoring_baseline"],
    partitions_def=seed_partitions,
    tags=serial_run_tags("rebuild_artifact"),
    description="Re-trace the champion's model into a fresh compiled artifact (with the tokenizer saved beside "
    "the weights), through the gate.",
)
serving_tuning_job = dg.define_asset_job("serving_tuning_job", selection=["serving_tuning"])
intent_discovery_job = dg.define_asset_job("intent_discovery_job", selection=["intent_discovery"])
multi_intent_pairs_job = dg.define_asset_job("multi_intent_pairs_job", selection=["multi_intent_pairs"])

REMEDY_JOBS = [
    audit_export_job,
    segment_relabel_job,
    calibrator_refit_job,
    golden_audit_job,
    rebuild_artifact_job,
    serving_tuning_job,
    intent_discovery_job,
    multi_intent_pairs_job,
]
#: One (method, seed) partition of the comparative-methods grid; backfill all partitions to run the grid.
methods_comparison_job = dg.define_asset_job(
    "methods_comparison_job",
    selection=["methods_comparison"],
    partitions_def=method_seed_partitions,
    description="Backfill over method x seed runs the comparative-methods grid on the dataset's test split.",
)
#: The table, paired tests and plot over every stored grid run.
methods_comparison_report_job = dg.define_asset_job(
    "methods_comparison_report_job", selection=["methods_comparison_report"]
)
