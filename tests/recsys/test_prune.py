"""Structured pruning of recommenders through the shared engine: embedding dimensions and MLP towers shrink
(NeuMF, MF, the two-tower's EmbeddingBag genres), the pruned model scores as a recommender and reloads."""

from __future__ import annotations

import pytest
import torch

import slimforge
from slimforge.cli import main


def _batch(data):
    data.train.set_epoch(0)
    return data.train.__getitems__(list(range(8)))[0]


@pytest.mark.parametrize("name", ["mf", "neumf", "two-tower"])
def test_embedding_dimensions_and_towers_shrink_and_the_folder_reloads(name, synthetic, tmp_path):
    torch.manual_seed(0)
    model = slimforge.create_model(name, **synthetic.info.model_kwargs()).eval()
    inputs = _batch(synthetic)
    params = sum(p.numel() for p in model.parameters())
    slimforge.prune(model, (inputs,), ratio=0.5)
    assert model.item_embedding.weight.shape[1] == 16 if name != "neumf" else model.gmf_item.weight.shape[1] == 16
    if name == "two-tower":  # the genres' EmbeddingBag (no rule before: pruning failed) narrows with the item tower
        assert model.genre_embedding.weight.shape[1] == model.genre_embedding.embedding_dim == 16
    assert sum(p.numel() for p in model.parameters()) < 0.55 * params
    assert 0 < slimforge.evaluate(model, synthetic.test)["ndcg@10"] <= 1
    slimforge.save(model, tmp_path / name)
    assert torch.equal(slimforge.load(tmp_path / name).eval()(inputs), model(inputs))


def test_slimforge_prune_on_a_recommender_fine_tunes_and_reports_ranking_figures(tmp_path, capsys):
    run, out = tmp_path / "neumf", tmp_path / "pruned"
    assert main(["train", "--data", "synthetic-ratings", "--model", "neumf", "--epochs", "3", "--lr", "0.01", "--threads", "1",
                 "--out", str(run), "--quiet"]) == 0
    assert main(["prune", str(run), "--ratio", "0.5", "--finetune-epochs", "1", "--lr", "0.005", "--threads", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pruned model test hr@10" in printed and "ndcg@20" in printed
    assert (out / "catalogue.json").is_file()  # the pruned folder serves raw ids as the original does
    assert slimforge.load(out).gmf_item.weight.shape[1] < 32
