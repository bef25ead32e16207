"""`make demo`: the whole path once, on embedded defaults — train, gate, shadow, cutover, load it back.

1. the asset graph for seed partition 42 (dataset → synthetic set → HPO → model → calibrator → compiled
   artifact → golden gate): the first champion;
2. a seed sweep run for seed 123 over the same upstream snapshot (only the seed-partitioned assets), judged by
   the gate against that champion — every row with its CI, and the minimum detectable drop per intent;
3. a challenger in shadow mode: seed 123 if it passed, otherwise a rebuild of the champion's weights (a new
   compiled artifact, as after a runtime upgrade, goes through the same gate and shadow before cutover);
   the service answers simulated traffic with the champion and scores the challenger on every request, a
   scripted labeler labels a sample with the simulator's ground truth, and `shadow_report` decides after a
   short window (the production default is the seed's 24 h and 2,000 messages);
4. the final champion's gate table, and the champion loaded back as an MLflow pyfunc in its gated graph.

Embedded defaults: the shipped seed corpus, the packaged MiniLM, local artifacts and SQLite (MLflow, Optuna,
Dagster) under $MANGA_HOME; the Dagster instance runs under the project's dagster.yaml. The synthetic set and
the HPO study are sized so the graph fits a 2-core CPU; the asset defaults (what the UI launches) are full size.
"""

import json
import os
import sys
import time

import dagster as dg

from manga_assets.definitions import ALL_ASSETS, COMPARISON_ASSETS, LOOP_ASSETS, build_resources
from manga_assets.golden_gate import gate_table_text, golden_gate
from manga_assets.instance import prepare_dagster_home
from manga_assets.jobs import RETRAIN_SELECTION, SEED_PARTITIONED
from manga_assets.shadow_report import shadow_report
from manga_intent.home import manga_home
from resources.shadow import ShadowSettings

#: the synthetic set sized for a 2-core CPU; the model trains on the asset defaults (the 250-step budget)
DEMO_RUN_CONFIG = {"ops": {"synthetic_set": {"config": {"n": 1500, "k": 5, "fold_epochs": 2}}}}
SHADOW_MESSAGES = 400
LABELLED_SHARE = 4  # the scripted labeler labels every 4th shadowed in-scope message


def _value(metadata, key):
    return metadata[key].value if key in metadata else None


def _gate(result):
    evaluations = result.get_asset_check_evaluations()
    return evaluations[0].metadata if evaluations else None


def _version(result) -> str | None:
    events = result.asset_materializations_for_node("neuron_artifact")
    return str(_value(events[0].metadata, "mlflow_model_version")) if events else None


def banner(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}")


def run_shadow(resources: dict, instance, registry, champion: str, challenger: str) -> dict:
    """Simulated traffic through the service (champion answers, challenger shadows), then the shadow report."""
    from fastapi.testclient import TestClient

    from serving.server import build_app
    from serving.simulator import simulate

    log_uri = resources["prediction_log"].path or str(manga_home() / "predictions.sqlite")
    app, holder = build_app(log_uri=log_uri, registry=registry, shadow_budget_ms=50)
    client = TestClient(app)
    stream = simulate("stationary", SHADOW_MESSAGES, seed=11)
    started = time.perf_counter()
    for message in stream:
        reply = client.post("/v1/classify", json={"text": message["text"], "channel": message["channel"]})
        reply.raise_for_status()
    holder.shadow_scorer.drain(timeout=300)
    health = client.get("/healthz").json()
    holder.stop()
    print(
        f"service: {SHADOW_MESSAGES} simulated messages answered by v{health['model_version']} in "
        f"{time.perf_counter() - started:.1f} s; challenger v{health['challenger_version']} shadow-scored "
        f"{health['shadow']['scored']} (dropped {health['shadow']['dropped']}, over the "
        f"{health['shadow']['budget_ms']:.0f} ms budget {health['shadow']['over_budget']})"
    )
    in_scope = [m for m in stream if m["true_label"]]
    labelled = in_scope[::LABELLED_SHARE]
    store = resources["artifact_store"]
    path = manga_home() / "demo_shadow_labels.jsonl"
    path.write_text(
        "".join(json.dumps({"text": m["text"], "label": m["true_label"]}) + "\n" for m in labelled)
    )
    labels_uri = store.put_file(path, f"human_labels/demo-shadow-v{challenger}.jsonl")
    print(f"scripted labeler: {len(labelled)} shadowed messages labelled with the simulator's ground truth")
    shadow_resources = {
        **resources,
        "shadow_settings": ShadowSettings(
            window_messages=SHADOW_MESSAGES, window_hours=0, labels_uri=labels_uri, min_labelled=30
        ),
    }
    report = dg.materialize([shadow_report], instance=instance, resources=shadow_resources)
    return report.asset_materializations_for_node("shadow_report")[0].metadata


def demo_graph() -> list:
    """Every asset and the gate check: the jobs' selections subtract assets by name (the loop's, the
    comparison group's), which Dagster resolves only against a graph that has them. The selections decide
    what runs; the rest is never materialized here."""
    return [*ALL_ASSETS, *LOOP_ASSETS, *COMPARISON_ASSETS, shadow_report, golden_gate]


