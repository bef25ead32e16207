"""Seeded synthetic shopper messages for the MangaAssist intent classifier.

`templates` holds what a message can say, `compose` fills and combines it (`generate_synthetic`),
`perturb` adds typos, ASR noise, code-switching and romaji, `matching` verifies every segment tag against
the text, `audit` writes a sample for humans and `quality` filters generated rows by k-fold consensus.
"""

from manga_intent.taxonomy import INTENTS, SEED_TRAFFIC_SHARES, SEGMENTS

from . import lexicon
from .audit import write_audit_sample
from .compose import DEFAULT_SEGMENT_MIX, generate_synthetic, template_counts
from .matching import VOCABULARIES, detect_tags, known_vocabulary, normalize_for_match, spell_number
from .perturb import add_romaji, apply_asr_noise, apply_typos, code_switch_jp

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
