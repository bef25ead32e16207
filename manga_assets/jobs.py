"""Jobs the sensors, schedules and backfills launch (defined by asset selection, so no asset import cycles).

Every job that can end in an alias move (retrain, seed sweep, shadow report) carries `SERIAL_RUN_TAGS`: the
instance config (`dagster.yaml`, copied into $DAGSTER_HOME by `make demo` / `make dev`) lets one such run be
in progress at a time, so a drift retrain, a labels retrain, the monthly schedule and a seed backfill queue
behind each other instead of comparing against the same old champion. A new purpose-specific job joins the
queue by taking `serial_run_tags(purpose)`.
"""

import dagster as dg

from manga_assets.partitions import method_seed_partitions, seed_partitions

RETRAIN_JOB = "retrain_job"
SEED_SWEEP_JOB = "seed_sweep_job"
SHADOW_JOB = "shadow_job"
LABELING_JOB = "labeling_job"

#: The run-queue key dagster.yaml limits to one run in progress.
SERIAL_TAG = "manga/serial"
PURPOSE_TAG = "manga/purpose"


def serial_run_tags(purpose: str) -> dict[str, str]:
    """Tags for a job whose runs may move the champion/challenger aliases: one at a time.

    Given as the job's `tags` (not `run_tags`): Dagster then puts them on runs from every launch path —
    sensors, schedules, backfills, the UI and `dagster job launch`, which reads only the job's `tags`.
    """
    return {SERIAL_TAG: "registry", PURPOSE_TAG: purpose}


#: The seed-partitioned assets: one training seed's model → calibrator → compiled artifact (→ golden gate).
SEED_PARTITIONED = ("trained_model", "calibrator", "neuron_artifact")

#: human labels → dataset → synthetic set → HPO → model → calibrator → compiled artifact → gate → report.
retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets("labeling_batch", "shadow_report")
    - dg.AssetSelection.groups("comparison"),
    partitions_def=seed_partitions,
    tags=serial_run_tags("retrain"),
    description="Re-materialize from human_labels through the golden gate (drift, new labels, monthly).",
)
#: A seed sweep: only the seed-partitioned assets, over the latest dataset / synthetic set / HPO snapshot.
seed_sweep_job = dg.define_asset_job(
    SEED_SWEEP_JOB,
    selection=dg.AssetSelection.assets(*SEED_PARTITIONED),
    partitions_def=seed_partitions,
    tags=serial_run_tags("seed_sweep"),
    description="Train, calibrate, compile and gate one seed over the shared upstream snapshot (backfill it).",
)
#: Compare the challenger's shadow predictions with the champion's and promote or reject it.
shadow_job = dg.define_asset_job(
    SHADOW_JOB, selection=["shadow_report"], tags=serial_run_tags("shadow_report")
)
#: Pick the most informative logged messages and import them into Label Studio.
labeling_job = dg.define_asset_job(LABELING_JOB, selection=["labeling_batch"])
#: Only the dataset snapshot: a quick smoke test of a deployment.
dataset_job = dg.define_asset_job("dataset_job", selection=["intent_dataset"])
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
