"""Hugging Face Longformer's sliding-window attention (and LED's encoder, the same code) merges its heads' output back to
the input's width and writes its global tokens' keys, values and hidden states into tensors it builds with
``new_zeros``: its heads and the residual width stayed (longformer-base lost 12.8% of its parameters at ratio 0.3).
A form syncs its head count and ``embed_dim``; a stand-in forward (transformers' own source, its one merge written to
the heads' width) runs it once the heads are narrower than the residual."""

from __future__ import annotations

import pytest
import torch

import slimforge
import slimforge.prune as sp

pytest.importorskip("transformers")

SELF_ATTENTION = "longformer.encoder.layer.*.attention.self.*"


def _tiny_longformer():
    from transformers import LongformerConfig, LongformerForSequenceClassification

    torch.manual_seed(0)
    config = LongformerConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                              attention_window=4, max_position_embeddings=80, num_labels=3)
    return LongformerForSequenceClassification(config).eval()


def _inputs():
    """Global attention on the first token (what the classifier sets), and a second sequence with padding."""
    ids = torch.randint(3, 100, (2, 16), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 11:] = 0
    return {"input_ids": ids}, {"input_ids": ids, "attention_mask": mask}


def _attention(model):
    return [layer.attention.self for layer in model.longformer.encoder.layer]


@torch.no_grad()
def test_longformer_loses_heads_and_residual_width_and_replays(tmp_path):
    model = _tiny_longformer()
    plain, masked = _inputs()
    before = sum(p.numel() for p in model.parameters())
    sp.prune(model, example_kwargs=plain, ratio=0.3)
    assert all(a.num_heads < 4 and a.query_global.out_features == a.num_heads * a.head_dim for a in _attention(model))
    assert model.longformer.embeddings.word_embeddings.embedding_dim < 64
    assert sum(p.numel() for p in model.parameters()) < 0.65 * before
    expected, expected_masked = model(**plain).logits, model(**masked).logits
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run").eval()
    assert torch.equal(loaded(**plain).logits, expected) and torch.equal(loaded(**masked).logits, expected_masked)


@torch.no_grad()
def test_longformer_heads_that_contribute_nothing_go_without_changing_its_outputs(tmp_path):
    """A head whose local and global projections are zero removed from every layer leaves the outputs as they were,
    global tokens included (a mix-up of the heads in the global keys' and values' tensors would not). Only heads go:
    narrower than the residual, they run through the stand-in, which a replayed plan installs again."""
    model = _tiny_longformer()
    for a in _attention(model):
        for name in ("query", "key", "value", "query_global", "key_global", "value_global"):
            getattr(a, name).weight[16:32] = 0
            getattr(a, name).bias[16:32] = 0
    plain, masked = _inputs()
    expected = model(**masked).logits
    sp.prune(model, example_kwargs=plain, ratio={SELF_ATTENTION: 0.25}, round_to=1)
    assert [a.num_heads for a in _attention(model)] == [3, 3]
    assert all(a.embed_dim == 64 and type(a).__name__ == "PrunableLongformerSelfAttention" for a in _attention(model))
    assert torch.allclose(model(**masked).logits, expected, atol=1e-5)
    expected, expected_plain = model(**masked).logits, model(**plain).logits
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run").eval()
    assert all(type(a).__name__ == "PrunableLongformerSelfAttention" for a in _attention(loaded))
    assert torch.equal(loaded(**masked).logits, expected) and torch.equal(loaded(**plain).logits, expected_plain)
    with pytest.raises(Exception, match="Hugging Face folder"):  # transformers' Longformer merges to hidden_size
        slimforge.save_pretrained(model, tmp_path / "hf")


@torch.no_grad()
def test_leds_encoder_attention_loses_heads_and_its_unreached_global_projections_follow(tmp_path, caplog):
    """An example without ``global_attention_mask`` never reaches the global projections: they were left whole (with a
    warning) and the pruned model failed once given global tokens. They follow their local twins now."""
    from transformers import LEDConfig, LEDForConditionalGeneration

    torch.manual_seed(0)
    config = LEDConfig(vocab_size=100, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                       decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, attention_window=4,
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=64)
    model = LEDForConditionalGeneration(config).eval()
    ids = torch.randint(3, 100, (2, 16), generator=torch.Generator().manual_seed(1))
    inputs = {"input_ids": ids, "decoder_input_ids": ids[:, :8]}
    sp.prune(model, example_kwargs=inputs, ratio=0.3)
    assert "never reach" not in caplog.text
    encoder = [layer.self_attn.longformer_self_attn for layer in model.led.encoder.layers]
    assert all(a.num_heads < 4 and a.value_global.weight.shape == a.value.weight.shape for a in encoder)
    global_mask = torch.zeros_like(ids)
    global_mask[:, 0] = 1
    expected = model(**inputs, global_attention_mask=global_mask).logits
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run").eval()(**inputs, global_attention_mask=global_mask).logits, expected)
