"""`intent_dataset`: the validated labelled pool the classifier trains on."""

from collections import Counter
from pathlib import Path

import dagster as dg

from manga_assets.shipped_data import SEED_CORPUS
from manga_intent.data import data_hash, load_jsonl
from manga_intent.labels import INTENTS


class IntentDatasetConfig(dg.Config):
    source_path: str = str(SEED_CORPUS.path)
    quarantine: bool = True


@dg.asset(group_name="data", kinds={"python"})
def intent_dataset(context: dg.AssetExecutionContext, config: IntentDatasetConfig) -> dg.MaterializeResult:
    """Validated labelled messages; invalid rows are quarantined and counted, never dropped silently."""
    loaded = load_jsonl(Path(config.source_path), allowed_labels=INTENTS, quarantine=config.quarantine)
    counts = Counter(e.label for e in loaded.examples)
    table = "| intent | rows | share |\n|---|---:|---:|\n" + "\n".join(
        f"| {i} | {counts[i]} | {counts[i] / len(loaded.examples):.1%} |" for i in INTENTS
    )
    context.log.info(f"{len(loaded.examples)} valid rows, {len(loaded.quarantined)} quarantined")
    return dg.MaterializeResult(
        metadata={
            "rows": len(loaded.examples),
            "quarantined_rows": len(loaded.quarantined),
            "quarantine_reasons": dg.MetadataValue.json(loaded.quarantine_counts),
            "data_version": data_hash(loaded.examples),
            "per_intent": dg.MetadataValue.md(table),
            "source": config.source_path,
        },
        data_version=dg.DataVersion(data_hash(loaded.examples)),
    )
