"""Tokenise once, then batch by similar length and pad each batch only to its own longest row.

The seed pads every message to 128 tokens; shop messages average ~15 tokens, so most of that
compute would go into padding. Length-grouped batches keep the padding small while the batch
order stays random.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch


@dataclass
class EncodedTexts:
    input_ids: list[list[int]]
    labels: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_texts(
    tokenizer, texts: Sequence[str], max_length: int, labels: Sequence[int] | None = None
) -> EncodedTexts:
    """Tokenise without padding (truncating to max_length); padding happens per batch."""
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return EncodedTexts([list(ids) for ids in encoded["input_ids"]], None if labels is None else list(labels))


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator, mega_batch_factor: int = 50
) -> list[list[int]]:
    """Random batches of similar-length rows: shuffle, sort within mega-batches, shuffle batches."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    mega = batch_size * mega_batch_factor
    batches: list[list[int]] = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    permutation = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in permutation]


def random_batches(n: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
    order = torch.randperm(n, generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Deterministic length-sorted batches for evaluation (callers restore the order)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(
    encoded: EncodedTexts, indices: Sequence[int], pad_token_id: int, pad_to: int | None = None
) -> dict[str, torch.Tensor]:
    """Pad the selected rows to their longest length (or to `pad_to`, for static shapes)."""
    rows = [encoded.input_ids[i] for i in indices]
    width = pad_to if pad_to is not None else max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row_index, row in enumerate(rows):
        row = row[:width]
        input_ids[row_index, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[row_index, : len(row)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if encoded.labels is not None:
        batch["labels"] = torch.tensor([encoded.labels[i] for i in indices], dtype=torch.long)
    return batch


def iter_eval_batches(
    encoded: EncodedTexts, batch_size: int, pad_token_id: int
) -> Iterator[tuple[list[int], dict]]:
    for indices in sorted_batches([len(r) for r in encoded.input_ids], batch_size):
        yield indices, collate(encoded, indices, pad_token_id)
