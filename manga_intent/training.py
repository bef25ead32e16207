"""The fine-tuning recipe as one readable training loop.

Recipe v2 (the defaults): the base model's own pooling (mean for all-MiniLM-L6-v2) under a fresh
dropout + linear head with its own learning-rate multiplier, discriminative layer learning rates,
AdamW with decoupled weight decay, warmup then linear decay over a fixed optimiser-step budget,
early stopping on validation macro-F1, frozen word embeddings and length-grouped dynamic padding.
Every default was chosen on validation splits only (README, "Choosing the defaults").
`LEGACY_RECIPE` is the seed-derived recipe this replaced (focal loss, `[CLS]` through the
pooler, 5 epochs, early stopping on validation loss), kept for side-by-side benchmarks.

Three seeds with separate roles: the split (data), init (classifier head, dropout) and sampler
(batch order).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from manga_intent.auxiliary import AuxiliaryBlock, auxiliary_plan, hardest_share
from manga_intent.batching import (
    EncodedTexts,
    collate,
    encode_texts,
    iter_eval_batches,
    length_grouped_batches,
    random_batches,
)
from manga_intent.cpu import configure_threads, resolve_bf16, usable_cpus
from manga_intent.data import Example, class_weights
from manga_intent.distributed import DataParallel
from manga_intent.fast_dropout import fast_dropout
from manga_intent.glossary import GLOSSARY_SETTINGS, tokenizer_for_training
from manga_intent.loss import LOSS_KINDS, build_loss, symmetric_kl, uniform_target_loss
from manga_intent.metrics import macro_f1
from manga_intent.optim import ParamGroupInfo, build_optimizer, training_temperature

__all__ = [
    "TrainConfig",
    "TrainResult",
    "EpochStats",
    "EarlyStopping",
    "LEGACY_RECIPE",
    "train_classifier",
    "default_learning_rate",
    "configure_threads",
    "seed_everything",
]

# Base learning rate per architecture family for the legacy recipe (README "Choosing the defaults").
DEFAULT_LR_BY_HIDDEN_SIZE = ((512, 3e-4), (10**9, 2e-5))
# Recipe v2's base rate (encoder top layer) per hidden size; the head gets head_lr_multiplier times it.
# 2e-4, not 1e-4: 1e-4 under-trains an 80-label set in the step budget (README, chosen on validation).
RECIPE_V2_LR_BY_HIDDEN_SIZE = ((512, 2e-4), (10**9, 3e-5))


def _by_hidden(model_config, table) -> float:
    hidden = getattr(model_config, "hidden_size", None) or getattr(model_config, "dim", None) or 768
    for limit, lr in table:
        if hidden < limit:
            return lr
    return table[-1][1]


def default_lr_table(recipe: str = "v2") -> tuple[tuple[int, float], ...]:
    """The per-hidden-size table that picks the rate when `lr` is None (v2's, or the legacy recipe's)."""
    return RECIPE_V2_LR_BY_HIDDEN_SIZE if recipe == "v2" else DEFAULT_LR_BY_HIDDEN_SIZE


def default_learning_rate(model_config, recipe: str = "v2") -> float:
    return _by_hidden(model_config, default_lr_table(recipe))


@dataclass
class TrainConfig:
    """Recipe hyperparameters (defaults: recipe v2); `lr=None` picks the base model's default rate."""

    epochs: int = 40
    """Upper bound on passes over the data; `max_steps` is the binding budget when set."""
    max_steps: int | None = 250
    """Optimiser-step budget: the schedule spans min(epochs, max(max_steps, min_epochs passes)) steps."""
    min_epochs: float = 3.0
    """With `max_steps`, the budget still covers at least this many passes over the training rows: 250
    steps are 6 epochs of the seed corpus's 1,280 rows but under one of a 9,000-row public set."""
    lr: float | None = None
    head_lr_multiplier: float = 10.0
    batch_size: int = 32
    loss: str = "ce"
    gamma: float = 2.0
    """Focal-loss focusing parameter (only with loss='focal')."""
    class_weighting: bool = False
    """Inverse-frequency class weights (normalised to mean 1 unless `seed_weight_normalisation`)."""
    seed_weight_normalisation: bool = False
    """The seed's alpha (weights summing to 1) instead of mean-1 weights."""
    oversample: bool = False
    """Replicate each class's rows to about the size of the largest class (instead of weighting)."""
    label_smoothing: float = 0.0
    rdrop_alpha: float = 0.0
    """Weight of R-Drop's symmetric KL between two dropout passes (0 = off)."""
    ema_decay: float = 0.0
    """Exponential moving average of the weights (bias-corrected), evaluated and kept instead of the raw
    weights; 0 = off (the default). It was on for a day: out of fold on the champion's recipe the average
    then computed (started from the initial weights) read +0.5 pp [-0.3, +1.2]; the bias-corrected average
    that shipped, on the very same training runs, reads -0.3 pp [-1.2, +0.6] against no average (NLL 0.299
    against 0.307, injection flip under the val phrasings 0.081 against 0.090), and the five-seed study's
    validation split saw no difference. Without a win on validation it is off again
    (docs/choosing-the-defaults.md, "Selective backprop, and EMA re-measured")."""
    lr_decay: float = 0.9
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 128
    patience: int = 4
    """Evaluations without improvement of the early-stopping metric before stopping."""
    early_stopping_metric: str = "val_macro_f1"
    early_stopping_after: float = 0.5
    """No early stop before this share of the step budget: on a few dozen rows an epoch is 3 steps, so
    `patience` evaluations would end training inside the warm-up (the kept model then predicts one class)."""
    eval_every: int = 100
    """Evaluate every epoch, or every this many steps when an epoch is longer."""
    overfit_gap: float = 0.15
    enforce_overfit_guard: bool = False
    temperature_start: float = 1.0
    temperature_anneal_fraction: float = 0.3
    split_seed: int = 42
    init_seed: int = 123
    sampler_seed: int = 2024
    eval_batch_size: int = 64
    batching: str = "length_grouped"  # or "pad_to_max" (the seed's fixed 128-token batches)
    mega_batch_factor: int = 8
    """Length grouping sorts within shuffled mega-batches of this many batches."""
    architecture: str = "pooled"
    """`pooled` (the base model's pooling + fresh head) or `hf` (AutoModelForSequenceClassification)."""
    pooling: str = "auto"
    """auto = the base model's sentence-transformers pooling, else cls; or mean/cls/max/mean_sqrt_len, or
    attention (learned token weights, zero-initialised: it starts as the mean)."""
    head_dropout: float = 0.1
    freeze_word_embeddings: bool = True
    frozen_layers: int = 0
    """Bottom transformer blocks frozen together with the embeddings. On a pooled BERT-shaped encoder
    their outputs are computed once per training/validation row and per out-of-scope and attacked row the
    run draws (in eval mode: no dropout below the first trained block) and cached, so every step runs
    only the blocks above."""
    bf16: str = "auto"
    """bf16 autocast: auto = only where the CPU has AMX/AVX-512-BF16."""
    num_threads: int | None = None
    optimizer_impl: str = "fused"
    """AdamW kernel: fused (default), foreach, or default (torch's per-parameter loop on CPU)."""
    ja_en_glossary: str = "auto"
    """English glosses after Japanese shop terms, inside the saved tokenizer (manga_intent/glossary.py): auto
    = only when the vocabulary cannot spell them (the packaged English MiniLM), on, or off. Out of fold it
    lifted JP-EN accuracy from 0.69 to 0.85 (docs/jp-en-and-jargon.md)."""
    fast_dropout: bool = True
    """Dropout masks from `manga_intent.fast_dropout` (same rates and scaling, a cheaper random mask) while
    training; off = torch's own dropout. About 1.1x a recipe-v2 step on a 2-core CPU, and no change out of
    fold (docs/choosing-the-defaults.md, "Cheaper dropout masks")."""
    default_lr_table: str = "v2"
    """Which per-hidden-size table picks the rate when lr is None: v2 or legacy."""
    outlier_exposure_weight: float = 0.5
    """Outlier exposure (Hendrycks et al., 2019): weight of the cross-entropy between the softmax on a batch
    of out-of-scope texts (`train_classifier(outlier_texts=...)`) and the uniform distribution; 0 = off.
    On by default, chosen on validation (README "Out-of-scope detection"): over three seeds it kept
    validation accuracy and lowered validation NLL while the energy score's validation OOD AUROC rose from
    ~0.93 to ~0.99. It needs out-of-scope texts: a run given none trains without it and says so in its notes
    (and records weight 0 in its config)."""
    outlier_batch_size: int = 16
    adversarial_augmentation: float = 0.0
    """Add attacked copies of this share of the training rows (robustness.adversarial_augmentation: injected
    instructions and character attacks from the TRAINING phrasings only), labels kept; 0 = off."""
    adversarial_weight: float = 1.0
    """Adversarial training as an auxiliary batch, like outlier exposure: every step also fits
    `adversarial_batch_size` attacked copies of training rows (`robustness.adversarial_pairs`: composed
    injected instructions and character attacks, training phrasings only, plus lone escalation demands) to
    their own labels, with this weight; the clean batches are unchanged, so clean rows lose no passes.
    0 = off. On by default, chosen out of fold (docs/ood-and-robustness.md): on 1,440 rows of 5-fold CV it
    cut the injection flip rate under the val phrasings from 0.35 to 0.09 (goal 0.15 -> 0.02) at +1.1 pp
    accuracy [-0.3, +2.6]; weight 2 and the TRADES term bought no more robustness and cost macro-F1."""
    adversarial_batch_size: int = 32
    """Attacked rows a step. 32, chosen out of fold (docs/ood-and-robustness.md, plan `robust_more`): against
    16 it lowered the injection flip rate under the val phrasings from 0.099 to 0.081 (goal 0.019 -> 0.016)
    at +1.0 pp accuracy [-0.3, +2.3]; the price is training time (a run takes about a quarter longer)."""
    adversarial_self_routing_share: float = 0.03
    """Share of the attacked rows that are a self-routing intent's lone demand ("live agent now") labelled
    with it (`robustness.adversarial_pairs`), so the model does not learn to ignore the demand when it is
    the whole message."""
    auxiliary_backprop_share: float = 1.0
    """Selective backprop for the defences' rows (Jiang et al., 2019, "Accelerating deep learning by focusing
    on the biggest losers"): each step first scores all its out-of-scope and attacked rows in one forward pass
    without gradients (eval mode), then trains only this share of each kind, the rows with the highest loss.
    A pass without gradients costs about a third of one with them. 1 = every row trains (the default).
    Measured (docs/choosing-the-defaults.md, "Selective backprop"): 0.125 trains at 1.47-1.56x the legacy
    recipe's examples/s (every row: 1.06-1.10x) and is neutral out of fold, but over five seeds (both with EMA)
    it lost on the validation split (accuracy 0.951 against 0.964, OOD TPR 0.912 against 0.943; without EMA
    every row trained reads 0.961 / 0.946), so it is not the default."""
    adversarial_consistency: float = 0.0
    """TRADES-style term on the same rows (Zhang et al., 2019): weight of KL(p(clean row) || p(its attacked
    copy)), gradients through both, so an attack moves the prediction less even where the clean one is
    unsure; needs adversarial_weight > 0. 0 = off."""

    def validate(self) -> None:
        problems = []
        if not 0 < self.auxiliary_backprop_share <= 1:
            problems.append(
                f"auxiliary_backprop_share must be in (0, 1] (got {self.auxiliary_backprop_share})"
            )
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1 (got {self.epochs})")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be >= 1 or None (got {self.max_steps})")
        if self.min_epochs < 0:
            problems.append(f"min_epochs must be >= 0 (got {self.min_epochs})")  # `epochs` caps it
        if self.lr is not None and not 0 < self.lr < 1:
            problems.append(f"lr must be in (0, 1) (got {self.lr})")
        if self.head_lr_multiplier <= 0:
            problems.append(f"head_lr_multiplier must be > 0 (got {self.head_lr_multiplier})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.loss not in LOSS_KINDS:
            problems.append(f"loss must be one of {LOSS_KINDS} (got {self.loss!r})")
        if self.gamma < 0:
            problems.append(f"gamma must be >= 0 (got {self.gamma})")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1) (got {self.label_smoothing})")
        if self.rdrop_alpha < 0:
            problems.append(f"rdrop_alpha must be >= 0 (got {self.rdrop_alpha})")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay must be in [0, 1) (got {self.ema_decay})")
        if not 0 < self.lr_decay <= 1:
            problems.append(f"lr_decay must be in (0, 1] (got {self.lr_decay})")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})")
        if not 8 <= self.max_length <= 512:
            problems.append(f"max_length must be in [8, 512] (got {self.max_length})")
        if self.patience < 1:
            problems.append(f"patience must be >= 1 (got {self.patience})")
        if not 0 <= self.early_stopping_after <= 1:
            problems.append(f"early_stopping_after must be in [0, 1] (got {self.early_stopping_after})")
        if self.ja_en_glossary not in GLOSSARY_SETTINGS:
            problems.append(
                f"ja_en_glossary must be one of {', '.join(GLOSSARY_SETTINGS)} (got {self.ja_en_glossary!r})"
            )
        if self.early_stopping_metric not in ("val_macro_f1", "val_loss"):
            problems.append(
                f"early_stopping_metric must be val_macro_f1 or val_loss (got {self.early_stopping_metric!r})"
            )
        if self.batching not in ("length_grouped", "pad_to_max"):
            problems.append(f"batching must be length_grouped or pad_to_max (got {self.batching!r})")
        if self.frozen_layers < 0:
            problems.append(f"frozen_layers must be >= 0 (got {self.frozen_layers})")
        if self.mega_batch_factor < 1:
            problems.append(f"mega_batch_factor must be >= 1 (got {self.mega_batch_factor})")
        if self.architecture not in ("pooled", "hf"):
            problems.append(f"architecture must be pooled or hf (got {self.architecture!r})")
        from manga_intent.modeling import POOLING_MODES  # here: importing transformers is slow at start-up

        if self.pooling not in ("auto", *POOLING_MODES):
            problems.append(
                f"pooling must be auto or one of {', '.join(POOLING_MODES)} (got {self.pooling!r})"
            )
        if self.bf16 not in ("auto", "on", "off"):
            problems.append(f"bf16 must be auto, on or off (got {self.bf16!r})")
        if self.optimizer_impl not in ("fused", "foreach", "default"):
            problems.append(f"optimizer_impl must be fused, foreach or default (got {self.optimizer_impl!r})")
        if self.temperature_start < 1.0:
            problems.append(f"temperature_start must be >= 1 (got {self.temperature_start})")
        if self.outlier_exposure_weight < 0:
            problems.append(f"outlier_exposure_weight must be >= 0 (got {self.outlier_exposure_weight})")
        if not 0 <= self.adversarial_augmentation <= 4:
            problems.append(
                f"adversarial_augmentation must be in [0, 4] (got {self.adversarial_augmentation})"
            )
        if self.adversarial_weight < 0:
            problems.append(f"adversarial_weight must be >= 0 (got {self.adversarial_weight})")
        if self.adversarial_consistency < 0:
            problems.append(f"adversarial_consistency must be >= 0 (got {self.adversarial_consistency})")
        if self.adversarial_consistency > 0 and self.adversarial_weight <= 0:
            problems.append(
                "adversarial_consistency needs adversarial_weight > 0 (it uses the attacked batch)"
            )
        if not 0 <= self.adversarial_self_routing_share <= 1:
            problems.append(
                f"adversarial_self_routing_share must be in [0, 1] (got {self.adversarial_self_routing_share})"
            )
        if self.adversarial_batch_size < 1:
            problems.append(f"adversarial_batch_size must be >= 1 (got {self.adversarial_batch_size})")
        if self.outlier_batch_size < 1:
            problems.append(f"outlier_batch_size must be >= 1 (got {self.outlier_batch_size})")
        if self.oversample and self.class_weighting:
            problems.append("oversample and class_weighting both correct for imbalance: pick one")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))


