"""Recipe v2 pieces with tiny random encoders: pooling, HF save/load, head LR, frozen embeddings, step
budget, EMA, R-Drop, label smoothing, oversampling, threads, bf16 parity, tokenizer coverage."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import KEYWORDS, tiny_classifier, tiny_pooled_classifier, write_keyword_jsonl

from manga_intent.auxiliary import AuxiliaryBlock, hardest_share
from manga_intent.coverage import tokenizer_coverage
from manga_intent.cpu import cgroup_cpu_limit, configure_threads, resolve_bf16, usable_cpus
from manga_intent.data import Example, load_jsonl, make_splits
from manga_intent.inference import predict_logits
from manga_intent.loss import FocalLoss, build_loss, symmetric_kl
from manga_intent.modeling import (
    PooledEncoderForSequenceClassification,
    pool,
    pooling_from_sentence_transformers,
)
from manga_intent.optim import discriminative_param_groups
from manga_intent.training import (
    LEGACY_RECIPE,
    TrainConfig,
    _WeightAverage,
    describe_step_budget,
    oversampled_indices,
    step_budget,
    train_classifier,
    with_step_budget,
)

LABELS = list(KEYWORDS)


def test_the_default_step_budget_grows_with_the_data():
    """250 steps are 6 epochs of the seed corpus but under one pass over a 9,000-row public set; the
    default budget covers at least `min_epochs` passes, and a budget the user gives is the budget."""
    v2 = TrainConfig()
    assert step_budget(v2, 40) == 250  # 1,280 rows at batch 32: the step budget binds, as before
    assert step_budget(v2, 282) == 282 * 3  # 9,003 rows: three passes
    assert step_budget(replace(v2, epochs=2), 282) == 564  # `epochs` still caps
    assert step_budget(replace(v2, max_steps=None), 40) == 40 * v2.epochs
    with pytest.raises(ValueError, match="min_epochs"):
        replace(v2, min_epochs=-1).validate()

    from manga_intent.cli import build_parser, train_config_from_args

    def cli(*options):
        return train_config_from_args(
            build_parser().parse_args(["train", "--data", "x", "--out", "m", *options])
        )

    assert cli().min_epochs == v2.min_epochs and cli().max_steps == 250
    assert cli("--max-steps", "100").min_epochs == 0.0  # exactly 100 steps
    assert cli("--max-steps", "100", "--min-epochs", "2").min_epochs == 2.0
    assert cli("--min-epochs", "5").min_epochs == 5.0

    from manga_assets.trained_model import TrainedModelConfig, recipe

    assert recipe(TrainedModelConfig(), 42, None).min_epochs == v2.min_epochs  # the asset's default too
    assert recipe(TrainedModelConfig(max_steps=4), 42, None).min_epochs == 0.0
    assert recipe(TrainedModelConfig(max_steps=4, min_epochs=2), 42, None).min_epochs == 2.0
    assert recipe(TrainedModelConfig(max_steps=0), 42, None).max_steps is None  # 0 = `epochs` passes
    assert cli("--max-steps", "0").max_steps is None
    # a study's searched epochs replace the step budget, unless the run config gives one
    tuned = recipe(TrainedModelConfig(), 42, {"epochs": 3, "lr": 1e-4})
    assert (tuned.max_steps, tuned.epochs, tuned.lr) == (None, 3, 1e-4)
    assert recipe(TrainedModelConfig(max_steps=9), 42, {"epochs": 3}).max_steps == 9

    from manga_assets.methods_comparison import MethodsComparisonConfig

    assert MethodsComparisonConfig().base_config() == v2
    assert MethodsComparisonConfig(max_steps=7).base_config() == replace(v2, max_steps=7, min_epochs=0.0)
    compare_args = build_parser().parse_args(["compare", "--data", "x", "--out", "o", "--max-steps", "7"])
    assert with_step_budget(v2, compare_args.max_steps, None) == replace(v2, max_steps=7, min_epochs=0.0)

    assert describe_step_budget(v2) == f"{v2.max_steps} steps or {v2.min_epochs:g} passes, whichever is more"
    assert describe_step_budget(replace(v2, min_epochs=0.0)) == f"{v2.max_steps} steps"
    # the help text states the defaults by hand (the CLI does not import torch to print help)
    train_help = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    assert f"by default {v2.max_steps} steps" in train_help and f"({v2.min_epochs:g})" in train_help


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return make_splits(
        load_jsonl(write_keyword_jsonl(tmp_path_factory.mktemp("d") / "kw.jsonl", n=200)).examples
    )


def fast(**overrides) -> TrainConfig:
    return TrainConfig(
        **{
            "lr": 3e-3,
            "batch_size": 16,
            "max_steps": 12,
            "min_epochs": 0.0,  # the budgets below are exact
            "head_lr_multiplier": 1.0,
            "freeze_word_embeddings": False,
            "eval_every": 6,
            **overrides,
        }
    )


def test_pooling_modes_ignore_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(pool(hidden, mask, "mean"), torch.tensor([[2.0, 3.0]]))
    assert torch.equal(pool(hidden, mask, "cls"), torch.tensor([[1.0, 2.0]]))
    assert torch.equal(pool(hidden, mask, "max"), torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(pool(hidden, mask, "mean_sqrt_len"), torch.tensor([[4.0, 6.0]]) / 2**0.5)


def test_pooling_read_from_sentence_transformers_config(packaged_model_dir, tiny_base_dir):
    assert pooling_from_sentence_transformers(packaged_model_dir) == "mean"  # all-MiniLM-L6-v2
    assert pooling_from_sentence_transformers(tiny_base_dir) is None  # plain HF encoder: cls


def test_base_model_gets_its_pooling_and_a_fresh_head(tiny_base_dir):
    from manga_intent.model_io import load_base_for_training

    _, model = load_base_for_training(str(tiny_base_dir), LABELS)
    assert isinstance(model, PooledEncoderForSequenceClassification) and model.config.pooling == "cls"
    assert (
        not hasattr(model.encoder, "pooler") or model.encoder.pooler is None
    )  # the untrained pooler is dropped
    assert model.classifier.out_features == 4 and torch.all(model.classifier.bias == 0)
    _, legacy = load_base_for_training(str(tiny_base_dir), LABELS, architecture="hf")
    assert type(legacy).__name__ == "BertForSequenceClassification"


def test_saved_model_loads_with_plain_transformers(tmp_path, tokenizer):
    from transformers import AutoModelForSequenceClassification

    model = tiny_pooled_classifier(3).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "modeling.py").is_file()  # the code travels with the weights
    batch = tokenizer(["where is my order", "hi"], padding=True, return_tensors="pt")
    expected = model(**batch).logits
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.allclose(again(**batch).logits, expected, atol=1e-6)
    # a user without this package: plain transformers, local code, nothing downloaded
    script = (
        "import sys, torch; sys.modules['manga_intent'] = None\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        f"d = {str(tmp_path)!r}\n"
        "m = AutoModelForSequenceClassification.from_pretrained(d, trust_remote_code=True).eval()\n"
        "t = AutoTokenizer.from_pretrained(d)\n"
        "b = t(['where is my order', 'hi'], padding=True, return_tensors='pt')\n"
        "print(type(m).__module__); print(m(**b).logits.tolist())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    module, logits = proc.stdout.strip().splitlines()[-2:]
    assert module.startswith("transformers_modules")
    assert np.allclose(json.loads(logits), expected.tolist(), atol=1e-5)


def test_head_gets_its_own_learning_rate():
    model = tiny_pooled_classifier(3)
    groups, info = discriminative_param_groups(model, base_lr=1e-4, decay=0.9, head_lr_multiplier=10.0)
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["head"] == pytest.approx(1e-3) and rates["layer_2"] == pytest.approx(1e-4)
    assert rates["embeddings"] == pytest.approx(1e-4 * 0.9**3)
    with pytest.raises(ValueError, match="head_lr_multiplier"):
        discriminative_param_groups(model, base_lr=1e-4, decay=0.9, head_lr_multiplier=0)


def test_frozen_word_embeddings_stay_put_and_the_rest_trains(splits, tokenizer):
    model = tiny_pooled_classifier(4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_classifier(
        splits.train,
        splits.val,
        LABELS,
        fast(freeze_word_embeddings=True),
        model_and_tokenizer=(model, tokenizer),
        progress=False,
    )
    after = dict(result.model.named_parameters())
    word = "encoder.embeddings.word_embeddings.weight"
    assert torch.equal(after[word], before[word])
    assert not torch.equal(after["classifier.weight"], before["classifier.weight"])
    assert not torch.equal(
        after["encoder.encoder.layer.0.attention.self.query.weight"],
        before["encoder.encoder.layer.0.attention.self.query.weight"],
    )
    assert word not in {n for g in result.param_groups for n in [g.name]}
    assert any("frozen" in n for n in result.notes)


def test_cached_frozen_blocks_equal_the_full_forward_pass(tokenizer):
    model = tiny_pooled_classifier(4).eval()
    batch = tokenizer(["where is my order", "any isekai like frieren? 12"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask)
        for blocks in (0, 1, 2):
            split = model.forward_from_hidden(model.hidden_below(ids, mask, blocks), mask, blocks)
            assert torch.allclose(split.logits, full.logits, atol=1e-5)
            assert torch.allclose(split.features, full.features, atol=1e-5)


def test_frozen_bottom_blocks_stay_put_and_train_from_the_cache(splits, tokenizer):
    from manga_intent.inference import predict_logits
    from manga_intent.training import _FrozenBottom

    model = tiny_pooled_classifier(4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_classifier(
        splits.train,
        splits.val,
        LABELS,
        fast(frozen_layers=2, max_steps=36, head_lr_multiplier=10.0),
        model_and_tokenizer=(model, tokenizer),
        progress=False,
    )
    after = dict(result.model.named_parameters())
    frozen = [
        n
        for n in after
        if n.startswith(("encoder.embeddings.", "encoder.encoder.layer.0.", "encoder.encoder.layer.1."))
    ]
    trained = [n for n in after if n.startswith("encoder.encoder.layer.2.") or n.startswith("classifier.")]
    assert frozen and all(torch.equal(after[n], before[n]) for n in frozen)
    assert all(not torch.equal(after[n], before[n]) for n in trained if n.endswith("weight"))
    assert any("cached" in n for n in result.notes) and result.best.val_accuracy > 0.5
    # what the trainer scored from the cache is what plain inference computes
    from manga_intent.batching import encode_texts

    texts = [e.text for e in splits.val]
    encoded = encode_texts(tokenizer, texts, 128, [LABELS.index(e.label) for e in splits.val])
    cache = _FrozenBottom(result.model, 2, encoded, tokenizer.pad_token_id)
    hidden, mask = cache.batch(list(range(8)))
    with torch.no_grad():
        cached = result.model.forward_from_hidden(hidden, mask, 2).logits.numpy()
    assert np.allclose(cached, predict_logits(result.model, tokenizer, texts[:8]), atol=1e-4)
    with pytest.raises(ValueError, match="leaves no block"):
        train_classifier(
            splits.train,
            splits.val,
            LABELS,
            fast(frozen_layers=3),
            model_and_tokenizer=(tiny_pooled_classifier(4), tokenizer),
            progress=False,
        )


def test_the_defences_rows_train_from_the_frozen_cache_as_through_the_whole_encoder(splits, tokenizer):
    """With frozen bottom blocks, the out-of-scope and attacked rows (and the consistency term's clean
    originals) also start from cached hidden states; without dropout that is the same training."""

    class Uncached(PooledEncoderForSequenceClassification):
        def supports_block_cache(self) -> bool:
            return False

    config = fast(
        frozen_layers=2,
        max_steps=6,
        bf16="off",
        outlier_exposure_weight=0.5,
        outlier_batch_size=4,
        adversarial_weight=1.0,
        adversarial_batch_size=4,
        adversarial_consistency=0.5,
    )
    outliers = ["do you sell concert tickets", "what is the weather in osaka", "asdf qwer zxcv"] * 3
    trained = {}
    for name, cls in (("cached", PooledEncoderForSequenceClassification), ("uncached", Uncached)):
        model = cls(tiny_pooled_classifier(4).config)
        model.load_state_dict(tiny_pooled_classifier(4).state_dict())
        result = train_classifier(
            splits.train,
            splits.val,
            LABELS,
            config,
            model_and_tokenizer=(model, tokenizer),
            progress=False,
            outlier_texts=outliers,
        )
        assert any("defences' rows" in n for n in result.notes) == (name == "cached")
        trained[name] = dict(result.model.named_parameters())
    for name, value in trained["cached"].items():
        assert torch.allclose(value, trained["uncached"][name], atol=1e-5), name


def test_step_budget_is_the_schedule_and_evaluations_follow_eval_every(splits, tokenizer):
    result = train_classifier(
        splits.train,
        splits.val,
        LABELS,
        fast(max_steps=15, eval_every=5, patience=10),
        model_and_tokenizer=(tiny_pooled_classifier(4), tokenizer),
        progress=False,
    )
    assert result.steps == 15 and [h.step for h in result.history] == [5, 10, 15]
    assert result.examples_seen == 15 * 16  # 160 rows, full batches of 16
    assert all(0 <= h.val_macro_f1 <= 1 for h in result.history)
    assert result.best.val_macro_f1 == max(h.val_macro_f1 for h in result.history)


def test_a_step_budget_under_min_epochs_passes_is_raised_to_them(splits, tokenizer):
    per_epoch = -(-len(splits.train) // 16)
    result = train_classifier(
        splits.train,
        splits.val,
        LABELS,
        fast(max_steps=3, min_epochs=2.0, eval_every=1000, patience=10),
        model_and_tokenizer=(tiny_pooled_classifier(4), tokenizer),
        progress=False,
    )
    assert per_epoch > 3 and result.steps == 2 * per_epoch


def _train_on_flat_validation(splits, tokenizer, **overrides):
    """Constant labels in val make macro-F1 flat after the first evaluation (patience 2, every 5 steps)."""
    flat_val = [replace(e, label="alpha") for e in splits.val]
    return train_classifier(
        splits.train,
        flat_val,
        LABELS,
        fast(lr=1e-9, max_steps=60, eval_every=5, patience=2, **overrides),
        model_and_tokenizer=(tiny_pooled_classifier(4), tokenizer),
        progress=False,
    )


def test_early_stopping_on_macro_f1_with_patience(splits, tokenizer):
    # no floor: stop `patience` evaluations after the first one
    result = _train_on_flat_validation(splits, tokenizer, early_stopping_after=0.0)
    assert result.stopped_early and len(result.history) == result.best_epoch + 2
    assert any("val_macro_f1" in n for n in result.notes)


def test_no_early_stop_before_half_the_step_budget(splits, tokenizer):
    # patience runs out at step 15, but the default floor holds training to half the 60-step budget
    result = _train_on_flat_validation(splits, tokenizer)
    assert TrainConfig().early_stopping_after == 0.5
    assert result.stopped_early and result.steps == 30 and result.history[-1].step == 30


def test_weight_average_is_a_bias_corrected_exponential_moving_average():
    """After t updates the average weighs the visited weights by decay^(t-i), normalised by 1 - decay^t,
    and gives the initial weights nothing: a 1-step run's average is the weights it reached."""
    layer = torch.nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    average = _WeightAverage(layer, decay=0.9)
    average.swap()  # nothing visited yet: the raw weights
    assert torch.allclose(layer.weight, torch.full((1, 2), 1.0))
    average.swap()
    with torch.no_grad():
        layer.weight.fill_(3.0)
    average.update()
    average.swap()
    assert torch.allclose(layer.weight, torch.full((1, 2), 3.0))  # not pulled back towards 1.0
    average.swap()
    with torch.no_grad():
        layer.weight.fill_(5.0)
    average.update()
    average.swap()
    expected = (0.1 * 0.9 * 3.0 + 0.1 * 5.0) / (1 - 0.9**2)
    assert torch.allclose(layer.weight, torch.full((1, 2), expected))
    average.swap()
    assert torch.allclose(layer.weight, torch.full((1, 2), 5.0))


