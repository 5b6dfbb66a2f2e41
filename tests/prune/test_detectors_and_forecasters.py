"""Issue 20's sixteenth held-out pass: DAB-DETR's attention, whose queries, keys and values the decoder layer projects
(and concatenates per head) outside it; D-FINE's box integral, ``F.linear`` with a weight vector; and TimesFM 2.5's
quantile head, a view to a size read from the config that pruning took for one that follows its tensor; and Table
Transformer's attention, which merges its heads to its input's width. From the seventeenth: ``torch.copysign``
(Kolibri 1.1) and SuperPoint's keypoint count, which the data decides."""

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


TINY_RESNET = dict(model_type="resnet", embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic",
                   out_features=["stage4"])


def _tiny_detector(config_class: str, model_class: str, **sizes):
    """A DETR-style detector on a tiny ResNet: 32 wide, 4 heads, 6 queries, 3 labels."""
    import transformers

    config = getattr(transformers, config_class)(use_timm_backbone=False, backbone_config=TINY_RESNET, use_pretrained_backbone=False,
                                                 backbone=None, encoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
                                                 encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=6, num_labels=3, **sizes)
    torch.manual_seed(0)
    return getattr(transformers, model_class)(config).eval()


def _tiny_dab_detr():
    return _tiny_detector("DabDetrConfig", "DabDetrForObjectDetection", hidden_size=32, decoder_layers=1)


@torch.no_grad()
def test_dab_detr_attention_projected_by_its_decoder_layer_loses_whole_heads(tmp_path):
    """Before, no form matched DabDetrAttention (it holds only ``output_proj``): its heads were cut inside, its forward
    failed, and it was kept whole."""
    pytest.importorskip("transformers")
    model = _tiny_dab_detr()
    inputs = {"pixel_values": torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))}
    attention = [m for m in model.modules() if type(m).__name__ == "DabDetrAttention"]
    layers = [m for m in model.modules() if type(m).__name__ == "DabDetrDecoderLayerCrossAttention"]
    sp.prune(model, example_kwargs=inputs, ratio=0.5, round_to=1)
    assert any(m.attention_heads < 4 for m in attention)
    for m in attention:
        assert m.output_dim == m.output_proj.in_features == m.attention_heads * m.values_head_dim
    for layer in layers:  # its view of the query into heads follows its attention's
        assert layer.decoder_attention_heads == layer.cross_attn.attention_heads
    expected = model(**inputs).logits
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run").eval()(**inputs).logits, expected)


@torch.no_grad()
def test_a_linear_with_a_weight_vector_prunes_the_layers_before_it(tmp_path):
    """The linear rule read a 1-D weight as (out, in) and failed (D-FINE's integral over its bins)."""
    model = attach_spec(__import__("prune_helpers").bin_integral_net().eval(), ModelSpec("prune_helpers:bin_integral_net", {}))
    x = torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(0))
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.mlp[0].out_features < 32 and model.mlp[2].out_features == 32  # the bins stay
    expected = model(x)
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run", trust_code=True)(x), expected)


@torch.no_grad()
def test_timesfm_quantile_head_viewed_to_a_size_from_the_config_is_kept_whole_and_the_rest_pruned(tmp_path):
    """TimesFM 2.5's quantile head is viewed as (config.output_quantile_len, quantiles), and only its first positions
    reach the outputs: the positions were split off as a channel shuffle's groups would be and pruned, its view then
    failed, and pruning gave up. That guess is now kept whole on the retry."""
    from transformers import TimesFm2_5Config, TimesFm2_5ModelForPrediction

    config = TimesFm2_5Config(hidden_size=32, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              num_key_value_heads=2, head_dim=16, patch_length=8, context_length=32, horizon_length=8,
                              output_quantile_len=32)
    torch.manual_seed(0)
    model = TimesFm2_5ModelForPrediction(config).eval()
    inputs = {"past_values": torch.randn(2, 32, generator=torch.Generator().manual_seed(0))}
    sp.prune(model, example_kwargs=inputs, ratio=0.5, round_to=1)
    assert model.output_projection_quantiles.output_layer.out_features == 32 * 10
    assert model.model.layers[0].self_attn.q_proj.out_features == 16  # one head of two
    expected = model(**inputs).mean_predictions
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run").eval()(**inputs).mean_predictions, expected)



def _tiny_table_transformer():
    return _tiny_detector("TableTransformerConfig", "TableTransformerForObjectDetection", d_model=32, decoder_layers=1)


