"""Jobs the sensors and schedules launch (defined by asset selection, so no asset import cycles)."""

import dagster as dg

from manga_assets.partitions import seed_partitions

RETRAIN_JOB = "retrain_job"
LABELING_JOB = "labeling_job"

#: human labels → dataset → synthetic set → HPO → model → calibrator → compiled artifact → gate → report.
retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("labeling_batch"),
    partitions_def=seed_partitions,
    description="Re-materialize from human_labels through the golden gate (drift, new labels, monthly).",
)
#: Pick the most informative logged messages and import them into Label Studio.
labeling_job = dg.define_asset_job(LABELING_JOB, selection=["labeling_batch"])
#: Only the dataset snapshot: a quick smoke test of a deployment.
dataset_job = dg.define_asset_job("dataset_job", selection=["intent_dataset"])
