"""Training objectives: focal loss (Lin et al., 2017), (weighted) cross-entropy, label smoothing, R-Drop.

Everything is computed in log space from `log_softmax`, so confident examples neither underflow
nor need the seed's `log(p + 1e-8)` fudge.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSS_KINDS = ("focal", "ce")


class FocalLoss(nn.Module):
    """FL = -alpha_t * (1 - p_t)^gamma * log p_t, averaged over the batch.

    With gamma = 0 this is exactly weighted cross-entropy averaged per example. `temperature`
    divides the logits first (the seed's optional early-training softmax temperature).
    `label_smoothing` mixes the one-hot target with the uniform distribution (Szegedy et al., 2016):
    the log-likelihood term becomes (1-eps) log p_t + eps/K sum_c log p_c, still scaled by the
    focal factor of the true class.
    """

    def __init__(self, alpha: torch.Tensor | None = None, gamma: float = 2.0, label_smoothing: float = 0.0):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        if alpha is not None:
            alpha = torch.as_tensor(alpha)
            alpha = alpha if alpha.is_floating_point() else alpha.float()
        self.register_buffer("alpha", alpha)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return self.per_example(logits, targets, temperature).mean()

    def per_example(
        self, logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0
    ) -> torch.Tensor:
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        log_probs = F.log_softmax(logits / temperature, dim=-1)
        log_p_t = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
        loss = -log_p_t
        if self.label_smoothing > 0:
            loss = (1 - self.label_smoothing) * loss - self.label_smoothing * log_probs.mean(dim=-1)
        if self.gamma > 0:
            one_minus_p = (-torch.expm1(log_p_t)).clamp(min=1e-12)
            loss = one_minus_p.pow(self.gamma) * loss
        if self.alpha is not None:
            loss = self.alpha.to(loss.dtype)[targets] * loss
        return loss


def build_loss(kind: str, *, alpha: torch.Tensor | None, gamma: float, label_smoothing: float) -> FocalLoss:
    """`focal` (gamma as given) or `ce` (gamma 0); `alpha=None` means unweighted."""
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss must be one of {LOSS_KINDS}, got {kind!r}")
    return FocalLoss(alpha, gamma=gamma if kind == "focal" else 0.0, label_smoothing=label_smoothing)


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """R-Drop's consistency term (Liang et al., 2021): mean of KL(p_a||p_b) and KL(p_b||p_a) per example."""
    log_a = F.log_softmax(logits_a.float(), dim=-1)
    log_b = F.log_softmax(logits_b.float(), dim=-1)
    kl_ab = F.kl_div(log_b, log_a, log_target=True, reduction="none").sum(-1)
    kl_ba = F.kl_div(log_a, log_b, log_target=True, reduction="none").sum(-1)
    return 0.5 * (kl_ab + kl_ba)
