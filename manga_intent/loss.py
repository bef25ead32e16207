"""Focal loss with per-class weights (Lin et al., 2017), computed stably in log space."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    """FL = -alpha_t * (1 - p_t)^gamma * log p_t, averaged over the batch.

    log p_t comes from log_softmax and 1 - p_t from -expm1(log p_t), so confident examples
    neither underflow nor need the seed's `log(p + 1e-8)` fudge. With gamma = 0 this is exactly
    weighted cross-entropy averaged per example. `temperature` divides the logits first (the
    seed's optional early-training softmax temperature).
    """

    def __init__(self, alpha: torch.Tensor | None = None, gamma: float = 2.0):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
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
        if self.gamma > 0:
            one_minus_p = (-torch.expm1(log_p_t)).clamp(min=1e-12)
            loss = one_minus_p.pow(self.gamma) * loss
        if self.alpha is not None:
            loss = self.alpha.to(loss.dtype)[targets] * loss
        return loss
