"""Shared fixtures: tiny randomly-initialised encoders built from configs with the packaged vocab.

Dropout is off in the tiny configs so a few epochs on a keyword task learn reliably."""

from __future__ import annotations

import json
import os
import random
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_REPO = Path(__file__).resolve().parents[1]
#: What a test run must never leave in the repository (MLflow's default artifact root is ./mlruns of the
#: working directory: an experiment created without an artifact location writes there).
_STRAY_OUTPUTS = ("mlruns", "mlartifacts", ".manga_home/mlflow.db")
_PRESENT_AT_START = {name for name in _STRAY_OUTPUTS if (_REPO / name).exists()}


def pytest_sessionfinish(session, exitstatus):
    stray = [n for n in _STRAY_OUTPUTS if (_REPO / n).exists() and n not in _PRESENT_AT_START]
    if stray:
        print(f"\nthe test run wrote {stray} into the repository {_REPO}: a test is missing a tmp path")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def packaged_model_dir() -> Path:
    from manga_intent.model_io import packaged_minilm_path

    return packaged_minilm_path()


@pytest.fixture(scope="session")
def tokenizer(packaged_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(packaged_model_dir, local_files_only=True)


def tiny_config(kind: str, num_labels: int = 3):
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    if kind == "bert":
        return BertConfig(
            vocab_size=30522,
            hidden_size=64,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=128,
            num_labels=num_labels,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    if kind == "distilbert":
        return DistilBertConfig(
            vocab_size=30522,
            dim=64,
            n_layers=3,
            n_heads=2,
            hidden_dim=128,
            max_position_embeddings=128,
            num_labels=num_labels,
            dropout=0.0,
            attention_dropout=0.0,
            seq_classif_dropout=0.0,
        )
    if kind == "roberta":
        return RobertaConfig(
            vocab_size=30522,
            hidden_size=64,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=128,
            max_position_embeddings=130,
            num_labels=num_labels,
            pad_token_id=1,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
    raise ValueError(kind)


def tiny_classifier(kind: str, num_labels: int = 3, seed: int = 0):
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(tiny_config(kind, num_labels))


def tiny_train_config(**overrides):
    """Training settings for a random tiny encoder: nothing pretrained to protect, so no step budget, frozen
    embeddings or head multiplier (recipe v2's defaults are for pretrained bases)."""
    from manga_intent.training import TrainConfig

    settings = {
        "epochs": 8,
        "max_steps": None,
        "lr": 3e-3,
        "batch_size": 16,
        "lr_decay": 0.9,
        "patience": 8,
        "overfit_gap": 10.0,
        "freeze_word_embeddings": False,
        "head_lr_multiplier": 1.0,
        # adversarial training is tested on its own (test_robustness, test_cli); here it would only slow
        # down and blur tests of other parts of the loop
        "adversarial_weight": 0.0,
        # the weight average is tested on its own (test_recipe_v2); it would lag a tiny model's fast learning
        "ema_decay": 0.0,
    }
    return TrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny random BERT encoder (no head) saved like a Hugging Face base model directory."""
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(tiny_config("bert")).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


KEYWORDS = {
    "alpha": ["horror", "berserk", "seinen", "dark"],
    "beta": ["order", "tracking", "package", "shipped"],
    "gamma": ["refund", "return", "damaged", "broken"],
    "delta": ["hello", "thanks", "bye", "hi"],
}
FILLER = ["please", "can", "you", "the", "my", "a", "now", "today", "manga", "vol", "is", "it"]


def keyword_rows(
    n: int, seed: int = 0, keywords: dict[str, list[str]] = KEYWORDS, filler: list[str] = FILLER
) -> list[tuple[str, str]]:
    """(text, label) rows of a learnable task: each label's messages hold one of its keywords among filler."""
    rng = random.Random(seed)
    labels = list(keywords)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        words = rng.sample(filler, 4) + [rng.choice(keywords[label])]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_keyword_jsonl(path: Path, n: int = 240, seed: int = 0, with_split: bool = False) -> Path:
    """A learnable labelled file: each label's messages contain one of its keywords."""
    with path.open("w", encoding="utf-8") as fh:
        for i, (text, label) in enumerate(keyword_rows(n, seed)):
            row = {"text": f"{text} {i}", "label": label}
            if with_split:
                row["split"] = ("train", "train", "train", "val", "test")[i % 5]
            fh.write(json.dumps(row) + "\n")
    return path


def free_port() -> int:
    """A free TCP port on the loopback interface, for servers the tests start."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exported_human_labels(uri: str | None = None):
    """A `human_labels` asset that records an export already in the artifact store (or none) for intent_dataset."""
    import dagster as dg

    from manga_assets.manifests import HumanLabelsExport

    @dg.asset(name="human_labels")
    def human_labels():  # no annotation: conftest uses postponed annotations
        manifest = HumanLabelsExport(uri=uri, labels=0)
        return dg.MaterializeResult(metadata={"manifest": dg.MetadataValue.json(manifest.as_dict())})

    return human_labels


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A real PostgreSQL server (installed if missing), shared by the session, stopped at its end."""
    import tempfile

    from postgres_server import PostgresServer

    root = Path(tempfile.mkdtemp(prefix="manga-pg-"))  # outside pytest's tmp: postgres must own it
    server = PostgresServer(root, free_port()).start()
    yield server
    server.stop()


def two_intent_rows(per_intent: int):
    """(train rows, val rows) of two easily told intents, `l0` and `l1`, for tiny training runs."""
    from manga_intent.data import Example

    rows = [Example(f"where is my order number {i}", "l0", "train") for i in range(per_intent)]
    rows += [Example(f"recommend a manga like volume {i}", "l1", "train") for i in range(per_intent)]
    return rows, [Example("where is my order", "l0", "val"), Example("recommend a manga", "l1", "val")]


def tiny_pooled_classifier(
    num_labels: int = 3, pooling: str = "mean", seed: int = 0, head_dropout: float = 0.0
):
    """Recipe v2's classifier (pooled encoder + fresh head) around a tiny random BERT encoder."""
    import torch

    from manga_intent.modeling import PooledEncoderConfig, PooledEncoderForSequenceClassification

    torch.manual_seed(seed)
    labels = [f"l{i}" for i in range(num_labels)]
    config = PooledEncoderConfig(
        encoder=tiny_config("bert").to_dict(),
        pooling=pooling,
        head_dropout=head_dropout,
        num_labels=num_labels,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    return PooledEncoderForSequenceClassification(config)


@pytest.fixture(scope="session")
def shared_label_studio(tmp_path_factory):
    """A real Label Studio server for the tests that each work in their own project (started once)."""
    from labeling.server import LabelStudioServer

    server = LabelStudioServer(port=free_port(), data_dir=tmp_path_factory.mktemp("label-studio-shared"))
    server.start()
    yield server
    server.stop()
