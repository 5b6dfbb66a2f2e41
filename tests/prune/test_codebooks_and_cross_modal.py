"""Issue 20's twelfth held-out pass: a vector quantizer's codebook (Mimi's: ``torch.cdist`` to its entries, the
codebook cached in a plain attribute) and LXMERT's cross-modal attention (its output viewed to ``self.head_size``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import slimforge
import slimforge.prune as sp
from slimforge.artifacts import ModelSpec, attach_spec

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


@torch.no_grad()
def test_a_codebook_searched_with_cdist_prunes_and_its_cache_is_rebuilt_on_load(tmp_path):
    """cdist had no rule (the capture failed); its entries' features go with the encoder's output. The codebook a
    property caches in ``_embed`` is dropped before the capture, so the buffer it is computed from is sliced, and the
    pruned and the reloaded model compute it again at the new width."""
    import prune_helpers

    model = attach_spec(prune_helpers.codebook_net().eval(), ModelSpec("prune_helpers:codebook_net", {}))
    x = torch.randn(4, 6, 12, generator=torch.Generator().manual_seed(0))
    model(x)  # a model that has run holds its codebook in the cache
    sp.prune(model, x, ratio=0.3)
    assert model.encode[0].out_features < 32 and model.decode[0].out_features < 32
    width = model.encode[2].out_features
    assert model.codebook.embed_sum.shape[1] == width < 8 and model.decode[0].in_features == width
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run", trust_code=True).eval()
    assert torch.equal(loaded(x), model(x)) and model.codebook._embed.shape[1] == width


@torch.no_grad()
def test_lxmert_cross_modal_attention_loses_heads(tmp_path):
    import prune_helpers

    pytest.importorskip("transformers")
    model = prune_helpers.tiny_lxmert().eval()
    inputs = {"input_ids": torch.randint(3, 120, (2, 12), generator=torch.Generator().manual_seed(0)),
              "visual_feats": torch.randn(2, 5, 32), "visual_pos": torch.rand(2, 5, 4)}
    attention = [m for m in model.modules() if type(m).__name__ == "LxmertAttention"]
    sp.prune(model, example_kwargs=inputs, ratio=0.3)
    assert all(m.num_attention_heads < 4 and m.head_size == m.query.out_features for m in attention)
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run").eval()(**inputs).language_output, model(**inputs).language_output)
