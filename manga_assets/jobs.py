"""Jobs the sensors and schedules launch (defined by asset selection, so no asset import cycles)."""

import dagster as dg

from manga_assets.partitions import seed_partitions

#: human labels → dataset → synthetic set → HPO → model → calibrator → compiled artifact → gate → report.
retrain_job = dg.define_asset_job(
    "retrain_job", selection=dg.AssetSelection.all() - dg.AssetSelection.assets("labeling_batch"),
    partitions_def=seed_partitions,
    description="Re-materialize from human_labels through the golden gate (drift, new labels, monthly).",
)
#: Pick the most informative logged messages and import them into Label Studio.
labeling_job = dg.define_asset_job("labeling_job", selection=["labeling_batch"])
#: Only the dataset snapshot: a quick smoke test of a deployment.
dataset_job = dg.define_asset_job("dataset_job", selection=["intent_dataset"])
