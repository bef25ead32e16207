"""An encoder classifier that pools the way its base model was trained, as a Hugging Face model.

all-MiniLM-L6-v2 was trained with mean pooling; `AutoModelForSequenceClassification` would read
its `[CLS]` token through a pooler that was never trained (its `pooler.dense.bias` is all zeros),
so the head starts from a nearly constant feature. `PooledEncoderForSequenceClassification`
wraps any `AutoModel` encoder, pools its last hidden state (mean / cls / max / mean_sqrt_len, read
from the base model's sentence-transformers `1_Pooling/config.json` when there is one; or `attention`,
a learned softmax weighting of the tokens that starts as mean pooling), and puts a freshly initialised
dropout + linear head on the pooled features.

This file imports only torch and transformers, on purpose: `save_pretrained` copies it next to
the weights (see `register_for_auto_class` below), so a directory written by `manga-intent train`
loads anywhere with plain transformers:

    import manga_intent.modeling  # registers the classes with the Auto* factories
    AutoModelForSequenceClassification.from_pretrained(model_dir)
    # or, without this package installed, from the copied code in the directory itself:
    AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True)
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import ModelOutput

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len", "attention")
MODEL_TYPE = "manga_pooled_encoder"


def pooling_from_sentence_transformers(model_dir: str | Path) -> str | None:
    """The pooling mode a sentence-transformers checkpoint was trained with, or None when not one."""
    model_dir = Path(model_dir)
    modules = model_dir / "modules.json"
    candidates = []
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if module.get("type", "").endswith("Pooling"):
                candidates.append(model_dir / module.get("path", "") / "config.json")
    candidates.append(model_dir / "1_Pooling" / "config.json")
    for path in candidates:
        if path.is_file():
            config = json.loads(path.read_text(encoding="utf-8"))
            for key, mode in (
                ("pooling_mode_mean_tokens", "mean"),
                ("pooling_mode_cls_token", "cls"),
                ("pooling_mode_max_tokens", "max"),
                ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
            ):
                if config.get(key):
                    return mode
    return None


class PooledEncoderConfig(PretrainedConfig):
    """Encoder config (nested, as a dict) + pooling mode + head dropout."""

    model_type = MODEL_TYPE

    def __init__(
        self, encoder: dict | None = None, pooling: str = "mean", head_dropout: float = 0.1, **kwargs
    ):
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        if not 0 <= head_dropout < 1:
            raise ValueError(f"head_dropout must be in [0, 1), got {head_dropout}")
        if isinstance(encoder, PretrainedConfig):
            encoder = encoder.to_dict()
        # the base model's local path is not part of the architecture (and should not leak into shared configs)
        self.base_encoder = {k: v for k, v in (encoder or {}).items() if k != "_name_or_path"}
        self.pooling = pooling
        self.head_dropout = float(head_dropout)
        super().__init__(**kwargs)

    def encoder_config(self) -> PretrainedConfig:
        if not self.base_encoder or "model_type" not in self.base_encoder:
            raise ValueError("PooledEncoderConfig has no encoder config (need its model_type)")
        values = dict(self.base_encoder)
        return AutoConfig.for_model(values.pop("model_type"), **values)

    @property
    def hidden_size(self) -> int:
        return int(
            self.base_encoder.get("hidden_size")
            or self.base_encoder.get("dim")
            or self.base_encoder.get("d_model")
        )


@dataclass
class PooledClassifierOutput(ModelOutput):
    """`logits` as every HF classifier has them, plus `features`: the pooled sentence vector."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    features: torch.Tensor | None = None


def pool(
    hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str, token_scores: torch.Tensor | None = None
) -> torch.Tensor:
    """Pool (batch, seq, hidden) over the non-padding positions; `attention` needs `token_scores`
    (batch, seq): the features are the softmax(scores)-weighted sum of the tokens (zero scores: the mean)."""
    if mode == "attention":
        if token_scores is None:
            raise ValueError("attention pooling needs token scores")
        scores = token_scores.float().masked_fill(attention_mask == 0, torch.finfo(torch.float32).min)
        weights = torch.softmax(scores, dim=1).to(hidden.dtype)
        return (weights.unsqueeze(-1) * hidden).sum(dim=1)
    if mode == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1.0)
    if mode == "mean":
        return summed / counts
    if mode == "mean_sqrt_len":
        return summed / counts.sqrt()
    raise ValueError(f"unknown pooling mode {mode!r}")


