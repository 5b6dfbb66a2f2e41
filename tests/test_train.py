"""The trainer: learns, stops early, detects divergence, checkpoints and resumes exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import slimforge
from slimforge.files import partial_folder
from slimforge.errors import ArtifactError
from slimforge.train import Callback, TrainConfig, TrainingDiverged, seed_everything, train

QUIET = dict(quiet=True, num_threads=1)


@pytest.fixture(scope="module")
def digits():
    return slimforge.load_dataset("digits")


def _cnn(data, width=8):
    seed_everything(0)
    return slimforge.create_model("cnn", width=width, **data.info.model_kwargs())


def test_training_learns_and_writes_a_run_folder(digits, tmp_path):
    result = train(_cnn(digits), digits, TrainConfig(epochs=4, batch_size=64, lr=0.05, **QUIET), tmp_path / "run")
    assert result.metrics["test_accuracy"] > 0.85
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    assert set(json.loads(lines[0])) >= {"train_loss", "val_accuracy", "lr", "seconds", "samples_per_s"}
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])
    reloaded = slimforge.load(tmp_path / "run")
    assert slimforge.evaluate(reloaded, digits.test)["accuracy"] == pytest.approx(result.metrics["test_accuracy"])


def test_early_stopping_on_a_plateau(digits):
    # lr so small nothing improves after the first epoch's tiny step: patience 2 ends at epoch 3.
    cfg = TrainConfig(epochs=20, batch_size=256, lr=1e-9, patience=2, monitor="val_loss", **QUIET)
    result = train(_cnn(digits), digits, cfg)
    assert result.metrics["stopped_early"] and result.metrics["epochs_run"] < 20


def test_nan_loss_stops_and_keeps_last_good_checkpoint(digits, tmp_path):
    class PoisonAfterFirstEpoch(Callback):
        def on_epoch_start(self, state):
            if state.epoch == 1:
                with torch.no_grad():
                    state.model.classifier.weight.fill_(float("nan"))

    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="loss became nan in epoch 2.*checkpoint of epoch 1 in .* is kept"):
        train(_cnn(digits), digits, TrainConfig(epochs=3, batch_size=128, lr=0.05, **QUIET), out, callbacks=[PoisonAfterFirstEpoch()])
    assert not out.exists()  # nothing that looks finished
    checkpoint = load_file(str(partial_folder(out) / "checkpoint.safetensors"))  # kept for --resume
    assert all(torch.isfinite(t).all() for t in checkpoint.values() if t.is_floating_point())


def test_nan_in_the_first_epoch_says_no_checkpoint_was_saved(digits, tmp_path):
    class Poison(Callback):
        def on_train_start(self, state):
            with torch.no_grad():
                state.model.classifier.weight.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match="epoch 1 .*No checkpoint was saved") as caught:
        train(_cnn(digits), digits, TrainConfig(epochs=2, batch_size=128, **QUIET), tmp_path / "run", callbacks=[Poison()])
    assert "is kept" not in str(caught.value) and not (tmp_path / "run" / "checkpoint.safetensors").exists()


def test_max_norm_caps_every_unit_s_incoming_weights(digits):
    model = slimforge.create_model("mlp", hidden=[32], **digits.info.model_kwargs())
    result = train(model, digits, TrainConfig(epochs=2, batch_size=64, lr=0.5, max_norm=0.5, **QUIET))
    linears = [m for m in result.model.modules() if isinstance(m, torch.nn.Linear)]
    norms = torch.cat([m.weight.norm(dim=1) for m in linears])
    assert norms.max() <= 0.5 + 1e-5 and norms.max() > 0.45  # capped, and the cap was reached
    free = train(slimforge.create_model("mlp", hidden=[32], **digits.info.model_kwargs()), digits,
                 TrainConfig(epochs=2, batch_size=64, lr=0.5, **QUIET)).model
    assert max(m.weight.norm(dim=1).max() for m in free.modules() if isinstance(m, torch.nn.Linear)) > 0.6  # it binds


def test_test_errors_and_objective_parts_are_recorded(digits, tmp_path):
    from slimforge.train import LossOutput

    def halves(model, inputs, targets, indices):  # an objective with two named parts
        logits = model(inputs)
        ce = torch.nn.functional.cross_entropy(logits, targets)
        return LossOutput(ce, logits, {"first_loss": ce.detach() / 2, "second_loss": 0.25})

    result = train(_cnn(digits), digits, TrainConfig(epochs=1, batch_size=64, lr=0.05, **QUIET), tmp_path / "run", objective=halves)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test_errors"] == round((1 - saved["test_accuracy"]) * len(digits.test))
    epoch = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert epoch["train_first_loss"] == pytest.approx(epoch["train_loss"] / 2, rel=1e-6) and epoch["train_second_loss"] == 0.25
    assert result.history[0]["train_first_loss"] == epoch["train_first_loss"]


def test_resume_from_another_architecture_is_refused(digits, tmp_path):
    out = tmp_path / "run"
    train(_cnn(digits), digits, TrainConfig(epochs=1, batch_size=128, **QUIET), out)
    other = slimforge.create_model("resnet8", **digits.info.model_kwargs())
    with pytest.raises(ArtifactError, match="checkpoint is of model 'cnn', but this run builds 'resnet8'"):
        train(other, digits, TrainConfig(epochs=2, batch_size=128, **QUIET), out, resume=True)
    with pytest.raises(ArtifactError, match="do not match this architecture"):
        train(_cnn(digits, width=4), digits, TrainConfig(epochs=2, batch_size=128, **QUIET), out, resume=True)


def test_resume_without_checkpoint(digits, tmp_path):
    with pytest.raises(ArtifactError, match="no checkpoint.safetensors"):
        train(_cnn(digits), digits, TrainConfig(epochs=1, **QUIET), tmp_path / "empty", resume=True)


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path, python, cli_env):
    """A real process killed with SIGKILL in epoch 2, resumed, ends with the same weights."""
    args = [python, "-m", "slimforge", "train", "--data", "digits", "--model", "cnn", "--epochs", "3",
            "--batch-size", "4", "--lr", "0.02", "--deterministic", "--threads", "1", "--quiet",
            "data.augment=true", "model.kwargs.width=8"]
    subprocess.run([*args, "--out", str(tmp_path / "straight")], check=True, env=cli_env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(killed)], env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = partial_folder(killed) / "metrics.jsonl"  # the run is built beside --out until it is complete
    deadline = time.time() + 120
    while time.time() < deadline and not (history.is_file() and history.read_text().count("\n") >= 1):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert history.read_text().count("\n") == 1, "the kill must land in epoch 2"
    assert not killed.exists()

    subprocess.run([*args, "--out", str(killed), "--resume"], check=True, env=cli_env, capture_output=True)
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [json.loads(x)["epoch"] for x in (killed / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert not partial_folder(killed).exists()


def test_corrupt_checkpoint_on_resume_names_the_file(digits, tmp_path):
    out = tmp_path / "run"
    train(_cnn(digits), digits, TrainConfig(epochs=1, batch_size=128, **QUIET), out)
    ckpt = out / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[: len(ckpt.read_bytes()) // 2])
    with pytest.raises(ArtifactError, match=r"checkpoint\.safetensors is not a readable safetensors file.*corrupt or truncated"):
        train(_cnn(digits), digits, TrainConfig(epochs=2, batch_size=128, **QUIET), out, resume=True)
    assert (out / "model.safetensors").is_file(), "a failed resume must not destroy the saved model"


def test_time_limit_stops_before_an_epoch_that_would_not_fit():
    from slimforge.train import TimeLimit, TrainState

    now = [0.0]
    limit = TimeLimit(100, clock=lambda: now[0])
    state = TrainState(model=torch.nn.Linear(1, 1))
    limit.on_train_start(state)
    for t in (30.0, 60.0):  # two epochs of 30 s: a third ends at 90 s, inside the budget
        now[0] = t
        limit.on_epoch_end(state)
        assert not state.stop
    now[0] = 75.0  # a 15 s epoch; the slowest (30 s) would end at 105 s
    limit.on_epoch_end(state)
    assert state.stop
    with pytest.raises(ValueError, match="positive"):
        TimeLimit(0)


def test_a_run_trained_through_the_api_records_its_data_for_the_cli(tmp_path):
    """Without the data section, ``slimforge quantize RUN`` & co. would fall back to the default dataset."""
    from slimforge.experiment import DataConfig, evaluate_run, run_data_config

    data = slimforge.load_dataset("digits", val_fraction=0.2, split_seed=3)
    train(_cnn(data), data, TrainConfig(epochs=1, batch_size=64, **QUIET), tmp_path / "run")
    expected = DataConfig(name="digits", val_fraction=0.2, split_seed=3, augment=False, options={"test_fraction": 0.2})  # with its defaults
    assert run_data_config(tmp_path / "run") == expected
    assert evaluate_run(tmp_path / "run")["dataset"] == "digits"
    data.source = {"name": "digits", "transform": object()}  # an option that is not plain data: nothing recorded
    train(_cnn(data), data, TrainConfig(epochs=1, batch_size=64, **QUIET), tmp_path / "other")
    assert "data:" not in (tmp_path / "other" / "config.yaml").read_text()
    with pytest.warns(UserWarning, match="does not record its data.*using the default dataset 'digits'"):
        run_data_config(tmp_path / "other")


def test_the_recorded_data_has_the_dataset_s_own_defaults_and_absolute_paths(tmp_path, monkeypatch):
    from slimforge.data import DATASETS, register_dataset
    from slimforge.experiment import run_data_config

    @register_dataset("digits-own-defaults")
    def own(root: Path | None = None, val_fraction: float = 0.25, split_seed: int = 7, **options):
        return slimforge.load_dataset("digits", val_fraction=val_fraction, split_seed=split_seed)

    try:
        monkeypatch.chdir(tmp_path)
        data = slimforge.load_dataset("digits-own-defaults", root=Path("here"), extra=1)
        assert data.config_section() == {
            "name": "digits-own-defaults", "root": str(tmp_path / "here"), "val_fraction": 0.25, "split_seed": 7, "options": {"extra": 1},
        }
        (tmp_path / "files").mkdir()
        section = slimforge.load_dataset("digits-own-defaults", root="files", path="missing", tokenizer="files").config_section()
        assert (section["root"], section["options"]["path"], section["options"]["tokenizer"]) == (str(tmp_path / "files"), "missing", "files")
        train(_cnn(data), data, TrainConfig(epochs=1, batch_size=64, **QUIET), tmp_path / "run")
        reloaded = run_data_config(tmp_path / "run").load()
        assert reloaded.split == data.split  # the same validation samples
    finally:
        DATASETS._entries.pop("digits-own-defaults")


def test_resume_with_other_settings_is_refused_but_more_epochs_are_fine(digits, tmp_path):
    from slimforge.errors import ConfigError

    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, **QUIET)
    train(_cnn(digits), digits, cfg, tmp_path / "run")
    for change in ({"lr": 0.001}, {"optimizer": "adamw"}, {"batch_size": 32}):
        with pytest.raises(ConfigError, match=f"{next(iter(change))} "):
            train(_cnn(digits), digits, cfg.model_copy(update={**change, "epochs": 2}), tmp_path / "run", resume=True)
    result = train(_cnn(digits), digits, cfg.model_copy(update={"epochs": 2}), tmp_path / "run", resume=True)
    assert result.metrics["epochs_run"] == 2


def test_without_a_validation_split_the_last_epoch_is_kept_and_no_nan_is_written(tmp_path):
    from slimforge.errors import ConfigError

    data = slimforge.load_dataset("digits", val_fraction=0.0)
    result = train(_cnn(data), data, TrainConfig(epochs=2, batch_size=64, lr=0.05, **QUIET), tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert saved["best_val_accuracy"] is None and saved["best_epoch"] is None and result.metrics["epochs_run"] == 2
    assert not (tmp_path / "run" / "best.safetensors").exists()
    with pytest.raises(ConfigError, match="patience"):
        train(_cnn(data), data, TrainConfig(epochs=2, patience=1, **QUIET), tmp_path / "run2")


def test_a_model_that_does_not_fit_the_data_fails_before_training(digits, tmp_path):
    from slimforge.errors import DataError

    with pytest.raises(DataError, match="10 classes"):
        train(slimforge.create_model("cnn", num_classes=5, in_channels=1), digits, TrainConfig(epochs=1, **QUIET), tmp_path / "a")
    with pytest.raises(DataError, match="cannot run on 'digits'"):
        train(slimforge.create_model("cnn", num_classes=10, in_channels=3), digits, TrainConfig(epochs=1, **QUIET), tmp_path / "b")
    with pytest.raises(ArtifactError, match="structure is unknown"):
        train(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), digits, TrainConfig(epochs=1, **QUIET), tmp_path / "c")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_failed_fine_tune_in_the_run_s_own_folder_keeps_its_model(digits, tmp_path):
    from slimforge.errors import ConfigError

    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, **QUIET)
    first = train(_cnn(digits), digits, cfg, tmp_path / "run")
    x = digits.test.__getitems__([0, 1, 2])[0]
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(TrainingDiverged):
        train(slimforge.load(tmp_path / "run").train(), digits, cfg.model_copy(update={"lr": 1e6}), tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run")(x), first.model.eval()(x))  # the only copy of the weights survives
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before  # the folder is exactly as it was
    (tmp_path / "int8").mkdir()
    (tmp_path / "int8" / "quantized.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds a quantized"):
        train(_cnn(digits), digits, cfg, tmp_path / "int8")


@pytest.mark.parametrize("device, message", [("tpu", "not a device"), ("meta", "not supported")])
def test_unsupported_devices_are_clear_errors(device, message):
    from slimforge.distributed.process import pick_device
    from slimforge.errors import SlimforgeError

    with pytest.raises(SlimforgeError, match=message):
        pick_device(device)
    assert pick_device("cpu:0") == torch.device("cpu")


def test_cli_resume_uses_the_run_s_settings_and_an_existing_run_needs_a_choice(tmp_path, capsys):
    from slimforge.cli import main

    out = str(tmp_path / "run")
    args = ["train", "--epochs", "1", "--lr", "0.05", "--threads", "1", "--quiet", "--out", out]
    assert main(args) == 0
    assert main(["train", "--epochs", "1", "--out", out, "--quiet"]) == 2
    assert "--resume to continue it, --overwrite to start over" in capsys.readouterr().err
    assert main(["train", "--epochs", "2", "--resume", "--out", out, "--quiet"]) == 0  # lr 0.05 from config.yaml
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_run"] == 2
    assert main(["train", "--epochs", "3", "--resume", "--lr", "0.001", "--out", out, "--quiet"]) == 2
    assert "lr 0.05 -> 0.001" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_resume_on_another_number_of_processes_compares_the_global_batch(tmp_path):
    from slimforge.errors import ConfigError
    from slimforge.train.resume import check_resume_config

    saved = TrainConfig(batch_size=32).model_dump(mode="json")
    check_resume_config(saved, TrainConfig(batch_size=16), tmp_path, saved_world=1, world=2)  # 1 x 32 == 2 x 16
    with pytest.raises(ConfigError, match=r"global batch '1 x 32' -> '2 x 32'"):
        check_resume_config(saved, TrainConfig(batch_size=32), tmp_path, saved_world=1, world=2)


def test_resuming_a_run_that_stopped_early_adds_no_epoch(digits, tmp_path):
    cfg = TrainConfig(epochs=20, batch_size=256, lr=1e-9, patience=2, monitor="val_loss", **QUIET)
    first = train(_cnn(digits), digits, cfg, tmp_path / "run")
    assert first.metrics["stopped_early"]
    again = train(_cnn(digits), digits, cfg, tmp_path / "run", resume=True)
    assert again.metrics["epochs_run"] == first.metrics["epochs_run"] and again.metrics["stopped_early"]


def test_checkpoint_records_the_run_config_for_a_bare_resume(digits, tmp_path):
    from slimforge.train.checkpoint import checkpoint_record

    train(_cnn(digits), digits, TrainConfig(epochs=1, batch_size=64, lr=0.05, **QUIET), tmp_path / "run", record={"train": {"lr": 0.05}, "x": 1})
    assert checkpoint_record(tmp_path / "run") == {"train": {"lr": 0.05}, "x": 1}
    assert checkpoint_record(tmp_path / "none") is None


def test_a_plain_map_style_dataset_still_trains(digits, tmp_path):
    from dataclasses import replace

    class Plain(torch.utils.data.Dataset):  # only __getitem__, no batched __getitems__
        def __init__(self, inner):
            self.inner = inner

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            x, y, index = self.inner.__getitems__([i])
            return x[0], y[0], index[0]  # slimforge items are (input, target, index)

    plain = replace(digits, train=Plain(digits.train))
    result = train(_cnn(digits), plain, TrainConfig(epochs=1, batch_size=64, lr=0.05, **QUIET))
    assert result.metrics["epochs_run"] == 1


def test_an_elastic_restart_resumes_only_a_job_that_passed_the_existing_run_check(tmp_path, monkeypatch):
    from slimforge.cli.training import refuse_existing_run
    from slimforge.errors import ConfigError

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    (old / "model.json").write_text("{}")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job1")
    for restart in ("0", "1"):  # refused on the first attempt and on its restart alike
        monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", restart)
        with pytest.raises(ConfigError, match="already holds a run"):
            refuse_existing_run(old, resume=False, overwrite=False)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    refuse_existing_run(new, resume=False, overwrite=False)  # a new folder: passes, marked as this job's
    (new / "checkpoint.safetensors").write_text("")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    refuse_existing_run(new, resume=False, overwrite=False)  # its own restart resumes
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job2")
    with pytest.raises(ConfigError):
        refuse_existing_run(new, resume=False, overwrite=False)  # another job's restart does not


def test_best_val_accuracy_is_the_monitored_best_epochs_not_the_runs_highest():
    from slimforge.train.loop import _best_val

    history = [
        {"epoch": 1, "val_loss": 0.50, "val_accuracy": 0.80},
        {"epoch": 2, "val_loss": 0.40, "val_accuracy": 0.78},  # best by val_loss: the saved model with keep_best
        {"epoch": 3, "val_loss": 0.45, "val_accuracy": 0.82},  # highest accuracy, not the saved model
    ]
    assert _best_val({"best_epoch": 2, "history": history}, "val_accuracy") == 0.78
    assert _best_val({"best_epoch": None, "history": history}, "val_accuracy") == 0.82  # none chosen: the last epoch is saved
    assert _best_val({"best_epoch": None, "history": [{"epoch": 1, "val_accuracy": None}]}, "val_accuracy") is None  # no validation


def test_deterministic_training_leaves_the_process_as_it_found_it(digits):
    """train(deterministic=True) forces deterministic kernels for the run only: afterwards a user's
    own code (e.g. an op without a deterministic kernel) runs as before."""
    model = slimforge.create_model("mlp", hidden=[16], input_size=[8, 8])
    assert not torch.are_deterministic_algorithms_enabled()
    train(model, digits, TrainConfig(epochs=1, batch_size=256, num_threads=1, deterministic=True, quiet=True))
    assert not torch.are_deterministic_algorithms_enabled()
