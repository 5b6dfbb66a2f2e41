"""Whole-head pruning of every registered attention form (slimforge.prune.attention): timm ViT/DeiT
and Swin, GPT-2's Conv1D attention, grouped-query attention; keyword example inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import slimforge
import slimforge.prune as sp
from slimforge.artifacts import ModelSpec, attach_spec
from slimforge.loading import load, save
from slimforge.prune.attention import find_attention_form, list_attention_forms

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _timm(name: str, **kwargs):
    pytest.importorskip("timm")
    torch.manual_seed(0)
    return slimforge.create_model(f"timm:{name}", **kwargs).eval()


def _vit():
    return _timm("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=5), torch.randn(2, 3, 32, 32), {}


def _swin():
    return (_timm("swin_tiny_patch4_window7_224", img_size=64, window_size=4, depths=(1, 1, 2, 1), num_classes=5),
            torch.randn(2, 3, 64, 64), {})


def _hf(factory: str):
    pytest.importorskip("transformers")
    import prune_helpers

    model = attach_spec(getattr(prune_helpers, factory)().eval(), ModelSpec(f"prune_helpers:{factory}", {}))
    ids = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))
    return model, ids, {"attention_mask": torch.ones(2, 8, dtype=torch.long)}


def _speech(factory: str):
    pytest.importorskip("transformers")
    import prune_helpers

    model = attach_spec(getattr(prune_helpers, factory)().eval(), ModelSpec(f"prune_helpers:{factory}", {}))
    return model, torch.randn(2, 40, 160, generator=torch.Generator().manual_seed(0)), {}


def _seq2seq(factory: str):
    model, ids, kwargs = _hf(factory)
    return model, ids, {**kwargs, "decoder_input_ids": ids[:, :4], "use_cache": False}


def _factory(name: str, x: torch.Tensor):
    import prune_helpers

    return attach_spec(getattr(prune_helpers, name)().eval(), ModelSpec(f"prune_helpers:{name}", {})), x, {}


def _pix2struct():
    pytest.importorskip("transformers")
    from prune_helpers import pix2struct_patches

    model, patches, _ = _factory("tiny_pix2struct", pix2struct_patches())
    return model, patches, {"attention_mask": torch.ones(2, 16), "decoder_input_ids": torch.randint(3, 100, (2, 6))}


def _blip():
    pytest.importorskip("transformers")
    model, pixels, _ = _factory("tiny_blip", torch.randn(2, 3, 32, 32))
    return model, pixels, {"input_ids": torch.randint(3, 100, (2, 8), generator=torch.Generator().manual_seed(0))}


def _bert():
    pytest.importorskip("transformers")
    from prune_helpers import tiny_bert

    model = attach_spec(tiny_bert().eval(), ModelSpec("prune_helpers:tiny_bert", {}))
    return model, torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(0)), {}


# One small model per registered form; the contract test below fails when a form has none.
FORM_MODELS = {
    "hf-self-attention": _bert,
    "hf-grouped-query": lambda: _hf("tiny_llama"),
    "hf-gpt2": lambda: _hf("tiny_gpt2"),
    "hf-out-proj-attention": lambda: _factory("tiny_clip_classifier", torch.randn(2, 3, 32, 32)),
    "hf-distilbert-attention": lambda: _hf("tiny_distilbert"),
    "hf-t5-attention": lambda: _hf("tiny_t5_tagger"),
    "hf-falcon-attention": lambda: _hf("tiny_falcon"),
    "hf-falcon-alibi-attention": lambda: _hf("tiny_falcon_rw"),
    "hf-falcon-grouped-attention": lambda: _hf("tiny_falcon_grouped"),
    "hf-persimmon-attention": lambda: _hf("tiny_persimmon"),
    "hf-xlnet-relative-attention": lambda: _hf("tiny_xlnet"),
    "hf-deberta-v1-attention": lambda: _hf("tiny_deberta_v1"),
    "hf-squeezebert-attention": lambda: _hf("tiny_squeezebert"),
    "hf-xlm-attention": lambda: _hf("tiny_xlm"),
    "hf-ctrl-attention": lambda: _hf("tiny_ctrl"),
    "hf-openai-gpt-attention": lambda: _hf("tiny_openai_gpt"),
    "hf-modernbert-attention": lambda: _hf("tiny_modernbert"),
    "hf-mpt-attention": lambda: _hf("tiny_mpt"),
    "hf-latent-attention": lambda: _hf("tiny_minicpm3"),
    "hf-bloom-attention": lambda: _hf("tiny_bloom"),
    "hf-fused-grouped-query": lambda: _hf("tiny_phi3"),
    "hf-gpt-bigcode-attention": lambda: _hf("tiny_gpt_bigcode"),
    "hf-gpt-neox-attention": lambda: _hf("tiny_gpt_neox"),
    "hf-neox-japanese-attention": lambda: _hf("tiny_gpt_neox_japanese"),
    "hf-cvt-attention": lambda: _factory("tiny_cvt_classifier", torch.randn(2, 3, 32, 32)),
    "hf-hiera-attention": lambda: _factory("tiny_hiera_classifier", torch.randn(2, 3, 64, 64)),
    "hf-global-local-attention": lambda: _seq2seq("tiny_pegasus_x"),
    "hf-convbert-attention": lambda: _hf("tiny_convbert"),
    "hf-mamba2-mixer": lambda: _hf("tiny_mamba2_grouped"),
    "hf-mamba-mixer": lambda: _hf("tiny_mamba"),
    "hf-delta-attention": lambda: _hf("tiny_kimi_linear"),
    "hf-delta-forget-gate": lambda: _hf("tiny_kimi_linear"),
    "hf-gated-delta-net": lambda: _hf("tiny_qwen3_5_text"),
    "hf-perceiver-attention": lambda: _hf("tiny_perceiver"),
    "hf-cpmant-attention": lambda: _hf("tiny_cpmant"),
    "hf-cpmant-position-bias": lambda: _hf("tiny_cpmant"),
    "hf-conformer-attention": lambda: _speech("tiny_wav2vec2_bert"),
    "hf-pix2struct-attention": lambda: _pix2struct(),
    "hf-timesformer-attention": lambda: _factory("tiny_timesformer", torch.randn(2, 4, 3, 32, 32)),
    "hf-blip-vision-attention": lambda: _blip(),
    "hf-fused-qkv-attention": lambda: _factory("Qwen2VisionTower", torch.randn(32, 384)),
    "timm-attention": _vit,
    # tests/prune/test_attention.py covers nn.MultiheadAttention in a user module
    "timm-window-attention": _swin,
    "timm-levit-attention": lambda: (_timm("levit_128s", img_size=64, num_classes=5), torch.randn(2, 3, 64, 64), {}),
    "torch-multihead-attention": lambda: _factory("tiny_torchvision_vit", torch.randn(2, 3, 32, 32)),
    "torchvision-window-attention": lambda: _factory("tiny_torchvision_swin", torch.randn(2, 3, 64, 64)),
    "torchvision-maxvit-attention": lambda: _factory("tiny_torchvision_maxvit", torch.randn(2, 3, 64, 64)),
    "torchvision-window-attention-v2": lambda: _factory("tiny_torchvision_swin_v2", torch.randn(2, 3, 64, 64)),
}


def _heads(model: nn.Module) -> dict[str, int]:
    """Query heads per attention module, from the weights (not the attributes pruning updates)."""
    out = {}
    for path, m in model.named_modules():
        form = find_attention_form(m)
        if form is not None:
            out[path] = _query_width(m) // form.head_dim(m)
    return out


def _query_width(m: nn.Module) -> int:
    if hasattr(m, "relative_attention_bias") and hasattr(m, "num_segments"):  # CPM-Ant's position bias: a column per head
        return m.relative_attention_bias.shape[1]
    if hasattr(m, "dt_bias") and hasattr(m, "qkv_dim"):  # Kimi Delta Attention's forget gate: a bias per head channel
        return m.dt_bias.numel()
    if hasattr(m, "num_k_heads"):  # Gated DeltaNet: key heads, the conv channels less the values', halved
        return (m.conv1d.weight.shape[0] - (m.out_proj if hasattr(m, "out_proj") else m.o_proj).in_features) // 2
    if hasattr(m, "A_log"):  # a state-space mixer: its heads' (Mamba v1: its channels') width
        return m.out_proj.in_features
    if hasattr(m, "to_qkv"):  # torchvision MaxViT
        return m.to_qkv.out_features // 3
    if hasattr(m, "shift_size"):  # torchvision Swin
        return m.qkv.out_features // 3
    if hasattr(m, "attention_biases"):  # LeViT: head_dim counts a head's query, key and value channels
        return (m.qkv if hasattr(m, "qkv") else m.kv).linear.out_features  # AttentionDownsample: keys and values
    if hasattr(m, "qkv"):
        return m.qkv.out_features // 3
    if hasattr(m, "in_proj_weight"):
        return m.in_proj_weight.shape[0] // 3
    if hasattr(m, "out_proj") and hasattr(m, "q_proj"):  # CLIP
        return m.q_proj.out_features
    if hasattr(m, "query_key_value") and hasattr(m, "head_size"):  # GPT-NeoX: head_dim counts a head's q, k and v rows
        return m.query_key_value.out_features
    if hasattr(m, "qkv_proj"):  # Phi-3: query rows first, then key/value heads
        return m.o_proj.in_features
    if hasattr(m, "r_w_bias"):  # XLNet: (d_model, n_head, d_head) parameters
        return m.q.shape[1] * m.q.shape[2]
    if hasattr(m, "in_proj") and hasattr(m, "q_bias"):  # DeBERTa v1
        return m.q_bias.shape[0]
    if isinstance(getattr(m, "query", None), nn.Conv1d):  # SqueezeBERT
        return m.query.out_channels
    if hasattr(m, "projection_query"):  # CvT
        return m.projection_query.out_features
    if getattr(m, "new_decoder_architecture", False):  # Falcon's groups: queries + key + value per kv head
        return m.query_key_value.out_features * m.num_key_value_groups // (m.num_key_value_groups + 2)
    if hasattr(m, "query_key_value"):  # Falcon: (heads, 3, head_dim) rows
        return m.query_key_value.out_features // 3
    if hasattr(m, "kv_dim"):  # GPT-BigCode: multi-query c_attn rows (query heads, one key head, one value head)
        return m.c_attn.out_features - 2 * m.kv_dim if m.multi_query else m.c_attn.out_features // 3
    if hasattr(m, "c_attn"):
        return m.c_attn.weight.shape[1] // 3
    if hasattr(m, "Wqkv"):  # ModernBERT
        return m.Wqkv.out_features // 3
    q, o = getattr(m, "q_proj", None), getattr(m, "o_proj", None)
    if isinstance(q, nn.Linear) and isinstance(o, nn.Linear) and q.out_features == 2 * o.in_features:
        return m.o_proj.in_features  # a gated query (Qwen3-Next, Qwen3.5): each head's query, then its output gate
    if getattr(m, "q_b_proj", None) is not None:  # multi-head latent attention: queries from the latent (q_proj is None)
        return m.q_b_proj.out_features
    return next(getattr(m, n) for n in ("query", "q_proj", "q_lin", "q", "Wq", "project_q", "linear_q") if hasattr(m, n)).out_features


def _form_name(m: nn.Module) -> str:
    return next(name for name in list_attention_forms() if slimforge.prune.attention.ATTENTION_FORMS.get(name).matches(m))


def _logits(out):
    return getattr(out, "logits", out)


# Forms whose contract (whole heads go, the counts follow, the folder reloads the same) is tested beside the model
# that needs them: DAB-DETR's in test_detectors_and_forecasters.py, WavLM's in test_speech_and_recent_decoders.py,
# Longformer's in test_hf_longformer_attention.py (its capture takes two draft exports, about 12 s).
COVERED_BESIDE_THEIR_MODEL = ["hf-external-projection-attention", "hf-external-projection-layer", "hf-gated-bias-attention",
                              "hf-longformer-attention"]


def test_every_attention_form_has_a_contract_model():
    """Here, or for timm's further families, in test_timm_attention.py, or for Hugging Face CodeGen, Funnel and LeViT,
    in test_hf_fused_attention.py."""
    from test_hf_fused_attention import FORMS as HF_FUSED
    from test_timm_attention import ELSEWHERE, FORMS

    assert sorted([*FORM_MODELS, *FORMS, *ELSEWHERE, *HF_FUSED, *COVERED_BESIDE_THEIR_MODEL]) == list_attention_forms()


@pytest.mark.parametrize("form", sorted(FORM_MODELS))
def test_form_loses_whole_heads_keeps_its_output_shape_and_round_trips(form, tmp_path):
    model, x, kwargs = FORM_MODELS[form]()
    assert any(find_attention_form(m) is slimforge.prune.attention.ATTENTION_FORMS.get(form) for m in model.modules())
    before_heads = _heads(model)
    attn_params = sum(p.numel() for path in before_heads for p in model.get_submodule(path).parameters())
    shape = _logits(model(x, **kwargs)).shape

    sp.prune(model, x, ratio=0.5, example_kwargs=kwargs)

    after_heads = _heads(model)
    assert all(after_heads[p] < before_heads[p] for p in before_heads), (before_heads, after_heads)
    assert sum(p.numel() for path in after_heads for p in model.get_submodule(path).parameters()) < attn_params
    for path in after_heads:  # the attribute the module's forward reads agrees with its weights
        m = model.get_submodule(path)
        own = _form_name(m)  # a model may hold several forms (Qwen3.5: Gated DeltaNet beside grouped-query attention)
        count = m.intermediate_size if own == "hf-mamba-mixer" else m.num_k_heads if own == "hf-gated-delta-net" else \
            next(getattr(m, a) for a in ("num_heads", "num_attention_heads", "n_heads", "n_head") if isinstance(getattr(m, a, None), int)) \
            if own not in ("hf-grouped-query", "hf-fused-grouped-query", "hf-gpt-neox-attention", "hf-modernbert-attention") \
            else model.config.num_attention_heads
        assert count == after_heads[path]
    out = _logits(model(x, **kwargs))
    assert out.shape == shape and torch.isfinite(out).all()

    save(model, tmp_path / form)
    reloaded = load(tmp_path / form, trust_code=True)  # prune_helpers factories are named by module path
    assert torch.equal(_logits(reloaded.eval()(x, **kwargs)), out)


def test_deit_dead_head_is_the_one_removed_and_outputs_do_not_change():
    """A head whose value rows and projection columns are zero contributes nothing; l1 removes exactly it."""
    model = _timm("deit_tiny_patch16_224", img_size=32, patch_size=8, depth=1, num_classes=5)
    attn = model.blocks[0].attn
    x = torch.randn(2, 3, 32, 32)
    hd, dim = attn.head_dim, attn.qkv.in_features  # 3 heads of 64
    with torch.no_grad():
        for part in range(3):  # q, k and v rows of head 1
            attn.qkv.weight[part * dim + hd:part * dim + 2 * hd] = 0
            attn.qkv.bias[part * dim + hd:part * dim + 2 * hd] = 0
        attn.proj.weight[:, hd:2 * hd] = 0
    before = model(x)
    sp.prune(model, x, ratio={"blocks.0.attn*": 0.34}, importance="l1", round_to=1)
    assert attn.num_heads == 2 and attn.attn_dim == 2 * hd and attn.qkv.out_features == 6 * hd
    assert attn.scale == hd ** -0.5
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)


def test_swin_relative_position_bias_keeps_the_columns_of_the_kept_heads():
    model, x, _ = _swin()
    attn = model.layers[1].blocks[0].attn  # 6 heads
    table = attn.relative_position_bias_table.detach().clone()
    sp.prune(model, x, ratio={"layers.1.blocks.0.attn*": 0.5}, round_to=1)
    assert attn.num_heads == 3 and attn.relative_position_bias_table.shape == (table.shape[0], 3)
    kept = [next(j for j in range(table.shape[1]) if torch.equal(table[:, j], col)) for col in attn.relative_position_bias_table.T]
    assert len(set(kept)) == 3


def test_convbert_loses_attention_and_convolution_heads_together():
    """ConvBERT's own forward folds its convolution heads into the batch; the stand-in used for the capture gives the
    same outputs and lets whole heads go from both mechanisms (the kernel layer by conv_kernel_size rows a head); the
    pruned module runs its own forward again, and the config counts both mechanisms' heads."""
    from slimforge.prune.attention import prepare_attention, settle_attention

    model, x, kwargs = _hf("tiny_convbert")
    with torch.no_grad():
        own = model(x, **kwargs).logits
        changed = prepare_attention(model)
        assert type(model.convbert.encoder.layer[0].attention.self).__name__ == "PrunableConvBertSelfAttention"
        assert torch.allclose(model(x, **kwargs).logits, own, atol=1e-6)
    settle_attention(changed, failed=True)
    sp.prune(model, x, ratio=0.5, example_kwargs=kwargs)
    attention = model.convbert.encoder.layer[0].attention.self
    assert type(attention).__name__ == "ConvBertSelfAttention" and attention.num_attention_heads == 2
    assert attention.conv_kernel_layer.weight.shape == (2 * 5, 2 * 8) and attention.conv_out_layer.out_features == 2 * 8
    assert model.convbert.encoder.layer[0].attention.output.dense.in_features == 2 * 2 * 8
    assert model.config.num_attention_heads == 2 * 2  # head_ratio 2


