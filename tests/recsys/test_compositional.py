"""Quotient-remainder item tables: each id its own pair of rows, trained, saved and reloaded through the
model's kwargs, quantized like any table, and bad bucket counts refused."""

from __future__ import annotations

import json

import pytest
import torch

import slimforge
from slimforge.errors import ConfigError
from slimforge.recsys.compositional import QuotientRemainderEmbedding
from slimforge.train import TrainConfig, seed_everything, train


def test_each_id_is_the_product_of_its_quotient_and_remainder_rows_and_no_two_ids_share_both():
    table = QuotientRemainderEmbedding(103, 8, buckets=10)
    assert (table.quotient.num_embeddings, table.remainder.num_embeddings) == (11, 10)  # ceil(103 / 10) + 10 rows for 103
    ids = torch.tensor([0, 9, 10, 57, 102])
    expected = table.quotient.weight[ids // 10] * table.remainder.weight[ids % 10]
    assert torch.equal(table(ids), expected)
    pairs = {(i // 10, i % 10) for i in range(103)}
    assert len(pairs) == 103 and torch.equal(table.weight[57], table(torch.tensor(57)))


def test_a_compositional_mf_trains_saves_and_reloads_through_its_kwargs(small_synthetic, tmp_path):
    pytest.importorskip("fbgemm_gpu")
    from slimforge.quantize import QuantizeConfig, load_quantized, quantize, save_quantized

    seed_everything(0)
    model = slimforge.create_model("mf", dim=16, qr_buckets=12, **small_synthetic.info.model_kwargs())
    before = {k: v.clone() for k, v in model.item_embedding.state_dict().items()}
    metrics = train(model, small_synthetic, TrainConfig(epochs=2, lr=0.01, quiet=True, num_threads=1, keep_best=False),
                    out=tmp_path / "run").metrics
    assert all(not torch.equal(before[k], v) for k, v in model.item_embedding.state_dict().items())
    assert metrics["test_ndcg@10"] > 0
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    assert spec["kwargs"]["qr_buckets"] == 12 and spec["edits"] == []
    loaded = slimforge.load(tmp_path / "run").eval()
    x = {"user": torch.arange(8).repeat_interleave(20), "item": torch.randint(0, small_synthetic.info.num_items, (160,))}
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    n = small_synthetic.info.num_items
    stored = sum(t.numel() for t in loaded.item_embedding.state_dict().values())
    assert stored == (-(-n // 12) + 12) * 16  # 25 rows of 16 hold all the items' rows
    calibration = [small_synthetic.train.__getitems__(list(range(32)))]
    folder = save_quantized(quantize(loaded, calibration, QuantizeConfig(backend="fbgemm-int4")), tmp_path / "int4")
    reloaded = load_quantized(folder)
    assert set(reloaded.tables()) >= {"item_embedding.quotient", "item_embedding.remainder"}
    with torch.no_grad():
        assert (reloaded(x) - loaded(x)).abs().max() < 0.1


@pytest.mark.parametrize("buckets", [1, 152, 500])
def test_bucket_counts_that_cannot_split_the_table_are_refused(small_synthetic, buckets):
    with pytest.raises(ConfigError, match=f"buckets must be from 2 to 151, not {buckets}"):
        slimforge.create_model("mf", qr_buckets=buckets, **small_synthetic.info.model_kwargs())
