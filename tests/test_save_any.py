"""Any model can be saved after pruning: a model built by the user's own code is saved with its
factory (replayed on load, with trust_code) or as a code-free torch.export program."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch

import slimforge
from slimforge import models
from slimforge.artifacts import ModelSpec, attach_spec
from slimforge.errors import ArtifactError
from slimforge.models import UntrustedCodeError

USER_MODULE = textwrap.dedent(
    """
    from torch import nn

    def build(width=32, classes=10):
        return nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes),
        )
    """
)


@pytest.fixture
def user_build(tmp_path, monkeypatch):
    """``mynets.build``: a factory in the user's own module, nothing trusted yet."""
    (tmp_path / "mynets.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mynets", raising=False)
    monkeypatch.setattr(models, "_TRUSTED_FACTORIES", set())
    import mynets

    yield mynets.build
    sys.modules.pop("mynets", None)


@pytest.fixture
def pruned(user_build):
    """A user-built model, pruned by slimforge (no spec: slimforge.create_model never saw it)."""
    torch.manual_seed(0)
    model = user_build(width=32).eval()
    x = torch.randn(4, 3, 16, 16)
    slimforge.prune(model, x, ratio=0.5)
    assert model[0].out_channels == 16
    return model, x


def test_saving_without_a_spec_names_the_options(user_build, tmp_path):
    with pytest.raises(ArtifactError, match=r"factory='pkg.module:build'.*program=True.*create_model"):
        slimforge.save(user_build(), tmp_path / "run")


def test_factory_save_replays_the_pruning_and_needs_trust(pruned, tmp_path):
    model, x = pruned
    slimforge.save(model, tmp_path / "run", factory="mynets:build", kwargs={"width": 32})
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    assert spec["name"] == "mynets:build" and [e["kind"] for e in spec["edits"]] == ["prune"]
    models._TRUSTED_FACTORIES.clear()  # a new process: the folder's factory is the file's choice
    sys.modules.pop("mynets", None)
    with pytest.raises(UntrustedCodeError, match="mynets:build"):
        slimforge.load(tmp_path / "run")
    assert "mynets" not in sys.modules  # refused before any import
    loaded = slimforge.load(tmp_path / "run", trust_code=True)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_factory_save_refuses_keywords_that_do_not_rebuild_the_model(pruned, tmp_path):
    model, _ = pruned
    with pytest.raises(ArtifactError, match=r"mynets:build\(width=16\).*cannot rebuild this model.*program=True"):
        slimforge.save(model, tmp_path / "run", factory="mynets:build", kwargs={"width": 16})
    assert not (tmp_path / "run").exists()


def test_factory_save_refuses_changes_slimforge_did_not_record(user_build, tmp_path):
    model = user_build(width=32)
    model[-1] = torch.nn.Linear(32, 3)  # replaced by hand: the factory builds 10 classes
    with pytest.raises(ArtifactError, match=r"does not rebuild this model.*7.weight: model \(3, 32\) vs rebuilt \(10, 32\)"):
        slimforge.save(model, tmp_path / "run", factory="mynets:build", kwargs={})


def test_attach_spec_after_pruning_works(pruned, tmp_path):
    """The advice 'attach_spec' used to give a folder failing with tensors of the wrong shape."""
    model, x = pruned
    attach_spec(model, ModelSpec("mynets:build", {"width": 32}))
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run", trust_code=True)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_attach_spec_with_other_edits_after_pruning_is_refused(pruned):
    model, _ = pruned
    with pytest.raises(ArtifactError, match=r"Attach the spec of the model as its factory builds it"):
        attach_spec(model, ModelSpec("mynets:build", {"width": 32}, [{"kind": "factorize", "layers": {}}]))


def test_program_save_loads_without_any_code(pruned, tmp_path):
    model, x = pruned
    slimforge.save(model, tmp_path / "run", program=True, example_inputs=x)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["export.json", "model.pt2"]
    models._TRUSTED_FACTORIES.clear()
    sys.modules.pop("mynets", None)
    program = slimforge.load(tmp_path / "run")  # no trust_code, no factory
    assert "mynets" not in sys.modules
    other = torch.randn(7, 3, 16, 16)  # another batch size: the batch dimension is dynamic
    with torch.no_grad():
        assert torch.allclose(program(x), model(x), atol=1e-6)
        assert torch.allclose(program(other), model(other), atol=1e-6)


def test_program_save_needs_an_example(pruned, tmp_path):
    model, _ = pruned
    with pytest.raises(slimforge.errors.ConfigError, match="example_inputs"):
        slimforge.save(model, tmp_path / "run", program=True)


def test_export_folder_with_a_path_outside_is_refused(pruned, tmp_path):
    model, x = pruned
    slimforge.save(model, tmp_path / "run", program=True, example_inputs=x)
    info = json.loads((tmp_path / "run" / "export.json").read_text())
    (tmp_path / "run" / "export.json").write_text(json.dumps({**info, "path": "../model.pt2"}))
    with pytest.raises(ArtifactError, match="'path' a file name in the folder"):
        slimforge.load(tmp_path / "run")


def test_pruned_then_factorised_user_model_replays_both(pruned, tmp_path):
    from slimforge.factorize import FactorizeConfig, factorize

    model, x = pruned
    factorize(model, FactorizeConfig(energy=0.5, keep_last=False))
    slimforge.save(model, tmp_path / "run", factory="mynets:build", kwargs={"width": 32})
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    assert [e["kind"] for e in spec["edits"]] == ["prune", "factorize"]
    loaded = slimforge.load(tmp_path / "run", trust_code=True)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_program_folder_is_refused_where_a_module_is_changed(pruned, tmp_path):
    from slimforge.loading import load_module

    model, x = pruned
    slimforge.save(model, tmp_path / "run", program=True, example_inputs=x)
    with pytest.raises(slimforge.errors.ConfigError, match="holds an exported program.*prune needs the run folder"):
        load_module(tmp_path / "run", "prune")


def test_program_save_of_a_model_returning_a_dict_says_what_to_do(tmp_path):
    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 2), torch.nn.Linear(4, 3)

        def forward(self, x):
            return {"a": self.a(x), "b": self.b(x)}

    with pytest.raises(slimforge.errors.ConfigError, match="returns dict.*Wrap it"):
        slimforge.save(TwoHeads(), tmp_path / "run", program=True, example_inputs=torch.randn(2, 4))
    assert not (tmp_path / "run").exists()
