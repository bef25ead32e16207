"""The seed's fine-tuning recipe as one readable training loop.

Focal loss with inverse-frequency class weights, discriminative learning rates, AdamW with
decoupled weight decay, 10% linear warmup then linear decay, gradient clipping, optional
softmax-temperature annealing, dynamic padding with length-grouped batches, early stopping on
validation loss and the val-train overfitting guard. Three seeds with separate roles: the
split (data), init (classifier head, dropout) and sampler (batch order).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from manga_intent.batching import collate, encode_texts, length_grouped_batches, random_batches
from manga_intent.data import Example, class_weights
from manga_intent.inference import predict_logits
from manga_intent.loss import FocalLoss
from manga_intent.optim import ParamGroupInfo, build_optimizer, training_temperature

# Base learning rate per architecture family. MiniLM-L6-H384 (22M parameters, small hidden size)
# needs a larger step than DistilBERT/RoBERTa-base: see README "Choosing the defaults" for the
# measurement behind these values.
DEFAULT_LR_BY_HIDDEN_SIZE = ((512, 3e-4), (10**9, 2e-5))


def default_learning_rate(model_config) -> float:
    hidden = getattr(model_config, "hidden_size", None) or getattr(model_config, "dim", 768)
    for limit, lr in DEFAULT_LR_BY_HIDDEN_SIZE:
        if hidden < limit:
            return lr
    return DEFAULT_LR_BY_HIDDEN_SIZE[-1][1]


@dataclass
class TrainConfig:
    """Recipe hyperparameters; `lr=None` picks the base model's default rate."""

    epochs: int = 3
    lr: float | None = None
    batch_size: int = 32
    gamma: float = 2.0
    lr_decay: float = 0.82
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int = 128
    patience: int = 2
    overfit_gap: float = 0.15
    enforce_overfit_guard: bool = False
    temperature_start: float = 1.0
    temperature_anneal_fraction: float = 0.3
    split_seed: int = 42
    init_seed: int = 123
    sampler_seed: int = 2024
    eval_batch_size: int = 64
    batching: str = "length_grouped"  # or "pad_to_max" (the seed's fixed 128-token batches)

    def validate(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1 (got {self.epochs})")
        if self.lr is not None and not 0 < self.lr < 1:
            problems.append(f"lr must be in (0, 1) (got {self.lr})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if self.gamma < 0:
            problems.append(f"gamma must be >= 0 (got {self.gamma})")
        if not 0 < self.lr_decay <= 1:
            problems.append(f"lr_decay must be in (0, 1] (got {self.lr_decay})")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})")
        if not 8 <= self.max_length <= 512:
            problems.append(f"max_length must be in [8, 512] (got {self.max_length})")
        if self.patience < 1:
            problems.append(f"patience must be >= 1 (got {self.patience})")
        if self.batching not in ("length_grouped", "pad_to_max"):
            problems.append(f"batching must be length_grouped or pad_to_max (got {self.batching!r})")
        if self.temperature_start < 1.0:
            problems.append(f"temperature_start must be >= 1 (got {self.temperature_start})")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    gap: float
    seconds: float


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

    @property
    def examples_per_second(self) -> float:
        return self.examples_seen / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def overfit_gap(self) -> float:
        return self.history[self.best_epoch - 1].gap

    def summary(self) -> dict:
        return {
            "config": asdict(self.config),
            "history": [asdict(h) for h in self.history],
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "overfit_gap": self.overfit_gap,
            "overfit_guard_triggered": self.overfit_guard_triggered,
            "train_seconds": self.train_seconds,
            "examples_per_second": self.examples_per_second,
            "class_weights": dict(zip(self.label_list, self.class_weights)),
            "param_groups": [asdict(g) for g in self.param_groups],
            "notes": self.notes,
        }


