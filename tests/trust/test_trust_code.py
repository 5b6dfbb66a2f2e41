"""No code named by a file runs unless the caller trusts it (docs/trust.md).

Every case plants a canary: a module whose import, and a factory whose call, each create a
file. A refused load must leave both files absent; the trusted controls show the canary does
fire when code really runs, so a passing refusal is not a canary that never works.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

import slimforge
from slimforge import models
from slimforge.cli import main
from slimforge.errors import ArtifactError, SlimforgeError
from slimforge.models import UntrustedCodeError
from tests.trust.conftest import tamper

# ---------------------------------------------------------------- slimforge.load


@pytest.mark.parametrize("form", ["module", "nested-attr", "os-system", "subprocess", "builtins-exec", "importlib", "eval"])
def test_load_refuses_a_code_reference_without_importing_it(form, code_canary, digits_run, tmp_path):
    touch = f"touch {code_canary.called}"
    name, kwargs = {
        "module": (code_canary.factory, {}),
        "nested-attr": (f"{code_canary.module}:build.__call__", {}),
        "os-system": ("os:system", {"command": touch}),
        "subprocess": ("subprocess:check_call", {"args": ["touch", str(code_canary.called)]}),
        "builtins-exec": ("builtins:exec", {"source": f"open({str(code_canary.called)!r}, 'w')"}),
        "importlib": ("importlib:import_module", {"name": code_canary.module}),
        "eval": ("builtins:eval", {"source": f"__import__({code_canary.module!r})"}),
    }[form]
    evil = tamper(digits_run, tmp_path / "evil", name=name, kwargs=kwargs)
    with pytest.raises(UntrustedCodeError, match=r"model\.json names the factory .*trust_code=True"):
        slimforge.load(evil)
    assert not code_canary.fired()


def test_trust_code_builds_the_factory_and_trusts_it_for_the_process(code_canary, digits_run, tmp_path):
    folder = tmp_path / "mine"
    model = slimforge.create_model(code_canary.factory, num_classes=10)  # the caller's own code: trusted
    model(torch.zeros(1, 1, 8, 8))  # materialise the lazy layer
    slimforge.save(model, folder)
    assert code_canary.fired()  # the control: this canary does fire when the factory runs
    code_canary.called.unlink()
    assert isinstance(slimforge.load(folder), torch.nn.Module)  # trusted in this process already
    assert code_canary.called.exists()


def test_trust_code_true_is_the_explicit_opt_in(code_canary, digits_run, tmp_path):
    model = slimforge.create_model(code_canary.factory, num_classes=10)
    model(torch.zeros(1, 1, 8, 8))
    slimforge.save(model, tmp_path / "mine")
    code_canary.called.unlink()
    code_canary.imported.unlink()
    models._TRUSTED_FACTORIES.clear()  # a new process: nothing trusted yet
    with pytest.raises(UntrustedCodeError):
        slimforge.load(tmp_path / "mine")
    assert not code_canary.called.exists()
    slimforge.load(tmp_path / "mine", trust_code=True)
    assert code_canary.called.exists()


def test_registered_and_library_sources_load_without_opting_in(tmp_path):
    for name, kwargs in [("cnn", {"width": 4, "num_classes": 3, "in_channels": 1}), ("mlp", {"num_classes": 3, "in_channels": 1, "input_size": [4, 4]}),
                         ("torchvision:squeezenet1_1", {"num_classes": 3})]:
        model = slimforge.create_model(name, **kwargs)
        slimforge.save(model, tmp_path / name.replace(":", "_"))
        loaded = slimforge.load(tmp_path / name.replace(":", "_"))
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


# ---------------------------------------------------------------- every command that loads a folder


def _commands(evil: Path, out: Path) -> dict[str, list[str]]:
    return {
        "eval": ["eval", str(evil)],
        "quantize": ["quantize", str(evil), "--calib-batches", "1", "--out", str(out)],
        "prune": ["prune", str(evil), "--ratio", "0.5", "--finetune-epochs", "0", "--out", str(out)],
        "factorize": ["factorize", str(evil), "--epochs", "0", "--out", str(out)],
        "export": ["export", str(evil), "--out", str(out)],
        "measure": ["measure", str(evil), "--repeats", "3", "--batch-sizes", "1"],
        "predict": ["predict", str(evil), "some text"],
        "optimize": ["optimize", str(evil), "--time-budget", "30s", "--out", str(out)],
        "distill --teacher": ["distill", "--teacher", str(evil), "--student", "cnn", "--epochs", "1", "--out", str(out)],
        "distill --prune-teacher": ["distill", "--teacher", str(evil), "--prune-teacher", "0.5", "--epochs", "1", "--out", str(out)],
    }


@pytest.mark.parametrize("command", list(_commands(Path("x"), Path("y"))))
def test_every_command_refuses_an_untrusted_folder(command, code_canary, digits_run, tmp_path, capsys):
    evil = tamper(digits_run, tmp_path / "evil", name=code_canary.factory, kwargs={})
    code = main(_commands(evil, tmp_path / "out")[command])
    err = capsys.readouterr().err
    assert code == 2 and "names the factory" in err and "--trust-code" in err, err[-800:]
    assert not code_canary.fired()
    assert not (tmp_path / "out").exists()


def test_trust_code_flag_lets_a_command_build_it(code_canary, digits_run, tmp_path, capsys):
    model = slimforge.create_model(code_canary.factory, num_classes=10)
    model(torch.zeros(1, 1, 8, 8))
    slimforge.save(model, tmp_path / "mine", config={"data": {"name": "digits"}})
    models._TRUSTED_FACTORIES.clear()
    code_canary.called.unlink()
    assert main(["eval", str(tmp_path / "mine")]) == 2 and not code_canary.called.exists()
    assert main(["eval", str(tmp_path / "mine"), "--trust-code"]) == 0 and code_canary.called.exists()
    assert "accuracy" in capsys.readouterr().out


# ---------------------------------------------------------------- recipes and checkpoints


def test_a_recipe_input_needs_trust_code_on_the_stage(code_canary, digits_run, tmp_path):
    from slimforge.pipeline import parse_recipe, run_recipe

    evil = tamper(digits_run, tmp_path / "evil", name=code_canary.factory, kwargs={})
    raw = {"data": {"name": "digits"}, "stages": [{"kind": "export", "input": str(evil)}]}
    with pytest.raises(UntrustedCodeError):
        run_recipe(parse_recipe(raw, "r.yaml"), tmp_path / "runs", quiet=True, log=lambda *_: None)
    assert not code_canary.fired()
    trusted = {**raw, "stages": [{**raw["stages"][0], "trust_code": True}]}
    with pytest.raises(SlimforgeError):  # the canary's model has no weights matching the folder: it fails later, but it ran
        run_recipe(parse_recipe(trusted, "r.yaml"), tmp_path / "runs", quiet=True, log=lambda *_: None)
    assert code_canary.called.exists()


@pytest.mark.parametrize("kind", ["train-config", "distill-config", "recipe-model", "recipe-trust"])
def test_a_config_or_recipe_file_that_asks_to_run_code_needs_trust_code(kind, code_canary, digits_run, tmp_path, capsys):
    """A config.yaml or recipe from a colleague is exchanged like a run folder: it may not import code by itself."""
    file = tmp_path / "received.yaml"
    model = {"name": code_canary.factory}
    body = {
        "train-config": ({"data": {"name": "digits"}, "model": model, "train": {"epochs": 1}}, ["train", "-c", str(file), "-q"]),
        "distill-config": ({"data": {"name": "digits"}, "student": model, "train": {"epochs": 1}},
                           ["distill", "--teacher", str(digits_run), "-c", str(file), "-q"]),
        "recipe-model": ({"data": {"name": "digits"}, "stages": [{"kind": "train", "model": model, "train": {"epochs": 1}}]},
                         ["run", str(file), "-q"]),
        "recipe-trust": ({"data": {"name": "digits"}, "stages": [{"kind": "export", "input": str(digits_run), "trust_code": True}]},
                         ["run", str(file), "-q"]),
    }
    raw, argv = body[kind]
    file.write_text(json.dumps(raw))  # JSON is YAML
    out = tmp_path / "out"
    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "asks to run code" in err and "--trust-code" in err, err[-800:]
    assert not code_canary.fired() and not out.exists()
    if kind != "recipe-trust":  # trusted, the factory is imported and called
        main([*argv, "--out", str(out), "--trust-code"])
        assert code_canary.called.exists()


def test_train_resume_refuses_a_checkpoint_that_names_code(code_canary, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--model", "mlp", "--epochs", "1", "--out", str(out), "--quiet", "train.num_threads=1"]) == 0
    from slimforge.train.checkpoint import CHECKPOINT_FILE, load_state, save_state

    state = load_state(out / CHECKPOINT_FILE)
    state["record"]["model"]["name"] = code_canary.factory
    save_state(out / CHECKPOINT_FILE, state)
    code = main(["train", "--out", str(out), "--resume", "train.epochs=2", "--quiet"])
    assert code == 2 and "names the factory" in capsys.readouterr().err
    assert not code_canary.fired()


def test_a_checkpoint_with_corrupt_state_is_one_clear_error(tmp_path):
    from safetensors.torch import save_file

    from slimforge.train.checkpoint import load_state

    deep = "[" * 5000 + "]" * 5000
    for name, header in {"deep": deep, "not-json": "{nope", "list": "[1, 2]", "bad-ref": json.dumps({"__tensor__": "t99"})}.items():
        path = tmp_path / f"{name}.safetensors"
        save_file({"x": torch.zeros(1)}, str(path), metadata={"slimforge_checkpoint": header})
        with pytest.raises(ArtifactError, match="corrupt"):
            load_state(path)


# ---------------------------------------------------------------- model.json keywords and edits


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 10**7}, r"would need .* GiB"),
    ({"num_classes": -3}, r"'num_classes' must be a positive integer"),
    ({"num_classes": 0}, r"'num_classes' must be a positive integer"),
    ({"num_classes": "10"}, r"'num_classes' must be a positive integer"),
    ({"num_classes": True}, r"'num_classes' must be a positive integer"),
    ({"in_channels": 0}, r"'in_channels' must be a positive integer"),
    ({"width": 2**40}, r"out of range"),
    ({"dropout": float("nan")}, r"finite number"),
    ({"bogus": 1}, r"takes no keyword 'bogus'"),
    ({"width": "x" * 5000}, r"string of 5000 characters"),
    ({"width": list(range(5000))}, r"holds 5000 items"),
])
def test_model_keywords_from_a_file_are_checked_before_the_call(kwargs, message, digits_run, tmp_path):
    spec = json.loads((digits_run / "model.json").read_text())
    evil = tamper(digits_run, tmp_path / "evil", kwargs={**spec["kwargs"], **kwargs})
    with pytest.raises(ArtifactError, match=message):
        slimforge.load(evil)


@pytest.mark.parametrize(("change", "message"), [
    ({"name": 17}, r"'name' must be a string"),
    ({"name": ""}, r"non-empty"),
    ({"kwargs": [1, 2]}, r"'kwargs' must be an object"),
    ({"edits": {"kind": "prune"}}, r"'edits' must be a list"),
    ({"edits": [{"no": "kind"}]}, r"every entry of 'edits'"),
    ({"edits": [{"kind": "teleport"}]}, r"Unknown structural edit 'teleport'"),
    ({"format": 99}, r"newer than this slimforge"),
    ({"name": "torchvision:../../etc"}, r"Unknown torchvision model"),
])
def test_a_corrupt_model_json_is_one_clear_error(change, message, digits_run, tmp_path):
    evil = tamper(digits_run, tmp_path / "evil", **change)
    with pytest.raises(SlimforgeError, match=message):
        slimforge.load(evil)


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "{" * 50 + "}", "\xff\xfe", "", "null"])
def test_unreadable_model_json_is_one_clear_error(text, digits_run, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(digits_run, evil)
    (evil / "model.json").write_bytes(text.encode("latin-1") if text == "\xff\xfe" else text.encode())
    with pytest.raises(ArtifactError, match="model.json"):
        slimforge.load(evil)


def test_a_huge_json_file_is_refused_unread(digits_run, tmp_path, monkeypatch):
    from slimforge import files

    monkeypatch.setattr(files, "MAX_JSON_BYTES", 1000)
    evil = tamper(digits_run, tmp_path / "evil", kwargs={"padding": "x" * 2000})
    with pytest.raises(ArtifactError, match="too large"):
        slimforge.load(evil)


# ---------------------------------------------------------------- distributed checkpoints (DCP)


class _Payload:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "pwned"))


@pytest.mark.parametrize("payload", ["reduce-method", "os-system", "nested-in-metadata"])
def test_dcp_metadata_that_names_code_is_refused(payload, tmp_path):
    from slimforge.distributed._safe_dcp import SafeReader

    canary = tmp_path / "CANARY"
    folder = tmp_path / "checkpoint.dcp"
    folder.mkdir()
    obj = {
        "reduce-method": _Payload(canary),
        "os-system": type("P", (), {"__reduce__": lambda self: (__import__("os").system, (f"touch {canary}",))})(),
        "nested-in-metadata": {"state_dict_metadata": {"x": _Payload(canary)}},
    }[payload]
    (folder / ".metadata").write_bytes(pickle.dumps(obj))
    with pytest.raises(ArtifactError, match="corrupt or crafted"):
        SafeReader(str(folder)).read_metadata()
    assert not canary.exists()
    from slimforge.distributed import _safe_dcp

    with pytest.raises(ArtifactError, match="corrupt or crafted"):  # the loader itself: our error, not DCP's traceback
        _safe_dcp.load({"model": {}}, str(folder))
    assert not canary.exists()


def test_dcp_checkpoints_written_by_torch_still_load(tmp_path):
    import torch.distributed.checkpoint as dcp

    from slimforge.distributed import _safe_dcp

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    with pytest.warns(UserWarning):  # "assuming the intent is to save in a single process"
        dcp.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, checkpoint_id=str(tmp_path / "c"))
    fresh = torch.nn.Linear(3, 2)
    state = {"model": fresh.state_dict()}
    with pytest.warns(UserWarning):
        _safe_dcp.load(state, str(tmp_path / "c"))
    assert torch.equal(state["model"]["weight"], model.weight.detach())
