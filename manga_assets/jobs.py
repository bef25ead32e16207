"""Jobs the sensors and schedules launch (defined by asset selection, so no asset import cycles)."""

import dagster as dg

from manga_assets.partitions import method_seed_partitions, seed_partitions

RETRAIN_JOB = "retrain_job"
LABELING_JOB = "labeling_job"

#: human labels → dataset → synthetic set → HPO → model → calibrator → compiled artifact → gate → report.
retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets("labeling_batch")
    - dg.AssetSelection.groups("comparison"),
    partitions_def=seed_partitions,
    description="Re-materialize from human_labels through the golden gate (drift, new labels, monthly).",
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
