"""Load benchmark over HTTP: our service (int8 and fp32 graphs) vs plain FastAPI + transformers.pipeline.

  flock /tmp/manga-cpu.lock .venv/bin/python bench/serving_load.py --model .manga_home/runs/minilm

One run, same trained model, same shopper messages (the seed corpus, cycled), services started one at
a time on this machine:
- ours, int8: `manga-intent serve --workers N --graph int8` on an artifact compiled here with the
  accuracy guard (validation split of the seed corpus; training split ranks sensitive layers);
- ours, fp32: the same artifact and service, fp32 graph;
- plain: bench/plain_pipeline_service.py (FastAPI + transformers.pipeline, eager PyTorch, one process).
Closed loop: wrk (installed with apt-get when missing) at 1, 4, 16 and 64 connections. Open loop: our
own driver (bench/open_loop.py; wrk2 is not packaged here) at 100, 300, 500 and 800 req/s, latency
measured from each request's due time. Every request carries a unique X-Request-ID; after each of our
services stops, its prediction log is checked against the ids the clients saw answered with 200.
Prints the table and writes everything to --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.open_loop import open_loop  # noqa: E402

WRK_SCRIPT = r"""
local counter = 0
local bodies = {}
local ids = nil
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  for line in io.lines(args[1]) do table.insert(bodies, line) end
  ids = io.open(args[2] .. "-" .. tid .. ".txt", "w")
  prefix = args[3] .. "-" .. tid .. "-"
end

