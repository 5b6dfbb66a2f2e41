"""Fixtures for the trust tests: canary payloads that leave a file behind if they ever run, and
tiny artifacts (no training) to corrupt."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from slimforge import artifacts
from slimforge.models import create_model


class Canary:
    """Unpickling this creates ``path`` (builtins.open in write mode): proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def canary_pickle(path: Path) -> bytes:
    """torch.save bytes whose loading with weights_only=False creates ``path``."""
    buffer = io.BytesIO()
    torch.save({"weight": Canary(path)}, buffer)
    return buffer.getvalue()


@pytest.fixture
def canary(tmp_path) -> Path:
    """Where a payload would leave its mark; each test asserts it never appears."""
    return tmp_path / "canary-ran"


@pytest.fixture(scope="session")
def tiny_text_run(tmp_path_factory) -> Path:
    """An untrained text-cnn run folder (model, vocab.json tokenizer, labels.json, config.yaml, metrics.json)."""
    from slimforge.text.predict import save_text_assets
    from slimforge.text.tokenizers import VocabTokenizer

    folder = tmp_path_factory.mktemp("text-run")
    tokens = ["[PAD]", "[UNK]", "good", "fun", "bad", "dull", "film"]
    torch.manual_seed(0)
    model = create_model("text-cnn", num_classes=2, vocab_size=len(tokens), pad_id=0, max_length=128)
    config = {"data": {"name": "text-csv", "options": {"tokenizer": "vocab"}}}
    artifacts.save(model, folder, config=config, metrics={"data": {"input_shape": [128]}})
    save_text_assets(folder, VocabTokenizer(tokens, max_length=128), ["neg", "pos"])
    return folder


@pytest.fixture(scope="session")
def tiny_image_run(tmp_path_factory) -> Path:
    """An untrained MLP run folder for digits (1x8x8 inputs, 10 classes)."""
    folder = tmp_path_factory.mktemp("image-run")
    torch.manual_seed(0)
    model = create_model("mlp", num_classes=10, in_channels=1, input_size=[8, 8])
    artifacts.save(model, folder, config={"data": {"name": "digits"}}, metrics={"data": {"input_shape": [1, 8, 8]}})
    return folder


@pytest.fixture(scope="session")
def text_corpus(tmp_path_factory) -> Path:
    """A CSV of 40 texts in the tiny run's vocabulary, labels 0/1."""
    path = tmp_path_factory.mktemp("corpus") / "reviews.csv"
    rows = [("good fun film", 1), ("bad dull film", 0)] * 20
    path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    return path


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a run folder to corrupt."""
    import shutil

    shutil.copytree(source, target)
    return target


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
