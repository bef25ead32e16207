"""The product's vocabulary, in one place: intents, the seed's traffic shares, the rare-intent share,
and the tags that describe a message (segments, channels, languages, out-of-scope categories)."""

INTENTS: tuple[str, ...] = (
    "product_discovery",
    "product_question",
    "recommendation",
    "faq",
    "order_tracking",
    "return_request",
    "promotion",
    "checkout_help",
    "escalation",
    "chitchat",
)

#: Share of production traffic per intent (seed document, "The 10 Intents").
SEED_TRAFFIC_SHARES: dict[str, float] = {
    "product_discovery": 0.22,
    "product_question": 0.15,
    "recommendation": 0.18,
    "faq": 0.08,
    "order_tracking": 0.12,
    "return_request": 0.07,
    "promotion": 0.05,
    "checkout_help": 0.04,
    "escalation": 0.03,
    "chitchat": 0.06,
}

#: Share of traffic per channel (seed document, "By traffic source").
SEED_CHANNEL_SHARES: dict[str, float] = {"mobile": 0.54, "web": 0.38, "voice": 0.08}

#: Intents under this share of traffic count as "rare" for rare-class accuracy.
RARE_SHARE_THRESHOLD = 0.05
#: Intents whose genuine request *is* a routing demand ("connect me to staff"): a message that is nothing but
#: such a demand means that intent. Adversarial training (robustness.adversarial_pairs) teaches the model
#: to ignore injected routing demands next to a real request, so it also shows it that the lone demand for
#: one of these intents is that intent; otherwise "live agent now" reads as chitchat.
SELF_ROUTING_INTENTS: tuple[str, ...] = ("escalation",)
#: Intents over this share are "frequent" in the seed's rarity tiers (between the two: "mid").
FREQUENT_SHARE_THRESHOLD = 0.15

#: What a message can exhibit; "plain" means none of the others.
SEGMENTS: tuple[str, ...] = (
    "plain",
    "jargon",
    "slang",
    "multi_intent",
    "jp_en",
    "romaji",
    "typo",
    "voice_asr",
)
#: Where a message came from.
CHANNELS: tuple[str, ...] = ("mobile", "web", "voice")
#: The language of a message, as the seed's segment tables split it.
LANGUAGES: tuple[str, ...] = ("en", "jp_en", "romaji", "other")
#: Kinds of out-of-scope messages in the OOD set.
OOD_CATEGORIES: tuple[str, ...] = (
    "other_shop",
    "off_topic",
    "foreign_language",
    "gibberish",
    "prompt_injection",
)


def rarity_tier(label: str, shares: dict[str, float] = SEED_TRAFFIC_SHARES) -> str:
    """The seed's rarity tiers: frequent (>15%), mid (5-15%), rare (<5%)."""
    share = shares.get(label, 0.0)
    if share > FREQUENT_SHARE_THRESHOLD:
        return "frequent (>15%)"
    return "rare (<5%)" if share < RARE_SHARE_THRESHOLD else "mid (5-15%)"
