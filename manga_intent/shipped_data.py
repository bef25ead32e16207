"""The hand-written data shipped with the repo: where it lives, its schema, and its cards.

`python -m manga_intent.shipped_data` rewrites each folder's `card.json` (checksum and counts);
the tests fail when a data file changes without its card.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from manga_intent.taxonomy import CHANNELS, INTENTS, LANGUAGES, OOD_CATEGORIES, SEGMENTS

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class ShippedFile:
    name: str
    path: Path
    description: str

    @property
    def card_path(self) -> Path:
        return self.path.parent / "card.json"


GOLDEN = ShippedFile(
    "golden",
    DATA_DIR / "golden" / "golden.jsonl",
    "Hand-written, hand-checked gate set; never produced by the generator.",
)
SEED_CORPUS = ShippedFile(
    "seed_corpus",
    DATA_DIR / "seed_corpus" / "seed_corpus.jsonl",
    "Hand-written labelled corpus standing in for production logs; default dataset source.",
)
OOD = ShippedFile(
    "ood",
    DATA_DIR / "ood" / "ood.jsonl",
    "Hand-written out-of-scope messages for fitting and testing the OOD threshold.",
)
TARGETED = ShippedFile(
    "targeted",
    DATA_DIR / "targeted" / "targeted.jsonl",
    "Hand-written rows for an intent the corpus under-covers (escalation: 65 rows written from the "
    "writing guide, never against the golden set); training split only, outside the traffic-share corpus.",
)
SHIPPED = (GOLDEN, SEED_CORPUS, OOD, TARGETED)


def read_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _ood_half(parity: int) -> list[dict]:
    return [row for row in read_rows(OOD.path) if int(row["id"].split("-")[1]) % 2 == parity]


def ood_fitting_pool() -> list[dict]:
    """The half of the OOD set that detectors and thresholds are fitted on (even ids)."""
    return _ood_half(0)


def ood_heldout_pool() -> list[dict]:
    """The half of the OOD set kept for held-out scoring and simulated traffic (odd ids); never fitted on."""
    return _ood_half(1)


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def schema_problems(shipped: ShippedFile, rows: list[dict]) -> list[str]:
    """Every schema violation in a shipped file, as 'row N: reason' strings."""
    problems = []
    for n, row in enumerate(rows, start=1):

        def bad(reason: str, n: int = n, row: dict = row) -> None:
            problems.append(f"{shipped.name} row {n} ({row.get('id')}): {reason}")

        if not isinstance(row.get("text"), str) or not row["text"].strip():
            bad("text must be a non-empty string")
        if not isinstance(row.get("id"), str):
            bad("id must be a string")
        if shipped is OOD:
            if row.get("category") not in OOD_CATEGORIES:
                bad(f"category {row.get('category')!r} not in {OOD_CATEGORIES}")
            if "label" in row:
                bad("out-of-scope rows carry no intent label")
            continue
        if row.get("label") not in INTENTS:
            bad(f"label {row.get('label')!r} is not an intent")
        segments = row.get("segment")
        if not isinstance(segments, list) or not segments or any(s not in SEGMENTS for s in segments):
            bad(f"segment must be a non-empty list of {SEGMENTS}")
            continue
        if ("plain" in segments) and len(segments) > 1:
            bad("'plain' cannot be combined with other segments")
        secondary = row.get("secondary")
        if (secondary is not None) != ("multi_intent" in segments):
            bad("secondary is set exactly when the segment list has multi_intent")
        if secondary is not None and (secondary not in INTENTS or secondary == row.get("label")):
            bad(f"secondary {secondary!r} must be another intent")
        if shipped in (SEED_CORPUS, TARGETED):
            if row.get("channel") not in CHANNELS:
                bad(f"channel {row.get('channel')!r} not in {CHANNELS}")
            if row.get("language") not in LANGUAGES:
                bad(f"language {row.get('language')!r} not in {LANGUAGES}")
            if (row.get("channel") == "voice") != ("voice_asr" in segments):
                bad("voice channel rows and voice_asr rows must coincide")
    return problems


def build_card(shipped: ShippedFile) -> dict:
    rows = read_rows(shipped.path)
    card: dict = {
        "name": shipped.name,
        "description": shipped.description,
        "file": shipped.path.name,
        "sha256": sha256_of(shipped.path),
        "rows": len(rows),
    }
    if shipped is OOD:
        card["per_category"] = dict(sorted(Counter(r["category"] for r in rows).items()))
        card["per_language"] = dict(sorted(Counter(r.get("language", "?") for r in rows).items()))
        return card
    card["per_intent"] = {i: sum(r["label"] == i for r in rows) for i in INTENTS}
    card["per_segment"] = {s: sum(s in r["segment"] for r in rows) for s in SEGMENTS}
    card["multi_intent_secondaries"] = dict(
        sorted(Counter(r["secondary"] for r in rows if r["secondary"]).items())
    )
    if shipped in (SEED_CORPUS, TARGETED):
        card["per_channel"] = {c: sum(r["channel"] == c for r in rows) for c in CHANNELS}
        card["per_language"] = {lang: sum(r["language"] == lang for r in rows) for lang in LANGUAGES}
    return card


def write_cards() -> None:
    for shipped in SHIPPED:
        card = build_card(shipped)
        shipped.card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{shipped.card_path}: {card['rows']} rows, {card['sha256']}")


if __name__ == "__main__":
    write_cards()
