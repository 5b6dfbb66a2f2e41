"""Recommenders on several processes: tables with sparse gradients (DDP) and tables sharded by FSDP2, two gloo
processes equal to one."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from .conftest import WORKER, run_ok, torchrun
from .worker import recsys_fsdp, recsys_sparse, recsys_sparse_setup


def _same_weights(tmp_path):
    """The one- and two-process runs' weights, asserted equal to 1e-5 relative (the global bias, near 0, to 1e-7)."""
    one, two = load_file(str(tmp_path / "one" / "model.safetensors")), load_file(str(tmp_path / "two" / "model.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        scale = max(one[key].abs().max().item(), 0.1 if key == "bias" else 0.0)
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6 * scale)
    return one, two


def test_sparse_embedding_gradients_on_two_processes_match_one(tmp_path, jobs):
    run_ok(jobs(torchrun(2, str(WORKER), "recsys_sparse", str(tmp_path / "two"))))
    recsys_sparse(tmp_path / "one")

    # MF trains with the softmax by default, which no constant shift changes: the global bias's gradient is zero
    # but for rounding, so its value (1e-8 to 1e-7) is compared in absolute terms.
    one, two = _same_weights(tmp_path)
    # Training moved the tables well beyond rounding: the test compares trained weights, not two copies of the init.
    start = recsys_sparse_setup()[1].state_dict()
    for key in ("user_embedding.weight", "item_embedding.weight", "item_bias.weight"):
        moved, apart = (one[key] - start[key]).abs().max(), (two[key] - one[key]).abs().max()
        assert moved > max(1e-4, 1000 * apart), (key, moved, apart)  # measured: moved 9e-4 to 0.08, apart <= 5e-8
    m1, m2 = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("one", "two"))
    assert (m1["world_size"], m2["world_size"]) == (1, 2)
    for key in ("test_hr@10", "test_ndcg@10", "test_recall@20", "test_ndcg@20"):  # every test user counted once on two ranks
        assert m2[key] == pytest.approx(m1[key], abs=1e-9)


def test_tables_sharded_by_fsdp2_on_two_processes_match_one(tmp_path, jobs):
    """`train.strategy=fsdp`: each process holds half of every table's rows (and AdamW's state for them); the global
    bias, a scalar FSDP2 cannot shard, stays whole on both and is averaged by the step. 20 steps equal one process's."""
    run_ok(jobs(torchrun(2, str(WORKER), "recsys_fsdp", str(tmp_path / "two"))))
    recsys_fsdp(tmp_path / "one")

    one, two = _same_weights(tmp_path)
    start = recsys_sparse_setup()[1].state_dict()  # the same seed and model as recsys_fsdp's
    for key in ("item_embedding.weight", "user_embedding.weight", "bias"):  # trained well beyond rounding, the scalar too
        moved, apart = (one[key] - start[key]).abs().max(), (two[key] - one[key]).abs().max()
        assert moved > max(1e-3, 1000 * apart), (key, moved, apart)
    rows = one["item_embedding.weight"].shape[0]
    held = [load_file(str(tmp_path / "two" / f"rank{r}.safetensors"))["item_rows"] for r in (0, 1)]
    assert [h.shape[0] for h in held] == [(rows + 1) // 2, rows // 2]  # each process holds its half of the rows
    torch.testing.assert_close(torch.cat(held), two["item_embedding.weight"])
    m1, m2 = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("one", "two"))
    assert (m1["world_size"], m2["world_size"]) == (1, 2) and m2["test_ndcg@10"] == pytest.approx(m1["test_ndcg@10"], abs=1e-9)
