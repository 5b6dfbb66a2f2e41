"""FBGEMM row-wise embedding backends: lookups equal a plain row-wise quantizer, every model
round-trips through a pickle-free artifact, and quality holds on a trained model."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import slimforge
from slimforge.artifacts import is_pickle_file
from slimforge.errors import ArtifactError
from slimforge.models import create_model
from slimforge.quantize import FallbackConfig, QuantizationError, QuantizeConfig, load_quantized, quantize, quantize_with_fallback, save_quantized
from slimforge.recsys.protocol import pair_inputs
from slimforge.train import TrainConfig, seed_everything, train

from .test_models import RECSYS_MODELS, SIZES, _pairs

BACKENDS = ("fbgemm-int8", "fbgemm-int4", "fbgemm-int2")


def reference_rowwise(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dequantized rows of asymmetric row-wise quantization with fp16 scale and offset, and each row's scale."""
    low, high = weight.min(1, keepdim=True).values, weight.max(1, keepdim=True).values
    scale = ((high - low) / (2**bits - 1)).half().float()
    bias = low.half().float()
    q = torch.clamp(torch.round((weight - bias) / scale.clamp_min(1e-12)), 0, 2**bits - 1)
    return q * scale + bias, scale


@pytest.fixture(scope="module")
def fbgemm():
    return pytest.importorskip("fbgemm_gpu")


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_lookups_equal_a_plain_rowwise_quantizer(fbgemm, bits):
    from slimforge.recsys.quantize import QuantizedEmbedding

    weight = torch.randn(50, 16, generator=torch.Generator().manual_seed(bits))
    table = QuantizedEmbedding.from_float(weight, bits)
    ids = torch.tensor([[3, 0], [49, 3]])
    rows = table(ids)
    expected, scale = reference_rowwise(weight, bits)
    assert rows.shape == (2, 2, 16) and rows.dtype == torch.float32
    # Same grid as the reference: equal up to fp16 rounding of the scale product, far below a step.
    err = (rows - expected[ids]).abs()
    assert (err <= 0.02 * scale[ids]).all(), err.max()
    assert ((rows - weight[ids]).abs() <= 0.5 * scale[ids] + 1e-3).all()  # within half a step of the fp32 row
    assert table.nbytes == 50 * (16 * bits // 8 + 4)
    runs = torch.tensor([5] * 6 + [7] * 3 + [1])  # one user's candidates: looked up once per run
    assert torch.equal(table(runs), table._rows(runs))


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_torch_kernels_equal_fbgemm_lookup_kernel(fbgemm, bits):
    from slimforge.recsys.quantize import FbgemmLookup, QuantizedEmbedding

    g = torch.Generator().manual_seed(bits)
    table = QuantizedEmbedding.from_float(torch.randn(60, 32, generator=g), bits)
    ids = torch.randint(0, 60, (5, 9), generator=g)
    rows = FbgemmLookup(table)(ids)
    assert torch.equal(table(ids), rows)  # the same fp32 rows, bit for bit
    # Scales applied to the results, sub-byte codes read through shifts: equal up to fp32 rounding.
    # Measured max error 6e-5 (int2) on results of magnitude ~10; a wrong nibble order or sign is ~1.
    vectors, weight = torch.randn(5, 32, generator=g), torch.randn(7, 32, generator=g)
    torch.testing.assert_close(table.grouped_dot(ids, vectors), torch.einsum("rld,rd->rl", rows, vectors), atol=3e-4, rtol=1e-5)
    torch.testing.assert_close(table.project(ids.reshape(-1), weight), rows.reshape(-1, 32) @ weight.T, atol=3e-4, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["mf", "neumf"])
def test_loaded_model_scores_a_users_candidates_as_fbgemm_kernels_do(fbgemm, backend, name, tmp_path):
    from slimforge.recsys.quantize import FbgemmLookup, QuantizedEmbedding, with_fbgemm_lookups

    torch.manual_seed(0)
    model = create_model(name, **SIZES).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    pairs = pair_inputs(torch.tensor([3, 7, 12, 0]).repeat_interleave(29), torch.randperm(29).repeat(4), torch.zeros(29, 2, dtype=torch.long))
    save_quantized(quantize(model, [pairs], QuantizeConfig(backend=backend)), tmp_path)
    loaded = slimforge.load(tmp_path)
    assert not any(isinstance(m, FbgemmLookup) for m in loaded.modules()) and any(isinstance(m, QuantizedEmbedding) for m in loaded.modules())
    reference = with_fbgemm_lookups(loaded)
    assert sum(isinstance(m, FbgemmLookup) for m in reference.modules()) == (4 if name == "neumf" else 2)
    with torch.no_grad():
        scores, expected = loaded(pairs), reference.model.score(pairs["user"], pairs["item"], None)  # FBGEMM rows, pair by pair
    torch.testing.assert_close(scores, expected, atol=1e-4, rtol=1e-5)  # measured max 3e-5 (NeuMF int2)
    assert not torch.equal(scores, model(pairs))  # the tables really are quantized


@pytest.mark.parametrize("bits", [None, 8, 4])
@pytest.mark.parametrize("name", ["mf", "neumf"])
def test_factorised_tables_are_folded_into_the_users_side_and_score_as_unfolded(fbgemm, name, bits):
    import copy

    from torch import nn

    from slimforge.factorize import FactorizeConfig, factorize
    from slimforge.recsys import _rowwise
    from slimforge.recsys.quantize import QuantizedEmbedding, quantize_embeddings

    torch.manual_seed(0)
    model = create_model(name, num_users=40, num_items=200).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    tables = tuple(n for n, m in model.named_modules() if isinstance(m, nn.Embedding) and m.embedding_dim > 1)
    low_rank = factorize(copy.deepcopy(model), FactorizeConfig(energy=0.7, include_embeddings=True, layers=tables, rank_multiple=8)).model.eval()
    scorer = low_rank if bits is None else quantize_embeddings(low_rank, bits).model
    item_tables = [m for n, m in scorer.named_children() if n in ("item_embedding", "gmf_item", "mlp_item")]
    folded = [_rowwise.factors(t) for t in item_tables]
    assert all(f is not None and f[1].shape[1] < f[1].shape[0] for f in folded)  # item rows enter at the rank, below the width
    assert all(isinstance(f[0], QuantizedEmbedding) == (bits is not None) for f in folded)
    users, items = torch.arange(12).repeat_interleave(25), torch.randint(0, 200, (300,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        grouped, pairwise = scorer({"user": users, "item": items}), scorer.score(users, items, None)  # rows A_i B looked up pair by pair
    # Folding reorders the sums: measured max difference 8e-7 (fp32) to 5e-6 (int4) on scores of magnitude ~2;
    # a factor applied twice or transposed is off by ~1.
    torch.testing.assert_close(grouped, pairwise, atol=3e-5, rtol=1e-5)


def test_a_width_that_does_not_pack_is_stored_in_fp16(fbgemm):
    from slimforge.recsys.quantize import QuantizedEmbedding

    bias = torch.randn(30, 1)
    table = QuantizedEmbedding.from_float(bias, 4)
    assert table.precision == "fp16" and table.nbytes == 30 * 2
    torch.testing.assert_close(table(torch.arange(30)), bias.half().float())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", RECSYS_MODELS)
def test_backend_contract_on_every_recommender(fbgemm, backend, name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, **SIZES).eval()
    pairs = _pairs()
    result = quantize(model, [pairs], QuantizeConfig(backend=backend))
    q = result.quantized
    assert result.info["mode"] == "weight-only" and result.info["quantizable_layers"]
    scores = q(pairs)
    assert scores.shape == (17,) and torch.isfinite(scores).all()
    save_quantized(result, tmp_path)
    info = json.loads((tmp_path / "quantized.json").read_text())
    assert info["backend"] == backend and not any(is_pickle_file(p) for p in tmp_path.glob("*.safetensors"))
    loaded = load_quantized(tmp_path)
    assert loaded.tables() == q.tables() and torch.equal(loaded(pairs), scores)
    assert torch.equal(slimforge.load(tmp_path)(pairs), scores)  # through the generic loader too


def test_fp32_layers_keep_tables_and_the_fallback_chooses_per_table(fbgemm, small_synthetic):
    data = small_synthetic
    seed_everything(0)
    model = train(create_model("mf", **data.info.model_kwargs()), data, TrainConfig(epochs=6, lr=0.01, num_threads=1, quiet=True)).model
    calibration = [data.train.__getitems__(list(range(32)))]
    kept = quantize(model, calibration, QuantizeConfig(backend="fbgemm-int2", fp32_layers=("item_embedding",))).quantized
    assert kept.tables() == {"user_embedding": "int2", "item_embedding": "fp32", "item_bias": "fp16"}
    # A score that every quantized table lowers (closeness of the scores to fp32's), so the search must choose.
    pairs = calibration[0][0]
    with torch.no_grad():
        reference = model(pairs)
    closeness = lambda q: -float((q(pairs) - reference).abs().mean())  # noqa: E731
    search = quantize_with_fallback(model, calibration, closeness, QuantizeConfig(backend="fbgemm-int2"), FallbackConfig(max_drop=0.0))
    tried = [tuple(t["fp32_layers"]) for t in search.history]
    assert tried[0] == () and {("user_embedding",), ("item_embedding",), ("item_bias",)} <= set(tried)  # each table's sensitivity
    assert search.best.info["fp32_layers"] and search.score > search.history[0]["score"]  # some table back in fp32 helped


def test_quality_of_int8_and_int4_tables_on_a_trained_model(fbgemm, synthetic):
    seed_everything(0)
    model = train(create_model("mf", **synthetic.info.model_kwargs()), synthetic, TrainConfig(epochs=8, lr=0.01, num_threads=1, quiet=True)).model
    calibration = [synthetic.train.__getitems__(list(range(32)))]
    fp32 = synthetic.test.evaluate(model)
    # Measured (fp32 NDCG@10 0.3009): int8 +0.0002, int4 +0.0006, int2 -0.014.
    for backend, tolerance in (("fbgemm-int8", 0.003), ("fbgemm-int4", 0.006)):
        quantized = synthetic.test.evaluate(quantize(model, calibration, QuantizeConfig(backend=backend)).quantized)
        assert abs(quantized["ndcg@10"] - fp32["ndcg@10"]) <= tolerance, (backend, quantized, fp32)


def test_without_fbgemm_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fbgemm_gpu", None)  # as if absent: importing it raises ImportError
    model = create_model("mf", **SIZES)
    with pytest.raises(QuantizationError, match=r"need FBGEMM's CPU kernels.*pip install fbgemm-gpu-cpu==1.9.0"):
        quantize(model, [_pairs()], QuantizeConfig(backend="fbgemm-int4"))


def test_a_quantized_folder_loads_and_scores_without_fbgemm(fbgemm, monkeypatch, tmp_path):
    model = create_model("neumf", **SIZES).eval()
    pairs = _pairs()
    result = quantize(model, [pairs], QuantizeConfig(backend="fbgemm-int4"))
    save_quantized(result, tmp_path)
    monkeypatch.setitem(sys.modules, "fbgemm_gpu", None)  # as if absent: importing it raises ImportError
    assert torch.equal(slimforge.load(tmp_path)(pairs), result.quantized(pairs))


def test_a_tampered_artifact_is_a_clear_error(fbgemm, tmp_path):
    from safetensors.torch import load_file, save_file

    model = create_model("mf", **SIZES).eval()
    save_quantized(quantize(model, [_pairs()], QuantizeConfig(backend="fbgemm-int4")), tmp_path)
    path = tmp_path / "quantized.safetensors"
    from slimforge.artifacts import read_metadata

    tensors, metadata = load_file(str(path)), read_metadata(path)
    tensors["item_embedding.qweight"] = tensors["item_embedding.qweight"][:, :4].contiguous()
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ArtifactError, match=r"int4 table of 29 x 32 needs packed rows \(29, 16\)"):
        load_quantized(tmp_path)
    del tensors["item_embedding.qweight"]
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ArtifactError, match="no packed rows for table 'item_embedding'"):
        load_quantized(tmp_path)


def test_pairs_helper_is_the_one_models_use():
    genres = torch.zeros(3, 2, dtype=torch.long)
    assert set(pair_inputs(torch.tensor([0]), torch.tensor([1]), genres)) == {"user", "item", "item_genres"}
