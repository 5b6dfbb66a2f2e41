"""Mixed-dimension item tables: blocks by popularity, exact at full width, trained, saved, quantized and
reloaded like any table, and a weight file whose row positions are not a permutation refused."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import slimforge
from slimforge.errors import ArtifactError, ConfigError
from slimforge.recsys.mixed_dim import MixedDimEmbedding, mixed_dimensions
from slimforge.train import TrainConfig, seed_everything, train


@pytest.fixture()
def mf(small_synthetic):
    seed_everything(0)
    return slimforge.create_model("mf", dim=16, **small_synthetic.info.model_kwargs()).eval()


def _pairs(data, n=200):
    g = torch.Generator().manual_seed(1)
    return {"user": torch.randint(0, data.info.num_users, (n,), generator=g), "item": torch.randint(0, data.info.num_items, (n,), generator=g)}


def test_full_width_blocks_hold_the_table_exactly_and_the_most_popular_rows_come_first(mf, small_synthetic):
    popularity = small_synthetic.catalogue.popularity
    table = mf.item_embedding.weight.detach().clone()
    n = small_synthetic.info.num_items  # 152 of the 160 generated items have interactions
    blocks = mixed_dimensions(mf, popularity, shares=(0.25, 0.75), widths=(1.0, 1.0))
    assert blocks == {"item_embedding": [(round(n / 4), 16), (n - round(n / 4), 16)]}
    mixed = mf.item_embedding
    assert isinstance(mixed, MixedDimEmbedding) and torch.equal(mixed.weight, table)
    top = set(torch.argsort(-popularity.double(), stable=True)[:round(n / 4)].tolist())
    assert {i for i in range(n) if mixed.position[i] < round(n / 4)} == top  # block 0: the most interacted items
    assert mixed.position.dtype == torch.int16  # under 32,768 rows: two bytes each


def test_narrow_blocks_are_the_svd_of_their_trained_rows(small_synthetic):
    seed_everything(0)
    model = slimforge.create_model("mf", dim=16, **small_synthetic.info.model_kwargs())
    train(model, small_synthetic, TrainConfig(epochs=3, lr=0.01, quiet=True, num_threads=1))
    model.eval()
    popularity = small_synthetic.catalogue.popularity
    table = model.item_embedding.weight.detach().clone()
    blocks = mixed_dimensions(model, popularity, (0.1, 0.3, 0.6), (1.0, 0.25, 0.125))  # of the 152 items at widths 16 / 4 / 2
    assert blocks == {"item_embedding": [(15, 16), (46, 4), (91, 2)]}
    mixed = model.item_embedding
    assert mixed.stored_values() == 15 * 16 + 46 * 4 + 91 * 2 + 4 * 16 + 2 * 16  # rows + projections: 3.1x fewer than 152 x 16
    order = torch.argsort(-popularity.double(), stable=True)
    for (start, stop), width in (((15, 61), 4), ((61, 152), 2)):
        rows = table[order[start:stop]].double()
        s = torch.linalg.svdvals(rows)
        error = (mixed.weight.detach()[order[start:stop]].double() - rows).norm()
        assert float(error) == pytest.approx(float(s[width:].norm()), rel=1e-4)  # the best rank-w rows (Eckart-Young)


def test_a_mixed_model_trains_saves_quantizes_and_reloads_with_identical_scores(mf, small_synthetic, tmp_path):
    pytest.importorskip("fbgemm_gpu")
    from slimforge.quantize import QuantizeConfig, load_quantized, quantize, save_quantized

    mixed_dimensions(mf, small_synthetic.catalogue.popularity, (0.1, 0.3, 0.6), (1.0, 0.25, 0.125))
    before = [p.detach().clone() for p in mf.item_embedding.parameters()]
    train(mf, small_synthetic, TrainConfig(epochs=1, lr=0.01, quiet=True, num_threads=1, keep_best=False), out=tmp_path / "run")
    assert all(not torch.equal(a, b) for a, b in zip(before, mf.item_embedding.parameters()))  # every block and projection learns
    x = _pairs(small_synthetic)
    loaded = slimforge.load(tmp_path / "run").eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), mf.eval()(x))
    edits = json.loads((tmp_path / "run" / "model.json").read_text())["edits"]
    assert edits == [{"kind": "mixed_dim", "layers": {"item_embedding": {"blocks": [[15, 16], [46, 4], [91, 2]]}}}]
    calibration = [small_synthetic.train.__getitems__(list(range(32)))]
    result = quantize(loaded, calibration, QuantizeConfig(backend="fbgemm-int4"))
    assert set(result.quantized.tables()) >= {"item_embedding.tables.0", "item_embedding.tables.1", "item_embedding.tables.2"}
    folder = save_quantized(result, tmp_path / "int4")
    with torch.no_grad():
        assert torch.equal(load_quantized(folder)(x), result.quantized(x))
        assert 0 < (result.quantized(x) - loaded(x)).abs().max() < 0.1  # int4 rows: close, not equal


def test_row_positions_that_are_not_a_permutation_are_refused_on_load(mf, small_synthetic, tmp_path):
    mixed_dimensions(mf, small_synthetic.catalogue.popularity)
    slimforge.save(mf, tmp_path / "m")
    weights = load_file(tmp_path / "m" / "model.safetensors")
    weights["item_embedding.position"][3] = weights["item_embedding.position"][4]  # two items in one slot, one slot unread
    save_file(weights, tmp_path / "m" / "model.safetensors")
    with pytest.raises(ArtifactError, match="not a permutation of its 152 rows"):
        slimforge.load(tmp_path / "m")


def test_blocks_that_do_not_fit_the_table_in_model_json_are_refused(mf, small_synthetic, tmp_path):
    mixed_dimensions(mf, small_synthetic.catalogue.popularity)
    slimforge.save(mf, tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "model.json").read_text())
    spec["edits"][0]["layers"]["item_embedding"]["blocks"] = [[15, 16], [46, 4], [90, 2]]  # 151 rows for a 152-row table
    (tmp_path / "m" / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="does not fit its 152 x 16 table: .*must hold 152 rows"):
        slimforge.load(tmp_path / "m")
    spec["edits"][0]["layers"]["item_embedding"]["blocks"] = "all"
    (tmp_path / "m" / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match=r"must be \{'blocks'"):
        slimforge.load(tmp_path / "m")


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"shares": (0.5, 0.4), "widths": (1.0, 0.5)}, "summing to 1"),
    ({"shares": (0.5, 0.5), "widths": (1.0,)}, "one per width"),
    ({"shares": (0.5, 0.5), "widths": (1.0, 0.0)}, r"fractions of the table's width in \(0, 1\]"),
    ({"layers": ["user_embedding"]}, r"\['user_embedding'\] is not an nn.Embedding with 152 rows"),
])
def test_settings_that_cannot_make_blocks_are_refused_by_name(mf, small_synthetic, kwargs, named):
    with pytest.raises(ConfigError, match=named):
        mixed_dimensions(mf, small_synthetic.catalogue.popularity, **kwargs)


def test_grouped_scoring_folds_each_block_s_projection_and_scores_as_pair_by_pair(mf, small_synthetic):
    mixed_dimensions(mf, small_synthetic.catalogue.popularity)
    users = torch.arange(8).repeat_interleave(30)  # 8 users x 30 candidates: the grouped path
    items = torch.randint(0, small_synthetic.info.num_items, (240,), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        grouped = mf({"user": users, "item": items})
        pairwise = mf.score(users, items, None)
    assert torch.allclose(grouped, pairwise, atol=1e-5)
