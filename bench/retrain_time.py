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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SEEDS = ("42", "123", "2024")
PROJECT_TITLE = "MangaAssist intents"  # definitions.build_resources' default project


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Seconds per step from the run's event log (STEP_START → STEP_SUCCESS/FAILURE)."""
    started, spent = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            spent[event.step_key] = round(entry.timestamp - started[event.step_key], 1)
    return spent


def run_metadata(instance, run_id: str, event_type: str, node: str | None = None) -> dict:
    """Metadata of the run's first event of a type (a materialization of `node`, or the check evaluation)."""
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.event_type_value != event_type:
            continue
        if node is None:
            return {k: v.value for k, v in event.event_specific_data.metadata.items()}
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == node:
            return {k: v.value for k, v in materialization.metadata.items()}
    return {}


def label_messages(client, n: int, seed: int) -> int:
    """`n` simulated shopper messages with their true intent, imported as completed annotations."""
    from labeling.label_config import choice_result
    from serving.simulator import simulate

    rows = [m for m in simulate("seasonal_sale", n * 2, seed=seed) if m.get("true_label")][:n]
    tasks = [
        {
            "data": {"text": m["text"], "message_key": f"bench-{seed}-{i}", "purpose": "active_learning"},
            "annotations": [{"result": [choice_result("intent", m["true_label"])]}],
        }
        for i, m in enumerate(rows)
    ]
    return len(client.import_tasks(client.ensure_project(), tasks))


def run(job: str, partition: str, instance) -> dict:
    """One run in its own process, as the daemon's run launcher starts it (imports included in the time)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--run-one", job, partition], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RUN_ID ")]
    if not lines:
        raise RuntimeError(f"{job} {partition} did not start:\n{proc.stderr[-3000:]}")
    run_id = lines[-1].split()[1]
    check = run_metadata(instance, run_id, "ASSET_CHECK_EVALUATION")
    return {
        "run_id": run_id,
        "seconds": round(seconds, 1),
        "steps": step_seconds(instance, run_id),
        "verdict": check.get("verdict", "no gate evaluation"),
        "reasons": check.get("reasons", []),
    }


def run_one(job: str, partition: str) -> int:
    """Child process: execute one run of `job` for `partition` and print its run id."""
    import dagster as dg

    from manga_assets.definitions import defs

    result = defs.resolve_job_def(job).execute_in_process(
        instance=dg.DagsterInstance.get(), partition_key=partition, raise_on_error=False
    )
    print(f"RUN_ID {result.run_id}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="MANGA_HOME (default: a fresh temporary directory)")
    parser.add_argument("--labels", type=int, default=300, help="human labels made ready before the retrain")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-cold", action="store_true", help="--home already holds a cold run")
    parser.add_argument("--run-one", nargs=2, metavar=("JOB", "PARTITION"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.run_one:
        return run_one(*args.run_one)

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

    instance = dg.DagsterInstance.get()  # the parent only reads the runs' event logs
    report: dict = {"home": str(home), "labels": args.labels}
    try:
        if not args.skip_cold:
            print("1. cold retrain_job, seed 42 (computes the consensus once)", flush=True)
            report["cold"] = run("retrain_job", "42", instance)
            print(json.dumps(report["cold"], indent=1), flush=True)

        from labeling.client import LabelStudioClient

        client = LabelStudioClient(label_studio.url, label_studio.token, PROJECT_TITLE)
        imported = label_messages(client, args.labels, seed=len(client.tasks(client.ensure_project())) + 5)
        print(f"2. labels ready: {imported} more completed annotations in Label Studio", flush=True)

        triggered = run("retrain_job", "42", instance)
        synthetic = run_metadata(instance, triggered["run_id"], "ASSET_MATERIALIZATION", "synthetic_set")
        labels = run_metadata(instance, triggered["run_id"], "ASSET_MATERIALIZATION", "human_labels")
        triggered.update(
            consensus_reused=synthetic.get("reused_consensus"), human_labels=labels.get("labelled_messages")
        )
        report["triggered"] = triggered
        print("3. triggered retrain:\n" + json.dumps(triggered, indent=1), flush=True)

        if not args.skip_sweep:
            runs = []
            for seed in SEEDS:
                runs.append({"seed": seed, **run("seed_sweep_job", seed, instance)})
                print(
                    f"4. sweep seed {seed}: {runs[-1]['seconds'] / 60:.1f} min, {runs[-1]['verdict']}",
                    flush=True,
                )
            total = sum(r["seconds"] for r in runs)
            report["sweep"] = {
                "seconds": round(total, 1),
                "runs": runs,
                "ratio_to_one_seed": round(total / triggered["seconds"], 2),
            }
    finally:
        label_studio.stop()
    print("\n| run | minutes | verdict |\n|---|---|---|")
    if "cold" in report:
        cold = report["cold"]
        print(f"| cold retrain (consensus computed) | {cold['seconds'] / 60:.1f} | {cold['verdict']} |")
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