class EarlyStopping:
    """Stop when validation loss has not improved for `patience` consecutive epochs."""

    def __init__(self, patience: int, min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience, self.min_delta = patience, min_delta
        self.best = float("inf")
        self.bad_epochs = 0

    def update(self, val_loss: float) -> bool:
        """Record an epoch; True when it is the best so far."""
        if val_loss < self.best - self.min_delta:
            self.best, self.bad_epochs = val_loss, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_threads() -> None:
    """Use every core for intra-op work; the default can leave one idle on small machines."""
    torch.set_num_threads(max(1, os.cpu_count() or 1))


def _validation_loss(model, tokenizer, examples: Sequence[Example], label_index: dict, config: TrainConfig):
    logits = predict_logits(
        model,
        tokenizer,
        [e.text for e in examples],
        max_length=config.max_length,
        batch_size=config.eval_batch_size,
    )
    targets = torch.tensor([label_index[e.label] for e in examples])
    loss = F.cross_entropy(torch.from_numpy(logits), targets).item()
    accuracy = float((logits.argmax(axis=1) == targets.numpy()).mean())
    return loss, accuracy


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
) -> TrainResult:
    """Fine-tune an encoder classifier on `train`, early-stopping on `val` cross-entropy.

    Pass `model_and_tokenizer` to train an already-built model (tests use tiny random ones);
    otherwise `base_model` is loaded offline with a fresh head for `label_list`.
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
    configure_threads()

    seed_everything(config.init_seed)
    if model_and_tokenizer is None:
        tokenizer, model = load_base_for_training(base_model, label_list)
    else:
        model, tokenizer = model_and_tokenizer
    if config.lr is None:
        config = replace(config, lr=default_learning_rate(model.config))

    weights = class_weights([e.label for e in train], label_list)
    loss_fn = FocalLoss(torch.tensor(weights), gamma=config.gamma)
    encoded = encode_texts(
        tokenizer, [e.text for e in train], config.max_length, [label_index[e.label] for e in train]
    )
    lengths = [len(ids) for ids in encoded.input_ids]
    pad_to = config.max_length if config.batching == "pad_to_max" else None
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    optimizer, scheduler, group_info = build_optimizer(
        model,
        base_lr=config.lr,
        decay=config.lr_decay,
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        total_steps=total_steps,
    )
    sampler = torch.Generator().manual_seed(config.sampler_seed)

    history: list[EpochStats] = []
    stopper = EarlyStopping(config.patience)
    best_epoch, best_state = 0, None
    stopped_early = guard_triggered = False
    notes: list[str] = []
    step = examples_seen = 0
    train_seconds = 0.0

    for epoch in range(1, config.epochs + 1):
        model.train()
        if config.batching == "pad_to_max":
            batches = random_batches(len(encoded), config.batch_size, sampler)
        else:
            batches = length_grouped_batches(lengths, config.batch_size, sampler)
        epoch_start = time.perf_counter()
        running_ce, running_n = 0.0, 0
        bar = tqdm(
            batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not progress, leave=False
        )
        for indices in bar:
            batch = collate(encoded, indices, tokenizer.pad_token_id, pad_to=pad_to)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            temperature = training_temperature(
                step, total_steps, config.temperature_start, config.temperature_anneal_fraction
            )
            loss = loss_fn(logits, batch["labels"], temperature=temperature)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite loss at step {step} (epoch {epoch}); lower the learning rate"
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                running_ce += F.cross_entropy(logits.detach(), batch["labels"], reduction="sum").item()
            running_n += len(indices)
            step += 1
            if progress:
                bar.set_postfix(focal=f"{loss.item():.4f}", ce=f"{running_ce / running_n:.3f}")
        train_seconds += time.perf_counter() - epoch_start
        examples_seen += running_n

        val_loss, val_accuracy = _validation_loss(model, tokenizer, val, label_index, config)
        train_loss = running_ce / max(running_n, 1)
        stats = EpochStats(
            epoch,
            train_loss,
            val_loss,
            val_accuracy,
            val_loss - train_loss,
            time.perf_counter() - epoch_start,
        )
        history.append(stats)
        if progress:
            tqdm.write(
                f"epoch {epoch}: train CE {train_loss:.4f}  val CE {val_loss:.4f}  "
                f"val acc {val_accuracy:.4f}  gap {stats.gap:+.4f}"
            )
        if on_epoch_end is not None:
            on_epoch_end(stats)

        guard_breached = stats.gap > config.overfit_gap
        if guard_breached:
            notes.append(f"epoch {epoch}: val-train loss gap {stats.gap:.3f} > {config.overfit_gap}")
        if guard_breached and config.enforce_overfit_guard and best_state is not None:
            improved = False  # an overfit epoch never becomes the kept model when the guard is enforced
            stopper.bad_epochs += 1
        else:
            improved = stopper.update(val_loss)
        if improved:
            best_epoch = epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if guard_breached and config.enforce_overfit_guard:
            guard_triggered = True
            stopped_early = epoch < config.epochs
            notes.append(
                f"overfitting guard stopped training after epoch {epoch}; keeping epoch {best_epoch}"
            )
            break
        if stopper.should_stop:
            stopped_early = epoch < config.epochs
            notes.append(
                f"early stopping after epoch {epoch}: no val-loss improvement for {config.patience} epochs"
            )
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
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
    )