def _encoder_from_config(encoder_config: PretrainedConfig) -> nn.Module:
    """`AutoModel` without the BERT-style pooler where the architecture allows dropping it."""
    model_class = AutoModel._model_mapping[type(encoder_config)]
    if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
        return model_class(encoder_config, add_pooling_layer=False)
    return model_class(encoder_config)


class PooledEncoderForSequenceClassification(PreTrainedModel):
    config_class = PooledEncoderConfig
    base_model_prefix = "encoder"

    def __init__(self, config: PooledEncoderConfig, encoder: nn.Module | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else _encoder_from_config(config.encoder_config())
        # attention pooling: one score per token; zero-initialised, so training starts from mean pooling
        self.token_scorer = nn.Linear(config.hidden_size, 1) if config.pooling == "attention" else None
        self.dropout = nn.Dropout(config.head_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        if module is getattr(self, "token_scorer", None):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)
        elif module is getattr(self, "classifier", None):
            std = float(self.config.base_encoder.get("initializer_range", 0.02))
            nn.init.normal_(module.weight, mean=0.0, std=std)
            nn.init.zeros_(module.bias)
        elif hasattr(self, "encoder") and isinstance(self.encoder, PreTrainedModel):
            self.encoder._init_weights(module)

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self._pool(hidden, attention_mask)

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = self.token_scorer(hidden).squeeze(-1) if self.token_scorer is not None else None
        return pool(hidden, attention_mask, self.config.pooling, scores)

    def _block_stack(self) -> nn.ModuleList | None:
        """The encoder's transformer blocks when it is BERT-shaped (`embeddings` + `encoder.layer`)."""
        blocks = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        if getattr(self.encoder, "embeddings", None) is None or not isinstance(blocks, nn.ModuleList):
            return None
        return blocks

    def supports_block_cache(self) -> bool:
        """Whether `hidden_below` / `forward_from_hidden` can split the forward pass between blocks."""
        return self._block_stack() is not None

    def _run_blocks(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int | None):
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(
            config=self.encoder.config, inputs_embeds=hidden, attention_mask=attention_mask
        )
        for block in self._block_stack()[start:stop]:
            out = block(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def hidden_below(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, blocks: int
    ) -> torch.Tensor:
        """Hidden states after the embeddings and the bottom `blocks` transformer blocks."""
        hidden = self.encoder.embeddings(input_ids=input_ids)
        return self._run_blocks(hidden, attention_mask, 0, blocks)

    def forward_from_hidden(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int
    ) -> PooledClassifierOutput:
        """The rest of the forward pass from the hidden states below block `start` (see `hidden_below`)."""
        hidden = self._run_blocks(hidden, attention_mask, start, None)
        features = self._pool(hidden, attention_mask)
        return PooledClassifierOutput(logits=self.classifier(self.dropout(features)), features=features)

    def forward(self, input_ids=None, attention_mask=None, labels=None, **_ignored) -> PooledClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        features = self.features(input_ids, attention_mask)
        logits = self.classifier(self.dropout(features))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels)
        return PooledClassifierOutput(loss=loss, logits=logits, features=features)

    @classmethod
    def from_encoder(cls, encoder: nn.Module, *, pooling: str, head_dropout: float, **config_kwargs):
        """Wrap a loaded (pretrained) encoder; the head is freshly initialised."""
        config = PooledEncoderConfig(
            encoder=encoder.config.to_dict(), pooling=pooling, head_dropout=head_dropout, **config_kwargs
        )
        model = cls(config, encoder=encoder)
        model._init_weights(model.classifier)
        if model.token_scorer is not None:
            model._init_weights(model.token_scorer)
        return model


AutoConfig.register(MODEL_TYPE, PooledEncoderConfig, exist_ok=True)
AutoModelForSequenceClassification.register(
    PooledEncoderConfig, PooledEncoderForSequenceClassification, exist_ok=True
)
# save_pretrained copies this file next to the weights and writes `auto_map`, so the directory also loads
# with trust_remote_code=True from the local copy where this package is not installed.
PooledEncoderConfig.register_for_auto_class()
PooledEncoderForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
