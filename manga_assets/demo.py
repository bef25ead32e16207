"""`make demo`: materialize the whole asset graph on embedded defaults, then print the gate's verdict.

Embedded defaults: the shipped seed corpus, the packaged MiniLM, local artifacts and SQLite
(MLflow, Optuna, Dagster) under $MANGA_HOME. Seed partition 42 is trained; the other seeds are a
backfill away (`dagster asset materialize --select 'trained_model*' --partition 123 ...`).
The demo sizes the synthetic set and the HPO study so the whole graph fits in ~15 minutes on a
2-core CPU; the asset defaults (what the UI launches) are the full-size settings.
"""

import os
import sys
import time

import dagster as dg

from manga_assets.definitions import ALL_ASSETS, build_resources
from manga_assets.golden_gate import golden_gate
from manga_intent.home import manga_home

DEMO_RUN_CONFIG = {
    "ops": {
        "synthetic_set": {"config": {"n": 1500, "k": 5, "fold_epochs": 2}},
        "hpo_study": {"config": {"n_trials": 3, "train_rows": 600, "max_epochs": 2}},
        "trained_model": {"config": {"epochs": 5}},
    }
}


def _value(metadata, key):
    return metadata[key].value if key in metadata else None


def main() -> int:
    home = manga_home()
    os.environ.setdefault("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir(exist_ok=True)
    started = time.perf_counter()
    result = dg.materialize(
        [*ALL_ASSETS, golden_gate],
        partition_key="42",
        resources=build_resources(),
        instance=dg.DagsterInstance.get(),
        run_config=DEMO_RUN_CONFIG,
        raise_on_error=False,
    )
    minutes = (time.perf_counter() - started) / 60
    materialized = sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events())
    print(f"\nmaterialized in {minutes:.1f} min: {', '.join(materialized)}")
    for node, keys in (
        (
            "calibrator",
            ["temperature", "test_ece_before", "test_ece_after", "ood_auroc_heldout", "ood_tpr_heldout"],
        ),
        (
            "neuron_artifact",
            ["backend", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "max_abs_logit_diff_vs_eager"],
        ),
    ):
        events = result.asset_materializations_for_node(node)
        if events:
            print(f"{node}: " + ", ".join(f"{k}={_value(events[0].metadata, k)}" for k in keys))
    synthetic = result.asset_materializations_for_node("synthetic_set")
    if synthetic:
        print(
            "\nsynthetic_set (k-fold consensus on the seed corpus):\n"
            + _value(synthetic[0].metadata, "kept_flagged_by_intent")
        )
    evaluations = result.get_asset_check_evaluations()
    if evaluations:
        meta = evaluations[0].metadata
        print(f"\ngolden gate: {_value(meta, 'verdict')} (model version {_value(meta, 'model_version')})")
        low, high = _value(meta, "accuracy_ci95")
        print(
            f"  accuracy {_value(meta, 'accuracy'):.4f} (95% CI {low:.4f}-{high:.4f}), rare-class "
            f"accuracy {_value(meta, 'rare_class_accuracy'):.4f}, P95 latency {_value(meta, 'p95_latency_ms'):.2f} ms, "
            f"calibrated ECE {_value(meta, 'ece_calibrated'):.4f}"
        )
        for reason in _value(meta, "reasons") or []:
            print(f"  reason: {reason}")
    else:
        print("\ngolden gate did not run (an upstream step failed; see the log above)")
    print(
        f"\nOpen the Dagster UI:  DAGSTER_HOME={os.environ['DAGSTER_HOME']} .venv/bin/dagster dev -w workspace.yaml"
    )
    print(
        f"Open the MLflow UI:   .venv/bin/mlflow ui --backend-store-uri sqlite:///{home / 'mlflow.db'} --port 5000"
    )
    return 0 if len(materialized) == len(ALL_ASSETS) else 1


if __name__ == "__main__":
    sys.exit(main())