def test_ema_and_rdrop_runs_train(splits, tokenizer):
    config = fast(ema_decay=0.9, rdrop_alpha=1.0, label_smoothing=0.1, head_dropout=0.1)
    model = tiny_pooled_classifier(4, head_dropout=0.1)
    result = train_classifier(
        splits.train, splits.val, LABELS, config, model_and_tokenizer=(model, tokenizer), progress=False
    )
    assert result.steps == 12 and np.isfinite(result.best.val_loss)


def test_label_smoothing_and_rdrop_terms():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1])
    smoothed = FocalLoss(None, gamma=0.0, label_smoothing=0.1)(logits, targets)
    assert smoothed.item() == pytest.approx(
        F.cross_entropy(logits, targets, label_smoothing=0.1).item(), rel=1e-10
    )
    assert build_loss("ce", alpha=None, gamma=2.0, label_smoothing=0.0).gamma == 0.0
    assert torch.allclose(symmetric_kl(logits, logits), torch.zeros(6, dtype=torch.float32), atol=1e-7)
    assert (symmetric_kl(logits, logits.flip(1)) > 0).all()


def test_oversampling_replicates_minorities():
    indices = oversampled_indices([0] * 8 + [1] * 2 + [2] * 1)
    counts = np.bincount([([0] * 8 + [1] * 2 + [2] * 1)[i] for i in indices])
    assert counts.tolist() == [8, 8, 8]
    with pytest.raises(ValueError, match="pick one"):
        TrainConfig(oversample=True, class_weighting=True).validate()