def test_gpt2_prunes_heads_and_mlp_and_still_generates():
    model, ids, kwargs = _hf("tiny_gpt2")
    sp.prune(model, ids, ratio=0.5, example_kwargs=kwargs)
    for block in model.transformer.h:
        attn = block.attn
        assert attn.num_heads == 2 and attn.split_size == 2 * attn.head_dim == attn.c_attn.nf // 3
        assert block.mlp.c_fc.nf == block.mlp.c_fc.weight.shape[1] < 256
    assert model.config.n_head == 2
    out = model.generate(ids[:1], max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 12)


def _llama_with_groups(kv_heads: int, heads: int):
    """A tiny Llama (head_dim 8) with ``heads`` query heads over ``kv_heads`` key/value heads."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv_heads, hidden_size=8 * heads,
                         intermediate_size=128, vocab_size=100, max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))


def test_grouped_query_attention_removes_whole_key_value_groups():
    model, ids = _llama_with_groups(kv_heads=4, heads=8)
    sp.prune(model, ids, ratio=0.5)
    for layer in model.model.layers:
        attn = layer.self_attn
        assert attn.k_proj.out_features == attn.v_proj.out_features == 2 * attn.head_dim  # 2 of 4 kv heads
        assert attn.q_proj.out_features == 4 * attn.head_dim  # their 4 query heads
    assert model.config.num_attention_heads == 4 and model.config.num_key_value_heads == 2
    assert model.generate(ids[:1], max_new_tokens=3, do_sample=False).shape == (1, 11)


def test_decoder_capture_turns_the_cache_off_and_says_so(caplog):
    model, ids, _ = _hf("tiny_gpt2")
    with caplog.at_level("WARNING", logger="slimforge.prune.structured"):
        sp.prune(model, ids, ratio=0.25)
    assert "use_cache=False" in caplog.text
    assert model.config.use_cache  # the model itself still caches when generating


def test_prune_takes_keyword_inputs_alone():
    model, ids, _ = _bert()
    sp.prune(model, example_kwargs={"input_ids": ids, "attention_mask": torch.ones_like(ids)}, ratio=0.5)
    assert model.bert.encoder.layer[0].attention.self.num_attention_heads == 2
    assert model(input_ids=ids).logits.shape == (2, 3)


def test_grouped_query_through_sdpa_enable_gqa(monkeypatch):
    """transformers hands key/value heads to SDPA unrepeated (enable_gqa=True) when it can: the
    tracer repeats them itself, so the groups stay whole there too."""
    monkeypatch.setenv("TRANSFORMERS_SDPA_FORCE_GQA", "1")
    model, ids = _llama_with_groups(kv_heads=4, heads=8)
    before = model(ids).logits.shape
    sp.prune(model, ids, ratio=0.5)
    attn = model.model.layers[0].self_attn
    assert attn.k_proj.out_features == 2 * attn.head_dim and attn.q_proj.out_features == 4 * attn.head_dim
    assert model(ids).logits.shape == before


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_torchvision_swin_with_fewer_heads_than_its_width_runs_its_stand_in_and_round_trips(version, tmp_path):
    """Heads pruned, residual width kept: torchvision's own forward (head size = width // heads)
    cannot run it, so the module becomes its stand-in (PrunableShiftedWindowAttention, or ...V2 for
    v2's cosine attention), also after slimforge.load."""
    from slimforge.prune._torchvision_attention import PrunableShiftedWindowAttentionV2
    from slimforge.prune.attention import PrunableShiftedWindowAttention

    factory, own, stand_in = {"v1": ("tiny_torchvision_swin", "ShiftedWindowAttention", PrunableShiftedWindowAttention),
                              "v2": ("tiny_torchvision_swin_v2", "ShiftedWindowAttentionV2", PrunableShiftedWindowAttentionV2)}[version]
    model, x, _ = _factory(factory, torch.randn(2, 3, 64, 64))
    reference = model(x)
    for m in model.modules():  # the stand-in computes what torchvision's forward computes
        if type(m).__name__ == own:
            m.__class__ = stand_in
    torch.testing.assert_close(model(x), reference, rtol=1e-6, atol=1e-6)

    sp.prune(model, x, ratio={"features.*.attn*": 0.5}, round_to=1)
    attns = [m for m in model.modules() if hasattr(m, "shift_size")]
    assert all(type(a) is stand_in for a in attns) and [a.num_heads for a in attns] == [1, 1, 2, 2]
    assert all(a.qkv.in_features == a.proj.out_features == 2 * a.proj.in_features for a in attns)  # residual width kept
    if version == "v2":  # per-head scale and position-bias outputs follow the heads
        assert [a.logit_scale.shape[0] for a in attns] == [a.cpb_mlp[-1].out_features for a in attns] == [1, 1, 2, 2]
    out = model(x)
    save(model, tmp_path / "swin")
    reloaded = load(tmp_path / "swin", trust_code=True).eval()
    assert all(type(m) is stand_in for m in reloaded.modules() if hasattr(m, "shift_size"))
    assert torch.equal(reloaded(x), out)


def test_torchvision_maxvit_stand_in_gives_the_same_outputs_and_runs_fewer_heads():
    from slimforge.prune.attention import PrunableRelativePositionalAttention

    model, x, _ = _factory("tiny_torchvision_maxvit", torch.randn(2, 3, 64, 64))
    reference = model(x)
    for m in model.modules():
        if type(m).__name__ == "RelativePositionalMultiHeadAttention":
            m.__class__ = PrunableRelativePositionalAttention
    torch.testing.assert_close(model(x), reference, rtol=1e-6, atol=1e-6)
    sp.prune(model, x, ratio={"*attn_layer*": 0.5}, round_to=1)
    attns = [m for m in model.modules() if isinstance(m, PrunableRelativePositionalAttention)]
    assert attns and all(a.n_heads * a.head_dim < a.to_qkv.in_features for a in attns)
    assert model(x).shape == reference.shape


@pytest.mark.parametrize("factory", ["tiny_gpt2", "tiny_llama"])
def test_pruned_decoder_loads_in_plain_transformers(factory, tmp_path):
    """Heads, key/value groups and MLP pruned alike in every layer: the config describes the model,
    so AutoModelForCausalLM.from_pretrained rebuilds it with the same logits and it generates."""
    from transformers import AutoModelForCausalLM

    model, ids, kwargs = _hf(factory)
    sp.prune(model, ids, ratio=0.5, example_kwargs=kwargs)
    logits = model(ids).logits
    slimforge.save_pretrained(model, tmp_path / factory)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / factory).eval()
    torch.testing.assert_close(reloaded(ids).logits, logits, rtol=1e-5, atol=1e-5)
    assert reloaded.generate(ids[:1], max_new_tokens=3, do_sample=False).shape == (1, 11)