#: The recipe before v2, exactly as the CLI ran it: focal loss with the seed's class weights,
#: [CLS] through the (untrained) BERT pooler, 5 epochs, early stopping on validation loss.
LEGACY_RECIPE = TrainConfig(
    epochs=5,
    max_steps=None,
    head_lr_multiplier=1.0,
    loss="focal",
    gamma=2.0,
    class_weighting=True,
    seed_weight_normalisation=True,
    lr_decay=0.82,
    patience=2,
    early_stopping_metric="val_loss",
    early_stopping_after=0.0,
    eval_every=10**9,
    mega_batch_factor=50,
    architecture="hf",
    freeze_word_embeddings=False,
    bf16="off",
    default_lr_table="legacy",
    optimizer_impl="default",
    fast_dropout=False,
    ja_en_glossary="off",
    ema_decay=0.0,
    outlier_exposure_weight=0.0,
    adversarial_weight=0.0,
)


@dataclass
class EpochStats:
    """One evaluation on the validation split (at the end of an epoch, or every `eval_every` steps)."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    gap: float
    seconds: float
    step: int = 0
    val_macro_f1: float = 0.0


@dataclass
class TrainResult:
    model: object
    tokenizer: object
    label_list: list[str]
    config: TrainConfig
    history: list[EpochStats]
    best_epoch: int
    stopped_early: bool
    overfit_guard_triggered: bool
    train_seconds: float
    examples_seen: int
    param_groups: list[ParamGroupInfo]
    class_weights: list[float]
    notes: list[str] = field(default_factory=list)
    steps: int = 0
    threads: int = 1
    bf16: bool = False

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def best(self) -> EpochStats:
        return self.history[self.best_epoch - 1]

    @property
    def overfit_gap(self) -> float:
        return self.best.gap

    def summary(self) -> dict:
        return {
            "config": asdict(self.config),
            "history": [asdict(h) for h in self.history],
            "best_epoch": self.best_epoch,
            "best_step": self.best.step,
            "best_val_macro_f1": self.best.val_macro_f1,
            "best_val_accuracy": self.best.val_accuracy,
            "steps": self.steps,
            "stopped_early": self.stopped_early,
            "overfit_gap": self.overfit_gap,
            "overfit_guard_triggered": self.overfit_guard_triggered,
            "train_seconds": self.train_seconds,
            "examples_per_second": self.examples_per_second,
            "threads": self.threads,
            "bf16": self.bf16,
            "class_weights": dict(zip(self.label_list, self.class_weights)),
            "param_groups": [asdict(g) for g in self.param_groups],
            "notes": self.notes,
        }


class EarlyStopping:
    """Stop when the monitored value has not improved for `patience` consecutive evaluations."""

    def __init__(self, patience: int, min_delta: float = 0.0, mode: str = "min"):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be min or max, got {mode!r}")
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.best = float("inf") if mode == "min" else float("-inf")
        self.bad_epochs = 0

    def update(self, value: float) -> bool:
        """Record an evaluation; True when it is the best so far."""
        better = (
            value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        )
        if better:
            self.best, self.bad_epochs = value, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


def step_budget(config: TrainConfig, steps_per_epoch: int) -> int:
    """Optimiser steps of a run: `epochs` passes, cut to `max_steps` but never below `min_epochs` passes."""
    total = steps_per_epoch * config.epochs
    if config.max_steps is None:
        return total
    return min(total, max(config.max_steps, math.ceil(config.min_epochs * steps_per_epoch)))


def with_step_budget(config: TrainConfig, max_steps: int | None, min_epochs: float | None) -> TrainConfig:
    """`config` with the budget a user gave (None = not given): a `max_steps` given without `min_epochs` is
    the budget exactly, because a user who names a step count means it; 0 steps means `epochs` passes."""
    changes: dict = {} if min_epochs is None else {"min_epochs": min_epochs}
    if max_steps is not None:
        changes["max_steps"] = max_steps or None
        changes.setdefault("min_epochs", 0.0)
    return replace(config, **changes)


def describe_step_budget(config: TrainConfig) -> str:
    """The budget in words, for messages and reports."""
    if config.max_steps is None:
        return f"{config.epochs} passes"
    if config.min_epochs == 0:
        return f"{config.max_steps} steps"
    return f"{config.max_steps} steps or {config.min_epochs:g} passes, whichever is more"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def oversampled_indices(labels: Sequence[int]) -> list[int]:
    """Each class's rows repeated round(max_count / count) times (minority replication, Chawla 2002)."""
    counts = Counter(labels)
    largest = max(counts.values())
    out: list[int] = []
    for i, label in enumerate(labels):
        out.extend([i] * max(1, round(largest / counts[label])))
    return out


