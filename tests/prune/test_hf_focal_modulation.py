"""Hugging Face FocalNet's focal modulation splits its projection into query, context and level gates by the block
input's width, read at run time: the capture records it as a constant, and the query and context stayed whole (15.3%
of a tiny FocalNet's parameters went at ratio 0.3, 18.8% of focalnet-tiny's). A stand-in forward reads their widths
from ``projection_context`` and tells the tracer which pieces follow; the gates stay whole."""

from __future__ import annotations

import pytest
import torch

import slimforge
import slimforge.prune as sp

pytest.importorskip("transformers")

MODULATION = "focalnet.encoder.stages.*.layers.*.modulation.*"


def _tiny_focalnet(**extra):
    from transformers import FocalNetConfig, FocalNetForImageClassification

    torch.manual_seed(0)
    config = FocalNetConfig(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_labels=5, **extra)
    return FocalNetForImageClassification(config).eval()


def _modulations(model):
    return [m for m in model.modules() if type(m).__name__.endswith("FocalNetModulation")]


def _pixels():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def test_the_stand_in_forward_computes_what_focalnets_own_forward_does():
    from slimforge.prune.attention import swap_for

    model = _tiny_focalnet(use_post_layernorm_in_modulation=True, normalize_modulator=True)
    x = _pixels()
    expected = model(x).logits
    for module in _modulations(model):
        swap_for(type(module)).use(module)
    assert all(type(m).__name__ == "PrunableFocalNetModulation" for m in _modulations(model))
    assert torch.equal(model(x).logits, expected)


@torch.no_grad()
def test_focalnets_query_and_context_shrink_and_the_pruned_model_replays(tmp_path):
    model = _tiny_focalnet()
    x = _pixels()
    before = sum(p.numel() for p in model.parameters())
    widths = [m.projection_context.in_channels for m in _modulations(model)]
    sp.prune(model, x, ratio=0.3)
    assert all(m.projection_context.in_channels < w for m, w in zip(_modulations(model), widths))
    assert sum(p.numel() for p in model.parameters()) < 0.6 * before
    assert all(m.projection_in.out_features == 2 * m.projection_context.in_channels + m.focal_level + 1 for m in _modulations(model))
    expected = model(x).logits
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run").eval()(x).logits, expected)


@torch.no_grad()
def test_a_modulation_narrower_than_its_input_keeps_the_stand_in_and_gets_it_back_on_load(tmp_path):
    """Only the modulation pruned: the residual keeps its width, which FocalNet's own forward would split by."""
    model = _tiny_focalnet()
    x = _pixels()
    sp.prune(model, x, ratio={MODULATION: 0.5}, round_to=1)
    modulations = _modulations(model)
    assert all(m.projection_context.in_channels < m.projection_in.in_features for m in modulations)
    assert all(type(m).__name__ == "PrunableFocalNetModulation" for m in modulations)
    expected = model(x).logits
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run").eval()
    assert all(type(m).__name__ == "PrunableFocalNetModulation" for m in _modulations(loaded))
    assert torch.equal(loaded(x).logits, expected)


@torch.no_grad()
def test_query_and_context_channels_that_contribute_nothing_go_without_changing_the_outputs():
    """Each query channel is multiplied by its own modulator channel and each context channel feeds
    ``projection_context`` through its own depthwise filters: channels whose weights are zero removed from every
    block leave the outputs as they were (a mix-up of the pieces' indices would not)."""
    model = _tiny_focalnet()
    for m in _modulations(model):
        width = m.projection_context.in_channels
        query, context = slice(2, 2 + width // 4), slice(width // 4, width // 2)  # a quarter of each
        m.projection_in.weight[query] = 0
        m.projection_in.bias[query] = 0
        m.projection_context.weight[query] = 0  # the modulator channels they are multiplied by
        m.projection_context.bias[query] = 0
        m.projection_out.weight[:, query] = 0
        m.projection_in.weight[width:][context] = 0
        m.projection_in.bias[width:][context] = 0
        for level in m.focal_layers:
            level[0].weight[context] = 0
        m.projection_context.weight[:, context] = 0
    x = _pixels()
    expected = model(x).logits
    sp.prune(model, x, ratio={MODULATION: 0.25}, round_to=1)
    assert [m.projection_context.in_channels for m in _modulations(model)] == [12, 24]
    assert torch.allclose(model(x).logits, expected, atol=1e-5)
