"""FSDP2 on CPU gloo: a few steps, a distributed checkpoint, converted in one process to the
normal artifact that reproduces the sharded model's outputs, and resumed on one process."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

import slimforge
from slimforge.distributed.fsdp import SHARDED_DIR
from slimforge.train.sharded import convert_checkpoint
from slimforge.train import TrainConfig, train
from slimforge.train.checkpoint import load_state

from .conftest import WORKER, run_ok, torchrun
from .worker import digits_subset, mlp


def test_fsdp_checkpoint_converts_to_an_artifact_with_the_same_outputs(tmp_path, jobs):
    out = tmp_path / "run"
    run_ok(jobs(torchrun(2, str(WORKER), "fsdp", str(out))))

    saved = load_state(out / "checkpoint.safetensors")
    assert saved["sharded"] == SHARDED_DIR and saved["world_size"] == 2 and saved["model"] == {}
    assert len(list((out / SHARDED_DIR).glob("*.distcp"))) == 2, "one shard file per rank"

    reference = load_file(str(out / "sharded_outputs.safetensors"))
    converted = slimforge.load(convert_checkpoint(out, tmp_path / "converted"))
    with torch.no_grad():
        torch.testing.assert_close(converted(reference["inputs"]), reference["outputs"], rtol=1e-5, atol=1e-6)
        # The run folder's own artifact (gathered at the end of training) is the same model.
        torch.testing.assert_close(slimforge.load(out)(reference["inputs"]), reference["outputs"], rtol=1e-5, atol=1e-6)

    # Resume the 2-process sharded checkpoint in one process: shards are re-assembled.
    before = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    data = digits_subset(320)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, strategy="fsdp", keep_best=False, num_threads=1, quiet=True)
    result = train(mlp(data), data, cfg, out, resume=True)
    assert [m["epoch"] for m in result.history] == [1, 2, 3] and result.history[:2] == before
    assert result.history[2]["train_loss"] < before[1]["train_loss"], "training continued from the shards, not from scratch"
    assert json.loads((out / "metrics.json").read_text())["world_size"] == 1
