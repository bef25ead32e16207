"""Normalisation and term detection: the ground truth behind every segment tag the generator writes.

A generated row is kept only if `detect_tags`-style analysis of its text agrees with its tags, so per-segment
metrics downstream can trust them. `normalize_for_match` makes written text and its ASR rendering compare equal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from . import lexicon as lx
from . import templates as tp

VOCABULARIES: tuple[str, ...] = ("train", "novel")


def check_vocabulary(vocabulary: str) -> str:
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"vocabulary must be one of {VOCABULARIES}, got {vocabulary!r}")
    return vocabulary


# ---------------------------------------------------------------------------
# Normalisation and detection (the ground truth behind every segment tag).
# ---------------------------------------------------------------------------
_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
NUMBER_WORDS = _ONES + _TENS[2:] + ("oh", "hundred")
JAPANESE_RE = re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
ASR_PUNCT_RE = re.compile(r"[^\w\s]|_")


def spell_number(digits: str) -> str:
    """Spell a digit string the way a speech recogniser transcribes it.

    1-3 digit numbers become words ("105" -> "one oh five", "12" -> "twelve"); longer
    strings such as order numbers are read digit by digit.  Shared by the ASR noise and
    by ``normalize_for_match`` so spoken and written forms compare equal.
    """
    if not digits.isdigit():
        raise ValueError(f"spell_number expects ASCII digits, got {digits!r}")
    if len(digits) > 3 or (len(digits) > 1 and digits[0] == "0"):
        return " ".join("oh" if d == "0" else _ONES[int(d)] for d in digits)
    n = int(digits)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    hundreds, rest = divmod(n, 100)
    if rest == 0:
        return _ONES[hundreds] + " hundred"
    if rest < 10:
        return f"{_ONES[hundreds]} oh {_ONES[rest]}"
    return f"{_ONES[hundreds]} {spell_number(str(rest))}"


def strip_latin_diacritics(text: str) -> str:
    """Drop accents/macrons from Latin letters only (Japanese kana keep their dakuten)."""
    out = []
    for ch in text:
        if 127 < ord(ch) < 0x250:
            ch = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        out.append(ch)
    return "".join(out)


def normalize_for_match(text: str) -> str:
    """Canonical Latin form used for all term matching.

    Lower-cases, strips macrons (tankōbon == tankobon), drops apostrophes, turns
    '&' into 'and' and digits into spoken words, and reduces everything else
    (punctuation, Japanese script) to single spaces.  Written text and its ASR
    rendering therefore normalise to the same string.
    """
    t = strip_latin_diacritics(text.lower()).replace("&", " and ")
    t = re.sub(r"['’`]", "", t)
    t = re.sub(r"\d+", lambda m: f" {spell_number(m.group())} ", t)
    t = re.sub(r"[^a-z]+", " ", t)
    return " ".join(t.split())


def _terms(strings: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({normalize_for_match(s) for s in strings} - {""}, key=lambda s: (-len(s), s)))


JARGON_TERMS = _terms(lx.JARGON)
SLANG_TERMS = _terms(lx.SLANG)
NOVEL_SLANG_TERMS = _terms(lx.NOVEL_SLANG)
ROMAJI_TERMS = _terms(lx.ROMAJI)
TITLE_TERMS = _terms(t for t, _ in lx.TITLES)
NOVEL_TITLE_TERMS = _terms(t for t, _ in lx.NOVEL_TITLES)


def find_terms(padded_norm: str, terms: Sequence[str]) -> list[str]:
    return [t for t in terms if f" {t} " in padded_norm]


class Analysis(NamedTuple):
    jargon: list[str]
    slang: list[str]
    novel_slang: list[str]
    romaji: list[str]
    titles: list[str]
    novel_titles: list[str]
    japanese: bool
    unknown: list[str]
    asr_like: bool


def analyse(text: str) -> Analysis:
    norm = normalize_for_match(text)
    padded = f" {norm} "
    vocab = known_vocabulary()
    return Analysis(
        jargon=find_terms(padded, JARGON_TERMS),
        slang=find_terms(padded, SLANG_TERMS),
        novel_slang=find_terms(padded, NOVEL_SLANG_TERMS),
        romaji=find_terms(padded, ROMAJI_TERMS),
        titles=find_terms(padded, TITLE_TERMS),
        novel_titles=find_terms(padded, NOVEL_TITLE_TERMS),
        japanese=bool(JAPANESE_RE.search(text)),
        unknown=[w for w in norm.split() if w not in vocab],
        asr_like=text == text.lower() and not ASR_PUNCT_RE.search(text),
    )


def detect_tags(text: str, vocabulary: str = "train") -> set[str]:
    """Return the text-verifiable segment tags a message actually exhibits.

    Covers jargon, slang (from the given vocabulary's slang list), jp_en, romaji,
    typo (a token outside the generator's known vocabulary) and voice_asr (all
    lower-case, no punctuation).  multi_intent is structural and not detectable.
    """
    check_vocabulary(vocabulary)
    a = analyse(text)
    tags = set()
    if a.jargon:
        tags.add("jargon")
    if a.slang if vocabulary == "train" else a.novel_slang:
        tags.add("slang")
    if a.japanese:
        tags.add("jp_en")
    if a.romaji:
        tags.add("romaji")
    if a.unknown:
        tags.add("typo")
    if a.asr_like:
        tags.add("voice_asr")
    return tags


def iter_strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from iter_strings(k)
            yield from iter_strings(v)
    elif isinstance(obj, (tuple, list, frozenset, set)):
        for item in obj:
            yield from iter_strings(item)


@lru_cache(maxsize=1)
def known_vocabulary() -> frozenset[str]:
    """Every normalised token the generator can emit *without* a typo.

    Built from all lexicon lists (except typo targets), templates, clauses, fillers,
    ASR outputs and number words.  A token outside this set is, by construction, a
    typo - that is how typo tags are verified.
    """
    sources: list[Any] = []
    for name, value in vars(lx).items():
        if name.startswith("_") or name in ("COMMON_TYPOS", "KEYBOARD_NEIGHBOURS"):
            continue
        sources.append(value)
    sources.append([correct for correct, _ in lx.COMMON_TYPOS])
    sources.extend(
        [
            tp.TEMPLATE_TEXTS,
            tp.CLAUSE_TEXTS,
            tp.SENTENCE_CONNECTORS,
            tp.INLINE_CONNECTORS,
            tp.DECOR_PREFIXES,
            tp.DECOR_SENTENCE_SUFFIXES,
            tp.DECOR_INLINE_SUFFIXES,
            tp.PLAIN_ADJ_POS,
            tp.PLAIN_ADJ_NEG,
            tp.DAYS,
            tp.ASR_FILLERS,
            tp.ASR_EXTRA_WORDS,
            NUMBER_WORDS,
            ("ma",),
        ]
    )
    vocab: set[str] = set()
    for s in iter_strings(sources):
        vocab.update(normalize_for_match(s).split())
    return frozenset(vocab)