def main() -> int:
    home = manga_home()
    os.environ["DAGSTER_HOME"] = str(prepare_dagster_home())
    instance = dg.DagsterInstance.get()
    resources = build_resources()
    registry = resources["mlflow_registry"].registry()
    graph = demo_graph()
    started = time.perf_counter()

    banner("1. retrain_job's selection for seed 42 (no HPO study: that is hpo_job's): the first champion")
    first = dg.materialize(
        graph,
        selection=RETRAIN_SELECTION,
        partition_key="42",
        resources=resources,
        instance=instance,
        run_config=DEMO_RUN_CONFIG,
        raise_on_error=False,
    )
    materialized = sorted(e.asset_key.to_user_string() for e in first.get_asset_materialization_events())
    print(f"materialized in {(time.perf_counter() - started) / 60:.1f} min: {', '.join(materialized)}")
    for node, keys in (
        (
            "calibrator",
            ["temperature", "test_ece_before", "test_ece_after", "ood_auroc_heldout", "ood_tpr_heldout"],
        ),
        (
            "neuron_artifact",
            [
                "backend",
                "mlflow_model_version",
                "latency_p95_ms",
                "max_abs_logit_diff_vs_eager",
                "checked_on",
            ],
        ),
    ):
        events = first.asset_materializations_for_node(node)
        if events:
            print(f"{node}: " + ", ".join(f"{k}={_value(events[0].metadata, k)}" for k in keys))
    synthetic = first.asset_materializations_for_node("synthetic_set")
    if synthetic:
        print(
            "\nsynthetic_set (k-fold consensus, folds trained on the training split only):\n"
            + _value(synthetic[0].metadata, "kept_flagged_by_intent")
        )
    gates: dict[str, object] = {}  # model version → its gate evaluation's metadata
    gate = _gate(first)
    if gate is not None:
        gates[_version(first)] = gate
    if gate is None or len(materialized) < len(ALL_ASSETS) - 2:  # all but hpo_study and seed_sweep_report
        print("\nthe graph did not reach the gate (an upstream step failed; see the log above)")
        return 1
    print(f"\ngolden gate, v{_version(first)}: {_value(gate, 'verdict')}")
    for reason in _value(gate, "reasons") or []:
        print(f"  reason: {reason}")

    banner("2. seed sweep: seed 123 over the same upstream snapshot, judged against the champion")
    sweep = dg.materialize(
        graph,
        selection=dg.AssetSelection.assets(*SEED_PARTITIONED),
        partition_key="123",
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    ran = sorted(e.asset_key.to_user_string() for e in sweep.get_asset_materialization_events())
    print(f"the sweep run materialized only: {', '.join(ran)}")
    sweep_gate = _gate(sweep)
    if sweep_gate is not None:
        gates[_version(sweep)] = sweep_gate
        print(f"\ngolden gate, v{_version(sweep)}:\n" + gate_table_text(sweep_gate))

    aliases = registry.alias_versions()
    if aliases["challenger"] is None:
        banner("3a. a rebuild of the champion's weights (new compiled artifact) goes through the same gate")
        rebuild = dg.materialize(
            graph,
            selection=dg.AssetSelection.assets("neuron_artifact"),
            partition_key="42",
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        rebuild_gate = _gate(rebuild)
        if rebuild_gate is not None:
            gates[_version(rebuild)] = rebuild_gate
            print(f"golden gate, v{_version(rebuild)}: {_value(rebuild_gate, 'verdict')}")
        aliases = registry.alias_versions()

    banner("3. shadow mode: the challenger scores live traffic beside the champion, then cutover or not")
    if aliases["challenger"] is None:
        print("no challenger: nothing to shadow")
    else:
        shadow = run_shadow(resources, instance, registry, aliases["champion"], aliases["challenger"])
        print(_value(shadow, "shadow_table"))
        print(f"\nshadow report: {_value(shadow, 'decision')}")
        for reason in _value(shadow, "reasons") or []:
            print(f"  reason: {reason}")

    champion = registry.champion()
    banner(f"4. the champion: v{champion.version} (seed {champion.tags.get('seed')}); its gate table")
    judged = gates.get(str(champion.version))
    print(gate_table_text(judged) if judged is not None else "(judged before this demo run)")
    # through the registry: checksum checked, and the graph the gate passed (a plain alias load sees the manifest's)
    model = registry.load_pyfunc(registry.champion_alias)
    graph = model.unwrap_python_model().graph
    print(f"\nthe champion as an MLflow pyfunc ({graph} graph), via ModelRegistry.load_pyfunc:")
    print('.predict(["where is my order?", "any isekai like Frieren?"]):')
    for prediction in model.predict(["where is my order?", "any isekai like Frieren?"]):
        print(f"  {prediction.model_dump()}")
    print(f"\nwhole demo: {(time.perf_counter() - started) / 60:.1f} min")
    print(
        f"\nOpen the Dagster UI:  make dev   (DAGSTER_HOME={os.environ['DAGSTER_HOME']}, the project's dagster.yaml)"
    )
    print(
        f"Open the MLflow UI:   .venv/bin/mlflow ui --backend-store-uri sqlite:///{home / 'mlflow.db'} --port 5000"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
