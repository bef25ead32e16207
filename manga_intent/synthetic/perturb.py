"""Noise functions: typos, speech-recognition errors, Japanese code-switching and romaji.

Each keeps the message's intent and leaves a detectable trace (see `matching.py`), so a perturbed row's
segment tag stays true. Usable on their own, e.g. to perturb hand-written rows or attack a model.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from manga_intent.taxonomy import INTENTS

from . import lexicon as lx
from . import templates as tp
from .matching import (
    ASR_PUNCT_RE,
    JAPANESE_RE,
    ROMAJI_TERMS,
    find_terms,
    iter_strings,
    known_vocabulary,
    normalize_for_match,
    spell_number,
    strip_latin_diacritics,
)

# ---------------------------------------------------------------------------
# Noise functions (usable on their own, e.g. to perturb hand-written rows).
# ---------------------------------------------------------------------------
_TYPO_MAP = dict(lx.COMMON_TYPOS)
_NEIGHBOURS = dict(lx.KEYBOARD_NEIGHBOURS)
_WORD_RE = re.compile(r"[A-Za-z]+")


def _match_case(new: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return new.upper()
    if like[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _typo_word(word: str, rng: random.Random) -> str | None:
    """A misspelling of ``word`` that is not itself a known word, or None."""
    vocab = known_vocabulary()
    lower = word.lower()
    if lower in _TYPO_MAP and rng.random() < 0.6:
        cand = _match_case(_TYPO_MAP[lower], word)
        if normalize_for_match(cand) not in vocab:
            return cand
    if len(word) < 4:
        return None
    for _ in range(8):
        i = rng.randrange(1, len(word))  # keep the first letter: typos rarely hit it
        op = rng.choice(("delete", "swap", "double", "neighbour"))
        if op == "delete":
            cand = word[:i] + word[i + 1 :]
        elif op == "swap" and i < len(word) - 1:
            cand = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif op == "double":
            cand = word[:i] + word[i] + word[i:]
        else:
            near = _NEIGHBOURS.get(word[i].lower())
            if not near:
                continue
            repl = rng.choice(near)
            cand = word[:i] + (repl.upper() if word[i].isupper() else repl) + word[i + 1 :]
        if cand != word and normalize_for_match(cand) not in vocab:
            return cand
    return None


def apply_typos(text: str, rng: random.Random, rate: float = 0.12, *, protect: Iterable[str] = ()) -> str:
    """Misspell roughly ``rate`` of the eligible words (at least one when possible).

    Uses common real-world misspellings first, then keyboard slips (drop, swap,
    double, neighbouring key).  Produced tokens are never real words from the
    generator's vocabulary, so the typo stays detectable.  Words whose normalised
    form is in ``protect`` (e.g. the jargon term that justifies a jargon tag) are
    left alone.
    """
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate!r}")
    protected = {normalize_for_match(p) for p in protect}
    protected_tokens = {tok for p in protected for tok in p.split()}
    matches = [
        m
        for m in _WORD_RE.finditer(text)
        if (len(m.group()) >= 4 or m.group().lower() in _TYPO_MAP)
        and m.group().lower() not in protected_tokens
    ]
    if not matches:
        return text
    k = max(1, round(rate * len(matches)))
    order = list(range(len(matches)))
    rng.shuffle(order)
    chosen: dict[int, str] = {}
    for idx in order:
        if len(chosen) >= k:
            break
        new = _typo_word(matches[idx].group(), rng)
        if new is not None:
            chosen[idx] = new
    out = text
    for idx in sorted(chosen, reverse=True):
        m = matches[idx]
        out = out[: m.start()] + chosen[idx] + out[m.end() :]
    return out


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])")


_ASR_PATTERNS = tuple(
    (src, dst, _phrase_pattern(src), set(normalize_for_match(src).split())) for src, dst in lx.ASR_CONFUSIONS
)


def apply_asr_noise(text: str, rng: random.Random, *, protect: Iterable[str] = ()) -> str:
    """Render ``text`` the way a speech recogniser would transcribe it.

    Lower-case, no punctuation, numbers spoken ("vol 105" -> "volume one oh five"),
    symbols spoken ("$20" -> "twenty dollars"), and homophones / misheard titles
    ("where" -> "wear", "One Piece" -> "won piece") applied with some probability.
    Japanese script is kept (it has no case) but its punctuation is removed.
    """
    protected_tokens = {tok for p in protect for tok in normalize_for_match(p).split()}
    t = re.sub(r"\$(\d+)", r"\1 dollars", text)
    t = t.replace("%", " percent").replace("&", " and ").replace("#", " number ").replace("+", " plus ")
    t = strip_latin_diacritics(t.lower())
    t = re.sub(r"(?<![a-z])vol\.?(?![a-z])", "volume", t)
    for _src, dst, pattern, src_tokens in _ASR_PATTERNS:
        if src_tokens & protected_tokens:
            continue
        if pattern.search(t) and rng.random() < 0.55:
            t = pattern.sub(dst, t)
    t = re.sub(r"\d+", lambda m: f" {spell_number(m.group())} ", t)
    t = re.sub(r"['’`]", "", t)
    t = ASR_PUNCT_RE.sub(" ", t)
    t = " ".join(t.split())
    if rng.random() < 0.12:
        t = rng.choice(tp.ASR_FILLERS) + t
    return t


@lru_cache(maxsize=1)
def _common_starters() -> frozenset[str]:
    """First words of templates/decorations that start with literal text (not a slot).

    Only these are lower-cased after a prefix; a leading title or name keeps its case.
    """
    starters = set()
    for text in iter_strings([tp.TEMPLATE_TEXTS, tp.CLAUSE_TEXTS, tp.DECOR_PREFIXES]):
        first = text.split(" ", 1)[0]
        if first[:1].isalpha() and first not in ("I", "I'm", "I've", "I'd", "I'll"):
            starters.add(first.rstrip(",:").lower())
    return frozenset(starters)


def decap(text: str) -> str:
    """Lower-case a leading common word so a prefix can precede it ("ngl where is...")."""
    first = text.split(" ", 1)[0].rstrip(",:")
    if first.lower() in _common_starters() and not (len(first) > 1 and first.isupper()):
        return text[0].lower() + text[1:]
    return text


def _sub_first_word(
    text: str, rng: random.Random, pairs: Sequence[tuple[str, str]], protected_tokens: set[str]
) -> str | None:
    """Replace one randomly chosen substitutable English word/phrase, or None."""
    options = []
    for eng, repl in pairs:
        if set(normalize_for_match(eng).split()) & protected_tokens:
            continue
        m = re.search(r"(?<![A-Za-z])" + re.escape(eng) + r"(?![A-Za-z])", text, flags=re.IGNORECASE)
        if m:
            options.append((m, repl))
    if not options:
        return None
    m, repl = rng.choice(options)
    return text[: m.start()] + repl + text[m.end() :]


def _intent_phrases(table: Sequence[tuple[str, tuple[str, ...]]], intent: str | None) -> tuple[str, ...]:
    if intent is None:
        return ()
    for name, phrases in table:
        if name == intent:
            return phrases
    raise ValueError(f"unknown intent {intent!r}; expected one of {', '.join(INTENTS)}")


def code_switch_jp(
    text: str, rng: random.Random, *, intent: str | None = None, protect: Iterable[str] = ()
) -> str:
    """Mix Japanese script into an English message without changing its intent.

    Swaps a word for its Japanese equivalent (manga -> 漫画, order -> 注文), adds a
    polite Japanese opener/closer, or - when ``intent`` is given - a short Japanese
    sentence with the same intent ("返品したいです。").  Always adds Japanese script.
    """
    protected_tokens = {tok for p in protect for tok in normalize_for_match(p).split()}
    ops = ["sub", "prefix", "suffix"] + (["intent", "intent"] if intent else [])
    for _ in range(2 if rng.random() < 0.25 else 1):
        op = rng.choice(ops)
        ops = [o for o in ops if o != op]  # a second change is always of another kind
        new = None
        if op == "sub":
            new = _sub_first_word(text, rng, lx.JP_WORD_SUBS, protected_tokens)
        elif op == "prefix":
            new = rng.choice(lx.JP_PREFIXES) + text
        elif op == "intent":
            phrase = rng.choice(_intent_phrases(lx.JP_INTENT_PHRASES, intent))
            new = f"{phrase} {text}" if rng.random() < 0.4 else f"{text} {phrase}"
        if new is None:  # "suffix", or a substitution that found nothing
            new = text + rng.choice(lx.JP_SUFFIXES)
        text = new
    if not JAPANESE_RE.search(text):
        text += rng.choice(lx.JP_SUFFIXES)
    return text


def add_romaji(
    text: str, rng: random.Random, *, intent: str | None = None, protect: Iterable[str] = ()
) -> str:
    """Add romanised Japanese ("sumimasen", "kawaii", "kore wa eigo desu ka?").

    Substitutes an English word (please -> onegai, amazing -> sugoi), prefixes or
    suffixes a romaji interjection, or appends a same-intent romaji phrase.  Always
    leaves at least one term from ``lexicon.ROMAJI`` in the text.
    """
    protected_tokens = {tok for p in protect for tok in normalize_for_match(p).split()}
    op = rng.choice(["sub", "prefix", "suffix"] + (["intent"] if intent else []))
    new = None
    if op == "sub":
        new = _sub_first_word(text, rng, lx.ROMAJI_WORD_SUBS, protected_tokens)
    elif op == "prefix":
        new = f"{rng.choice(lx.ROMAJI_PREFIXES)} {decap(text)}"
    elif op == "intent":
        new = f"{text} {rng.choice(_intent_phrases(lx.ROMAJI_INTENT_PHRASES, intent))}"
    if new is None:
        new = f"{text} {rng.choice(lx.ROMAJI_SUFFIXES)}"
    if not find_terms(f" {normalize_for_match(new)} ", ROMAJI_TERMS):
        new = f"{new} {rng.choice(lx.ROMAJI_SUFFIXES)}"
    return new