def test_legacy_recipe_is_the_old_cli_default():
    assert (
        LEGACY_RECIPE.architecture,
        LEGACY_RECIPE.loss,
        LEGACY_RECIPE.epochs,
        LEGACY_RECIPE.max_steps,
    ) == ("hf", "focal", 5, None)
    assert LEGACY_RECIPE.early_stopping_metric == "val_loss" and not LEGACY_RECIPE.freeze_word_embeddings


def test_thread_count_respects_affinity_and_cgroup_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None
    assert 1 <= usable_cpus() <= len(__import__("os").sched_getaffinity(0))
    assert configure_threads(1) == 1 and torch.get_num_threads() == 1
    configure_threads()
    assert torch.get_num_interop_threads() == 1


def test_bf16_is_opt_in_on_cpus_without_native_bf16_and_close_to_fp32(tokenizer):
    assert resolve_bf16("off") is False and resolve_bf16("on") is True
    with pytest.raises(ValueError):
        resolve_bf16("maybe")
    model = tiny_pooled_classifier(3).eval()
    batch = tokenizer(["where is my order", "any isekai like frieren"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        fp32 = model(**batch).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(**batch).logits.float()
    assert (fp32.argmax(1) == bf16.argmax(1)).all() and torch.allclose(fp32, bf16, atol=5e-2)


def test_tokenizer_coverage_per_segment(tokenizer):
    rows = [
        Example("where is my order", "x", meta={"segment": ["plain"]}),
        Example("この漫画の配送はいつ?", "x", meta={"segment": ["jp_en"]}),
    ]
    coverage = tokenizer_coverage(tokenizer, rows)
    assert coverage["plain"]["unk_rate"] == 0 and coverage["jp_en"]["unk_rate"] > 0.2
    assert coverage["all"]["messages"] == 2 and coverage["plain"]["tokens_per_message"] == 4


def test_predictions_are_deterministic_for_pooled_models(tokenizer):
    model = tiny_pooled_classifier(3).eval()
    a = predict_logits(model, tokenizer, ["where is my order", "hi there"])
    b = predict_logits(model, tokenizer, ["hi there", "where is my order"])
    assert np.allclose(a, b[::-1], atol=1e-6)


def test_hf_architecture_still_trains(splits, tokenizer):
    result = train_classifier(
        splits.train,
        splits.val,
        LABELS,
        fast(architecture="hf"),
        model_and_tokenizer=(tiny_classifier("bert", 4), tokenizer),
        progress=False,
    )
    assert result.steps == 12


def test_hundreds_of_labels_train_and_evaluate(tokenizer):
    from manga_intent.train_and_evaluate import run_training

    rng = np.random.default_rng(0)
    vocab = list(tokenizer.get_vocab())[2000:2600]
    examples = [
        Example(f"{vocab[i]} {vocab[int(rng.integers(600))]} {j}", f"intent_{i:03d}")
        for i in range(300)
        for j in range(5)
    ]
    splits = make_splits(examples, seed=3)
    labels = sorted({e.label for e in examples})
    assert len(labels) == 300 and {e.label for e in splits.val} == set(labels)
    result, metrics, card = run_training(
        splits,
        labels,
        fast(max_steps=3, eval_every=3),
        base_model=None,
        n_boot=0,
        progress=False,
        model_and_tokenizer=(tiny_pooled_classifier(300), tokenizer),
    )
    assert metrics["n"] == len(splits.test) == 300 and len(metrics["per_intent"]) == 300
    assert card["metrics_split"] == "test" and metrics["calibration"]["fitted_on"] == "val"


def test_selective_backprop_trains_each_steps_highest_loss_defence_rows(splits, tokenizer, monkeypatch):
    """With auxiliary_backprop_share 0.25 every step scores its 4 out-of-scope and 8 attacked rows and
    trains the 1 and 2 with the highest loss (ranking done without gradients, in eval mode)."""
    import manga_intent.training as training

    calls = []

    def recording(block, outlier_losses, attacked_losses, share):
        kept = hardest_share(block, outlier_losses, attacked_losses, share)
        calls.append((block, outlier_losses.clone(), attacked_losses.clone(), kept))
        return kept

    monkeypatch.setattr(training, "hardest_share", recording)
    outliers = ["do you sell concert tickets", "what is the weather in osaka", "asdf qwer zxcv"] * 3
    config = fast(
        max_steps=5,
        outlier_exposure_weight=0.5,
        outlier_batch_size=4,
        adversarial_weight=1.0,
        adversarial_batch_size=8,
        auxiliary_backprop_share=0.25,
    )
    train_classifier(
        splits.train,
        splits.val,
        LABELS,
        config,
        model_and_tokenizer=(tiny_pooled_classifier(4), tokenizer),
        progress=False,
        outlier_texts=outliers,
    )
    assert len(calls) == 5
    for block, outlier_losses, attacked_losses, kept in calls:
        assert len(block.outlier) == 4 and len(block.attacked) == 8
        assert len(kept.outlier) == 1 and len(kept.attacked) == 2
        assert outlier_losses.requires_grad is False and attacked_losses.requires_grad is False
        chosen = [i for i, row in enumerate(block.attacked) if row in kept.attacked]
        others = [i for i in range(8) if i not in chosen]
        assert attacked_losses[chosen].min() >= attacked_losses[others].max()
    with pytest.raises(ValueError, match="auxiliary_backprop_share"):
        fast(auxiliary_backprop_share=0.0).validate()


def test_hardest_share_keeps_the_highest_losses_in_order_and_at_least_one_row():
    block = AuxiliaryBlock(outlier=(10, 11, 12), attacked=(20, 21, 22, 23))
    kept = hardest_share(block, torch.tensor([0.1, 0.9, 0.5]), torch.tensor([3.0, 0.0, 2.0, 1.0]), 0.5)
    assert kept == AuxiliaryBlock(outlier=(11, 12), attacked=(20, 22))
    assert hardest_share(block, torch.tensor([0.1, 0.9, 0.5]), torch.ones(4), 0.1).outlier == (11,)
    assert hardest_share(AuxiliaryBlock((), (5,)), torch.zeros(0), torch.ones(1), 0.25).outlier == ()
    with pytest.raises(ValueError, match="one loss per row"):
        hardest_share(block, torch.zeros(2), torch.zeros(4), 0.5)
