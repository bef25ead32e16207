"""What shadow mode costs the shoppers, and what its champion latency control adds:

  python bench/shadow_cost.py ARTIFACT_DIR [--messages 400] [--rounds 3]

ARTIFACT_DIR is a compiled artifact (`manifest.json`; e.g. `neuron_artifact`'s output under
$MANGA_HOME/artifacts/compiled/). Simulated messages are classified one at a time on the main thread (the
served requests) while a `ShadowScorer` thread scores a challenger (the same graph, loaded again) off the
path, as the service's shadow mode does. Variants run interleaved, round by round, so machine noise hits all
of them; printed: served P50/P95 per variant (mean over rounds) and the paired challenger/champion P95 ratio
the shadow report would read (about 1 for the same graph).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.compiled import CompiledClassifier  # noqa: E402
from serving.shadow import ShadowScorer, SqliteShadowLog  # noqa: E402
from serving.simulator import simulate  # noqa: E402


def served_row(i: int, text: str, prediction, latency_ms: float) -> dict:
    return {
        "ts": time.time(),
        "request_id": str(i),
        "text": text,
        "channel": "web",
        "model_version": "champion",
        "intent": prediction.intent,
        "confidence": prediction.confidence,
        "is_ood": prediction.is_ood,
        "latency_ms": latency_ms,
    }


def run_variant(champion, challenger, control_every: int | None, texts, tmp: Path) -> dict:
    """Served latencies with (challenger, control_every) shadowing; `challenger` None: no shadow."""
    log = SqliteShadowLog(tmp / f"shadow-{time.time_ns()}.sqlite")
    scorer = None if challenger is None else ShadowScorer(log, control_every=control_every)
    served = []
    for i, text in enumerate(texts):
        started = time.perf_counter()
        prediction = champion.classify([text])[0]
        served.append((time.perf_counter() - started) * 1000)
        if scorer is not None:
            scorer.submit(
                "challenger", challenger, [served_row(i, text, prediction, served[-1])], champion=champion
            )
    ratio = float("nan")
    if scorer is not None:
        scorer.drain(timeout=600)
        scorer.stop()
        pairs = [r for r in log.read("challenger") if r["champion_shadow_latency_ms"] is not None]
        if pairs:
            ratio = np.percentile([r["challenger_latency_ms"] for r in pairs], 95) / np.percentile(
                [r["champion_shadow_latency_ms"] for r in pairs], 95
            )
    return {"p50": np.percentile(served, 50), "p95": np.percentile(served, 95), "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("artifact")
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    champion = CompiledClassifier(args.artifact)
    same_threads = CompiledClassifier(args.artifact)
    one_thread = CompiledClassifier(args.artifact, intra_op_threads=1, inter_op_threads=1)
    texts = [m["text"] for m in simulate("stationary", args.messages, seed=11)]
    for model in (champion, same_threads, one_thread):
        for text in texts[:30]:
            model.classify([text])  # warm-up
    variants = {
        "no shadow": (None, None),
        "shadow, no champion control": (same_threads, 0),
        "shadow, control on every other message": (same_threads, 2),
        "shadow, control on every message (default)": (same_threads, 1),
        "shadow, challenger on 1 intra-op thread, no control": (one_thread, 0),
    }
    results = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, (challenger, every) in variants.items():
                results[name].append(run_variant(champion, challenger, every, texts, Path(tmp)))
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    base = np.mean([r["p95"] for r in results["no shadow"]])
    print("| variant | served P50 ms | served P95 ms | P95 vs no shadow | paired P95 ratio |")
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        p95 = np.mean([r["p95"] for r in rows])
        ratios = [r["ratio"] for r in rows if not np.isnan(r["ratio"])]
        shown = f"{np.mean(ratios):.3f}" if ratios else "–"
        print(
            f"| {name} | {np.mean([r['p50'] for r in rows]):.2f} | {p95:.2f} | {p95 / base:.2f}× | {shown} |"
        )


if __name__ == "__main__":
    main()
