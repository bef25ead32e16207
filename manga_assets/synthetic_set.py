"""`synthetic_set`: generated messages kept only where k fold models trained on real data agree."""

import tempfile
from pathlib import Path

import dagster as dg

from manga_assets.manifests import DatasetSnapshot, SyntheticSet
from manga_assets.metadata import md
from manga_assets.snapshots import dataset_splits, read_snapshot
from manga_intent.synthetic.quality import report_markdown, run_quality, write_quality_outputs
from manga_intent.training import TrainConfig
from resources.model_settings import BaseModelResource
from resources.storage import ArtifactStore


class SyntheticSetConfig(dg.Config):
    n: int = 2000
    """Messages to generate before filtering."""
    k: int = 5
    """Fold models that must all agree with a generated label (seed: 5)."""
    fold_epochs: int = 2
    seed: int = 42


@dg.asset(group_name="data", kinds={"python", "jsonl"})
def synthetic_set(
    context: dg.AssetExecutionContext,
    config: SyntheticSetConfig,
    intent_dataset: DatasetSnapshot,
    artifact_store: ArtifactStore,
    base_model: BaseModelResource,
) -> dg.Output[SyntheticSet]:
    """Seeded synthetic messages, consensus-filtered as in the seed; flagged rows go to review.jsonl.

    The k fold models train on the dataset's training split only, so validation and test stay held out
    (the golden set is never read: generated rows equal to a golden message are dropped by key alone).
    Also runs confident learning over the training split (out-of-fold probabilities) and stores the
    suspected label issues for people to check.
    """
    train = dataset_splits(read_snapshot(artifact_store, intent_dataset.uri)).train
    result, synthetic, dropped = run_quality(
        train,
        config.n,
        seed=config.seed,
        k=config.k,
        config=TrainConfig(epochs=config.fold_epochs, max_steps=None),
        base_model=base_model.name_or_path,
        progress=False,
        on_fold_end=lambda fold, acc: context.log.info(
            f"fold model {fold + 1}/{config.k}: held-out accuracy {acc:.3f}"
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary = write_quality_outputs(result, Path(tmp), dropped=dropped, synthetic=synthetic)
        key = f"datasets/synthetic_set/{intent_dataset.data_version.split(':')[1][:12]}-n{config.n}-s{config.seed}"
        uri = artifact_store.put_dir(tmp, key)
    manifest = SyntheticSet(
        uri=uri,
        kept_uri=f"{uri}/kept.jsonl",
        review_uri=f"{uri}/review.jsonl",
        kept=summary["kept"],
        flagged=summary["flagged"],
    )
    return dg.Output(
        manifest,
        metadata={
            "generated": summary["generated"],
            "kept": summary["kept"],
            "flagged_for_review": summary["flagged"],
            "model_agreement": summary["model_agreement"],
            "fold_training_rows": len(train),
            "label_issues_in_training_split": summary["label_issues"],
            "kept_flagged_by_intent": md(report_markdown(result, dropped)),
            "artifacts": uri,
        },
    )
