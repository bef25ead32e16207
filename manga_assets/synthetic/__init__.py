"""Seeded synthetic shopper messages for the MangaAssist intent classifier.

Re-exports the public API so callers write ``from manga_assets.synthetic import
generate_synthetic`` without caring how the package is split into modules.
"""

from . import lexicon
from .generator import (
    DEFAULT_SEGMENT_MIX,
    INTENTS,
    SEED_TRAFFIC_SHARES,
    SEGMENTS,
    VOCABULARIES,
    add_romaji,
    apply_asr_noise,
    apply_typos,
    code_switch_jp,
    detect_tags,
    generate_synthetic,
    known_vocabulary,
    normalize_for_match,
    spell_number,
    template_counts,
    write_audit_sample,
)

__all__ = [
    "DEFAULT_SEGMENT_MIX",
    "INTENTS",
    "SEED_TRAFFIC_SHARES",
    "SEGMENTS",
    "VOCABULARIES",
    "add_romaji",
    "apply_asr_noise",
    "apply_typos",
    "code_switch_jp",
    "detect_tags",
    "generate_synthetic",
    "known_vocabulary",
    "lexicon",
    "normalize_for_match",
    "spell_number",
    "template_counts",
    "write_audit_sample",
]
