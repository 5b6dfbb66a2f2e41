"""Names that become paths cannot leave their folder; every failure exits non-zero, Ctrl-C with 130."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from slimforge.cli import main
from slimforge.errors import ArtifactError, ConfigError
from slimforge.files import check_name, inside
from slimforge.pipeline import parse_recipe


@pytest.mark.parametrize("name", ["../x", "/abs/path", "a/b", "..", ".", ".hidden", "x/../../y", "a\\b", "x" * 200, "a\nb", "~user", "$HOME"])
def test_a_recipe_stage_name_that_is_a_path_is_refused(name, tmp_path):
    raw = {"data": {"name": "digits"}, "stages": [{"kind": "train", "name": name}]}
    with pytest.raises(ConfigError, match="cannot be used as a folder name"):
        parse_recipe(raw, "r.yaml")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["train", "prune-0.5", "stage_2", "int8.onnx"])
def test_ordinary_stage_names_pass(name):
    assert parse_recipe({"stages": [{"kind": "train", "name": name}]}, "r.yaml").stages[0].name == name


@pytest.mark.parametrize("relative", ["../model.onnx", "/etc/passwd", "a/../../b", "", "link/x"])
def test_a_manifest_entry_outside_its_folder_is_refused(relative, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (folder / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ArtifactError, match="quantized.json"):
        inside(folder, relative, "quantized.json's runtime_file")


def test_a_manifest_entry_inside_its_folder_passes(tmp_path):
    assert inside(tmp_path, "sub/model.onnx", "x") == (tmp_path / "sub" / "model.onnx").resolve()


def test_check_name_returns_safe_names():
    assert check_name("ok-name_1.2", "stage") == "ok-name_1.2"


def test_ctrl_c_during_train_exits_130_and_keeps_the_folder(tmp_path, cli_env, python):
    out = tmp_path / "run"
    proc = subprocess.Popen([python, "-m", "slimforge", "train", "--data", "digits", "--model", "mlp", "--epochs", "200", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    partial = tmp_path / ".run.partial" / "checkpoint.safetensors"
    deadline = time.monotonic() + 120
    while not partial.exists() and time.monotonic() < deadline:  # the first epoch is checkpointed: training is under way
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err, err[-800:]
    assert not out.exists() and partial.is_file()  # nothing looks finished; --resume can continue
    refused = subprocess.run([python, "-m", "slimforge", "train", "--data", "digits", "--model", "mlp", "--out", str(out)],
                             capture_output=True, text=True, env=cli_env, timeout=120)
    assert refused.returncode == 2 and "interrupted run" in refused.stderr


@pytest.mark.parametrize("args", [
    ["eval", "/nonexistent/run"],
    ["train", "--data", "no-such-data"],
    ["quantize", "/nonexistent/run"],
    ["export", "/nonexistent/run", "--format", "tflite"],
    ["run", "/nonexistent/recipe.yaml"],
    ["no-such-command"],
])
def test_every_failure_exits_non_zero(args, capsys):
    assert main(args) != 0


def test_an_unexpected_exception_is_reported_as_a_bug(monkeypatch, capsys):
    import slimforge.experiment as experiment

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(experiment, "evaluate_run", boom)
    with pytest.raises(RuntimeError, match="boom"):
        main(["eval", "runs/whatever"])
    assert "a slimforge bug" in capsys.readouterr().err


@pytest.mark.parametrize(("raw", "message"), [
    ({"stages": [{"kind": ["train"]}]}, "unknown kind"),
    ({"stages": [{"kind": {"a": 1}}]}, "unknown kind"),
    ({"data": "abc", "stages": [{"kind": "train"}]}, "'data' must be a mapping"),
    ({"data": [1, 2], "stages": [{"kind": "train"}]}, "'data' must be a mapping"),
])
def test_malformed_recipes_are_one_clear_error(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_recipe(raw, "r.yaml")


@pytest.mark.parametrize("override", ["train=5", "data=5"])
def test_an_override_without_a_key_is_refused(override):
    with pytest.raises(ConfigError, match="give a key"):
        parse_recipe({"stages": [{"kind": "train"}]}, "r.yaml", [override])


def test_a_recipe_name_cannot_leave_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text("name: ../escaped\nstages:\n  - {kind: train, train: {epochs: 1}}\n")
    assert main(["run", "r.yaml"]) == 2
    assert "cannot be used as a folder name" in capsys.readouterr().err and not (tmp_path / "escaped").exists()


def test_a_report_with_nothing_to_measure_is_one_clear_error(tmp_path):
    from slimforge.pipeline import run_recipe

    with pytest.raises(ConfigError, match="a report needs models to measure"):
        run_recipe(parse_recipe({"stages": [{"kind": "report"}]}, "r.yaml"), tmp_path / "runs", quiet=True, log=lambda *_: None)


def test_a_prune_edit_that_says_nothing_is_refused_not_replayed_as_a_no_op():
    from slimforge.prune.plan import _replay

    with pytest.raises(ArtifactError, match="no 'tensors' key"):
        _replay(object(), {"kind": "prune", "plan": "x"})


def test_an_opset_for_a_pt2_export_is_refused_not_ignored(digits_run, tmp_path, capsys):
    assert main(["export", str(digits_run), "--format", "pt2", "--opset", "7", "--out", str(tmp_path / "x")]) == 2
    assert "--opset applies to ONNX" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_pretrained_folder_with_pickled_weights_is_one_clear_error(tmp_path):
    """A hf-text-classifier whose `pretrained` folder holds a pickled pytorch_model.bin: refused
    (transformers reads it with weights_only=True), as one slimforge error, and the pickle never runs."""
    pytest.importorskip("transformers")
    from transformers import BertConfig

    from slimforge.errors import SlimforgeError
    from slimforge.models import create_model
    from tests.trust.conftest import canary_pickle

    folder = tmp_path / "hf"
    BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16).save_pretrained(folder)
    (folder / "pytorch_model.bin").write_bytes(canary_pickle(tmp_path / "CANARY"))
    with pytest.raises(SlimforgeError, match="hf-text-classifier"):
        create_model("hf-text-classifier", num_classes=2, pretrained=str(folder))
    assert not (tmp_path / "CANARY").exists()


@pytest.mark.parametrize("out", ["x" * 300, "/".join(["y" * 200] * 25)])
def test_an_output_path_the_file_system_refuses_is_one_line(out, digits_run, tmp_path, capsys):
    """Red-team C-out-name-too-long / C-out-path-too-long: a name too long for the file system was
    reported as a slimforge bug with a traceback."""
    assert main(["export", str(digits_run), "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: File name too long") and "Traceback" not in err and "bug" not in err


def test_an_unexpected_os_error_is_still_reported_as_a_bug(monkeypatch, capsys):
    import errno

    from slimforge.cli import training

    def broken(*args, **kwargs):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(training, "refuse_existing_run", broken)
    with pytest.raises(OSError):
        main(["train", "--epochs", "1"])
    assert "a slimforge bug" in capsys.readouterr().err
