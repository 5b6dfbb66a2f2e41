"""State-space mixers and linear attention in Hugging Face transformers: Mamba-2's heads (with B and C shared per group),
Kimi Delta Attention's heads and Mamba's inner channels go whole, the pruned model generates, and a uniform result
loads in plain transformers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import slimforge
import slimforge.prune as sp

HERE = Path(__file__).parent
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _model(factory: str):
    import prune_helpers

    model = getattr(prune_helpers, factory)().eval()
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    return model, ids


def _mixers(model):
    return [m for m in model.modules() if hasattr(m, "A_log")]


def _plain_reload(model, ids, folder):
    from transformers import AutoModelForCausalLM

    logits = model(ids, use_cache=False).logits
    slimforge.save_pretrained(model, folder)
    reloaded = AutoModelForCausalLM.from_pretrained(folder).eval()
    torch.testing.assert_close(reloaded(ids, use_cache=False).logits, logits, rtol=1e-5, atol=1e-5)
    return reloaded


def test_one_group_mamba2_loses_heads_and_state_channels_and_generates(tmp_path):
    """Bamba (one group): a head is its z, x and dt rows, conv channels, A_log / D / dt_bias entry, norm channels and
    out_proj columns; B and C's state channels go in pairs. The mixer's sizes follow, so its own forward and its
    cached decoding still run, and the config (mamba_n_heads, mamba_d_state) describes the result."""
    model, ids = _model("tiny_bamba")
    (mixer,) = _mixers(model)
    sp.prune(model, ids, ratio=0.3)
    heads, state = mixer.A_log.numel(), mixer.ssm_state_size
    assert heads < 8 and state < 16 and mixer.num_heads == heads
    assert mixer.intermediate_size == heads * mixer.head_dim == mixer.out_proj.in_features == mixer.norm.weight.numel()
    assert mixer.in_proj.out_features == 2 * heads * mixer.head_dim + 2 * state + heads
    assert mixer.conv1d.weight.shape[0] == mixer.conv_dim == heads * mixer.head_dim + 2 * state
    assert mixer.norm.group_size == mixer.intermediate_size
    assert model.generate(ids[:1, :5], max_new_tokens=4, do_sample=False).shape == (1, 9)
    reloaded = _plain_reload(model, ids, tmp_path / "bamba")
    assert reloaded.config.mamba_n_heads == heads and reloaded.config.mamba_d_state == state


def test_grouped_mamba2_loses_whole_groups_with_their_heads(tmp_path):
    """Four groups of B and C, each read by 2 heads (repeat_interleave): a group goes with its heads, so every
    remaining group keeps num_heads // n_groups heads."""
    model, ids = _model("tiny_mamba2_grouped")
    sp.prune(model, ids, ratio=0.5)
    for mixer in _mixers(model):
        groups = mixer.n_groups
        assert groups < 4 and mixer.num_heads == 2 * groups == mixer.A_log.numel() and mixer.ssm_state_size == 16
        assert mixer.conv1d.weight.shape[0] == mixer.num_heads * 16 + 2 * groups * 16
        assert mixer.norm.group_size == mixer.intermediate_size // groups
    assert model.generate(ids[:1, :5], max_new_tokens=3, do_sample=False).shape == (1, 8)
    _plain_reload(model, ids, tmp_path / "mamba2")


def test_mamba_v1_loses_inner_channels(tmp_path):
    """Mamba (v1): each inner channel (its x and z rows, conv channel, A_log row, D, dt_proj row, x_proj and out_proj
    columns) goes whole; the state width and time-step rank stay."""
    model, ids = _model("tiny_mamba")
    sp.prune(model, ids, ratio=0.3)
    for mixer in _mixers(model):
        inner = mixer.intermediate_size
        assert inner < 128 and mixer.A_log.shape == (inner, 16) and mixer.in_proj.out_features == 2 * inner
        assert mixer.x_proj.in_features == mixer.dt_proj.out_features == mixer.out_proj.in_features == inner
    assert model.generate(ids[:1, :5], max_new_tokens=3, do_sample=False).shape == (1, 8)
    _plain_reload(model, ids, tmp_path / "mamba")


def test_pruned_mixer_round_trips_through_slimforge_folders(tmp_path):
    model, ids = _model("tiny_bamba")
    sp.prune(model, ids, ratio=0.3)
    out = model(ids, use_cache=False).logits
    slimforge.save(model, tmp_path / "bamba")
    assert torch.equal(slimforge.load(tmp_path / "bamba").eval()(ids, use_cache=False).logits, out)


def test_kimi_delta_attention_loses_whole_heads_and_generates(tmp_path):
    """Kimi Delta Attention (linear attention): a head's q/k/v rows and short-conv channels, beta row, forget-gate
    channels and A_log entry, output-gate rows and o_proj columns go together; its scan's zero state follows."""
    model, ids = _model("tiny_kimi_linear")
    (delta,) = [m for m in model.modules() if hasattr(m, "b_proj")]
    sp.prune(model, ids, ratio=0.3)
    heads = delta.b_proj.out_features
    assert heads < 4 and delta.num_heads == delta.forget_gate.num_heads == delta.forget_gate.A_log.shape[2] == heads
    assert delta.q_proj.out_features == delta.qkv_dim == heads * 16 and delta.conv1d.weight.shape[0] == delta.conv_dim == 3 * heads * 16
    assert model.generate(ids[:1, :5], max_new_tokens=3, do_sample=False).shape == (1, 8)
    logits = model(ids, use_cache=False).logits
    slimforge.save(model, tmp_path / "kimi")
    assert torch.equal(slimforge.load(tmp_path / "kimi").eval()(ids, use_cache=False).logits, logits)


@pytest.mark.parametrize("factory", ["tiny_qwen3_next", "tiny_qwen3_5_text", "tiny_olmo_hybrid"])
def test_gated_delta_net_loses_whole_key_heads_with_their_value_heads(factory, tmp_path):
    """Gated DeltaNet (Qwen3-Next, Qwen3.5, OLMo hybrid): a key head goes with the value heads it serves (its q/k rows,
    their value, gate, beta and decay rows, conv channels, A_log / dt_bias entries and output columns), so every layer
    keeps 2 value heads per key head; its sizes follow, so cached decoding runs and matches uncached decoding, and a
    uniform result loads in plain transformers."""
    model, ids = _model(factory)
    sp.prune(model, ids, ratio=0.5)
    deltas = [m for m in model.modules() if hasattr(m, "num_k_heads")]
    assert len(deltas) == 2
    for m in deltas:
        keys, values = m.num_k_heads, m.num_v_heads
        assert keys < 4 and values == 2 * keys == m.A_log.numel() == m.dt_bias.numel()
        assert m.key_dim == 16 * keys and m.value_dim == 8 * values
        assert m.conv1d.weight.shape[0] == m.conv_dim == 2 * m.key_dim + m.value_dim == m.conv1d.groups
    cached = model.generate(ids[:1, :5], max_new_tokens=4, do_sample=False, use_cache=True)
    assert torch.equal(cached, model.generate(ids[:1, :5], max_new_tokens=4, do_sample=False, use_cache=False))
    reloaded = _plain_reload(model, ids, tmp_path / factory)
    assert reloaded.config.linear_num_key_heads == deltas[0].num_k_heads
