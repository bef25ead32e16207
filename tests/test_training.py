import random
from dataclasses import replace

import pytest
import torch
from conftest import KEYWORDS, tiny_classifier, tiny_train_config, write_keyword_jsonl

from manga_intent.batching import collate, encode_texts, length_grouped_batches
from manga_intent.data import DataSplits, load_jsonl, make_splits
from manga_intent.training import EarlyStopping, TrainConfig, default_learning_rate, train_classifier

LABELS = list(KEYWORDS)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    path = write_keyword_jsonl(tmp_path_factory.mktemp("d") / "kw.jsonl", n=320)
    return make_splits(load_jsonl(path).examples, seed=42)


def _train(splits, tokenizer, kind="bert", **overrides):
    config = tiny_train_config(**overrides)
    model = tiny_classifier(kind, num_labels=len(LABELS), seed=config.init_seed)
    return train_classifier(
        splits.train, splits.val, LABELS, config, model_and_tokenizer=(model, tokenizer), progress=False
    )


def test_tiny_model_learns_keyword_task(splits, tokenizer):
    result = _train(splits, tokenizer)
    assert result.history[-1].val_accuracy >= 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.examples_seen == len(splits.train) * len(result.history)
    assert result.examples_per_second > 0


@pytest.mark.parametrize("kind", ["distilbert", "roberta"])
def test_other_architectures_train(splits, tokenizer, kind):
    result = _train(splits, tokenizer, kind=kind, epochs=2)
    assert len(result.history) == 2 and all(h.train_loss > 0 for h in result.history)


def test_same_seeds_same_model_and_different_sampler_seed_differs(splits, tokenizer):
    a = _train(splits, tokenizer, epochs=1)
    b = _train(splits, tokenizer, epochs=1)
    c = _train(splits, tokenizer, epochs=1, sampler_seed=7)
    sa, sb, sc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_early_stopping_rule():
    stopper = EarlyStopping(patience=2)
    assert stopper.update(1.0) and not stopper.should_stop
    assert not stopper.update(1.1) and not stopper.should_stop
    assert stopper.update(0.9)  # improvement resets the count
    assert not stopper.update(0.95) and not stopper.update(0.91)
    assert stopper.should_stop


def test_training_stops_early_and_keeps_best_epoch(splits, tokenizer):
    # with shuffled training labels the model can only memorise, so validation loss soon rises
    rng = random.Random(0)
    labels = [e.label for e in splits.train]
    rng.shuffle(labels)
    noisy = DataSplits(
        [replace(e, label=label) for e, label in zip(splits.train, labels)], splits.val, splits.test
    )
    result = _train(noisy, tokenizer, epochs=12, patience=2, early_stopping_after=0.0)
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 2
    assert any("early stopping" in n for n in result.notes)


def test_overfit_guard_reported_and_enforced(splits, tokenizer):
    reported = _train(splits, tokenizer, epochs=2, overfit_gap=-100.0)
    assert not reported.overfit_guard_triggered and len(reported.history) == 2
    assert any("gap" in n for n in reported.notes)
    enforced = _train(splits, tokenizer, epochs=3, overfit_gap=-100.0, enforce_overfit_guard=True)
    assert enforced.overfit_guard_triggered and enforced.stopped_early
    assert len(enforced.history) == 1 and enforced.best_epoch == 1


def test_pad_to_max_batching_runs(splits, tokenizer):
    result = _train(splits, tokenizer, epochs=1, batching="pad_to_max", max_length=32)
    assert len(result.history) == 1


def test_length_grouped_batches_cover_everything_with_little_padding(tokenizer):
    texts = ["hi"] * 50 + ["a much longer message about berserk deluxe volumes and shipping times"] * 50
    encoded = encode_texts(tokenizer, texts, 64)
    lengths = [len(r) for r in encoded.input_ids]
    batches = length_grouped_batches(lengths, 10, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(100))
    widths = [collate(encoded, b, 0)["input_ids"].shape[1] for b in batches]
    assert min(widths) == max(lengths[:50]) and max(widths) == max(lengths)


def test_config_validation_and_default_rate():
    with pytest.raises(ValueError, match="epochs must be >= 1.*lr_decay"):
        TrainConfig(epochs=0, lr_decay=1.5).validate()
    small, base = tiny_classifier("bert").config, tiny_classifier("bert").config
    small.hidden_size, base.hidden_size = 384, 768
    assert default_learning_rate(small) > default_learning_rate(base)