function request()
  counter = counter + 1
  local body = bodies[(counter % #bodies) + 1]
  return wrk.format("POST", "/v1/classify",
    {["Content-Type"] = "application/json", ["X-Request-ID"] = prefix .. counter}, body)
end

function response(status, headers, body)
  if status == 200 then
    local rid = headers["x-request-id"]
    if rid then ids:write(rid, "\n") end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nRESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with apt-get", flush=True)
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    subprocess.run([*apt, "update", "-qq"], check=False)
    subprocess.run([*apt, "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed; install it (apt-get install wrk) and rerun")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compile_artifact(model_dir: Path, out: Path) -> dict:
    """Calibrate on validation, compile, quantize with the guard. Returns the build summary.

    The serving calibration (calibrator, OOD detector, routing policy) is the one `manga-intent train`
    wrote into the model directory, or is fitted here the same way (validation split + validation OOD pool).
    """
    from manga_intent.calibrator_fit import ServingCalibration, fit_serving_calibration, shipped_ood_pools
    from manga_intent.compiled import build_artifact
    from manga_intent.data import load_jsonl, make_splits
    from manga_intent.model_io import load_trained
    from manga_intent.shipped_data import SEED_CORPUS

    splits = make_splits(load_jsonl(SEED_CORPUS.path).examples, seed=42)
    model, tokenizer, card = load_trained(model_dir)
    max_length = card["recipe"]["max_length"]
    if ServingCalibration.exists(model_dir):
        fit = ServingCalibration.load(model_dir)
    else:
        fit = fit_serving_calibration(
            model,
            tokenizer,
            card["labels"],
            train=splits.train,
            val=splits.val,
            ood_val_texts=shipped_ood_pools().val_texts,
            max_length=max_length,
        )
    started = time.perf_counter()
    built = build_artifact(
        model,
        tokenizer,
        out,
        labels=card["labels"],
        calibration=fit,
        check_texts=[e.text for e in splits.val[:100]],
        max_length=max_length,
        backend="onnx",
        quantize="auto",
        validation=[(e.text, e.label) for e in splits.val],
        calibration_texts=[e.text for e in splits.train],
        out_of_scope_texts=shipped_ood_pools().val_texts,
    )
    return {
        "temperature": fit.temperature,
        "calibrator": fit.calibrator.family,
        "ood_detector": fit.detector.kind,
        "seconds": time.perf_counter() - started,
        "quantization": built.quantization,
        "latency_served": built.latency,
        "parity_fp32_vs_eager": built.parity_max_abs_diff,
    }


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"service exited with {process.returncode} before becoming ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {timeout}s")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_wrk(wrk: str, port: int, connections: int, duration: int, bodies: Path, ids: Path, tag: str) -> dict:
    script = ids.parent / "classify.lua"
    script.write_text(WRK_SCRIPT)
    threads = max(1, min(2, connections))
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
        "--",
        str(bodies),
        str(ids / tag),
        tag,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.split("RESULT", 1)[1].strip().splitlines()[0])
    seconds = result["duration_us"] / 1e6
    errors = result["connect"] + result["read"] + result["write"] + result["timeout"]
    return {
        "throughput_rps": result["requests"] / seconds,
        "requests": result["requests"],
        "p50_ms": result["p50_us"] / 1000,
        "p95_ms": result["p95_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "non_2xx": result["status"],
        "socket_errors": errors,
    }


class MachineMeter:
    """How busy the machine was *apart from this benchmark* (server, load generator, this script).

    Other agents share these 2 cores; every row reports the cores their processes used meanwhile, so a
    number measured on a busy machine says so.
    """

    def __init__(self, server_pid: int | None = None):
        self.server_pid = server_pid
        self._start = self._sample()

    @staticmethod
    def _busy_seconds() -> float:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def _tree(self, pid: int) -> list[int]:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        return [pid] + [p for child in children for p in self._tree(int(child))]

    def _ours(self) -> float:
        total = 0.0
        for pid in self._tree(self.server_pid) if self.server_pid else []:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        me = os.times()
        return total + me.user + me.system + me.children_user + me.children_system  # + wrk, once exited

    def _sample(self) -> tuple[float, float, float]:
        return time.monotonic(), self._busy_seconds(), self._ours()

    def others_cores(self) -> float:
        end = self._sample()
        wall = end[0] - self._start[0]
        others = (end[1] - self._start[1]) - (end[2] - self._start[2])
        self._start = end
        return max(0.0, others / wall) if wall > 0 else 0.0


def wait_until_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (at most limit_s) for a 5-second window in which other processes use < threshold cores."""
    deadline = time.monotonic() + limit_s
    while True:
        meter = MachineMeter()
        time.sleep(5)
        others = meter.others_cores()
        if others < threshold or time.monotonic() > deadline:
            return others


def read_ok_ids(ids: Path) -> list[str]:
    out = []
    for path in ids.glob("*.txt"):
        out += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return out


def log_accounting(log_path: Path, answered_ids: list[str]) -> dict:
    conn = sqlite3.connect(log_path)
    logged = [row[0] for row in conn.execute("SELECT request_id FROM predictions")]
    conn.close()
    logged_set, answered = set(logged), set(answered_ids)
    return {
        "rows": len(logged),
        "answered_200": len(answered_ids),
        "duplicate_rows": len(logged) - len(logged_set),
        "answered_without_row": len(answered - logged_set),
        "rows_not_seen_by_client": len(logged_set - answered),
    }


def worker_statuses(url: str) -> dict[str, dict]:
    """Each worker's /healthz (fresh connections are dealt to the workers in turn), keyed by worker."""
    seen = {}
    for _ in range(20):
        try:
            status = httpx.get(f"{url}/healthz", timeout=2, headers={"connection": "close"}).json()
        except httpx.HTTPError:
            continue
        seen[status["worker"]] = status
    return seen


def server_stats(url: str) -> list[dict]:
    """Each worker's batching and commit counters."""
    return [
        {
            "worker": worker,
            "texts_per_batch": status["batching"]["texts_per_batch"],
            "largest_batch": status["batching"]["largest_batch"],
            "rows_per_commit": status["log"]["rows_per_commit"],
            "commits": status["log"]["commits"],
        }
        for worker, status in worker_statuses(url).items()
    ]


def stage_totals(url: str) -> dict[str, dict]:
    """Each worker's running stage totals (serving.timing), keyed by worker."""
    return {worker: status.get("timing") for worker, status in worker_statuses(url).items()}


def stage_means(before: dict[str, dict], after: dict[str, dict]) -> dict | None:
    """Mean ms per stage over the requests answered between two readings, all workers together."""
    requests, sums = 0, {}
    for worker, totals in after.items():
        if not totals:
            continue
        prior = before.get(worker) or {"requests": 0, "sum_ms": {}}
        requests += totals["requests"] - prior["requests"]
        for stage, total in totals["sum_ms"].items():
            sums[stage] = sums.get(stage, 0.0) + total - prior["sum_ms"].get(stage, 0.0)
    if requests <= 0:
        return None
    return {stage: round(total / requests, 3) for stage, total in sums.items()}


def bench_service(name, command, log_path, args, wrk, bodies_path, bodies, work) -> dict:
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen([*command, "--port", str(port)], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    ids = work / f"ids-{name}"
    shutil.rmtree(ids, ignore_errors=True)
    ids.mkdir(parents=True)
    rows, answered = [], []
    try:
        wait_ready(url, process)
        run_wrk(wrk, port, 4, 3, bodies_path, ids, f"{name}-warm")  # warm-up, counted in the log check
        quiet = wait_until_quiet(args.wait_quiet)
        print(f"{name}: other processes used {quiet:.2f} cores just before", flush=True)
        meter = MachineMeter(process.pid)
        timing = stage_totals(url) if log_path else {}
        for connections in args.connections:
            result = run_wrk(
                wrk, port, connections, args.duration, bodies_path, ids, f"{name}-c{connections}"
            )
            rows.append({"service": name, "load": f"closed, {connections} conn", **result})
            rows[-1]["other_cores"] = meter.others_cores()
            timing = _add_stages(rows[-1], url, timing)
            print(_line(rows[-1]), flush=True)
        for rate in args.rates:
            result = open_loop(
                "127.0.0.1", port, rate, args.open_duration, bodies, id_prefix=f"{name}-r{rate}"
            )
            summary = result.summary()
            answered += result.ok_ids
            rows.append(
                {
                    "service": name,
                    "load": f"open, {rate} req/s",
                    "throughput_rps": summary["achieved_rps"],
                    "requests": summary["requests"],
                    "p50_ms": summary["p50_ms"],
                    "p95_ms": summary["p95_ms"],
                    "p99_ms": summary["p99_ms"],
                    "non_2xx": summary["non_2xx"],
                    "socket_errors": summary["errors"],
                    "driver_max_lateness_ms": summary["driver_max_lateness_ms"],
                    "other_cores": meter.others_cores(),
                }
            )
            timing = _add_stages(rows[-1], url, timing)
            print(_line(rows[-1]), flush=True)
        stats = server_stats(url) if log_path else []
    finally:
        stop(process)
    accounting = log_accounting(log_path, answered + read_ok_ids(ids)) if log_path else None
    return {"rows": rows, "log": accounting, "workers": stats}


def _add_stages(row: dict, url: str, before: dict) -> dict:
    """Put the level's mean in-service stage times into its row (our services only); returns the new
    reading."""
    if not before:
        return before
    after = stage_totals(url)
    row["stages_ms"] = stage_means(before, after)
    return after


def _line(row: dict) -> str:
    line = (
        f"{row['service']:<12} {row['load']:<20} {row['throughput_rps']:8.1f} req/s  P50 {row['p50_ms']:7.2f}  "
        f"P95 {row['p95_ms']:7.2f}  P99 {row['p99_ms']:7.2f} ms  non-2xx {row['non_2xx']}  "
        f"socket errors {row['socket_errors']}  (others used {row['other_cores']:.2f} cores)"
    )
    if row.get("stages_ms"):
        line += (
            "\n"
            + " " * 14
            + "in-service means, ms: "
            + "  ".join(f"{k} {v:.3f}" for k, v in row["stages_ms"].items())
        )
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a directory written by `manga-intent train`")
    parser.add_argument("--out", default=str(ROOT / ".manga_home" / "bench-serving"))
    parser.add_argument(
        "--workers", type=int, default=0, help="our service's workers (default: one per core)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="intra-op threads per worker (default: cores / workers)"
    )
    parser.add_argument(
        "--serve-args",
        default="",
        help="extra `manga-intent serve` options for our services, e.g. '--max-batch 16'",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per closed-loop level")
    parser.add_argument("--open-duration", type=int, default=15, help="seconds per open-loop rate")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 300, 500, 800])
    parser.add_argument("--services", nargs="+", default=["ours-int8", "ours-fp32", "plain"])
    parser.add_argument("--reuse-artifact", action="store_true", help="skip compiling when --out has one")
    parser.add_argument(
        "--wait-quiet", type=float, default=60, help="seconds to wait for other processes to calm down"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    wrk = ensure_wrk()

    from manga_intent.data import load_jsonl
    from manga_intent.shipped_data import SEED_CORPUS

    messages = [{"text": e.text, "channel": "web"} for e in load_jsonl(SEED_CORPUS.path).examples]
    bodies = [json.dumps(m, ensure_ascii=False).encode() for m in messages]
    bodies_path = work / "bodies.jsonl"
    bodies_path.write_bytes(b"\n".join(bodies) + b"\n")

    artifact = work / "artifact"
    build_path = work / "build.json"
    if not (args.reuse_artifact and (artifact / "manifest.json").is_file() and build_path.is_file()):
        shutil.rmtree(artifact, ignore_errors=True)
        build = compile_artifact(Path(args.model), artifact)
        build_path.write_text(json.dumps(build, indent=2))
    build = json.loads(build_path.read_text())
    quantization = build["quantization"]
    print(f"\nquantization: {quantization['reason']}")
    for row in quantization["candidates"]:
        print(
            f"  {row['candidate']:<34} agreement {row['agreement']:.4f} (pooled "
            f"{row.get('pooled_agreement', float('nan')):.4f})  ECE {row['ece']:.4f} "
            f"(Δ {row['ece_delta']:+.4f} over fp32 bins, {row.get('ece_delta_rebinned', float('nan')):+.4f} re-binned)  P50 {row['p50_ms']:.2f} ms  P95 {row['p95_ms']:.2f} ms  "
            f"passed {row['passed']}"
        )

    serve = [str(Path(sys.executable).parent / "manga-intent"), "serve", "--model", str(artifact)]
    if args.workers:
        serve += ["--workers", str(args.workers)]
    if args.threads:
        serve += ["--threads", str(args.threads)]
    serve += shlex.split(args.serve_args)
    results = {"build": build, "services": {}}
    for name in args.services:
        if name == "ours-int8" and quantization["served"] != "int8":
            print("ours-int8 skipped: the guard kept the artifact on fp32 (see above)")
            continue
        if name.startswith("ours"):
            log_path = work / f"log-{name}.sqlite"
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(f"{log_path}{suffix}").unlink(missing_ok=True)
            graph = name.split("-")[1]
            command = [*serve, "--graph", graph, "--log", str(log_path), "--reload-seconds", "3600"]
        else:
            log_path, command = (
                None,
                [sys.executable, str(ROOT / "bench" / "plain_pipeline_service.py"), "--model", args.model],
            )
        results["services"][name] = bench_service(
            name, command, log_path, args, wrk, bodies_path, bodies, work
        )

    print(
        "\n| service | load | throughput (req/s) | P50 ms | P95 ms | P99 ms | non-2xx | socket errors "
        "| other processes (cores) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, result in results["services"].items():
        for row in result["rows"]:
            print(
                f"| {name} | {row['load']} | {row['throughput_rps']:.1f} | {row['p50_ms']:.2f} | "
                f"{row['p95_ms']:.2f} | {row['p99_ms']:.2f} | {row['non_2xx']} | {row['socket_errors']} "
                f"| {row['other_cores']:.2f} |"
            )
    print(
        "\n| service | log rows | answered 200 | duplicates | answered without row | rows the client missed |"
    )
    print("|---|---|---|---|---|---|")
    for name, result in results["services"].items():
        a = result["log"]
        if a:
            print(
                f"| {name} | {a['rows']} | {a['answered_200']} | {a['duplicate_rows']} | "
                f"{a['answered_without_row']} | {a['rows_not_seen_by_client']} |"
            )
        for worker in result["workers"]:
            print(f"  {name} worker {worker['worker']}: {worker}")
    ratio = _ratio(results, 16)
    if ratio:
        print(f"\n16 connections: ours-int8 / plain throughput = {ratio:.1f}x")
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults: {work / 'results.json'}")


def _ratio(results: dict, connections: int) -> float | None:
    def rps(name):
        for row in results["services"].get(name, {}).get("rows", []):
            if row["load"] == f"closed, {connections} conn":
                return row["throughput_rps"]
        return None

    ours, plain = rps("ours-int8") or rps("ours-fp32"), rps("plain")
    return ours / plain if ours and plain else None


if __name__ == "__main__":
    main()
