"""False-alarm and detection rates of the intent-drift test per simulator scenario.

  python bench/drift_false_alarms.py [--windows 200] [--window 500] [--alpha 0.001]

Windows of each scenario's messages (the simulator's ground-truth intents standing for an oracle model's
predictions, so the reference is the stationary scenario's own shares) are tested against the reference;
the printed rate is the share of windows that fire. The generator runs out of unique texts past ~100k
messages per seed, so the stream is drawn in chunks of `CHUNK_WINDOWS` windows, each with its own seed.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.drift_test import drift_test  # noqa: E402
from manga_intent.taxonomy import SEED_TRAFFIC_SHARES  # noqa: E402
from serving.simulator import SCENARIOS, simulate  # noqa: E402

CHUNK_WINDOWS = 100


def scenario_windows(name: str, windows: int, window: int, seed: int):
    """`windows` consecutive windows of the scenario's traffic, drawn in independently seeded chunks."""
    for start in range(0, windows, CHUNK_WINDOWS):
        count = min(CHUNK_WINDOWS, windows - start)
        stream = simulate(name, count * window, seed=seed + start)
        for i in range(count):
            yield stream[i * window : (i + 1) * window]


def rates(windows: int, window: int, alpha: float, seed: int = 0) -> list[dict]:
    out = []
    for name in ("stationary", "seasonal_sale", "new_vocabulary", "ood_surge", "asr_surge"):
        fired, kls = 0, []
        for messages in scenario_windows(name, windows, window, seed):
            chunk = [m["true_label"] for m in messages if m["true_label"]]
            test = drift_test(chunk, SEED_TRAFFIC_SHARES, alpha=alpha)
            fired += test.drifted
            kls.append(test.kl)
        out.append(
            {
                "scenario": name,
                "expected_kl": SCENARIOS[name].expected_kl,
                "mean_window_kl": sum(kls) / len(kls),
                "fire_rate": fired / windows,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--alpha", type=float, default=0.001)
    args = parser.parse_args()
    print(
        f"{'scenario':16s} {'expected KL':>11s} {'mean KL':>8s} {'fires':>7s}   ({args.windows} windows of {args.window})"
    )
    for row in rates(args.windows, args.window, args.alpha):
        print(
            f"{row['scenario']:16s} {row['expected_kl']:11.4f} {row['mean_window_kl']:8.4f} {row['fire_rate']:7.1%}"
        )


if __name__ == "__main__":
    main()
