"""`golden_set_audit` (decision-tree leaf C→J): a gate report over the golden set, in its own module.

Held out means held out: the golden set is read only by the gate and by reports that say they are gate
reports, through the one door (`GateSettings.golden_rows(GATE_REPORT)` → `manga_intent.heldout`). This
report chooses nothing: it lists golden rows the champion contradicts with high confidence, as candidate
stale labels for a person to re-check; the golden set itself is never edited by code.
"""

import json
import tempfile
from pathlib import Path

import dagster as dg

from manga_assets.metadata import markdown_table, md
from manga_assets.monitoring_actions import _champion_artifact
from manga_intent.heldout import GATE_REPORT
from resources.gate_settings import GateSettings
from resources.mlflow_registry import MlflowRegistry
from resources.storage import ArtifactStore

#: Only confident contradictions are worth a person's time.
SUSPECT_CONFIDENCE = 0.9


@dg.asset(group_name="monitoring", kinds={"python"})
def golden_set_audit(
    context: dg.AssetExecutionContext,
    artifact_store: ArtifactStore,
    mlflow_registry: MlflowRegistry,
    gate_settings: GateSettings,
) -> dg.MaterializeResult:
    """J (gate report): golden rows the champion contradicts with confidence ≥ 0.9 — candidate stale labels
    for a person to re-check; the golden set itself is never edited by code."""
    with tempfile.TemporaryDirectory() as tmp:
        champion, model = _champion_artifact(mlflow_registry, artifact_store, Path(tmp))
        rows = gate_settings.golden_rows(GATE_REPORT)
        predictions = model.classify([r["text"] for r in rows])
    suspects = [
        {
            "id": r.get("id"),
            "text": r["text"],
            "golden_label": r["label"],
            "model_says": p.intent,
            "confidence": p.confidence,
        }
        for r, p in zip(rows, predictions)
        if p.intent != r["label"] and p.confidence >= SUSPECT_CONFIDENCE
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suspects.jsonl"
        path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in suspects), encoding="utf-8")
        uri = artifact_store.put_file(path, f"golden_audit/{context.run_id}.jsonl")
    return dg.MaterializeResult(
        metadata={
            "report": "gate report: reads the golden set",
            "model_version": str(champion.version),
            "golden_rows": len(rows),
            "stale_label_candidates": len(suspects),
            "review_file": uri,
            "sample": md(markdown_table(suspects[:20], floats=3)),
        }
    )
