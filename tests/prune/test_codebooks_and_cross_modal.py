"""Issue 20's twelfth held-out pass: a vector quantizer's codebook (Mimi's: ``torch.cdist`` to its entries, the
codebook cached in a plain attribute) and LXMERT's cross-modal attention (its output viewed to ``self.head_size``); from
the fifteenth, DAC's quantizer (``broadcast_tensors`` and a loss computed in its forward) and Bark's semantic model (a
sub-model's config type that no auto mapping lists)."""

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


def test_dac_quantizer_broadcasts_and_computes_its_loss_in_forward_and_the_codec_prunes(tmp_path):
    from transformers import DacConfig, DacModel

    torch.manual_seed(0)
    model = DacModel(DacConfig(encoder_hidden_size=8, downsampling_ratios=[2, 4], decoder_hidden_size=32, n_codebooks=2,
                               codebook_size=32, codebook_dim=4, upsampling_ratios=[4, 2], hidden_size=32, hop_length=8)).eval()
    wave = {"input_values": torch.randn(2, 1, 800, generator=torch.Generator().manual_seed(0))}
    with torch.no_grad():
        shape = model(**wave).audio_values.shape
    sp.prune(model, example_kwargs=wave, ratio=0.3)  # no rule for broadcast_tensors, then for mse_loss: it failed
    assert model.encoder.block[0].conv1.out_channels < 16
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run").eval()
    with torch.no_grad():
        out = model(**wave).audio_values
        assert out.shape == shape and torch.equal(loaded(**wave).audio_values, out)


def test_bark_semantic_model_of_a_config_type_no_auto_mapping_lists_saves_and_reloads(tmp_path):
    from transformers import BarkSemanticConfig, BarkSemanticModel

    torch.manual_seed(0)
    model = BarkSemanticModel(BarkSemanticConfig(block_size=64, input_vocab_size=128, output_vocab_size=128, num_layers=2,
                                                 num_heads=4, hidden_size=64)).eval()
    ids = {"input_ids": torch.randint(0, 128, (2, 12), generator=torch.Generator().manual_seed(0))}
    sp.prune(model, example_kwargs=ids, ratio=0.3)
    assert model.layers[0].attn.out_proj.in_features < 64
    slimforge.save(model, tmp_path / "run")  # "does not know how to rebuild": config type 'semantic' is Bark's own
    loaded = slimforge.load(tmp_path / "run").eval()
    with torch.no_grad():
        assert torch.equal(loaded(**ids, use_cache=False).logits, model(**ids, use_cache=False).logits)
