"""The MangaAssist intent taxonomy and the traffic shares quoted by the seed recipe."""

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

#: Intents under this share of traffic count as "rare" for rare-class accuracy.
RARE_SHARE_THRESHOLD = 0.05
