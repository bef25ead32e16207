"""Attention pooling: a learned softmax weighting of the tokens, zero-initialised so training starts from mean
pooling; saved, reloaded and compiled like the other pooling modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_pooled_classifier

from manga_intent.modeling import PooledEncoderForSequenceClassification, pool

TEXTS = ["where is my order", "any isekai like frieren but darker?", "この漫画は英語ですか? vol 3", "hi"]


def _with_weights(seed: int = 0) -> PooledEncoderForSequenceClassification:
    model = tiny_pooled_classifier(3, pooling="attention", seed=seed)
    torch.manual_seed(seed + 1)
    torch.nn.init.normal_(model.token_scorer.weight, std=0.5)  # as if trained: tokens weighted unevenly
    return model.eval()


def test_attention_pooling_weights_the_real_tokens_only():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(pool(hidden, mask, "attention", torch.zeros(1, 3)), pool(hidden, mask, "mean"))
    second = pool(
        hidden, mask, "attention", torch.tensor([[0.0, 30.0, 99.0]])
    )  # the padding's score is ignored
    assert torch.allclose(second, torch.tensor([[3.0, 4.0]]), atol=1e-6)
    with pytest.raises(ValueError, match="token scores"):
        pool(hidden, mask, "attention")


def test_a_fresh_attention_pooled_model_starts_as_the_mean_pooled_one(tokenizer):
    attention = tiny_pooled_classifier(3, pooling="attention", seed=4).eval()
    mean = tiny_pooled_classifier(3, pooling="mean", seed=4).eval()
    assert torch.all(attention.token_scorer.weight == 0) and torch.all(attention.token_scorer.bias == 0)
    mean.load_state_dict(
        {k: v for k, v in attention.state_dict().items() if not k.startswith("token_scorer")}
    )
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert torch.allclose(attention(**batch).features, mean(**batch).features, atol=1e-6)


def test_the_token_scorer_trains_with_the_head(tokenizer):
    from conftest import tiny_train_config, two_intent_rows

    from manga_intent.optim import discriminative_param_groups
    from manga_intent.training import train_classifier

    model = tiny_pooled_classifier(2, pooling="attention")
    groups, _ = discriminative_param_groups(model, base_lr=1e-4, decay=0.9, head_lr_multiplier=10.0)
    head = next(g for g in groups if g["name"] == "head")
    assert any(p is model.token_scorer.weight for p in head["params"])
    rows, val = two_intent_rows(16)
    result = train_classifier(
        rows,
        val,
        ["l0", "l1"],
        tiny_train_config(epochs=3),
        model_and_tokenizer=(model, tokenizer),
        progress=False,
    )
    assert result.model.token_scorer.weight.abs().sum() > 0


def test_saved_attention_pooled_model_reloads_and_compiles_to_the_same_logits(tmp_path, tokenizer):
    from transformers import AutoModelForSequenceClassification

    from manga_intent.compiled import CompiledClassifier, compile_classifier, parity_max_abs_diff
    from manga_intent.inference import predict_logits

    model = _with_weights()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    expected = model(**batch).logits
    model.save_pretrained(tmp_path / "model")
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    assert again.config.pooling == "attention"
    assert torch.allclose(again(**batch).logits, expected, atol=1e-6)
    compile_classifier(
        model,
        tokenizer,
        tmp_path / "onnx",
        labels=["a", "b", "c"],
        ood_threshold=-1.0,
        temperature=1.0,
        backend="onnx",
        max_length=64,
    )
    compiled = CompiledClassifier(tmp_path / "onnx")
    assert parity_max_abs_diff(compiled, model, TEXTS) <= 1e-4
    eager = predict_logits(model, tokenizer, TEXTS, max_length=64)
    assert np.abs(compiled.logits(TEXTS) - eager).max() <= 1e-4
