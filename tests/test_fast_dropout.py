"""The cheaper dropout masks: same rate and scaling as torch's dropout, switched in only while training."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config, tiny_pooled_classifier
from torch import nn

from manga_intent.fast_dropout import (
    ATTENTION_NAME,
    FastDropout,
    fast_dropout,
    fast_dropout_tensor,
    keep_mask,
    math_attention,
)


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5, 0.9])
def test_the_mask_drops_the_rate_in_every_position(p):
    torch.manual_seed(0)
    mask = keep_mask((401, 999), p)  # odd element count: the last 32-bit draw is half used
    assert mask.shape == (401, 999) and mask.dtype == torch.bool
    n = mask.numel()
    tolerance = 5 * (p * (1 - p) / n) ** 0.5
    assert abs((~mask).float().mean().item() - p) < tolerance
    # the two half-words of a draw carry different numbers of random bits: both must drop at the rate
    halves = (~mask).reshape(-1)[: n - n % 2].reshape(-1, 2).float().mean(0)
    assert torch.all((halves - p).abs() < 2 * tolerance), halves
    # and neighbouring elements are independent (no shared bits between them)
    flat = (~mask).reshape(-1).float()
    both = (flat[:-1] * flat[1:]).mean().item()
    assert abs(both - p * p) < 5 * (p * p * (1 - p * p) / n) ** 0.5


def test_the_mask_follows_the_torch_seed_and_rejects_a_bad_rate():
    torch.manual_seed(3)
    first = keep_mask((64, 64), 0.1)
    torch.manual_seed(3)
    assert torch.equal(first, keep_mask((64, 64), 0.1))
    assert keep_mask((10,), 0.0).all()
    with pytest.raises(ValueError, match=r"dropout rate must be in \[0, 1\), got 1"):
        keep_mask((3,), 1.0)


def test_dropout_keeps_the_expected_value_and_is_the_identity_in_evaluation():
    torch.manual_seed(0)
    x = torch.full((2000, 500), 2.0)
    out = fast_dropout_tensor(x, 0.1)
    assert out.unique().tolist() == [0.0, pytest.approx(2.0 / 0.9)]
    assert out.mean().item() == pytest.approx(2.0, rel=2e-3)
    assert fast_dropout_tensor(x, 0.1, training=False) is x
    assert fast_dropout_tensor(x, 0.0) is x


def test_off_the_cpu_torchs_own_dropout_runs():
    x = torch.empty(4, 8, device="meta")  # stands for an accelerator's tensor: the CPU mask must not meet it
    assert fast_dropout_tensor(x, 0.1).device.type == "meta"


def test_gradients_pass_through_the_kept_elements_only():
    torch.manual_seed(1)
    x = torch.ones(50, 40, requires_grad=True)
    out = fast_dropout_tensor(x, 0.3)
    out.sum().backward()
    kept = out.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.7))
    assert torch.all(x.grad[~kept] == 0)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive"])
def test_math_attention_is_sdpa_when_nothing_is_dropped(mask_kind):
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 7, 8) for _ in range(3))
    padding = torch.ones(3, 1, 7, 7, dtype=torch.bool)
    padding[0, ..., 5:] = False  # the first row's last two tokens are padding
    mask = {"none": None, "bool": padding, "additive": torch.zeros(3, 1, 7, 7).masked_fill(~padding, -1e9)}[
        mask_kind
    ]
    expected = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)
    got = math_attention(q, k, v, mask, 8**-0.5, lambda probabilities: probabilities)
    assert got.shape == (3, 7, 2, 8)
    assert torch.allclose(got, expected, atol=1e-5)


def _dropout_model():
    from transformers import AutoModel

    config = tiny_config("bert")
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.1
    return AutoModel.from_config(config, attn_implementation="sdpa")


def test_the_switch_covers_every_dropout_and_the_attention_then_restores_them():
    model = _dropout_model()
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    with fast_dropout(model) as sites:
        assert all(type(m) is FastDropout for m in dropouts)
        assert model.config._attn_implementation == ATTENTION_NAME
        assert (sites.modules, sites.attention_layers) == (len(dropouts), model.config.num_hidden_layers)
    assert all(type(m) is nn.Dropout for m in dropouts)
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError, match="boom"), fast_dropout(model):  # restored on an error too
        raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa" and all(type(m) is nn.Dropout for m in dropouts)


def test_evaluation_outputs_are_unchanged_and_training_outputs_follow_the_seed(monkeypatch):
    import manga_intent.fast_dropout as module

    model = _dropout_model()
    ids = torch.randint(1000, 5000, (4, 9))
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[1, 6:] = 0
    model.eval()
    before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    calls = []
    monkeypatch.setattr(module, "math_attention", lambda *a, **k: calls.append(1) or math_attention(*a, **k))
    with fast_dropout(model):
        assert torch.equal(model(input_ids=ids, attention_mask=mask).last_hidden_state, before)
        assert not calls  # evaluation keeps transformers' sdpa path
        model.train()
        torch.manual_seed(5)
        first = model(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.manual_seed(5)
        again = model(input_ids=ids, attention_mask=mask).last_hidden_state
        other = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert len(calls) == 3 * model.config.num_hidden_layers
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(first, before)


@pytest.mark.parametrize("frozen_layers", [0, 1])
def test_training_with_fast_dropout_learns_and_leaves_a_plain_model(tokenizer, frozen_layers):
    """With and without the frozen-block cache (its rows then start above block 1), the defences' rows on."""
    from conftest import tiny_train_config, two_intent_rows

    from manga_intent.training import train_classifier

    model = tiny_pooled_classifier(num_labels=2, head_dropout=0.2)
    encoder_config = model.encoder.config
    encoder_config.hidden_dropout_prob = encoder_config.attention_probs_dropout_prob = 0.1
    for m in model.encoder.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.1
    rows, val = two_intent_rows(24)
    result = train_classifier(
        rows,
        val,
        ["l0", "l1"],
        tiny_train_config(
            epochs=6,
            fast_dropout=True,
            frozen_layers=frozen_layers,
            adversarial_weight=1.0,
            adversarial_batch_size=8,
        ),
        model_and_tokenizer=(model, tokenizer),
        progress=False,
        outlier_texts=["do you sell concert tickets", "what is the weather in osaka", "asdf qwerty"],
    )
    assert result.history[-1].val_accuracy == 1.0
    # 3 blocks x (attention, attention output, feed-forward output) + embeddings + head; 3 attention layers
    expected = "dropout masks from manga_intent.fast_dropout: 11 dropout modules, attention probabilities in 3 layers"
    assert expected in result.notes
    assert any(note.startswith("outlier exposure on 3") for note in result.notes)
    assert any(note.startswith("adversarial training on") for note in result.notes)
    if frozen_layers:
        assert any(note.startswith("outputs of the frozen blocks cached") for note in result.notes)
    assert all(type(m) is nn.Dropout for m in result.model.modules() if isinstance(m, nn.Dropout))
    assert result.model.encoder.config._attn_implementation == "sdpa"


def test_the_cli_defaults_to_fast_dropout_and_can_turn_it_off():
    from manga_intent.cli import build_parser, train_config_from_args

    def config(*options):
        return train_config_from_args(
            build_parser().parse_args(["train", "--data", "x.jsonl", "--out", "m", *options])
        )

    assert config().fast_dropout is True
    assert config("--no-fast-dropout").fast_dropout is False
    assert config("--recipe", "legacy").fast_dropout is False  # the legacy recipe keeps torch's dropout
    assert config("--recipe", "legacy", "--fast-dropout").fast_dropout is True
