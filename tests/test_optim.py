import pytest
import torch
from conftest import tiny_classifier
from torch import nn

from manga_intent.optim import (
    build_optimizer,
    discriminative_param_groups,
    find_encoder_layers,
    training_temperature,
    warmup_linear_factor,
)

BASE, DECAY = 2e-5, 0.8


def _lr_by_param(model, groups):
    return {id(p): (g["lr"], g["weight_decay"], g["name"]) for g in groups for p in g["params"]}


@pytest.mark.parametrize("kind", ["distilbert", "bert", "roberta"])
def test_layer_learning_rates_follow_the_seed_formula(kind):
    model = tiny_classifier(kind)
    groups, info = discriminative_param_groups(model, base_lr=BASE, decay=DECAY, weight_decay=0.01)
    lookup = _lr_by_param(model, groups)
    embeddings, layers = find_encoder_layers(model)
    num_layers = len(layers)
    assert num_layers == 3
    for index, layer in enumerate(layers):
        for p in layer.parameters():
            assert lookup[id(p)][0] == pytest.approx(BASE * DECAY ** (num_layers - 1 - index))
    for p in embeddings.parameters():
        assert lookup[id(p)][0] == pytest.approx(BASE * DECAY**num_layers)
    # top layer and the head share the base rate
    assert all(lookup[id(p)][0] == pytest.approx(BASE) for p in layers[-1].parameters())
    head = [p for n, p in model.named_parameters() if n.startswith(("classifier", "pre_classifier"))]
    assert head and all(lookup[id(p)][0] == BASE and lookup[id(p)][2] == "head" for p in head)
    # every trainable parameter in exactly one group
    counted = [id(p) for g in groups for p in g["params"]]
    assert len(counted) == len(set(counted)) == sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(i.num_params for i in info) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind", ["distilbert", "bert", "roberta"])
def test_no_weight_decay_on_bias_and_layernorm(kind):
    model = tiny_classifier(kind)
    groups, _ = discriminative_param_groups(model, base_lr=BASE, decay=DECAY, weight_decay=0.01)
    lookup = _lr_by_param(model, groups)
    layer_norm_params = {
        id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()
    }
    assert layer_norm_params
    for name, p in model.named_parameters():
        expected = 0.0 if (name.endswith("bias") or id(p) in layer_norm_params) else 0.01
        assert lookup[id(p)][1] == expected, name


def test_seed_table_relative_rates():
    """Seed table: layer 0 at 0.33x (0.8^5) and embeddings at 0.26x (0.8^6) for 6 layers."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(
        DistilBertConfig(vocab_size=100, dim=16, n_layers=6, n_heads=2, hidden_dim=32)
    )
    _, info = discriminative_param_groups(model, base_lr=1.0, decay=0.8)
    rates = {i.name: i.lr for i in info}
    assert rates["layer_5"] == 1.0 and rates["head"] == 1.0
    assert rates["layer_0"] == pytest.approx(0.32768)
    assert rates["embeddings"] == pytest.approx(0.262144)


def test_schedule_boundaries():
    assert warmup_linear_factor(0, 10, 100) == 0.0
    assert warmup_linear_factor(5, 10, 100) == 0.5
    assert warmup_linear_factor(10, 10, 100) == 1.0
    assert warmup_linear_factor(55, 10, 100) == 0.5
    assert warmup_linear_factor(100, 10, 100) == 0.0
    assert warmup_linear_factor(150, 10, 100) == 0.0
    assert warmup_linear_factor(0, 0, 100) == 1.0  # no warmup starts at the peak


def test_scheduler_drives_every_group():
    model = tiny_classifier("bert")
    optimizer, scheduler, _ = build_optimizer(
        model, base_lr=1e-3, decay=0.5, weight_decay=0.01, warmup_ratio=0.1, total_steps=100
    )
    peak = [g["initial_lr"] for g in optimizer.param_groups]
    assert all(g["lr"] == 0 for g in optimizer.param_groups)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(peak)
    for _ in range(90):
        optimizer.step()
        scheduler.step()
    assert all(g["lr"] == pytest.approx(0.0) for g in optimizer.param_groups)
    assert isinstance(optimizer, torch.optim.AdamW)


def test_temperature_annealing():
    assert training_temperature(0, 100, 1.5, 0.3) == 1.5
    assert training_temperature(15, 100, 1.5, 0.3) == pytest.approx(1.25)
    assert training_temperature(30, 100, 1.5, 0.3) == 1.0
    assert training_temperature(99, 100, 1.5, 0.3) == 1.0
    assert training_temperature(0, 100, 1.0, 0.3) == 1.0


def test_bad_decay_rejected():
    with pytest.raises(ValueError, match="decay"):
        discriminative_param_groups(tiny_classifier("bert"), base_lr=1e-3, decay=0.0)


def test_fused_adamw_matches_the_default_kernel():
    """The fused kernel (recipe v2's default, much faster on CPU) takes the same steps as torch's default."""
    from manga_intent.optim import make_adamw

    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    copies = [torch.nn.Parameter(w.detach().clone()) for w in weights]
    fused = make_adamw([{"params": weights, "lr": 1e-2, "weight_decay": 0.01}], 1e-2, "fused")
    default = make_adamw([{"params": copies, "lr": 1e-2, "weight_decay": 0.01}], 1e-2, "default")
    for _ in range(3):
        for params, optimizer in ((weights, fused), (copies, default)):
            optimizer.zero_grad()
            (params[0].sum() ** 2 + params[1].pow(3).sum()).backward()
            optimizer.step()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(weights, copies))
    with pytest.raises(ValueError, match="fused, foreach or default"):
        make_adamw([{"params": copies}], 1e-2, "sgd")
