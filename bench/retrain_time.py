"""Trigger-to-verdict time of a retrain, and of a 3-seed sweep, with the default configuration.

  flock /tmp/manga-cpu.lock .venv/bin/python bench/retrain_time.py --out runs/retrain_time.json

On a fresh $MANGA_HOME (default: a temporary directory) with the packaged MiniLM and every asset's default
config, one process, steps in process (what a daemon-launched run does, minus process start-up):
1. cold: `retrain_job` for seed 42 with no human labels (the first run computes the synthetic set's
   k-fold consensus: the one-off cost a retrain no longer pays);
2. labels ready: a real Label Studio (the project's offline server) receives `--labels` messages from the
   simulator's traffic with their true intents as completed annotations;
3. the triggered retrain: `retrain_job` for seed 42 again, from the Label Studio export through the gate —
   timed from launch to the gate's verdict and alias move (the champion when the gate passes and shadow
   mode is off; the challenger under the default shadow mode; nothing when the gate rejects);
4. the sweep: `seed_sweep_job` for seeds 42, 123 and 2024, one after another as the serial run queue runs
   them, over the same upstream snapshot.
Prints per-step times (from each step's STEP_START/STEP_SUCCESS events) and the verdicts; --out gets JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SEEDS = ("42", "123", "2024")


def step_seconds(instance, result) -> dict[str, float]:
    """Seconds per step from the run's event log (STEP_START → STEP_SUCCESS/FAILURE)."""
    started, spent = {}, {}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            spent[event.step_key] = round(entry.timestamp - started[event.step_key], 1)
    return spent


def verdict(result) -> str:
    evaluations = result.get_asset_check_evaluations()
    return evaluations[0].metadata["verdict"].value if evaluations else "no gate evaluation"


def label_messages(client, n: int, seed: int) -> int:
    """`n` simulated shopper messages with their true intent, imported as completed annotations."""
    from labeling.label_config import choice_result
    from serving.simulator import simulate

    rows = [m for m in simulate("seasonal_sale", n * 2, seed=seed) if m.get("true_label")][:n]
    tasks = [
        {
            "data": {"text": m["text"], "message_key": f"bench-{i}", "purpose": "active_learning"},
            "annotations": [{"result": [choice_result("intent", m["true_label"])]}],
        }
        for i, m in enumerate(rows)
    ]
    return len(client.import_tasks(client.ensure_project(), tasks))


def run(job, partition: str, instance) -> tuple[object, float]:
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False)
    return result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="MANGA_HOME (default: a fresh temporary directory)")
    parser.add_argument("--labels", type=int, default=300, help="human labels made ready before the retrain")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    home = Path(args.home or tempfile.mkdtemp(prefix="manga-retrain-bench-"))
    os.environ["MANGA_HOME"] = str(home)
    from labeling.server import LabelStudioServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    label_studio = LabelStudioServer(port=port, data_dir=home / "label-studio").start()
    os.environ.update(LABEL_STUDIO_URL=label_studio.url, LABEL_STUDIO_API_KEY=label_studio.token)
    from manga_assets.instance import prepare_dagster_home

    os.environ["DAGSTER_HOME"] = str(prepare_dagster_home())
    import dagster as dg

    from manga_assets.definitions import build_resources, defs

    instance = dg.DagsterInstance.get()
    retrain, sweep = defs.resolve_job_def("retrain_job"), defs.resolve_job_def("seed_sweep_job")
    report: dict = {"home": str(home), "labels": args.labels}
    try:
        print("1. cold retrain_job, seed 42 (computes the consensus once)", flush=True)
        cold, seconds = run(retrain, "42", instance)
        report["cold"] = {
            "seconds": round(seconds, 1),
            "steps": step_seconds(instance, cold),
            "verdict": verdict(cold),
        }
        print(json.dumps(report["cold"], indent=1), flush=True)

        from labeling.client import LabelStudioClient

        client = LabelStudioClient(
            label_studio.url, label_studio.token, build_resources()["label_studio"].project_title
        )
        imported = label_messages(client, args.labels, seed=5)
        print(f"2. labels ready: {imported} completed annotations in Label Studio", flush=True)

        triggered, seconds = run(retrain, "42", instance)
        synthetic = triggered.asset_materializations_for_node("synthetic_set")[0].metadata
        report["triggered"] = {
            "seconds": round(seconds, 1),
            "steps": step_seconds(instance, triggered),
            "verdict": verdict(triggered),
            "consensus_reused": synthetic["reused_consensus"].value,
            "human_labels": triggered.asset_materializations_for_node("human_labels")[0]
            .metadata["labelled_messages"]
            .value,
        }
        print("3. triggered retrain:\n" + json.dumps(report["triggered"], indent=1), flush=True)

        if not args.skip_sweep:
            runs, total = [], 0.0
            for seed in SEEDS:
                result, seconds = run(sweep, seed, instance)
                total += seconds
                runs.append({"seed": seed, "seconds": round(seconds, 1), "verdict": verdict(result)})
                print(f"4. sweep seed {seed}: {seconds / 60:.1f} min, {runs[-1]['verdict']}", flush=True)
            report["sweep"] = {
                "seconds": round(total, 1),
                "runs": runs,
                "ratio_to_one_seed": round(total / report["triggered"]["seconds"], 2),
            }
    finally:
        label_studio.stop()
    print("\n| run | minutes | verdict |\n|---|---|---|")
    print(
        f"| cold retrain (consensus computed) | {report['cold']['seconds'] / 60:.1f} | {report['cold']['verdict']} |"
    )
    print(
        f"| labels-ready retrain ({report['triggered']['human_labels']} labels) | "
        f"{report['triggered']['seconds'] / 60:.1f} | {report['triggered']['verdict']} |"
    )
    if "sweep" in report:
        print(
            f"| 3-seed sweep (x{report['sweep']['ratio_to_one_seed']} the retrain) | "
            f"{report['sweep']['seconds'] / 60:.1f} | {', '.join(r['verdict'] for r in report['sweep']['runs'])} |"
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
