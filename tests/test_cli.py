"""End-to-end CLI: train, eval, listings, errors printed as one paragraph."""

from __future__ import annotations

import json
import subprocess

import pytest

from slimforge.cli import main


def run(python, env, *args, check=True):
    proc = subprocess.run([python, "-m", "slimforge", *args], env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def test_train_then_eval(tmp_path, python, cli_env):
    out = tmp_path / "run"
    res = run(python, cli_env, "train", "--data", "digits", "--model", "cnn", "--epochs", "3", "--lr", "0.05",
              "--batch-size", "64", "--out", str(out), "--quiet", "model.kwargs.width=8")
    assert "test accuracy" in res.stdout and str(out) in res.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.8 < metrics["test_accuracy"] <= 1.0
    assert "model:\n  name: cnn" in (out / "config.yaml").read_text()
    ev = run(python, cli_env, "eval", str(out))
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in ev.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "resnet21", "--epochs", "1"], "Unknown model 'resnet21'"),
        (["train", "--data", "cifar100"], "Unknown dataset 'cifar100'"),
        (["train", "train.epochz=2"], "Unknown config key 'epochz'"),
        (["train", "--data", "fashion-mnist", "--data-root", "/nonexistent"], "apt-get install -y dataset-fashion-mnist"),
        (["eval", "/nonexistent/run"], "not a run folder"),
        (["eval", "/nonexistent/run", "--split", "bogus"], "Unknown split 'bogus'"),
        (["measure", "/nonexistent/run", "--split", "train"], "--split 'train': use test or val"),
        (["measure", "/nonexistent/run", "--batch-sizes", "1,x"], "give whole numbers"),
        (["train", "--device", "tpu"], "device='tpu' is not a device"),
    ],
)
def test_bad_input_is_one_clear_paragraph(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [(["prune", "--bogus"], "No such option: --bogus"), (["prune"], "Missing argument"), (["sparsify"], "No such command 'sparsify'")],
)
def test_usage_errors_are_click_messages_not_tracebacks(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_listings(capsys):
    assert main(["models"]) == 0 and "resnet20" in capsys.readouterr().out
    assert main(["datasets"]) == 0 and "fashion-mnist" in capsys.readouterr().out


def test_help_documents_every_option(python, cli_env):
    text = run(python, cli_env, "train", "--help").stdout
    for option in ("--config", "--data", "--model", "--epochs", "--resume", "--deterministic", "--out"):
        assert option in text


def test_every_command_shows_flags_as_flags(capsys, monkeypatch):
    """`--help` lists a flag without a value type (typer 0.29 printed `--quiet <bool>`), and every
    command that loads run folders offers --trust-code."""
    from slimforge.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    names = [c.name for c in app.registered_commands]
    loaders = {"train", "eval", "prune", "quantize", "factorize", "mixed-dim", "export", "distill", "measure", "predict", "optimize", "run"}
    assert loaders <= set(names)
    for name in names:
        assert main([name, "--help"]) == 0
        text = capsys.readouterr().out
        assert "<bool>" not in text, name
        assert ("--trust-code" in text) == (name in loaders), name
