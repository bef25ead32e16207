"""Batched eager inference: logits and probabilities for a list of texts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from manga_intent.batching import encode_texts, iter_eval_batches
from manga_intent.data import clean_text


@torch.inference_mode()
def predict_logits(
    model, tokenizer, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64
) -> np.ndarray:
    """Logits in the input order; batches are length-sorted internally to avoid padding."""
    model.eval()
    encoded = encode_texts(tokenizer, [clean_text(t) for t in texts], max_length)
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for indices, batch in iter_eval_batches(encoded, batch_size, tokenizer.pad_token_id):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        out[indices] = logits.float().numpy()
    return out


@torch.inference_mode()
def predict_logits_and_features(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 64,
    cleaner: Callable[[str], str] = clean_text,
) -> tuple[np.ndarray, np.ndarray]:
    """Logits and pooled features (what the compiled artifact's `features` output holds), in input order.

    `cleaner` is the serving normalisation; the robustness suite swaps it to measure that defence alone.
    """
    from manga_intent.compiled import _final_linear  # the same feature definition as the ONNX export

    model.eval()
    native = hasattr(model, "features") and hasattr(model.config, "pooling")
    captured: list = []
    hook = (
        None
        if native
        else _final_linear(model).register_forward_hook(
            lambda module, inputs, output: captured.append(inputs[0])
        )
    )
    encoded = encode_texts(tokenizer, [cleaner(t) for t in texts], max_length)
    logits_out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    features_out = None
    try:
        for indices, batch in iter_eval_batches(encoded, batch_size, tokenizer.pad_token_id):
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            features = out.features if native else captured.pop()
            if features_out is None:
                features_out = np.zeros((len(texts), features.shape[1]), dtype=np.float32)
            logits_out[indices] = out.logits.float().numpy()
            features_out[indices] = features.float().numpy()
    finally:
        if hook is not None:
            hook.remove()
    if features_out is None:
        features_out = np.zeros((len(texts), 0), dtype=np.float32)
    return logits_out, features_out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top_k(probs_row: np.ndarray, labels: Sequence[str], k: int = 3) -> list[dict]:
    order = np.argsort(-probs_row)[:k]
    return [{"intent": labels[i], "confidence": round(float(probs_row[i]), 6)} for i in order]