def loss_class_weights(
    config: TrainConfig, train_labels: Sequence[str], label_list: Sequence[str]
) -> list[float]:
    if not config.class_weighting:
        return [1.0] * len(label_list)
    weights = class_weights(train_labels, label_list)
    return weights if config.seed_weight_normalisation else [w * len(weights) for w in weights]


class _WeightAverage:
    """EMA of the trainable parameters, bias-corrected like Adam's moments: the average starts at zero and
    is divided by 1 - decay^t, so it averages only the weights the run visited (a short run is not pulled
    back to its initial weights). `swap()` puts the average into the model, and the next `swap()` restores
    the raw weights."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.updates = 0
        self._raw: list[torch.Tensor] | None = None

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - self.decay)
        self.updates += 1

    @torch.no_grad()
    def swap(self) -> None:
        if self._raw is not None:
            for p, raw in zip(self.params, self._raw):
                p.copy_(raw)
            self._raw = None
            return
        self._raw = [p.detach().clone() for p in self.params]
        if self.updates:  # before the first step the raw weights are the only ones visited
            correction = 1.0 - self.decay**self.updates
            for p, s in zip(self.params, self.shadow):
                p.copy_(s / correction)


class _FrozenBottom:
    """Outputs of the frozen embeddings + bottom blocks, computed once per row and padded per batch.

    Computed in eval mode (no dropout in the frozen blocks), so training from the cache equals running
    the whole encoder with those blocks in eval mode; inference runs the whole encoder as usual.
    """

    def __init__(
        self,
        model,
        blocks: int,
        encoded: EncodedTexts,
        pad_token_id: int,
        batch_size: int = 64,
        only: Sequence[int] | None = None,
    ):
        """`only`: the rows to cache (default all), e.g. the out-of-scope rows a short run will draw."""
        self.blocks = blocks
        self.hidden: list[torch.Tensor | None] = [None] * len(encoded)
        wanted = sorted(set(only)) if only is not None else list(range(len(encoded)))
        subset = EncodedTexts([encoded.input_ids[i] for i in wanted])
        was_training = model.training
        model.eval()
        with torch.no_grad():  # not inference_mode: the cached tensors feed autograd later
            for positions, batch in iter_eval_batches(subset, batch_size, pad_token_id):
                hidden = model.hidden_below(batch["input_ids"], batch["attention_mask"], blocks)
                for row, position in enumerate(positions):
                    self.hidden[wanted[position]] = hidden[row, : len(subset.input_ids[position])].clone()
        model.train(was_training)

    def rows(self, indices: Sequence[int]) -> list[torch.Tensor]:
        rows = [self.hidden[i] for i in indices]
        if any(r is None for r in rows):
            raise KeyError("a row outside the cached ones was asked for")
        return rows

    def batch(self, indices: Sequence[int], pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return pad_hidden(self.rows(indices), pad_to)


def pad_hidden(rows: Sequence[torch.Tensor], pad_to: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states, attention mask) of cached rows padded to their longest (or to `pad_to`)."""
    width = pad_to if pad_to is not None else max(len(r) for r in rows)
    hidden = torch.zeros((len(rows), width, rows[0].shape[-1]), dtype=rows[0].dtype)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, r in enumerate(rows):
        hidden[j, : len(r)] = r[:width]
        mask[j, : len(r)] = 1
    return hidden, mask


