"""How much of the HELD-OUT half of data/ood's prompt injections the pattern screen catches, and how much shop
traffic it flags: the screen's patterns were written from the fitting half only (tests/test_poisoning.py).

  python bench/injection_screen.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manga_intent.poisoning import looks_like_injection  # noqa: E402
from manga_intent.shipped_data import SEED_CORPUS, ood_fitting_pool, ood_heldout_pool, read_rows  # noqa: E402


def rate(texts: list[str]) -> tuple[int, int]:
    return sum(bool(looks_like_injection(t)) for t in texts), len(texts)


def main() -> None:
    rows = {
        "fitting half, injections (written from)": [
            r["text"] for r in ood_fitting_pool() if r["category"] == "prompt_injection"
        ],
        "HELD-OUT half, injections": [
            r["text"] for r in ood_heldout_pool() if r["category"] == "prompt_injection"
        ],
        "held-out half, other out-of-scope": [
            r["text"] for r in ood_heldout_pool() if r["category"] != "prompt_injection"
        ],
        "seed corpus (shop traffic)": [r["text"] for r in read_rows(SEED_CORPUS.path)],
    }
    print(f"{'rows':42s} {'flagged':>9s} {'share':>7s}")
    for name, texts in rows.items():
        hit, n = rate(texts)
        print(f"{name:42s} {hit:4d}/{n:<4d} {hit / n:7.1%}")
    missed = [t for t in rows["HELD-OUT half, injections"] if not looks_like_injection(t)]
    print(f"\nheld-out injections missed: {len(missed)}")


if __name__ == "__main__":
    main()
