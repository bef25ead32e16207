"""`synthetic_set`: generated messages kept only where k fold models trained on the seed corpus agree.

Content-addressed: the consensus run is stored under a key of (seed corpus version, settings, base model,
consensus code version), so a retrain whose corpus is unchanged reuses the kept/flagged rows in seconds
instead of training k fold models again; the data version is the hash of the kept rows either way.
"""

import tempfile
from pathlib import Path

import dagster as dg

from manga_assets.manifests import DatasetSnapshot, SyntheticSet
from manga_assets.metadata import md
from manga_assets.snapshots import dataset_splits, read_snapshot
from manga_intent.consensus import CONSENSUS_LEARNERS
from manga_intent.model_io import resolve_base_model
from manga_intent.synthetic.quality import (
    consensus_cache_key,
    report_markdown,
    run_quality,
    write_quality_outputs,
)
from manga_intent.training import TrainConfig
from resources.model_settings import BaseModelResource
from resources.storage import ArtifactStore

CODE_VERSION = "synthetic-set-3"


class SyntheticSetConfig(dg.Config):
    n: int = 2000
    """Messages to generate before filtering."""
    k: int = 5
    """Fold models that must all agree with a generated label (seed: 5)."""
    fold_epochs: int = 2
    seed: int = 42
    learner: str = "finetune"
    """Fold learner: `finetune` (the seed's k fine-tuned copies, minutes each) or `linear_probe` (logistic
    regressions on frozen pooled embeddings, seconds). A fine-tuned run reports the probe's agreement."""
    reuse: bool = True
    """Reuse a stored consensus run with the same content key (False: always recompute)."""


def _stored_summary(store: ArtifactStore, prefix: str) -> dict | None:
    """The summary a finished consensus run left under `prefix` (written last, so present = complete)."""
    if f"{prefix}/summary.json" not in store.list_keys(prefix):
        return None
    return store.get_json(store.uri_for(f"{prefix}/summary.json"))


@dg.asset(group_name="data", kinds={"python", "jsonl"}, code_version=CODE_VERSION)
def synthetic_set(
    context: dg.AssetExecutionContext,
    config: SyntheticSetConfig,
    seed_corpus: DatasetSnapshot,
    artifact_store: ArtifactStore,
    base_model: BaseModelResource,
) -> dg.Output[SyntheticSet]:
    """Seeded synthetic messages, consensus-filtered as in the seed; flagged rows go to review.jsonl.

    The k fold models train on the seed corpus's fixed training split only, so validation and test stay
    held out (the golden set is never read: generated rows equal to a golden message are dropped by key
    alone). Also runs confident learning over that split and stores the suspected label issues.
    """
    if config.learner not in CONSENSUS_LEARNERS:
        raise ValueError(f"learner must be one of {CONSENSUS_LEARNERS}, got {config.learner!r}")
    key = consensus_cache_key(
        seed_corpus.data_version,
        n=config.n,
        k=config.k,
        seed=config.seed,
        fold_epochs=config.fold_epochs,
        learner=config.learner,
        base_model=resolve_base_model(base_model.name_or_path),
    )
    prefix = f"datasets/synthetic_set/{key[:20]}"
    summary = _stored_summary(artifact_store, prefix) if config.reuse else None
    reused = summary is not None
    train = dataset_splits(read_snapshot(artifact_store, seed_corpus.uri)).train
    if reused:
        context.log.info(f"consensus inputs unchanged (key {key[:12]}): reusing {prefix}, no fold training")
        uri = artifact_store.uri_for(prefix)
    else:
        result, synthetic, dropped = run_quality(
            train,
            config.n,
            seed=config.seed,
            k=config.k,
            config=TrainConfig(epochs=config.fold_epochs, max_steps=None),
            base_model=base_model.name_or_path,
            progress=False,
            learner=config.learner,
            on_fold_end=lambda fold, acc: context.log.info(
                f"{config.learner} fold {fold + 1}/{config.k}: held-out accuracy {acc:.3f}"
            ),
        )
        with tempfile.TemporaryDirectory() as tmp:
            summary = write_quality_outputs(result, Path(tmp), dropped=dropped, synthetic=synthetic)
            summary["report_markdown"] = report_markdown(result, dropped)
            uri = artifact_store.put_dir(tmp, prefix)
        artifact_store.put_json(summary, f"{prefix}/summary.json")  # last: marks the run complete
    manifest = SyntheticSet(
        uri=uri,
        kept_uri=f"{uri}/kept.jsonl",
        review_uri=f"{uri}/review.jsonl",
        kept=summary["kept"],
        flagged=summary["flagged"],
    )
    agreement = summary.get("probe_agreement")
    return dg.Output(
        manifest,
        data_version=dg.DataVersion(summary["kept_version"]),
        metadata={
            "reused_consensus": reused,
            "consensus_key": key[:20],
            "consensus_learner": summary["consensus_learner"],
            "generated": summary["generated"],
            "kept": summary["kept"],
            "flagged_for_review": summary["flagged"],
            "model_agreement": summary["model_agreement"],
            "fold_accuracies": dg.MetadataValue.json(summary["fold_accuracies"]),
            "linear_probe_agreement": dg.MetadataValue.json(agreement) if agreement else "not measured",
            "fold_training_rows": len(train),
            "seed_corpus_version": seed_corpus.data_version,
            "label_issues_in_training_split": summary["label_issues"],
            "kept_flagged_by_intent": md(summary["report_markdown"]),
            "artifacts": uri,
        },
    )
