import math

import pytest
import torch
import torch.nn.functional as F

from manga_intent.loss import FocalLoss


def closed_form(logits, targets, alpha, gamma):
    """-alpha_t (1 - p_t)^gamma log p_t written out from softmax by hand."""
    total = 0.0
    for row, t in zip(logits.tolist(), targets.tolist()):
        z = [math.exp(v) for v in row]
        p_t = z[t] / sum(z)
        total += -alpha[t] * (1 - p_t) ** gamma * math.log(p_t)
    return total / len(targets)


def test_value_matches_closed_form():
    torch.manual_seed(0)
    logits = torch.randn(7, 4, dtype=torch.float64)
    targets = torch.tensor([0, 1, 2, 3, 0, 2, 1])
    alpha = [0.1, 0.2, 0.3, 0.4]
    loss = FocalLoss(torch.tensor(alpha, dtype=torch.float64), gamma=2.0)(logits, targets)
    assert loss.item() == pytest.approx(closed_form(logits, targets, alpha, 2.0), rel=1e-12)


def test_gamma_zero_is_weighted_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(16, 10)
    targets = torch.randint(0, 10, (16,))
    alpha = torch.rand(10)
    focal = FocalLoss(alpha, gamma=0.0)(logits, targets)
    weighted_ce = F.cross_entropy(logits, targets, weight=alpha, reduction="none").mean()
    assert torch.allclose(focal, weighted_ce, atol=1e-6)


def test_gradient_matches_finite_differences():
    torch.manual_seed(2)
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 1, 0])
    loss_fn = FocalLoss(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), gamma=2.0)
    assert torch.autograd.gradcheck(lambda z: loss_fn(z, targets), (logits,), eps=1e-6, atol=1e-8)


def test_gradient_of_closed_form_analytic():
    """d FL / d z for one example against the analytic derivative of the closed form."""
    z = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    t, gamma, a = 0, 2.0, 0.7
    FocalLoss(torch.tensor([a, 1.0, 1.0], dtype=torch.float64), gamma=gamma)(z, torch.tensor([t])).backward()
    p = torch.softmax(z.detach(), dim=-1)[0]
    pt = p[t]
    # dFL/dp_t = a * [gamma (1-p_t)^(gamma-1) log p_t - (1-p_t)^gamma / p_t]; dp_t/dz_j = p_t (delta_tj - p_j)
    dfl_dpt = a * (gamma * (1 - pt) ** (gamma - 1) * torch.log(pt) - (1 - pt) ** gamma / pt)
    expected = dfl_dpt * pt * (torch.eye(3, dtype=torch.float64)[t] - p)
    assert torch.allclose(z.grad[0], expected, atol=1e-12)


def test_stable_for_extreme_logits():
    logits = torch.tensor([[200.0, -200.0, 0.0], [-300.0, 300.0, 0.0]], requires_grad=True)
    targets = torch.tensor([0, 0])  # first confidently right, second confidently wrong
    loss = FocalLoss(torch.tensor([1.0, 1.0, 1.0]), gamma=2.0).per_example(logits, targets)
    assert torch.isfinite(loss).all()
    assert loss[0].item() == pytest.approx(0.0, abs=1e-30)
    assert loss[1].item() == pytest.approx(600.0, rel=1e-6)  # -log p_t = 600, modulator = 1
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_focusing_downweights_easy_examples():
    easy = torch.tensor([[4.0, 0.0]])
    hard = torch.tensor([[0.0, 2.0]])
    t = torch.tensor([0])
    ce, fl = FocalLoss(gamma=0.0), FocalLoss(gamma=2.0)
    assert fl(easy, t) / ce(easy, t) < 0.01
    assert fl(hard, t) / ce(hard, t) > 0.7


def test_temperature_divides_logits():
    logits = torch.tensor([[3.0, 1.0, 0.0]])
    t = torch.tensor([0])
    assert torch.allclose(
        FocalLoss(gamma=2.0)(logits, t, temperature=1.5), FocalLoss(gamma=2.0)(logits / 1.5, t)
    )


def test_rejects_negative_gamma():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1.0)