def freeze_bottom(model, blocks: int) -> int:
    """Freeze the embeddings and the bottom `blocks` transformer blocks; returns the parameters frozen."""
    from manga_intent.optim import find_encoder_layers

    embeddings, layers = find_encoder_layers(model)
    if blocks >= len(layers):
        raise ValueError(f"frozen_layers={blocks} leaves no block to train (the encoder has {len(layers)})")
    frozen = 0
    for module in [embeddings, *layers[:blocks]]:
        for p in module.parameters():
            if p.requires_grad:
                frozen += p.numel()
            p.requires_grad_(False)
    return frozen


@torch.inference_mode()
def _evaluate(
    logits_of: Callable, encoded: EncodedTexts, pad_token_id: int, num_labels: int, batch_size: int
):
    """Validation CE, accuracy and macro-F1 over rows encoded once before training.

    `logits_of(indices, batch)` runs the model (in eval mode) on one batch of validation rows."""
    logits = torch.zeros((len(encoded), num_labels))
    for indices, batch in iter_eval_batches(encoded, batch_size, pad_token_id):
        logits[indices] = logits_of(indices, batch).float()
    targets = torch.tensor(encoded.labels)
    loss = F.cross_entropy(logits, targets).item()
    predicted = logits.argmax(dim=1).numpy()
    accuracy = float((predicted == targets.numpy()).mean())
    f1 = macro_f1(targets.numpy(), predicted, num_labels)
    return loss, accuracy, f1


