"""Fixtures for the trust tests: canary payloads that leave a file behind if they ever run (a
pickle, a factory module), and tiny artifacts to corrupt."""

from __future__ import annotations

import io
import json
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import slimforge
from slimforge import loading, models
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
    loading.save(model, folder, config=config, metrics={"data": {"input_shape": [128]}})
    save_text_assets(folder, VocabTokenizer(tokens, max_length=128), ["neg", "pos"])
    return folder


@pytest.fixture(scope="session")
def tiny_image_run(tmp_path_factory) -> Path:
    """An untrained MLP run folder for digits (1x8x8 inputs, 10 classes)."""
    folder = tmp_path_factory.mktemp("image-run")
    torch.manual_seed(0)
    model = create_model("mlp", num_classes=10, in_channels=1, input_size=[8, 8])
    loading.save(model, folder, config={"data": {"name": "digits"}}, metrics={"data": {"input_shape": [1, 8, 8]}})
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


@dataclass
class CodeCanary:
    """A module ``<module>`` on sys.path whose import writes ``imported`` and whose factory
    ``<module>:build`` writes ``called``: if either file appears, code named by a file ran."""

    module: str
    imported: Path
    called: Path

    @property
    def factory(self) -> str:
        return f"{self.module}:build"

    def fired(self) -> bool:
        return self.imported.exists() or self.called.exists()


@pytest.fixture
def code_canary(tmp_path, monkeypatch) -> CodeCanary:
    folder = tmp_path / "canary_pkg"
    folder.mkdir()
    name = f"slimforge_canary_{tmp_path.name.replace('-', '_')}"
    imported, called = tmp_path / "IMPORTED", tmp_path / "CALLED"
    (folder / f"{name}.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(imported)!r}).write_text("imported")

        def build(num_classes=10, in_channels=1, input_size=None, **kwargs):
            pathlib.Path({str(called)!r}).write_text("called")
            import torch
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))
    """))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(models, "_TRUSTED_FACTORIES", set())  # nothing trusted from earlier tests
    yield CodeCanary(name, imported, called)
    sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A small CNN for the digits data, saved with its data section (loads in every command)."""
    out = tmp_path_factory.mktemp("trust") / "run"
    data = slimforge.load_dataset("digits")
    model = slimforge.create_model("cnn", width=4, **data.info.model_kwargs())
    slimforge.save(model, out, config={"data": {"name": "digits"}}, metrics={"test_accuracy": 0.1})
    return out


def tamper(run: Path, dest: Path, **spec_changes) -> Path:
    """A copy of run folder ``run`` at ``dest`` whose model.json has ``spec_changes`` applied."""
    import shutil

    shutil.copytree(run, dest)
    spec = json.loads((dest / "model.json").read_text())
    spec.update(spec_changes)
    (dest / "model.json").write_text(json.dumps(spec))
    return dest
