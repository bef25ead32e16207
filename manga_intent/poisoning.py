"""Guards that keep one loud source from steering the loop: per-client caps and injected instructions.

Eight batch requests of skewed text can fill a 500-message window, start a retrain and reach labellers
pre-filled with the model's guess. So (1) monitoring counts at most `max_share` of a window from any one
client (the rest of that client's rows are set aside and counted, never silently dropped); (2) messages
flagged as injected instructions, by the OOD detector or by a robustness normaliser, never go to
labellers and are never pre-filled. The flagger is pluggable (`InjectionFlagger`), so a richer detector
(the robustness suite's normaliser) drops in without touching the labelling code.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

#: Instructions aimed at the router or the assistant rather than at the shop (matched on lower-cased text).
INJECTION_PATTERNS = tuple(
    re.compile(p)
    for p in (
        r"\b(ignore|disregard|forget|bypass|override)\b.{0,40}\b(previous|prior|above|earlier|instructions?|rules|"
        r"guidelines|policies|router|classifier|safety|filters?|everything|the user)\b",
        r"\b(system|hidden|developer|secret)\s+(prompt|message|instructions?|directive|mode)\b",
        r"\b(your|the)\s+(prompt|instructions|guidelines|configuration|api keys?)\b",
        r"\bfrom now on\b",
        r"\byou are (now|in)\b|\byou must now\b|\bact as\b|\bpretend (you|to)\b",
        r"\b(label|classify|mark|output|set)\b.{0,30}\b(as|=|to)\b.{0,5}\b(intent|label|confidence|"
        r"escalation|promotion|faq|return_request|checkout_help|resolved|approved)\b",
        r"\bintent\s*=|\blabel\s*=|\bcorrect label\b|\bclassifier:",
        r"\bjailbr(eak|oken)\b|\bunrestricted\b|\bno (content )?(filters|restrictions|memory)\b",
        r"</?(system|user|assistant)>|\[/?inst\]|\"role\"\s*:|###\s*new",
        r"\b(reveal|paste|dump|print|repeat)\b.{0,40}\b(prompt|instructions|verbatim|text above|database|"
        r"hidden)\b",
        r"\bnew (rule|instructions?|conversation)\b|\bi authori[sz]e you\b",
        r"\b(instrucciones|consignes|anweisungen)\b",
        r"(指示|プロンプト|命令)",
    )
)


def looks_like_injection(text: str) -> str | None:
    """The matching pattern when `text` reads as an instruction to the system, else None."""
    lowered = " ".join(text.lower().split())
    for pattern in INJECTION_PATTERNS:
        if pattern.search(lowered):
            return pattern.pattern[:40]
    return None


#: (row) -> reason or None. Rows are prediction-log dicts (text, is_ood, ...).
InjectionFlagger = Callable[[dict], "str | None"]


def pattern_flagger(row: dict) -> str | None:
    hit = looks_like_injection(row.get("text", ""))
    return f"injection pattern {hit}" if hit else None


def ood_injection_flagger(row: dict) -> str | None:
    """The OOD detector's verdict: an out-of-scope message with instruction-like text is an injection."""
    if row.get("is_ood") and looks_like_injection(row.get("text", "")):
        return "OOD and instruction-like"
    return None


DEFAULT_FLAGGERS: tuple[InjectionFlagger, ...] = (ood_injection_flagger, pattern_flagger)


@dataclass
class Screened:
    kept: list[dict]
    dropped: list[dict] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)


def screen_injections(
    rows: Iterable[dict], flaggers: Sequence[InjectionFlagger] = DEFAULT_FLAGGERS
) -> Screened:
    """Split rows into those fit for labellers and those flagged (each dropped row gains `flag_reason`)."""
    out = Screened(kept=[])
    for row in rows:
        reason = next((r for r in (f(row) for f in flaggers) if r), None)
        if reason:
            out.dropped.append({**row, "flag_reason": reason})
            out.reasons[reason.split(" ")[0] if reason.startswith("injection") else reason] += 1
        else:
            out.kept.append(row)
    return out


def source_of(row: dict) -> str:
    return str(row.get("client") or "unknown")


@dataclass(frozen=True)
class CappedWindow:
    rows: list[dict]
    """What monitoring judges: every client's rows up to its cap, in log order."""
    capped: dict[str, int]
    """Rows set aside per client over its cap."""


def cap_per_source(rows: Sequence[dict], max_share: float, window: int) -> CappedWindow:
    """At most `max_share * window` rows per client count towards a window's statistics.

    Rows without a client (older logs) share the source "unknown", which is exempt: capping it would
    cap all legacy traffic as one client.
    """
    if not 0 < max_share <= 1:
        raise ValueError(f"max_share must be in (0, 1], got {max_share}")
    limit = max(1, int(max_share * window))
    seen: Counter = Counter()
    kept, capped = [], Counter()
    for row in rows:
        source = source_of(row)
        if source != "unknown" and seen[source] >= limit:
            capped[source] += 1
            continue
        seen[source] += 1
        kept.append(row)
    return CappedWindow(kept, dict(capped))
