"""Fixtures for the adversarial suite: canary payloads and tiny run folders to tamper with."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import slimforge
from slimforge import models


@dataclass
class Canary:
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
def canary(tmp_path, monkeypatch) -> Canary:
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
    yield Canary(name, imported, called)
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
