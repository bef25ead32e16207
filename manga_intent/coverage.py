"""How well a tokenizer covers each traffic segment: [UNK] rate and tokens per message.

An uncased English WordPiece vocabulary drops most kanji to [UNK] (13-15% of JP-EN tokens for
all-MiniLM-L6-v2), which no amount of fine-tuning can recover: the number says when a segment
needs a multilingual encoder rather than more epochs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from manga_intent.data import Example, clean_text


def _segments(example: Example) -> list[str]:
    value = example.meta.get("segment") if example.meta else None
    if value is None:
        return ["all"]
    return ["all", *([value] if isinstance(value, str) else list(value))]


def tokenizer_coverage(tokenizer, examples: Sequence[Example], *, max_length: int = 128) -> dict[str, dict]:
    """Per segment (and `all`): messages, tokens per message (without special tokens), [UNK] rate."""
    unk = tokenizer.unk_token_id
    special = set(tokenizer.all_special_ids)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    encoded = tokenizer([clean_text(e.text) for e in examples], truncation=True, max_length=max_length)[
        "input_ids"
    ]
    for example, ids in zip(examples, encoded):
        body = [i for i in ids if i not in special or i == unk]
        unknown = sum(1 for i in body if i == unk)
        for segment in _segments(example):
            row = totals[segment]
            row[0] += 1
            row[1] += len(body)
            row[2] += unknown
    return {
        segment: {
            "messages": n,
            "tokens_per_message": tokens / n,
            "unk_rate": unknown / tokens if tokens else 0.0,
        }
        for segment, (n, tokens, unknown) in sorted(totals.items())
    }
