"""Composing labelled messages: fill a template's slots, join a secondary clause, decorate, perturb, verify.

`generate_synthetic` is the entry point: exact label quotas, independent segment draws, and a row is kept only
when every segment tag is true of its text. All randomness flows through one local `random.Random(seed)` and
every list drawn from is an ordered tuple, so output is identical for a seed whatever `PYTHONHASHSEED` is.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from functools import cache
from types import MappingProxyType
from typing import Any, NamedTuple

from manga_intent.taxonomy import INTENTS, SEED_TRAFFIC_SHARES, SEGMENTS

from . import lexicon as lx
from . import templates as tp
from .matching import (
    JAPANESE_RE,
    JARGON_TERMS,
    NOVEL_SLANG_TERMS,
    ROMAJI_TERMS,
    SLANG_TERMS,
    analyse,
    check_vocabulary,
    find_terms,
    normalize_for_match,
)
from .perturb import add_romaji, apply_asr_noise, apply_typos, code_switch_jp, decap

#: Independent per-message probability of each non-plain segment (SPEC.md target mix).
DEFAULT_SEGMENT_MIX: Mapping[str, float] = MappingProxyType(
    {
        "jargon": 0.22,
        "slang": 0.15,
        "multi_intent": 0.18,
        "jp_en": 0.10,
        "romaji": 0.04,
        "typo": 0.10,
        "voice_asr": 0.08,
    }
)


_DRAWN_SEGMENTS: tuple[str, ...] = SEGMENTS[1:]

_SLOT_RE = re.compile(r"\{(\w+)\}")


# ---------------------------------------------------------------------------
# Template bookkeeping.
# ---------------------------------------------------------------------------
class _Template(NamedTuple):
    id: str
    text: str
    position: (
        str  # "main" (primary); clauses: "cont" (joined by a connector) or "pre"/"post" (whole sentence)
    )
    jargon_literal: bool
    jargon_slots: bool
    jargon_only_slot: bool
    train_slang_literal: bool
    novel_slang_literal: bool
    formal: bool


def _make_template(tid: str, text: str, position: str) -> _Template:
    slots = set(_SLOT_RE.findall(text))
    unknown = slots - tp.KNOWN_SLOTS
    if unknown:
        raise RuntimeError(f"template {tid} uses unknown slot(s) {sorted(unknown)}")
    bare = _SLOT_RE.sub(" ", text)
    padded = f" {normalize_for_match(bare)} "
    if JAPANESE_RE.search(bare) or find_terms(padded, ROMAJI_TERMS):
        raise RuntimeError(f"template {tid} must not contain Japanese or romaji literally")
    return _Template(
        id=tid,
        text=text,
        position=position,
        jargon_literal=bool(find_terms(padded, JARGON_TERMS)),
        jargon_slots=bool(slots & tp.JARGON_SLOTS),
        jargon_only_slot=bool(slots & tp.JARGON_ONLY_SLOTS),
        train_slang_literal=bool(find_terms(padded, SLANG_TERMS)),
        novel_slang_literal=bool(find_terms(padded, NOVEL_SLANG_TERMS)),
        formal=any(c.isupper() for c in bare),
    )


_TEMPLATES: dict[str, tuple[_Template, ...]] = {
    intent: tuple(_make_template(f"{intent}.{i:02d}", t, "main") for i, t in enumerate(texts, 1))
    for intent, texts in tp.TEMPLATE_TEXTS.items()
}
_CLAUSES: dict[str, tuple[_Template, ...]] = {
    intent: tuple(_make_template(f"{intent}.s{i:02d}", t, pos) for i, (pos, t) in enumerate(items, 1))
    for intent, items in tp.CLAUSE_TEXTS.items()
}


def template_counts() -> dict[str, dict[str, int]]:
    """Number of primary templates and secondary clauses per intent (for reports)."""
    return {i: {"templates": len(_TEMPLATES[i]), "secondary_clauses": len(_CLAUSES[i])} for i in INTENTS}


def _eligible(
    templates: Sequence[_Template], *, jargon: bool, slang: bool, vocabulary: str, primary: bool
) -> tuple[_Template, ...]:
    out = []
    for t in templates:
        if t.jargon_only_slot and not jargon:
            continue
        if t.jargon_literal and not jargon:
            continue
        if primary and jargon and not (t.jargon_literal or t.jargon_slots or t.jargon_only_slot):
            continue
        if (t.train_slang_literal or t.novel_slang_literal) and not slang:
            continue
        if vocabulary == "train" and t.novel_slang_literal:
            continue
        if vocabulary == "novel" and t.train_slang_literal:
            continue
        out.append(t)
    return tuple(out)


@cache
def _eligible_cached(
    intent: str, kind: str, jargon: bool, slang: bool, vocabulary: str
) -> tuple[_Template, ...]:
    pool = _TEMPLATES[intent] if kind == "main" else _CLAUSES[intent]
    return _eligible(pool, jargon=jargon, slang=slang, vocabulary=vocabulary, primary=kind == "main")


class _Lex(NamedTuple):
    name: str
    titles: tuple[tuple[str, str], ...]
    slang_prefixes: tuple[str, ...]
    slang_suffixes: tuple[str, ...]
    slang_adj_pos: tuple[str, ...]
    slang_adj_neg: tuple[str, ...]


_LEXES = {
    "train": _Lex(
        "train", lx.TITLES, lx.SLANG_PREFIXES, lx.SLANG_SUFFIXES, lx.SLANG_ADJ_POS, lx.SLANG_ADJ_NEG
    ),
    "novel": _Lex(
        "novel",
        lx.NOVEL_TITLES,
        lx.NOVEL_SLANG_PREFIXES,
        lx.NOVEL_SLANG_SUFFIXES,
        lx.NOVEL_SLANG_ADJ_POS,
        lx.NOVEL_SLANG_ADJ_NEG,
    ),
}


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" and not phrase.lower().startswith(("uni", "one")) else "a"


def _order_id(rng: random.Random) -> str:
    while True:  # "67" would read as the novel slang "6-7" once spelled out
        style = rng.randrange(3)
        if style == 0:
            oid = f"#{rng.randint(100000, 999999)}"
        elif style == 1:
            oid = f"MA-{rng.randint(10000, 99999)}"
        else:
            oid = str(rng.randint(1000000, 9999999))
        if "67" not in oid:
            return oid


class _Filler:
    """Fills slots for one message; the same slot name gets the same value throughout."""

    def __init__(self, rng: random.Random, lex: _Lex, *, jargon: bool, slang: bool) -> None:
        self.rng, self.lex, self.jargon, self.slang = rng, lex, jargon, slang
        self.entry = rng.choice(lex.titles)
        self.entry2 = rng.choice([e for e in lex.titles if e != self.entry])
        self.values: dict[str, str] = {}

    def _value(self, name: str) -> str:
        rng = self.rng
        if name == "title":
            return self.entry[0]
        if name == "title2":
            return self.entry2[0]
        if name == "author":
            return self.entry[1]
        if name == "author_short":
            return self.entry[1].split(" & ")[0].split(" ")[-1]
        if name == "n":
            return str(rng.randint(1, 30))
        if name == "n2":
            first = int(self.values.setdefault("n", str(rng.randint(1, 30))))
            return str(first + rng.randint(1, 5))
        if name == "publisher":
            return rng.choice(lx.PUBLISHERS)
        if name == "adj_pos":
            return rng.choice(
                self.lex.slang_adj_pos if self.slang and rng.random() < 0.85 else tp.PLAIN_ADJ_POS
            )
        if name == "adj_neg":
            return rng.choice(
                self.lex.slang_adj_neg if self.slang and rng.random() < 0.85 else tp.PLAIN_ADJ_NEG
            )
        if name == "order_id":
            return _order_id(rng)
        if name == "days":
            return rng.choice(tp.DAYS)
        if name == "age":
            return str(rng.randint(8, 16))
        if name == "price":
            return f"${rng.choice(tp.PRICES)}"
        if name == "pct":
            return str(rng.choice(tp.PCTS))
        table = {
            "payment": lx.PAYMENTS,
            "carrier": lx.CARRIERS,
            "country": lx.COUNTRIES,
            "event": lx.EVENTS,
            "person": lx.PERSONS,
            "defect": lx.DEFECTS,
            "misprint": lx.MISPRINTS,
            "reason": lx.RETURN_REASONS,
            "weekday": lx.WEEKDAYS,
            "month": lx.MONTHS,
            "code": lx.PROMO_CODES,
            "err": lx.ERROR_CODES,
            "setting": lx.SETTINGS,
            "theme": lx.THEMES,
        }
        return rng.choice(table[name])

    def _jargon_value(self, name: str, use_jargon: bool) -> str:
        rng = self.rng
        if name == "genre":
            return rng.choice(lx.GENRES_JARGON if use_jargon else lx.GENRES_PLAIN)
        if name == "formats" and use_jargon and rng.random() < 0.35:
            return rng.choice(lx.CATEGORIES_JARGON)
        singular, plural = rng.choice(lx.FORMATS_JARGON if use_jargon else lx.FORMATS_PLAIN)
        if name == "format":
            return singular
        if name == "formats":
            return plural
        return f"{_article(singular)} {singular}"  # a_format

    def fill(self, template: _Template, *, force_jargon: bool) -> str:
        j_matches = [m for m in _SLOT_RE.finditer(template.text) if m.group(1) in tp.JARGON_SLOTS]
        forced = self.rng.randrange(len(j_matches)) if (force_jargon and j_matches) else -1
        counter = iter(range(len(j_matches)))

        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in tp.JARGON_SLOTS:
                idx = next(counter)
                use = self.jargon and (idx == forced or self.rng.random() < 0.35)
                return self._jargon_value(name, use)
            if name not in self.values:
                self.values[name] = self._value(name)
            return self.values[name]

        text = _SLOT_RE.sub(repl, template.text)
        text = re.sub(r"\b[Tt]he (?=The )", "", text)  # "the {title}" with "The Promised Neverland"
        if template.formal and template.position != "cont" and text[:1].islower():
            text = text[0].upper() + text[1:]
        return text


# ---------------------------------------------------------------------------
# Validation.
# ---------------------------------------------------------------------------
def _check_probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} = {value!r} is outside [0, 1]")
    return value


def _validate_segment_mix(segment_mix: Mapping[str, float] | None) -> dict[str, float]:
    if segment_mix is None:
        return dict(DEFAULT_SEGMENT_MIX)
    if not isinstance(segment_mix, Mapping):
        raise ValueError(
            f"segment_mix must be a mapping of segment -> probability, got {type(segment_mix).__name__}"
        )
    if "plain" in segment_mix:
        raise ValueError("segment_mix: 'plain' cannot be drawn; it is assigned when no other segment applies")
    unknown = sorted(set(segment_mix) - set(_DRAWN_SEGMENTS), key=str)
    if unknown:
        raise ValueError(f"segment_mix: unknown segment(s) {unknown}; allowed: {', '.join(_DRAWN_SEGMENTS)}")
    return {s: _check_probability(f"segment_mix[{s!r}]", segment_mix.get(s, 0.0)) for s in _DRAWN_SEGMENTS}


def _validate_intent_shares(intent_shares: Mapping[str, float] | None) -> dict[str, float]:
    if intent_shares is None:
        return dict(SEED_TRAFFIC_SHARES)
    if not isinstance(intent_shares, Mapping):
        raise ValueError(
            f"intent_shares must be a mapping of intent -> share, got {type(intent_shares).__name__}"
        )
    unknown = sorted(set(intent_shares) - set(INTENTS), key=str)
    if unknown:
        raise ValueError(f"intent_shares: unknown intent(s) {unknown}; allowed: {', '.join(INTENTS)}")
    shares = {i: _check_probability(f"intent_shares[{i!r}]", intent_shares.get(i, 0.0)) for i in INTENTS}
    total = sum(shares.values())
    if abs(total - 1.0) > 1e-3:
        raise ValueError(f"intent_shares must sum to 1 (within 0.001), got {total:.6f}")
    return shares


def _quota(shares: Mapping[str, float], n: int) -> list[str]:
    """Largest-remainder allocation: label counts match the shares as exactly as n allows."""
    raw = {i: shares[i] * n for i in INTENTS}
    counts = {i: int(math.floor(raw[i])) for i in INTENTS}
    leftover = n - sum(counts.values())
    for i in sorted(INTENTS, key=lambda i: (-(raw[i] - counts[i]), INTENTS.index(i)))[:leftover]:
        counts[i] += 1
    return [i for i in INTENTS for _ in range(counts[i])]


# ---------------------------------------------------------------------------
# Composition.
# ---------------------------------------------------------------------------
def _protect_terms(text: str) -> list[str]:
    padded = f" {normalize_for_match(text)} "
    return (
        find_terms(padded, JARGON_TERMS)
        + find_terms(padded, SLANG_TERMS)
        + find_terms(padded, NOVEL_SLANG_TERMS)
        + find_terms(padded, ROMAJI_TERMS)
    )


def _add_slang_marker(text: str, rng: random.Random, lex: _Lex) -> str:
    if rng.random() < 0.45:
        return f"{rng.choice(lex.slang_prefixes)} {decap(text)}"
    base = text[:-1] if text.endswith(".") else text
    return f"{base} {rng.choice(lex.slang_suffixes)}"


def _join_clause(primary: str, clause: str, position: str, rng: random.Random) -> str:
    if position == "pre":  # whole sentences (chitchat) before or after the request
        return f"{clause} {primary}"
    if position == "post":
        return f"{primary} {clause}" if primary[-1:] in ".?!" else f"{primary}. {clause}"
    if primary[-1:] in ".?!":
        return f"{primary} {rng.choice(tp.SENTENCE_CONNECTORS)}{clause}"
    return f"{primary}{rng.choice(tp.INLINE_CONNECTORS)}{clause}"


def _decorate(text: str, rng: random.Random) -> str:
    """Politeness/urgency wrappers; never greetings or thanks (those are chitchat)."""
    if rng.random() < 0.22:
        text = rng.choice(tp.DECOR_PREFIXES) + decap(text)
    if rng.random() < 0.18:
        text += rng.choice(tp.DECOR_SENTENCE_SUFFIXES if text[-1:] in ".?!" else tp.DECOR_INLINE_SUFFIXES)
    return text


def _verify(text: str, segments: set[str], vocabulary: str) -> bool:
    """Keep a row only if every tag is true of the text and no absent tag is."""
    a = analyse(text)
    if bool(a.jargon) != ("jargon" in segments):
        return False
    own_slang, other_slang = (a.slang, a.novel_slang) if vocabulary == "train" else (a.novel_slang, a.slang)
    if bool(own_slang) != ("slang" in segments) or other_slang:
        return False
    if a.novel_titles if vocabulary == "train" else a.titles:
        return False
    if a.japanese != ("jp_en" in segments):
        return False
    if bool(a.romaji) != ("romaji" in segments):
        return False
    if bool(a.unknown) != ("typo" in segments):
        return False
    if "voice_asr" in segments and not a.asr_like:
        return False
    return True


def _compose(
    label: str, segments: set[str], rng: random.Random, lex: _Lex
) -> tuple[str, str | None, str] | None:
    """One candidate (text, secondary, template_id), or None if a tag did not hold."""
    jargon, slang = "jargon" in segments, "slang" in segments
    filler = _Filler(rng, lex, jargon=jargon, slang=slang)
    template = rng.choice(_eligible_cached(label, "main", jargon, slang, lex.name))
    text = filler.fill(
        template, force_jargon=jargon and not (template.jargon_literal or template.jargon_only_slot)
    )
    template_id = template.id
    secondary = None
    if "multi_intent" in segments:
        secondary = rng.choice(tp.SECONDARY_OPTIONS[label])
        clause = rng.choice(_eligible_cached(secondary, "clause", jargon, slang, lex.name))
        clause_filler = _Filler(rng, lex, jargon=jargon, slang=slang)  # fresh title/values
        text = _join_clause(text, clause_filler.fill(clause, force_jargon=False), clause.position, rng)
        template_id += "+" + clause.id
    if slang:
        has_slang = bool(
            find_terms(
                f" {normalize_for_match(text)} ", SLANG_TERMS if lex.name == "train" else NOVEL_SLANG_TERMS
            )
        )
        if not has_slang or rng.random() < 0.35:
            text = _add_slang_marker(text, rng, lex)
    if label != "chitchat":
        text = _decorate(text, rng)
    if rng.random() < 0.15:  # sloppy mobile typing
        text = text.lower()
    if "romaji" in segments:
        text = add_romaji(text, rng, intent=label, protect=_protect_terms(text))
    if "jp_en" in segments:
        text = code_switch_jp(text, rng, intent=label, protect=_protect_terms(text))
    if "voice_asr" in segments:
        text = apply_asr_noise(text, rng, protect=_protect_terms(text))
    if "typo" in segments:
        text = apply_typos(text, rng, rate=rng.choice((0.08, 0.12, 0.2)), protect=_protect_terms(text))
    text = " ".join(text.split())
    if not _verify(text, segments, lex.name):
        return None
    return text, secondary, template_id


_MAX_TEXT_ATTEMPTS = 60
_MAX_SEGMENT_REDRAWS = 20


def generate_synthetic(
    n: int,
    *,
    seed: int,
    segment_mix: Mapping[str, float] | None = None,
    intent_shares: Mapping[str, float] | None = None,
    vocabulary: str = "train",
) -> list[dict]:
    """Generate ``n`` unique labelled shopper messages, deterministically for ``seed``.

    Labels follow ``intent_shares`` (default ``SEED_TRAFFIC_SHARES``) by exact quota,
    shuffled.  Each non-plain segment is an independent draw with its
    ``segment_mix`` probability (default ``DEFAULT_SEGMENT_MIX``; a given mapping is
    the complete mix - missing segments get 0).  Chitchat never carries a secondary
    intent, so the multi_intent probability is rescaled over the other intents to keep
    the overall share on target.  ``vocabulary="novel"`` draws titles and slang only
    from ``NOVEL_TITLES`` / ``NOVEL_SLANG`` (drift scenario).

    Returns dicts ``{"text", "label", "secondary", "segment", "source", "template_id"}``.
    Raises ValueError on invalid arguments or when ``n`` unique texts cannot be found.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    mix = _validate_segment_mix(segment_mix)
    shares = _validate_intent_shares(intent_shares)
    lex = _LEXES[check_vocabulary(vocabulary)]

    multi_eligible_share = 1.0 - shares["chitchat"]
    p_multi = mix["multi_intent"]
    if p_multi > 0:
        if multi_eligible_share <= 0 or p_multi / multi_eligible_share > 1.0 + 1e-9:
            raise ValueError(
                f"segment_mix['multi_intent'] = {p_multi} cannot be met: chitchat never has a secondary "
                f"intent and only {multi_eligible_share:.3f} of intent_shares is non-chitchat"
            )
        p_multi_eff = min(1.0, p_multi / multi_eligible_share)
    else:
        p_multi_eff = 0.0

    rng = random.Random(seed)
    labels = _quota(shares, n)
    rng.shuffle(labels)

    def draw_segments(label: str) -> set[str]:
        drawn = set()
        for seg in _DRAWN_SEGMENTS:
            p = mix[seg]
            if seg == "multi_intent":
                p = 0.0 if label == "chitchat" else p_multi_eff
            if rng.random() < p:
                drawn.add(seg)
        return drawn

    rows: list[dict] = []
    seen: set[str] = set()
    for label in labels:
        row = None
        for _ in range(_MAX_SEGMENT_REDRAWS):
            segments = draw_segments(label)
            for _ in range(_MAX_TEXT_ATTEMPTS):
                cand = _compose(label, segments, rng, lex)
                if cand is None:
                    continue
                key = " ".join(cand[0].lower().split())
                if key in seen:
                    continue
                seen.add(key)
                text, secondary, template_id = cand
                row = {
                    "text": text,
                    "label": label,
                    "secondary": secondary,
                    "segment": [s for s in SEGMENTS if s in segments] or ["plain"],
                    "source": "synthetic",
                    "template_id": template_id,
                }
                break
            if row is not None:
                break
        if row is None:
            raise ValueError(
                f"could not generate {n} unique texts: after {len(rows)} rows, no new unique "
                f"{label!r} text was found in {_MAX_SEGMENT_REDRAWS * _MAX_TEXT_ATTEMPTS} attempts "
                f"(vocabulary={vocabulary!r}); lower n or widen intent_shares/segment_mix"
            )
        rows.append(row)
    return rows
