"""Dropout with a cheaper random mask on CPU, for training.

torch's CPU dropout draws one Bernoulli sample per element (`bernoulli_`, about 4 ns an element on the 2-core
machine this project trains on). A recipe-v2 step on all-MiniLM-L6-v2 runs twenty dropouts (embeddings,
every attention-probability and residual dropout, the head), and in a profile of a step they were a fifth of
its time, second only to the weight matmuls (docs/choosing-the-defaults.md, "Cheaper dropout masks").

`fast_dropout(model)` keeps the same layer, the same rate and the same inverted scaling; only the mask is
made differently: each 32-bit draw of torch's generator gives two uniform words (16 and 15 random bits), and
an element is kept where its word is at or above the rate's quantile. The drop probability is the rate
rounded to 1/32768 (0.1 -> 0.100006), and the masks follow `torch.manual_seed` as before (a different
stream, so a run is reproducible but not bit-identical to one with torch's dropout).

It covers `nn.Dropout` modules and the attention-probability dropout of models on transformers'
attention interface (`sdpa`: that path runs the math attention with dropout in training anyway), only
inside the `with` block: evaluation and the saved model are unchanged. Off the CPU (a GPU rank of a
distributed run) torch's own fused dropout and attention run as before.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

ATTENTION_NAME = "manga_fast_dropout"


def keep_mask(
    shape: torch.Size | tuple[int, ...], p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A boolean mask of `shape`, each element True with probability 1 - p (p rounded to 1/32768)."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout rate must be in [0, 1), got {p}")
    n = 1
    for size in shape:
        n *= int(size)
    draws = torch.empty((n + 1) // 2, dtype=torch.int32).random_(generator=generator)  # [0, 2**31)
    words = draws.view(torch.int16).view(-1, 2)
    # the low half-word is uniform over all int16 values, the high one over [0, 2**15)
    low, high = round(p * 65536) - 32768, round(p * 32768)
    thresholds = (low, high) if sys.byteorder == "little" else (high, low)
    keep = words >= torch.tensor(thresholds, dtype=torch.int16)
    return keep.view(-1)[:n].view(shape)


def fast_dropout_tensor(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`F.dropout(x, p, training)` with the mask from `keep_mask` on CPU (elsewhere torch's own, which is
    fused on accelerators)."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu":
        return nn.functional.dropout(x, p, training=True)
    return x * keep_mask(x.shape, p) * (1.0 / (1.0 - p))


class FastDropout(nn.Dropout):
    """`nn.Dropout` whose training-mode mask comes from `keep_mask` (swapped in by `fast_dropout`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return fast_dropout_tensor(x, self.p, self.training)


def math_attention(
    query, key, value, attention_mask, scaling: float, probability_dropout, causal: bool = False
):
    """softmax(q k^T * scaling + mask) v, with `probability_dropout` applied to the probabilities; output
    laid out (batch, query, heads, head dim) as transformers' attention functions return it."""
    scores = torch.matmul(query, key.transpose(-2, -1)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    elif causal and query.shape[2] > 1:
        allowed = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool).tril(
            key.shape[2] - query.shape[2]
        )
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probabilities = probability_dropout(torch.softmax(scores, dim=-1))
    output = torch.matmul(probabilities.to(value.dtype), value)
    return output.transpose(1, 2).contiguous()


def _attention_function():
    """transformers' attention-interface signature: `math_attention` with `fast_dropout_tensor` on the
    probabilities when training on CPU with dropout, otherwise transformers' own `sdpa` function. (Built
    when first registered, so neither importing this module nor each attention call imports transformers.)"""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
        if not (module.training and dropout > 0 and query.device.type == "cpu"):
            return sdpa_attention_forward(
                module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
            )
        if getattr(module, "num_key_value_groups", 1) > 1:
            key = repeat_kv(key, module.num_key_value_groups)
            value = repeat_kv(value, module.num_key_value_groups)
        output = math_attention(
            query,
            key,
            value,
            attention_mask,
            query.shape[-1] ** -0.5 if scaling is None else scaling,
            lambda probabilities: fast_dropout_tensor(probabilities, dropout),
            causal=bool(getattr(module, "is_causal", False)),
        )
        return output, None

    return attention


@lru_cache(maxsize=1)
def _register_attention() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    AttentionInterface.register(ATTENTION_NAME, _attention_function())
    AttentionMaskInterface.register(ATTENTION_NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


@dataclass(frozen=True)
class Switched:
    modules: int
    """`nn.Dropout` modules (an attention layer's own module only holds its rate)."""
    attention_layers: int
    """Layers whose attention-probability dropout goes through `math_attention`."""

    def __str__(self) -> str:
        return f"{self.modules} dropout modules, attention probabilities in {self.attention_layers} layers"


@contextmanager
def fast_dropout(model: nn.Module) -> Iterator[Switched]:
    """Within the block, `model`'s dropouts draw their masks with `keep_mask`; yields what was switched."""
    from transformers import PreTrainedModel

    modules = [m for m in model.modules() if type(m) is nn.Dropout and m.p > 0]
    encoders = {  # one per config: a task model and its base model share theirs
        id(m.config): m
        for m in model.modules()
        if isinstance(m, PreTrainedModel)
        and getattr(m.config, "_attn_implementation", None) == "sdpa"
        and m._can_set_attn_implementation()
        and getattr(m.config, "attention_probs_dropout_prob", getattr(m.config, "attention_dropout", 0)) > 0
    }.values()
    if encoders:
        _register_attention()
    switched_attention = 0
    try:
        for m in modules:
            m.__class__ = FastDropout
        for encoder in encoders:
            encoder.set_attn_implementation(ATTENTION_NAME)
            switched_attention += getattr(encoder.config, "num_hidden_layers", 1)
        yield Switched(len(modules), switched_attention)
    finally:
        for m in modules:
            m.__class__ = nn.Dropout
        for encoder in encoders:
            if encoder.config._attn_implementation == ATTENTION_NAME:
                encoder.set_attn_implementation("sdpa")
