"""The trainer on several gloo processes: same result as one process, rank-0 writes, resume with
another process count, a killed worker restarted by torchrun, two rendezvous agents, and
callers that replace the model (pruning) or own trainable modules (distillation)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import slimforge
from slimforge.train import TrainConfig
from slimforge.train.checkpoint import load_state

from .conftest import WORKER, free_port, run_ok, torchrun
from .worker import EQUIVALENCE_STEPS, equivalence

TRAIN_ARGS = ["--data", "digits", "--model", "mlp", "--lr", "0.05", "--quiet", "model.kwargs.hidden=[32]"]


def _history(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one_process_step_for_step(tmp_path, jobs):
    """Same global batch (32 = 2 x 16), seed and data order: weights after 20 steps agree."""
    run_ok(jobs(torchrun(2, str(WORKER), "equivalence", str(tmp_path / "two"))))
    equivalence(tmp_path / "one")

    one, two = load_file(str(tmp_path / "one" / "model.safetensors")), load_file(str(tmp_path / "two" / "model.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6 * one[key].abs().max().item())
    assert load_state(tmp_path / "two" / "checkpoint.safetensors")["step"] == EQUIVALENCE_STEPS
    # Validation and test metrics count every sample once: the same figures as one process.
    m1, m2 = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("one", "two"))
    assert m2["world_size"] == 2 and m1["world_size"] == 1
    assert m2["test_loss"] == pytest.approx(m1["test_loss"], rel=1e-5)
    assert m2["test_accuracy"] == m1["test_accuracy"]
    assert json.loads((tmp_path / "two" / "metrics.jsonl").read_text())["val_loss"] == pytest.approx(
        json.loads((tmp_path / "one" / "metrics.jsonl").read_text())["val_loss"], rel=1e-5)


def test_torchrun_resumes_a_one_process_checkpoint_on_two(tmp_path, jobs, cli_env):
    out = tmp_path / "run"
    data = slimforge.load_dataset("digits")
    model = slimforge.create_model("mlp", hidden=[32], **data.info.model_kwargs())
    slimforge.train(model, data, TrainConfig(epochs=1, batch_size=32, lr=0.05, num_threads=1, quiet=True), out)

    log = run_ok(jobs(torchrun(2, "-m", "slimforge", "train", *TRAIN_ARGS, "--epochs", "3", "--batch-size", "16",
                               "--out", str(out), "--resume", "train.quiet=false")))
    assert "resuming a checkpoint written by 1 process(es) on 2" in log
    assert log.count("run folder:") == 1, "only rank 0 prints the result"
    assert _history(out) == [1, 2, 3], "rank 0 alone appends to metrics.jsonl"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["test_accuracy"] > 0.85
    saved = load_state(out / "checkpoint.safetensors")
    steps_per_epoch = -(-len(data.train) // 2 // 16)
    assert saved["step"] == 3 * steps_per_epoch, "the schedule continues at the same fraction of training"
    assert slimforge.evaluate(slimforge.load(out), data.test)["accuracy"] == pytest.approx(metrics["test_accuracy"])


def _workers(launcher_pid: int) -> dict[int, int]:
    """rank -> pid of torchrun's worker processes (children of the launching process)."""
    found = {}
    for task in Path(f"/proc/{launcher_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                env = dict(kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in kv)
            except OSError:
                continue
            if "RANK" in env:
                found[int(env["RANK"])] = int(pid)
    return found


@pytest.mark.slow  # two 2-process jobs and a restart: about 2 minutes on 2 busy cores
def test_killed_worker_is_restarted_and_resumes_from_the_last_checkpoint(tmp_path, jobs):
    args = [sys.executable, "-m", "slimforge", "train", *TRAIN_ARGS, "--epochs", "3", "--batch-size", "4",
            "--nproc-per-node", "2", "--max-restarts", "1", "train.quiet=false"]
    straight = jobs([*args, "--out", str(tmp_path / "straight")])
    run_ok(straight)

    killed = tmp_path / "killed"
    job = jobs([*args, "--out", str(killed)])
    history = killed / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (history.is_file() and history.read_text().count("\n") >= 1):
        time.sleep(0.01)
    workers = _workers(job.proc.pid)
    assert set(workers) == {0, 1}, workers
    os.kill(workers[1], signal.SIGKILL)
    epochs_at_kill = history.read_text().count("\n")
    log = run_ok(job)

    assert epochs_at_kill < 3, "the kill must land before the job finished"
    assert "restart 1 of this job: resuming from" in log
    assert _history(killed) == [1, 2, 3]
    a, b = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("straight", "killed"))
    # 359 test images: 0.03 is ~11 images, the spread of this model over seeds.
    assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.03 and b["test_accuracy"] > 0.85


def test_two_rendezvous_agents_train_one_job(tmp_path, jobs):
    """Two torchrun agents on localhost, --nnodes 2, c10d rendezvous: one via slimforge's launcher,
    one via torchrun itself."""
    endpoint = f"127.0.0.1:{free_port()}"
    rdzv = ["--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two-agents"]
    train = [*TRAIN_ARGS, "--epochs", "2", "--batch-size", "16", "--out", str(tmp_path / "run")]
    first = jobs([sys.executable, "-m", "slimforge", "train", *train, "--nproc-per-node", "1", *rdzv])
    second = jobs([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", *rdzv, "-m", "slimforge", "train", *train])
    run_ok(first)
    run_ok(second)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["test_accuracy"] > 0.85
    assert _history(tmp_path / "run") == [1, 2]


def test_prune_then_finetune_rewraps_the_smaller_model(tmp_path, jobs):
    out = tmp_path / "run"
    run_ok(jobs(torchrun(2, str(WORKER), "prune", str(out))))
    ranks = [load_file(str(out / f"rank{r}.safetensors")) for r in (0, 1)]
    assert ranks[0]["net.1.weight"].shape == (16, 64), "the callback's narrower model was trained"
    for key in ranks[0]:  # DDP re-wrapped the new model: replicas stayed identical
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    model = slimforge.load(out)
    assert model.net[1].out_features == 16
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] > 0.8


def test_iterative_pruning_on_two_ranks_keeps_the_replicas_identical(tmp_path, jobs):
    out = tmp_path / "run"
    run_ok(jobs(torchrun(2, str(WORKER), "iterative", str(out))))
    ranks = [load_file(str(out / f"rank{r}.safetensors")) for r in (0, 1)]
    assert ranks[0]["net.1.weight"].shape[0] < 32, "pruned during training"
    for key in ranks[0]:  # both ranks chose the same channels and stayed in step afterwards
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    model = slimforge.load(out)  # the saved plan replays the pruning done during training
    assert model.net[1].out_features == ranks[0]["net.1.weight"].shape[0]
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] > 0.8


def test_distillation_adapters_stay_in_sync_across_ranks(tmp_path, jobs):
    out = tmp_path / "run"
    run_ok(jobs(torchrun(2, str(WORKER), "distill", str(out))))
    ranks = [load_file(str(out / f"rank{r}.safetensors")) for r in (0, 1)]
    adapters = [k for k in ranks[0] if k.startswith("adapter.")]
    assert adapters, "the hint adds a trainable adapter"
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