@torch.no_grad()
def test_attention_merging_its_heads_to_its_input_width_loses_heads_where_that_width_stays(tmp_path):
    """Table Transformer's attention merges its heads' output with ``reshape(batch_size, target_len, embed_dim)``, the
    input's width: its heads were tied to the residual width, which its encoder cannot narrow (a sine position
    embedding is added to it), so no head went. Its stand-in forward (its own source, merged to ``-1``) gives the same
    outputs, and the heads go on their own."""
    from slimforge.prune._hf_input_width_attention import stand_in_class, use_stand_in

    model = _tiny_table_transformer()
    inputs = {"pixel_values": torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))}
    reference = model(**inputs).logits
    attention = [m for m in model.modules() if type(m).__name__ == "TableTransformerAttention"]
    assert attention and all(stand_in_class(type(m)) is not None for m in attention)
    for m in attention:
        use_stand_in(m)
    assert torch.equal(model(**inputs).logits, reference)

    model = _tiny_table_transformer()
    attention = [m for m in model.modules() if type(m).__name__ == "TableTransformerAttention"]
    sp.prune(model, example_kwargs=inputs, ratio=0.3)
    encoder = model.model.encoder.layers[0].self_attn
    assert encoder.num_heads < 4 and model.model.input_projection.out_channels == 32
    assert all(type(m).__name__ == ("PrunableTableTransformerAttention" if m.num_heads < 4 else "TableTransformerAttention") for m in attention)
    expected = model(**inputs).logits
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run").eval()(**inputs).logits, expected)


@torch.no_grad()
def test_prophetnet_attention_merging_to_its_input_width_loses_heads_and_replays(tmp_path):
    """ProphetNet's encoder and cross attention merge with ``reshape(batch_size, tgt_len, hidden_size)``, the input's
    width, and count heads in ``num_attn_heads``: no head went (prophetnet-large, 3 + 3 layers: 12.4% removed). The
    stand-in covers them; a replayed plan (no form remembers their head count) finds them by their narrower queries.
    The decoder's n-gram self-attention stays whole: its relative position bias mixes its heads' rows."""
    from transformers import ProphetNetConfig, ProphetNetForConditionalGeneration

    torch.manual_seed(0)
    config = ProphetNetConfig(vocab_size=100, hidden_size=64, num_encoder_layers=1, num_decoder_layers=1, num_encoder_attention_heads=4,
                              num_decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, ngram=2, max_position_embeddings=64)
    model = ProphetNetForConditionalGeneration(config).eval()
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(1))
    inputs = {"input_ids": ids, "decoder_input_ids": ids[:, :8]}
    sp.prune(model, example_kwargs=inputs, ratio=0.3)
    merged = [model.prophetnet.encoder.layers[0].self_attn, model.prophetnet.decoder.layers[0].cross_attn]
    assert all(m.num_attn_heads == 3 and type(m).__name__ == "PrunableProphetNetAttention" for m in merged)
    expected = model(**inputs).logits
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run").eval()
    assert type(loaded.prophetnet.encoder.layers[0].self_attn).__name__ == "PrunableProphetNetAttention"
    assert torch.equal(loaded(**inputs).logits, expected)
    assert model.generate(ids[:1], max_new_tokens=3, do_sample=False, num_beams=1).shape[1] >= 2


def test_attention_that_merges_to_its_own_attribute_gets_no_stand_in():
    """BART's forward merges to the heads' width already: its class keeps its own forward."""
    from transformers.models.bart.modeling_bart import BartAttention

    from slimforge.prune._hf_input_width_attention import stand_in_class

    assert stand_in_class(BartAttention) is None


@torch.no_grad()
def test_copysign_ties_its_two_inputs_channel_for_channel(tmp_path):
    """``torch.copysign`` had no rule (Kolibri 1.1's indexer failed the capture)."""
    model = attach_spec(__import__("prune_helpers").signed_gate_net().eval(), ModelSpec("prune_helpers:signed_gate_net", {}))
    x = torch.randn(4, 12, generator=torch.Generator().manual_seed(0))
    sp.prune(model, x, ratio=0.5, round_to=1)
    assert model.magnitude.out_features == model.sign.out_features == model.head.in_features < 32
    expected = model(x)
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run", trust_code=True)(x), expected)


@torch.no_grad()
def test_superpoint_keypoint_count_the_scores_decide_may_change_after_pruning(tmp_path):
    """SuperPoint keeps the positions whose score passes a threshold (``nonzero``, then a boolean mask): a count the
    data decides, which its capture records as the example's number. Pruning changes the scores, so the count, and
    the check of the pruned graph took that for a size the module computed wrongly."""
    from transformers import SuperPointConfig, SuperPointForKeypointDetection

    config = SuperPointConfig(encoder_hidden_sizes=[16, 16, 32, 32], decoder_hidden_size=64, keypoint_decoder_dim=65,
                              descriptor_decoder_dim=64, max_keypoints=16)
    torch.manual_seed(0)
    model = SuperPointForKeypointDetection(config).eval()
    inputs = {"pixel_values": torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))}
    sp.prune(model, example_kwargs=inputs, ratio=0.3)
    assert model.encoder.conv_blocks[0].conv_a.out_channels < 16
    expected = model(**inputs).descriptors
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run").eval()(**inputs).descriptors, expected)
