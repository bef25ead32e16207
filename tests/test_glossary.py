"""The JA-EN glossary: what it inserts, that it lives in the tokenizer and travels with the saved model and
the compiled artifact, and when `auto` turns it on."""

import numpy as np
import pytest
from conftest import tiny_pooled_classifier, tiny_train_config, two_intent_rows

from manga_intent.data import Example
from manga_intent.glossary import (
    JA_EN_SHOP_GLOSSARY,
    attach_glossary,
    gloss_text,
    has_glossary,
    tokenizer_for_training,
    vocabulary_lacks_japanese,
)

JP_EN = [
    "交換してください order 1209",
    "スタッフに代わってください",
    "送料無料キャンペーンやってますか? 全巻セット",
    "クーポンコード入力したら error が出る",
    "where is my order",  # no Japanese: untouched
]


def test_each_term_gets_its_english_gloss_once_and_english_text_is_untouched():
    assert gloss_text("交換してください") == "交換 exchange してください"
    assert gloss_text("where is my order?") == "where is my order?"
    # the longer term wins and the shorter one inside it is not glossed again
    assert gloss_text("全巻") == "全巻 all volumes set "
    assert "volume" not in gloss_text("全巻").replace("volumes", "")
    # two adjacent terms each get theirs
    assert gloss_text("送料無料") == "送料 shipping cost 無料 free "
    assert all(gloss not in term for term, gloss in JA_EN_SHOP_GLOSSARY.items())
    # a single-character term inside a common word is not glossed there: 日本 is Japan, not "book"
    assert gloss_text("日本に送れますか") == "日本 Japan に送れますか"
    assert "book" not in gloss_text("本当に届く?")


def test_the_tokenizer_glosses_exactly_as_the_python_function(tokenizer):
    glossed = attach_glossary(tokenizer)
    assert has_glossary(glossed) and not has_glossary(tokenizer)
    for text in JP_EN:
        assert glossed(text)["input_ids"] == tokenizer(gloss_text(text))["input_ids"], text
    assert "exchange" in glossed.tokenize(JP_EN[0]) and "exchange" not in tokenizer.tokenize(JP_EN[0])
    # same special tokens, padding and model inputs as the tokenizer it wraps
    assert glossed.pad_token_id == tokenizer.pad_token_id and glossed.cls_token_id == tokenizer.cls_token_id
    batch = glossed(JP_EN, padding=True)
    assert set(batch) == set(tokenizer(JP_EN, padding=True))
    assert attach_glossary(glossed) is glossed  # attached once


def test_the_glossary_survives_save_and_autotokenizer(tmp_path, tokenizer):
    from transformers import AutoTokenizer

    attach_glossary(tokenizer).save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert has_glossary(loaded)
    assert loaded(JP_EN)["input_ids"] == tokenizer([gloss_text(t) for t in JP_EN])["input_ids"]


def _japanese_speaking_tokenizer(tokenizer, tmp_path):
    """The packaged vocabulary plus every character of the glossary's terms (and its ## continuation)."""
    from transformers import BertTokenizerFast

    vocab = list(tokenizer.get_vocab())
    chars = sorted({ch for term in JA_EN_SHOP_GLOSSARY for ch in term})
    extra = [t for ch in chars for t in (ch, f"##{ch}") if t not in tokenizer.get_vocab()]
    (tmp_path / "vocab.txt").write_text(
        "\n".join(sorted(vocab, key=tokenizer.get_vocab().get) + extra) + "\n"
    )
    return BertTokenizerFast(str(tmp_path / "vocab.txt"), do_lower_case=True, strip_accents=False)


def test_auto_glosses_only_for_a_vocabulary_that_cannot_spell_japanese(tmp_path, tokenizer):
    assert vocabulary_lacks_japanese(tokenizer)
    glossed, note = tokenizer_for_training(tokenizer, "auto")
    assert has_glossary(glossed) and "Japanese shop terms" in note

    speaking = _japanese_speaking_tokenizer(tokenizer, tmp_path)
    assert not vocabulary_lacks_japanese(speaking)
    same, note = tokenizer_for_training(speaking, "auto")
    assert same is speaking and "spells" in note
    assert has_glossary(tokenizer_for_training(speaking, "on")[0])  # on: whatever the vocabulary

    assert tokenizer_for_training(tokenizer, "off") == (tokenizer, None)
    with pytest.raises(ValueError, match="ja_en_glossary must be one of"):
        tokenizer_for_training(tokenizer, "yes")


def test_a_trained_model_saves_its_glossed_tokenizer_and_compiles_with_it(tmp_path, tokenizer):
    from manga_intent.compiled import CompiledClassifier, compile_classifier
    from manga_intent.inference import predict_logits
    from manga_intent.model_io import load_trained, save_model
    from manga_intent.training import TrainConfig, train_classifier

    with pytest.raises(ValueError, match="ja_en_glossary"):
        TrainConfig(ja_en_glossary="maybe").validate()
    train, val = two_intent_rows(24)
    train += [Example("注文した本はどこ", "l0", "train"), Example("おすすめの漫画", "l1", "train")]
    result = train_classifier(
        train,
        val,
        ["l0", "l1"],
        tiny_train_config(epochs=2),
        model_and_tokenizer=(tiny_pooled_classifier(num_labels=2), tokenizer),
        progress=False,
    )
    assert has_glossary(result.tokenizer)
    assert any(note.startswith("JA-EN glossary:") for note in result.notes)
    assert result.config.ja_en_glossary == "auto"

    save_model(result.model, result.tokenizer, tmp_path / "model", {"labels": ["l0", "l1"]})
    model, loaded, _ = load_trained(tmp_path / "model")
    assert has_glossary(loaded)
    eager = predict_logits(model, loaded, JP_EN, max_length=64)
    compile_classifier(
        model,
        loaded,
        tmp_path / "onnx",
        labels=["l0", "l1"],
        ood_threshold=-1.0,
        temperature=1.0,
        backend="onnx",
        max_length=64,
    )
    compiled = CompiledClassifier(tmp_path / "onnx")
    assert has_glossary(compiled.tokenizer)
    assert np.abs(compiled.logits(JP_EN) - eager).max() <= 1e-4
    # without the glossary the model reads different tokens: the artifact really uses it
    plain = predict_logits(model, tokenizer, JP_EN[:1], max_length=64)
    assert np.abs(plain - eager[:1]).max() > 1e-6


def test_the_legacy_recipe_keeps_the_base_tokenizer(tokenizer):
    from manga_intent.training import LEGACY_RECIPE

    assert LEGACY_RECIPE.ja_en_glossary == "off"
    assert tokenizer_for_training(tokenizer, LEGACY_RECIPE.ja_en_glossary)[0] is tokenizer


def test_the_cli_switches_the_glossary():
    from manga_intent.cli import build_parser, train_config_from_args

    def config(*options):
        return train_config_from_args(
            build_parser().parse_args(["train", "--data", "x.jsonl", "--out", "m", *options])
        )

    assert config().ja_en_glossary == "auto"
    assert config("--ja-en-glossary", "off").ja_en_glossary == "off"
    assert config("--recipe", "legacy").ja_en_glossary == "off"
    assert config("--recipe", "legacy", "--ja-en-glossary", "on").ja_en_glossary == "on"
