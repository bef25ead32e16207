"""Seeded production-like traffic with drift scenarios, written to a stream file or POSTed.

We have no production logs, so monitoring is exercised with a simulator. Messages come from
pools held out of training: generator output under a seed the training set never uses (or its
novel-vocabulary lexicon) and the simulation half of the OOD set. Each scenario states the
intent distribution it draws from, so its KL divergence from the base traffic is known.

  python -m serving.simulator --scenario seasonal_sale --n 2000 --out stream.jsonl
  python -m serving.simulator --scenario stationary --n 200 --post http://127.0.0.1:8000/v1/classify
"""

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from manga_intent.drift import kl_divergence, window_kl
from manga_intent.shipped_data import ood_heldout_pool
from manga_intent.synthetic import apply_asr_noise, generate_synthetic
from manga_intent.taxonomy import SEED_CHANNEL_SHARES, SEED_TRAFFIC_SHARES

#: Generator seeds at or above this value are reserved for simulated traffic (training uses lower ones).
SIMULATION_SEED_OFFSET = 1_000_000


def with_share(base: Mapping[str, float], label: str, share: float) -> dict[str, float]:
    """`base` with `label` set to `share` and every other label scaled to fill the rest."""
    rest = 1.0 - base[label]
    return {k: share if k == label else v * (1.0 - share) / rest for k, v in base.items()}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    intent_shares: Mapping[str, float]
    channel_shares: Mapping[str, float]
    ood_share: float = 0.0
    vocabulary: str = "train"

    @property
    def expected_kl(self) -> float:
        """KL(scenario intents || base intents): what a drift monitor should see in the limit."""
        return kl_divergence(self.intent_shares, SEED_TRAFFIC_SHARES)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "stationary",
            "traffic as in training: seed intent and channel shares",
            dict(SEED_TRAFFIC_SHARES),
            SEED_CHANNEL_SHARES,
        ),
        Scenario(
            "seasonal_sale",
            "a sale: promotion share rises from 5% to 20%",
            with_share(SEED_TRAFFIC_SHARES, "promotion", 0.20),
            SEED_CHANNEL_SHARES,
        ),
        Scenario(
            "new_vocabulary",
            "titles and slang never seen in training",
            dict(SEED_TRAFFIC_SHARES),
            SEED_CHANNEL_SHARES,
            vocabulary="novel",
        ),
        Scenario(
            "ood_surge",
            "25% of messages are out of scope (other shops, spam, injections)",
            dict(SEED_TRAFFIC_SHARES),
            SEED_CHANNEL_SHARES,
            ood_share=0.25,
        ),
        Scenario(
            "asr_surge",
            "voice traffic jumps from 8% to 40%, with speech-recognition noise",
            dict(SEED_TRAFFIC_SHARES),
            {"mobile": 0.35, "web": 0.25, "voice": 0.40},
        ),
    )
}


def _draw(rng: random.Random, shares: Mapping[str, float]) -> str:
    return rng.choices(list(shares), weights=list(shares.values()))[0]


def simulate(
    scenario: str | Scenario,
    n: int,
    *,
    seed: int = 0,
    start: datetime | None = None,
    mean_interval_seconds: float = 30.0,
) -> list[dict]:
    """`n` messages of a scenario with Poisson arrival times, channels and ground truth."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if isinstance(scenario, str):
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose from {sorted(SCENARIOS)}")
        scenario = SCENARIOS[scenario]
    rng = random.Random(f"simulate:{scenario.name}:{seed}")
    is_ood = [rng.random() < scenario.ood_share for _ in range(n)]
    in_scope = generate_synthetic(
        max(1, n - sum(is_ood)),
        seed=SIMULATION_SEED_OFFSET + seed,
        intent_shares=scenario.intent_shares,
        vocabulary=scenario.vocabulary,
    )  # the generator fills label quotas exactly, then we shuffle them into arrival order
    rng.shuffle(in_scope)
    ood_pool = ood_heldout_pool()
    rng.shuffle(ood_pool)
    clock = start or datetime(2026, 11, 1, tzinfo=UTC)
    stream = []
    for index, ood in enumerate(is_ood):
        clock += timedelta(seconds=rng.expovariate(1.0 / mean_interval_seconds))
        channel = _draw(rng, scenario.channel_shares)
        if ood:
            source = ood_pool[index % len(ood_pool)]
            text, true_label, segment = source["text"], None, ["ood", source["category"]]
        else:
            row = in_scope.pop()
            text, true_label, segment = row["text"], row["label"], list(row["segment"])
        if channel == "voice" and "voice_asr" not in segment:
            text = apply_asr_noise(text, rng)
            segment = [tag for tag in segment if tag != "plain"] + ["voice_asr"]
        stream.append(
            {
                "ts": clock.isoformat(timespec="seconds"),
                "text": text,
                "channel": channel,
                "true_label": true_label,
                "is_ood": ood,
                "segment": segment,
                "scenario": scenario.name,
                "client": f"shopper-{rng.randrange(2000):04d}",
            }
        )
    return stream


def observed_kl(stream: Sequence[dict]) -> float:
    """KL of the stream's in-scope true intents against the base traffic shares."""
    return window_kl([m["true_label"] for m in stream if m["true_label"]], SEED_TRAFFIC_SHARES)


def write_stream(stream: Sequence[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for message in stream:
            fh.write(json.dumps(message, ensure_ascii=False) + "\n")
    return path


def post_stream(
    stream: Sequence[dict],
    url: str,
    *,
    rate_per_second: float | None = None,
    timeout: float = 10.0,
) -> Iterator[dict]:
    """POST each message's text and channel to `url` (the inference service); yield the replies.

    A non-2xx reply raises with the server's message: traffic is not silently dropped.
    """
    import httpx

    with httpx.Client(timeout=timeout) as client:
        for message in stream:
            started = time.perf_counter()
            headers = {"x-client-id": message["client"]} if message.get("client") else {}
            reply = client.post(
                url, json={"text": message["text"], "channel": message["channel"]}, headers=headers
            )
            if reply.status_code >= 300:
                raise RuntimeError(f"{url} answered {reply.status_code}: {reply.text[:300]}")
            yield {"sent": message, "reply": reply.json()}
            if rate_per_second:
                time.sleep(max(0.0, 1.0 / rate_per_second - (time.perf_counter() - started)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulate MangaAssist traffic with drift scenarios.")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="stationary")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the stream as JSONL here")
    parser.add_argument(
        "--post", help="POST every message to this URL (e.g. http://127.0.0.1:8000/v1/classify)"
    )
    parser.add_argument("--rate", type=float, default=None, help="messages per second when posting")
    args = parser.parse_args(argv)
    stream = simulate(args.scenario, args.n, seed=args.seed)
    scenario = SCENARIOS[args.scenario]
    print(
        f"{args.scenario}: {len(stream)} messages, intent KL vs base: observed {observed_kl(stream):.4f}, "
        f"expected {scenario.expected_kl:.4f}",
        file=sys.stderr,
    )
    if args.out:
        print(f"wrote {write_stream(stream, args.out)}", file=sys.stderr)
    if args.post:
        sent = sum(1 for _ in post_stream(stream, args.post, rate_per_second=args.rate))
        print(f"posted {sent} messages to {args.post}", file=sys.stderr)
    if not args.out and not args.post:
        for message in stream:
            print(json.dumps(message, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
