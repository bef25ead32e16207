"""`shadow_report`: the challenger's shadow window compared with the champion's answers, then cutover or not.

Load (aliases, the challenger's shadow rows since it entered shadow, human labels) → judge
(`manga_intent.shadow_compare.judge_shadow`) → record: once the window is complete a pass moves `champion` to
the challenger and drops the `challenger` alias, a failure drops the alias and tags the version with its
reasons — both compare-and-set against the aliases read at the start, in the registry pool.
"""

import tempfile
import time
from contextlib import suppress
from pathlib import Path

import dagster as dg

from manga_assets.golden_gate import REGISTRY_POOL
from manga_assets.labeling import latest_human_labels_export
from manga_assets.metadata import markdown_table, md
from manga_intent.data import normalized_key
from manga_intent.shadow_compare import PROMOTE, REJECT, judge_shadow
from manga_intent.shipped_data import read_rows
from resources.mlflow_registry import MlflowRegistry
from resources.shadow import ShadowLogResource, ShadowSettings
from resources.storage import ArtifactStore
from serving.registry import ModelRegistry


def _rows_of(store: ArtifactStore, uri: str) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        return read_rows(store.get_file(uri, Path(tmp) / "rows.jsonl"))


def human_label_map(instance: dg.DagsterInstance, store: ArtifactStore, labels_uri: str) -> tuple[dict, str]:
    """Normalised text → label from `labels_uri`, else from the newest human_labels export."""
    if not labels_uri:
        export = latest_human_labels_export(instance)
        if export is None or export.uri is None:
            return {}, "no human labels exported yet"
        labels_uri = export.uri
    rows = _rows_of(store, labels_uri)
    return {normalized_key(r["text"]): r["label"] for r in rows if r.get("label")}, labels_uri


def training_keys(
    store: ArtifactStore, registry: ModelRegistry, versions: list[str]
) -> tuple[frozenset, list]:
    """Message keys of the datasets the compared versions trained on (labels of those don't count)."""
    keys, missing = set(), []
    for version in versions:
        uri = registry.version_tags(version).get("dataset_uri")
        if not uri:
            missing.append(version)
            continue
        keys |= {normalized_key(r["text"]) for r in _rows_of(store, uri)}
    return frozenset(keys), missing


@dg.asset(
    group_name="serving",
    pool=REGISTRY_POOL,
    deps=["neuron_artifact", "human_labels"],
    kinds={"mlflow"},
)
def shadow_report(
    context: dg.AssetExecutionContext,
    mlflow_registry: MlflowRegistry,
    shadow_log: ShadowLogResource,
    shadow_settings: ShadowSettings,
    artifact_store: ArtifactStore,
) -> dg.MaterializeResult:
    """Agreement, confidence, OOD rate, latency and (where people labelled shadowed messages) accuracy of the
    challenger vs the champion on live traffic; after the window, promote it to champion or reject it."""
    registry = mlflow_registry.registry()
    start = registry.alias_versions()
    champion, challenger = start[registry.champion_alias], start[registry.challenger_alias]
    if challenger is None:
        return dg.MaterializeResult(
            metadata={"decision": "nothing in shadow", "champion": champion or "none"}
        )
    tags = registry.version_tags(challenger)
    shadow_vs, started = tags.get("shadow_vs"), float(tags.get("shadow_started", "0") or 0)
    if shadow_vs != champion:
        reason = f"champion moved during shadow: v{shadow_vs} when it started, v{champion} now"
        registry.clear_alias(registry.challenger_alias, expected=start, during="shadow")
        registry.set_tags(challenger, {"shadow": "rejected", "shadow_reasons": reason, "stage": "rejected"})
        return dg.MaterializeResult(metadata={"decision": f"rejected v{challenger}: {reason}"})
    rows = [
        r for r in shadow_log.open().read(challenger, since_ts=started) if r["champion_version"] == champion
    ]
    labels, labels_source = human_label_map(context.instance, artifact_store, shadow_settings.labels_uri)
    exclude, untracked = training_keys(artifact_store, registry, [champion, challenger])
    hours = (time.time() - started) / 3600
    verdict = judge_shadow(rows, labels, shadow_settings.thresholds(), hours=hours, exclude_keys=exclude)
    summary = verdict.summary()[:4000]
    if verdict.decision == PROMOTE:
        registry.move_alias(
            registry.champion_alias,
            challenger,
            expected=start,
            tags={"shadow": "promoted", "shadow_summary": summary, "stage": "champion", "replaced": champion},
            during="shadow",
            clear=(registry.challenger_alias,),
        )
        with suppress(Exception):  # informational; the cutover has happened
            registry.set_tags(champion, {"stage": "retired", "replaced_by": challenger})
        headline = f"promoted: v{challenger} is the champion (was v{champion})"
    elif verdict.decision == REJECT:
        registry.clear_alias(registry.challenger_alias, expected=start, during="shadow")
        registry.set_tags(
            challenger,
            {"shadow": "rejected", "shadow_reasons": "; ".join(verdict.reasons), "stage": "rejected"},
        )
        headline = f"rejected: v{challenger} leaves shadow, champion v{champion} stays"
    else:
        headline = f"waiting: v{challenger} has {verdict.messages} shadow messages over {hours:.2f} h"
    context.log.info(headline)
    return dg.MaterializeResult(
        metadata={
            "decision": headline,
            "challenger": challenger,
            "champion": champion,
            "shadow_messages": verdict.messages,
            "labelled_messages": verdict.labelled,
            "hours_in_shadow": hours,
            "shadow_table": md(markdown_table(verdict.table())),
            "reasons": dg.MetadataValue.json(list(verdict.reasons)),
            "labels_source": labels_source,
            "versions_without_dataset_tag": dg.MetadataValue.json(untracked),
        }
    )
