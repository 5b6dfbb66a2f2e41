"""Quantization-aware fine-tuning of embedding tables: the fake-quantized rows are the stored rows,
the gradient passes straight through, and the fine-tuned model scores as its real quantized form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import slimforge
from slimforge.recsys.qat import FakeQuantEmbedding, fake_quantize_rows, fake_quantize_tables, quantization_aware_finetune
from slimforge.train import TrainConfig, seed_everything


@pytest.fixture(scope="module")
def fbgemm():
    return pytest.importorskip("fbgemm_gpu")


def test_fake_quantized_rows_are_the_values_fbgemm_stores_and_reads_back(fbgemm):
    from slimforge.recsys.quantize import QuantizedEmbedding

    g = torch.Generator().manual_seed(0)
    for dim in (32, 16, 1):  # width 1 is stored in fp16
        table = torch.randn(500, dim, generator=g) * torch.rand(500, 1, generator=g) * 3
        table[0] = 0.25  # a constant row
        table[1] = 0.0
        table[1, 0] = 1e-8  # a row whose range rounds to a zero fp16 scale
        for bits in (8, 4, 2):
            stored = QuantizedEmbedding.from_float(table, bits)
            assert torch.equal(fake_quantize_rows(table, bits), stored(torch.arange(500))), (dim, bits)


def test_fake_quantized_lookups_pass_the_gradient_straight_through():
    torch.manual_seed(0)
    plain = nn.Embedding(20, 16)
    fake = FakeQuantEmbedding(plain, 2)
    ids = torch.tensor([[1, 2, 2], [7, 1, 0]])
    upstream = torch.randn(2, 3, 16)
    (fake(ids) * upstream).sum().backward()
    grad = plain.weight.grad.clone()
    plain.weight.grad = None
    (plain(ids) * upstream).sum().backward()
    assert torch.equal(grad, plain.weight.grad)
    assert torch.equal(fake(ids), fake_quantize_rows(plain.weight[ids.reshape(-1)], 2).view(2, 3, 16))
    assert fake.weight is plain.weight and list(dict(fake.named_parameters())) == ["weight"]  # one state-dict key, as the table


def test_a_quantization_aware_finetuned_model_scores_as_its_quantized_form(fbgemm, small_synthetic, tmp_path):
    """Fine-tuned with int4 tables and one int2 table fake-quantized, then stored at those widths: the
    scores the fine-tune saw are the stored model's (up to float summation order), and the run folder
    it wrote is a plain NeuMF."""
    from slimforge.recsys.quantize import quantize_embeddings

    seed_everything(0)
    model = slimforge.create_model("neumf", dim=16, mlp=[32, 16, 8], **small_synthetic.info.model_kwargs())
    before = model.gmf_item.weight.detach().clone()
    table_bits = {"gmf_item": 2}
    tuned = quantization_aware_finetune(model, small_synthetic, 4, TrainConfig(epochs=1, lr=0.01, quiet=True, num_threads=1),
                                        table_bits=table_bits, out=tmp_path / "qat")
    assert not torch.equal(tuned.gmf_item.weight, before) and torch.equal(model.gmf_item.weight, before)  # a copy was trained
    assert type(tuned.gmf_item) is nn.Embedding
    assert torch.equal(slimforge.load(tmp_path / "qat").gmf_item.weight, tuned.gmf_item.weight)
    stored = quantize_embeddings(tuned, 4, table_bits=table_bits)
    assert stored.tables() == {"gmf_user": "int4", "gmf_item": "int2", "mlp_user": "int4", "mlp_item": "int4"}
    fake = fake_quantize_tables(tuned, 4, table_bits).eval()
    with torch.no_grad():
        for row in range(0, len(small_synthetic.val), 7):
            inputs = small_synthetic.val[row][0]  # one user's candidates: the grouped scoring path
            torch.testing.assert_close(stored(inputs), fake(inputs), rtol=1e-5, atol=1e-6)
    assert small_synthetic.val.evaluate(stored)["ndcg@10"] == pytest.approx(small_synthetic.val.evaluate(fake)["ndcg@10"], abs=1e-9)