@dataclass
class _AdversarialPool:
    attacked: EncodedTexts
    sources: list[int]
    """Index of each attacked row's clean original in the training rows."""


def _adversarial_pool(
    train: Sequence[Example],
    label_list: Sequence[str],
    label_index: dict[str, int],
    tokenizer,
    config: TrainConfig,
    draws: int,
) -> _AdversarialPool:
    """Attacked copies of training rows for every draw of the run (at most 20,000, then reused in turn)."""
    from manga_intent.robustness import adversarial_pairs

    pairs = adversarial_pairs(
        train,
        label_list,
        min(draws, 20_000),
        seed=config.sampler_seed,
        self_routing_share=config.adversarial_self_routing_share,
    )
    attacked = encode_texts(
        tokenizer, [e.text for _, e in pairs], config.max_length, [label_index[e.label] for _, e in pairs]
    )
    return _AdversarialPool(attacked, [source for source, _ in pairs])


def train_classifier(
    train: Sequence[Example],
    val: Sequence[Example],
    label_list: Sequence[str],
    config: TrainConfig,
    *,
    model_and_tokenizer: tuple | None = None,
    base_model: str | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[EpochStats], None] | None = None,
    outlier_texts: Sequence[str] = (),
    parallel: DataParallel | None = None,
) -> TrainResult:
    """Fine-tune an encoder classifier on `train`, early-stopping on `val`.

    With `config.outlier_exposure_weight > 0`, every step also pushes the predictions on a batch of
    `outlier_texts` (out-of-scope messages, already cleaned) towards the uniform distribution; without
    `outlier_texts` the run trains without exposure (noted, weight 0 in the returned config).

    Pass `model_and_tokenizer` to train an already-built model (tests use tiny random ones);
    otherwise `base_model` is loaded offline with a fresh head for `label_list`. `parallel` (from
    `manga_intent.distributed`, under torchrun) makes this one rank of a DistributedDataParallel run.
    """
    from manga_intent.model_io import load_base_for_training

    config.validate()
    if not train or not val:
        raise ValueError(f"need training and validation examples (got {len(train)} train, {len(val)} val)")
    label_list = list(label_list)
    label_index = {label: i for i, label in enumerate(label_list)}
    unknown = sorted({e.label for e in [*train, *val]} - set(label_index))
    if unknown:
        raise ValueError(f"labels {unknown} are not in the label list {label_list}")
    notes: list[str] = []
    if config.outlier_exposure_weight > 0 and not outlier_texts:
        config = replace(config, outlier_exposure_weight=0.0)  # the config returned is the one that ran
        notes.append("outlier exposure off: no out-of-scope texts were given")
    clean_train = list(train)
    if config.adversarial_augmentation > 0:
        from manga_intent.robustness import adversarial_augmentation

        augmented = adversarial_augmentation(
            train, label_list, fraction=config.adversarial_augmentation, seed=config.sampler_seed
        )
        train = [*train, *augmented]
    if parallel is not None:
        progress = progress and parallel.is_main
    threads = configure_threads(
        config.num_threads or (parallel.threads_per_process(usable_cpus()) if parallel else None)
    )
    device = parallel.device if parallel is not None else torch.device("cpu")
    use_bf16 = resolve_bf16(config.bf16)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if use_bf16 else nullcontext

    seed_everything(config.init_seed)
    if model_and_tokenizer is None:
        tokenizer, model = load_base_for_training(
            base_model,
            label_list,
            architecture=config.architecture,
            pooling=config.pooling,
            head_dropout=config.head_dropout,
        )
    else:
        model, tokenizer = model_and_tokenizer
    tokenizer, glossary_note = tokenizer_for_training(tokenizer, config.ja_en_glossary)
    if glossary_note:
        notes.append(glossary_note)
    model.to(device)
    if config.lr is None:
        config = replace(config, lr=default_learning_rate(model.config, config.default_lr_table))
    if config.adversarial_augmentation > 0:
        notes.append(f"adversarial augmentation: {len(augmented)} attacked copies of training rows added")
    if config.freeze_word_embeddings:
        embeddings = model.get_input_embeddings()
        embeddings.weight.requires_grad_(False)
        notes.append(f"word embeddings frozen ({embeddings.weight.numel():,} parameters not updated)")

    if config.frozen_layers:
        frozen = freeze_bottom(model, config.frozen_layers)
        notes.append(f"embeddings and bottom {config.frozen_layers} blocks frozen ({frozen:,} parameters)")

    train_labels = [label_index[e.label] for e in train]
    weights = loss_class_weights(config, [e.label for e in train], label_list)
    alpha = torch.tensor(weights) if config.class_weighting else None
    loss_fn = build_loss(
        config.loss, alpha=alpha, gamma=config.gamma, label_smoothing=config.label_smoothing
    ).to(device)
    encoded = encode_texts(tokenizer, [e.text for e in train], config.max_length, train_labels)
    val_encoded = encode_texts(
        tokenizer, [e.text for e in val], config.max_length, [label_index[e.label] for e in val]
    )
    pool_indices = oversampled_indices(train_labels) if config.oversample else list(range(len(encoded)))
    if config.oversample:
        notes.append(f"oversampled {len(encoded)} training rows to {len(pool_indices)}")
    lengths = [len(encoded.input_ids[i]) for i in pool_indices]
    pad_to = config.max_length if config.batching == "pad_to_max" else None
    steps_per_epoch = math.ceil(len(pool_indices) / config.batch_size)
    total_steps = step_budget(config, steps_per_epoch)
    eval_every = min(steps_per_epoch, config.eval_every)
    optimizer, scheduler, group_info = build_optimizer(
        model,
        base_lr=config.lr,
        decay=config.lr_decay,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        total_steps=total_steps,
        head_lr_multiplier=config.head_lr_multiplier,
        implementation=config.optimizer_impl,
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    forward = parallel.wrap(model) if parallel is not None else model
    average = _WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    sampler = torch.Generator().manual_seed(config.sampler_seed)
    pad_id = tokenizer.pad_token_id
    cached = cached_val = None
    if (
        config.frozen_layers
        and parallel is None  # cached hidden states would bypass the DDP wrapper
        and getattr(model, "supports_block_cache", lambda: False)()
    ):
        cache_start = time.perf_counter()
        cached = _FrozenBottom(model, config.frozen_layers, encoded, pad_id, config.eval_batch_size)
        cached_val = _FrozenBottom(model, config.frozen_layers, val_encoded, pad_id, config.eval_batch_size)
        train_seconds_cache = time.perf_counter() - cache_start
        notes.append(
            f"outputs of the frozen blocks cached for {len(encoded) + len(val_encoded)} rows "
            f"({train_seconds_cache:.1f}s, counted in training time)"
        )
    elif config.frozen_layers:
        train_seconds_cache = 0.0
        notes.append("frozen blocks not cached (not a pooled BERT-shaped encoder): they run every step")
    else:
        train_seconds_cache = 0.0

    def train_logits(indices: Sequence[int], repeat: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, targets) of one training batch; `repeat` stacks it (R-Drop's two dropout passes)."""
        targets = torch.tensor([encoded.labels[i] for i in indices], dtype=torch.long).to(device)
        if cached is not None:
            hidden, mask = cached.batch(indices, pad_to)
            hidden, mask = torch.cat([hidden] * repeat), torch.cat([mask] * repeat)
            return model.forward_from_hidden(hidden, mask, config.frozen_layers).logits, targets
        batch = collate(encoded, indices, pad_id, pad_to=pad_to)
        ids = torch.cat([batch["input_ids"]] * repeat).to(device)
        mask = torch.cat([batch["attention_mask"]] * repeat).to(device)
        return forward(input_ids=ids, attention_mask=mask).logits, targets

    def val_logits(indices: Sequence[int], batch: dict) -> torch.Tensor:
        with autocast():
            if cached_val is not None:
                hidden, mask = cached_val.batch(indices)
                return model.forward_from_hidden(hidden, mask, config.frozen_layers).logits
            ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
            return model(input_ids=ids, attention_mask=mask).logits.cpu()

    exposure = None
    if config.outlier_exposure_weight > 0:
        exposure = encode_texts(tokenizer, list(outlier_texts), config.max_length)
        notes.append(
            f"outlier exposure on {len(exposure)} out-of-scope texts, weight {config.outlier_exposure_weight}"
        )

    adversarial = None
    if config.adversarial_weight > 0:
        adversarial = _adversarial_pool(
            clean_train,
            label_list,
            label_index,
            tokenizer,
            config,
            total_steps * config.adversarial_batch_size,
        )
        notes.append(
            f"adversarial training on {len(adversarial.attacked)} attacked copies of training rows, weight "
            f"{config.adversarial_weight}, {config.adversarial_batch_size} per step"
            + (f", consistency {config.adversarial_consistency}" if config.adversarial_consistency else "")
        )

    plan = None
    if exposure is not None or adversarial is not None:
        plan = auxiliary_plan(
            total_steps,
            outlier_lengths=[len(r) for r in exposure.input_ids] if exposure is not None else (),
            outlier_per_step=config.outlier_batch_size if exposure is not None else 0,
            attacked_lengths=[len(r) for r in adversarial.attacked.input_ids]
            if adversarial is not None
            else (),
            attacked_per_step=config.adversarial_batch_size if adversarial is not None else 0,
            generator=torch.Generator().manual_seed(config.sampler_seed + 1),
        )

    cached_outlier = cached_attacked = None
    if plan is not None and cached is not None:  # the defences' rows skip the frozen blocks too
        cache_start = time.perf_counter()
        if exposure is not None:
            used = {i for block in plan for i in block.outlier}
            cached_outlier = _FrozenBottom(
                model, config.frozen_layers, exposure, pad_id, config.eval_batch_size, only=used
            )
        if adversarial is not None:
            used = {i for block in plan for i in block.attacked}
            cached_attacked = _FrozenBottom(
                model, config.frozen_layers, adversarial.attacked, pad_id, config.eval_batch_size, only=used
            )
        seconds = time.perf_counter() - cache_start
        train_seconds_cache += seconds
        notes.append(
            f"outputs of the frozen blocks cached for the defences' rows ({seconds:.1f}s, counted in "
            "training time)"
        )

    def auxiliary_logits(block) -> torch.Tensor:
        """Logits of a step's out-of-scope rows, then its attacked rows, in one forward pass."""
        if cached is not None:  # then the defences' rows were cached with the clean ones
            rows = cached_outlier.rows(block.outlier) if block.outlier else []
            rows += cached_attacked.rows(block.attacked) if block.attacked else []
            hidden, mask = pad_hidden(rows)
            return model.forward_from_hidden(hidden, mask, config.frozen_layers).logits.float()
        rows = [exposure.input_ids[i] for i in block.outlier]
        rows += [adversarial.attacked.input_ids[i] for i in block.attacked]
        batch = collate(EncodedTexts(rows), range(len(rows)), pad_id)
        return model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits.float()

    def hardest_rows(block: AuxiliaryBlock, temperature: float) -> AuxiliaryBlock:
        """The block cut to `auxiliary_backprop_share` of each kind, the rows the model now gets most wrong
        (scored in eval mode without gradients: no dropout noise in the ranking, a third of the cost)."""
        model.eval()
        with torch.no_grad():
            z = auxiliary_logits(block)
        model.train()
        n_out = len(block.outlier)
        outlier_losses = torch.logsumexp(z[:n_out], -1) - z[:n_out].mean(-1)
        targets = (
            torch.tensor([adversarial.attacked.labels[i] for i in block.attacked]) if block.attacked else None
        )
        attacked_losses = (
            F.cross_entropy(z[n_out:] / temperature, targets.to(z.device), reduction="none")
            if block.attacked
            else z.new_zeros(0)
        )
        return hardest_share(block, outlier_losses, attacked_losses, config.auxiliary_backprop_share)

    def auxiliary_loss(step: int, temperature: float) -> torch.Tensor:
        """The step's out-of-scope and attacked rows in one forward pass (`manga_intent.auxiliary`), the same on
        every rank, through the unwrapped module: outlier exposure's uniform-target term, the attacked rows'
        CE to their labels and, if on, the consistency term with their clean originals; each term the mean
        over its own rows, as when they ran as two batches."""
        block = plan[min(step, len(plan) - 1)]
        if config.auxiliary_backprop_share < 1:
            block = hardest_rows(block, temperature)
        z = auxiliary_logits(block)
        n_out, total = len(block.outlier), z.new_zeros(())
        if n_out:
            total = total + config.outlier_exposure_weight * uniform_target_loss(z[:n_out])
        if block.attacked:
            z_attacked = z[n_out:]
            targets = torch.tensor([adversarial.attacked.labels[i] for i in block.attacked]).to(device)
            total = total + config.adversarial_weight * loss_fn(z_attacked, targets, temperature)
            if config.adversarial_consistency > 0:
                sources = [adversarial.sources[i] for i in block.attacked]
                if cached is not None:
                    hidden, mask = cached.batch(sources)
                    z_clean = model.forward_from_hidden(hidden, mask, config.frozen_layers).logits.float()
                else:
                    clean = collate(encoded, sources, pad_id)
                    z_clean = model(
                        input_ids=clean["input_ids"].to(device),
                        attention_mask=clean["attention_mask"].to(device),
                    ).logits.float()
                kl = F.kl_div(
                    F.log_softmax(z_attacked, -1),
                    F.log_softmax(z_clean, -1),
                    log_target=True,
                    reduction="batchmean",
                )
                total = total + config.adversarial_consistency * kl
        return total

    history: list[EpochStats] = []
    mode = "max" if config.early_stopping_metric == "val_macro_f1" else "min"
    stopper = EarlyStopping(config.patience, mode=mode)
    best_epoch, best_state = 0, None
    stopped_early = guard_triggered = False
    step = examples_seen = 0
    train_seconds = train_seconds_cache
    running_ce, running_n = 0.0, 0
    segment_start = time.perf_counter()
    model.train()

    def evaluate_and_decide() -> bool:
        """Score val (with averaged weights if any), update early stopping; True = stop training."""
        nonlocal best_epoch, best_state, stopped_early, guard_triggered, running_ce, running_n, segment_start
        if average is not None:
            average.swap()
        model.eval()
        val_loss, val_accuracy, val_f1 = _evaluate(
            val_logits, val_encoded, pad_id, len(label_list), config.eval_batch_size
        )
        model.train()
        if parallel is not None:
            running_ce, running_n = parallel.sum(running_ce, running_n)
        train_loss = running_ce / max(running_n, 1)
        stats = EpochStats(
            len(history) + 1,
            train_loss,
            val_loss,
            val_accuracy,
            val_loss - train_loss,
            time.perf_counter() - segment_start,
            step,
            val_f1,
        )
        history.append(stats)
        if progress:
            tqdm.write(
                f"step {step}: train CE {train_loss:.4f}  val CE {val_loss:.4f}  val acc {val_accuracy:.4f}  "
                f"val macro-F1 {val_f1:.4f}  gap {stats.gap:+.4f}"
            )
        if on_epoch_end is not None:
            on_epoch_end(stats)
        guard_breached = stats.gap > config.overfit_gap
        if guard_breached:
            notes.append(
                f"evaluation {stats.epoch}: val-train loss gap {stats.gap:.3f} > {config.overfit_gap}"
            )
        if guard_breached and config.enforce_overfit_guard and best_state is not None:
            improved = False  # an overfit evaluation never becomes the kept model when the guard is enforced
            stopper.bad_epochs += 1
        else:
            improved = stopper.update(val_f1 if mode == "max" else val_loss)
        if improved:
            best_epoch = stats.epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if average is not None:
            average.swap()
        running_ce, running_n = 0.0, 0
        segment_start = time.perf_counter()
        finished = step >= total_steps
        if guard_breached and config.enforce_overfit_guard:
            guard_triggered = True
            stopped_early = not finished
            notes.append(
                f"overfitting guard stopped training after evaluation {stats.epoch}; keeping {best_epoch}"
            )
            return True
        if stopper.should_stop and not finished and step >= config.early_stopping_after * total_steps:
            stopped_early = True
            notes.append(
                f"early stopping at step {step}: no {config.early_stopping_metric} improvement for "
                f"{config.patience} evaluations"
            )
            return True
        return finished

    done = False
    epoch = 0
    dropout_masks = fast_dropout(model) if config.fast_dropout else nullcontext()
    with dropout_masks as sites:
        if config.fast_dropout:
            notes.append(f"dropout masks from manga_intent.fast_dropout: {sites}")
        while not done:
            epoch += 1
            if config.batching == "pad_to_max":
                order = random_batches(len(pool_indices), config.batch_size, sampler)
            else:
                order = length_grouped_batches(lengths, config.batch_size, sampler, config.mega_batch_factor)
            bar = tqdm(order, desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False)
            tick = time.perf_counter()
            for positions in bar:
                indices = [pool_indices[i] for i in positions]
                scale, counted = 1.0, len(indices)
                if parallel is not None:
                    indices, scale, counted = parallel.shard(indices)
                temperature = training_temperature(
                    step, total_steps, config.temperature_start, config.temperature_anneal_fraction
                )
                with autocast():
                    if config.rdrop_alpha > 0:
                        both, targets = train_logits(indices, repeat=2)
                        logits, second = both[: len(indices)].float(), both[len(indices) :].float()
                        loss = 0.5 * (
                            loss_fn(logits, targets, temperature) + loss_fn(second, targets, temperature)
                        )
                        loss = loss + config.rdrop_alpha * symmetric_kl(logits, second).mean()
                    else:
                        logits, targets = train_logits(indices)
                        logits = logits.float()
                        loss = loss_fn(logits, targets, temperature=temperature)
                    if plan is not None:
                        # every rank adds the same rows through the unwrapped module (DDP allows one wrapped
                        # forward per backward; autograd sums both paths into each parameter's single gradient
                        # hook). Times the rank's loss scale, DDP's average is the one-process gradient.
                        loss = loss + auxiliary_loss(step, temperature)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"non-finite loss at step {step} (epoch {epoch}); lower the learning rate"
                    )
                (loss * scale if scale != 1.0 else loss).backward()
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if average is not None:
                    average.update()
                with torch.no_grad():
                    running_ce += F.cross_entropy(logits.detach(), targets, reduction="sum").item() * (
                        counted > 0
                    )
                running_n += counted
                examples_seen += counted
                step += 1
                if progress:
                    bar.set_postfix(loss=f"{loss.item():.4f}", ce=f"{running_ce / running_n:.3f}")
                if step % eval_every == 0 or step >= total_steps:
                    train_seconds += time.perf_counter() - tick
                    done = evaluate_and_decide()
                    tick = time.perf_counter()
                    if done:
                        break
            else:
                train_seconds += time.perf_counter() - tick
            if epoch >= config.epochs and not done:  # epochs bound reached without a step-budget stop
                if not history or history[-1].step != step:
                    done = evaluate_and_decide()
                done = True

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if parallel is not None:
        (examples_seen,) = (int(x) for x in parallel.sum(examples_seen))
        notes.append(f"DistributedDataParallel over {parallel.world_size} ranks ({parallel.backend})")
        model.to("cpu")
    return TrainResult(
        model=model,
        tokenizer=tokenizer,
        label_list=label_list,
        config=config,
        history=history,
        best_epoch=best_epoch,
        stopped_early=stopped_early,
        overfit_guard_triggered=guard_triggered,
        train_seconds=train_seconds,
        examples_seen=examples_seen,
        param_groups=group_info,
        class_weights=weights,
        notes=notes,
        steps=step,
        threads=threads,
        bf16=use_bf16,
    )
