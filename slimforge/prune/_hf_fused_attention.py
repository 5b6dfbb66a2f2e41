"""Hugging Face attention forms with fused or config-sized projections (issue 20's held-out check):
Phi-3's ``qkv_proj`` ([q; k; v] rows, grouped-query), StarCoder / GPTBigCode's ``c_attn`` (multi-query
[q; k; v], or per-head (q, k, v) blocks), CodeGen's ``qkv_proj`` (``mp_num`` groups), Funnel's relative
attention, whose forward reads its head count from the model config, and Hugging Face LeViT's ``LevitAttention``.

Phi-3's and GPTBigCode's forwards slice (or split) the fused output at offsets they compute from head counts,
so their forms set ``fused``: the tracer then passes each piece's channels on instead of keeping the fused
projection whole (a piece one head wide, a single key/value head, stays whole). A forward that reads a
head count from ``self.config`` gets a :class:`LayerConfig`: the shared config seen with this layer's
own head counts, so layers pruned to different counts each keep running.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimforge.prune._hf_varlen_capture import takes_cu_seqlens
from slimforge.prune.attention import AttentionForm, Swap, _int, _linear, register_attention_form, register_stand_in


class LayerConfig:
    """A model config seen through one layer: ``sizes`` (this layer's head counts) override the shared
    config's keys; every other key is read from (and written to) the shared config."""

    def __init__(self, shared: Any, **sizes: int) -> None:
        object.__setattr__(self, "shared", shared.shared if isinstance(shared, LayerConfig) else shared)
        object.__setattr__(self, "sizes", dict(sizes))

    def __getattr__(self, name: str) -> Any:
        if name in ("shared", "sizes"):  # not yet set (copy, unpickling)
            raise AttributeError(name)
        return self.sizes[name] if name in self.sizes else getattr(self.shared, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.sizes:
            self.sizes[name] = value
        else:
            setattr(self.shared, name, value)

    def __repr__(self) -> str:
        return f"LayerConfig({type(self.shared).__name__}, {self.sizes})"


def _layer_config(module: nn.Module, **sizes: int) -> None:
    """``module.config`` reads ``sizes`` (the layer's own head counts) where they differ from the shared config."""
    shared = module.config.shared if isinstance(module.config, LayerConfig) else module.config
    own = {k: v for k, v in sizes.items() if getattr(shared, k, None) != v}
    module.config = LayerConfig(shared, **own) if own else shared


# ----------------------------------------------------------------------------- Phi-3


def _phi3_attention(module: nn.Module) -> bool:
    """Phi-3: one ``qkv_proj`` with [q; k; v] rows, sliced at ``config.num_attention_heads * head_dim``
    and ``num_key_value_heads * head_dim``; ``o_proj`` takes the query heads. Ergo keeps no key/value head count
    of its own: it splits the (heads, head_dim) view into (config.num_attention_heads, kv, kv) heads."""
    kv_heads = _int(module, "num_key_value_heads") or _int(getattr(module, "config", None), "num_key_value_heads")
    return (_linear(module, "qkv_proj") and _linear(module, "o_proj") and _int(module, "head_dim")
            and kv_heads and hasattr(module, "config") and not _linear(module, "q_proj"))


def _phi3_sync(module: nn.Module) -> dict[str, int]:
    # repeat_kv ties each query head to its key/value head: whole groups go, so heads // kv_heads stays.
    hd = module.head_dim
    heads = module.o_proj.in_features // hd
    kv_heads = (module.qkv_proj.out_features - heads * hd) // (2 * hd)
    module.num_key_value_heads = kv_heads
    module.num_key_value_groups = heads // kv_heads
    _layer_config(module, num_attention_heads=heads, num_key_value_heads=kv_heads)
    return {"num_attention_heads": heads, "num_key_value_heads": kv_heads}


def _phi3_built_heads(module: nn.Module) -> int | None:
    # One key/value head: repeat_kv expands it to every query head, any count of them.
    heads = module.o_proj.in_features // module.head_dim
    return heads if module.qkv_proj.out_features == (heads + 2) * module.head_dim else None


register_attention_form("hf-fused-grouped-query", AttentionForm(_phi3_attention, lambda m: m.head_dim, _phi3_sync, fused=True,
                                                           built_heads=_phi3_built_heads),
                        "Hugging Face Phi-3 (fused qkv_proj [q; k; v], grouped-query): whole key/value groups; multi-query: query heads")


# ----------------------------------------------------------------------------- GPTBigCode (StarCoder)


def _bigcode_attention(module: nn.Module) -> bool:
    """GPTBigCode self-attention: ``c_attn`` (an ``nn.Linear``) gives [q; k; v] with one key/value head
    (``multi_query``) or (heads, 3 * head_dim) blocks; ``c_proj`` takes the query heads."""
    return (_linear(module, "c_attn") and _linear(module, "c_proj") and not getattr(module, "is_cross_attention", True)
            and all(_int(module, a) for a in ("num_heads", "head_dim", "kv_heads", "kv_dim", "embed_dim"))
            and isinstance(getattr(module, "multi_query", None), bool))


def _bigcode_head_dim(module: nn.Module) -> int:
    # Without multi_query, c_attn's rows are (heads, [q, k, v] of head_dim each): a head is 3 * head_dim of them.
    return module.head_dim if module.multi_query else 3 * module.head_dim


def _bigcode_sync(module: nn.Module) -> dict[str, int]:
    # embed_dim (the query width) sizes the multi-query split; the residual width is c_proj's output and stays.
    hd = module.head_dim
    if module.multi_query:
        module.embed_dim = module.c_attn.out_features - 2 * module.kv_dim
        module.num_heads = module.embed_dim // hd
    else:
        module.num_heads = module.kv_heads = module.c_attn.out_features // (3 * hd)
        module.kv_dim = module.embed_dim = module.num_heads * hd
    module.split_size = module.embed_dim
    module.num_key_value_groups = module.num_heads // module.kv_heads
    return {"num_attention_heads": module.num_heads}


def _bigcode_built_heads(module: nn.Module) -> int | None:
    # Multi-query: repeat_kv expands the one key/value head to num_key_value_groups = every query head.
    return module.num_heads if module.multi_query else None


register_attention_form("hf-gpt-bigcode-attention", AttentionForm(_bigcode_attention, _bigcode_head_dim, _bigcode_sync, fused=True,
                                                        built_heads=_bigcode_built_heads),
                        "Hugging Face GPTBigCode / StarCoder (fused c_attn; multi-query: query heads go, the key/value head stays)")


# ----------------------------------------------------------------------------- Funnel


def _funnel_attention(module: nn.Module) -> bool:
    """Funnel's relative attention: q_head/k_head/v_head/post_proj, per-head biases (n_head, d_head), and
    ``config.n_head`` / ``config.d_head`` read in its forward."""
    config = getattr(module, "config", None)
    return (all(_linear(module, n) for n in ("q_head", "k_head", "v_head", "post_proj"))
            and isinstance(getattr(module, "r_w_bias", None), nn.Parameter) and _int(config, "n_head") and _int(config, "d_head"))


def _funnel_sync(module: nn.Module) -> dict[str, int]:
    heads = module.q_head.out_features // module.config.d_head
    _layer_config(module, n_head=heads)
    return {"num_attention_heads": heads}  # FunnelConfig maps num_attention_heads to n_head


register_attention_form("hf-funnel-attention", AttentionForm(
    _funnel_attention, lambda m: m.config.d_head, _funnel_sync,
    built_heads=lambda m: m.q_head.out_features // m.config.d_head),  # token types expanded to (B, n_head, q, k)
    "Hugging Face Funnel relative attention (head count from config.n_head; per-head biases and kernels)")


# ----------------------------------------------------------------------------- CodeGen


def _codegen_attention(module: nn.Module) -> bool:
    """CodeGen: ``qkv_proj`` rows in ``mp_num`` groups, each [q; v; k] of ``embed_dim // mp_num`` rows
    (its heads' slices), viewed as (..., mp_num, 3 * local) and split into q, v, k; ``out_proj``."""
    return (_linear(module, "qkv_proj") and _linear(module, "out_proj")
            and all(_int(module, a) for a in ("mp_num", "embed_dim", "head_dim", "num_attention_heads")))


def _codegen_split_axis(module: nn.Module, sizes: list[int]) -> int | None:
    # (mp_num, 3 * local): a local position is pruned in every group at once, so the groups stay equal.
    if len(sizes) >= 2 and sizes[-2] == module.mp_num and sizes[-1] * module.mp_num == module.qkv_proj.out_features:
        return len(sizes) - 1
    return None


def _codegen_one_head_per_group(module: nn.Module) -> list[tuple[str, int]]:
    # Each group holds one head: losing a head from every group at once would lose them all.
    return [("qkv_proj.weight", 0)] if module.num_attention_heads == module.mp_num else []


def _codegen_sync(module: nn.Module) -> dict[str, int]:
    module.embed_dim = module.qkv_proj.out_features // 3  # the forward's local_dim = embed_dim // mp_num
    module.num_attention_heads = module.embed_dim // module.head_dim
    return {"num_attention_heads": module.num_attention_heads}


register_attention_form("hf-codegen-attention", AttentionForm(
    _codegen_attention, lambda m: m.head_dim, _codegen_sync, whole=_codegen_one_head_per_group, split_axis=_codegen_split_axis),
    "Hugging Face CodeGen (qkv_proj in mp_num groups of [q; v; k]): a head from every group at once")


# ----------------------------------------------------------------------------- LeViT


def _levit_attention(module: nn.Module) -> bool:
    """Hugging Face LeViT ``LevitAttention``: ``queries_keys_values`` (a linear layer with batch norm) gives
    per head key_dim query, key_dim key and attention_ratio * key_dim value channels; a learned bias per head.
    Its downsampling attention (``LevitAttentionSubsample``, queries from a subsampled grid) stays whole."""
    qkv = getattr(module, "queries_keys_values", None)
    return (type(module).__name__ == "LevitAttention" and _linear(qkv, "linear")
            and all(_int(module, a) for a in ("num_attention_heads", "key_dim", "attention_ratio", "out_dim_projection"))
            and isinstance(getattr(module, "attention_biases", None), nn.Parameter))


def _levit_head_dim(module: nn.Module) -> int:
    return (2 + module.attention_ratio) * module.key_dim


def _levit_sync(module: nn.Module) -> dict[str, int]:
    heads = module.num_attention_heads = module.attention_biases.shape[0]
    module.out_dim_projection = module.attention_ratio * module.key_dim * heads  # the forward reshapes to it
    module.out_dim_keys_values = _levit_head_dim(module) * heads
    module.attention_bias_cache = {}  # eval-mode cache of the biases, sized for the old head count
    return {"num_attention_heads": heads}


register_attention_form("hf-levit-attention", AttentionForm(_levit_attention, _levit_head_dim, _levit_sync),
                        "Hugging Face LeViT LevitAttention (per head: key_dim query and key, attention_ratio * key_dim value)")


def _funnel_structure(module: nn.Module) -> bool:
    return type(module).__name__ == "FunnelAttentionStructure" and _int(getattr(module, "config", None), "d_model")


def _funnel_structure_sync(module: nn.Module) -> dict[str, int]:
    # Its sinusoidal position embeddings are d_model wide, the width of every attention's r_kernel (which keeps
    # it): once the residual is pruned and config.d_model follows it, this module must still build them at the
    # old width. Sync runs before the config changes, so the config's d_model is still that width here.
    config = module.config
    module.config = LayerConfig(config, d_model=config.sizes.get("d_model", config.shared.d_model)
                                if isinstance(config, LayerConfig) else config.d_model)
    return {}


register_attention_form("hf-funnel-attention-structure", AttentionForm(_funnel_structure, lambda m: 1, _funnel_structure_sync, part=True),
                        "Hugging Face Funnel's attention structure (a part: its position embeddings keep the unpruned d_model)")


# ----------------------------------------------------------------------------- head size read from the input width
#
# TimeSformer's and the BLIP family's vision attention view their fused ``qkv`` as (3, heads, width // heads) with the
# width read from their input: once the residual stream and the heads shrink apart, that size is wrong. Before slicing
# (pruning, or a plan replayed on load) the module remembers its head size; once pruned it gets a stand-in forward (same
# parameters, same outputs) that reads the head size from the module. Its own class comes back when nothing went.

def _input_width_attention(*names: str):
    def matches(module: nn.Module) -> bool:
        return (type(module).__name__ in names + tuple(f"Prunable{n}" for n in names) and _linear(module, "qkv")
                and _int(module, "num_heads"))
    return matches


def _remembered_head_dim(module: nn.Module) -> int:
    return getattr(module, "_slimforge_head_dim", None) or module.qkv.in_features // module.num_heads


def _remember_head_dim(module: nn.Module) -> None:
    if not _int(module, "_slimforge_head_dim"):
        module._slimforge_head_dim = module.qkv.in_features // module.num_heads


def _input_width_pruned(module: nn.Module) -> bool:
    return module.qkv.in_features != module.num_heads * _remembered_head_dim(module)


def _input_width_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.qkv.out_features // (3 * _remembered_head_dim(module))
    if _int(module, "head_dim"):
        module.head_dim = _remembered_head_dim(module)
    if _int(module, "embed_dim") and hasattr(module, "projection"):  # BLIP merges its heads to embed_dim
        module.embed_dim = module.num_heads * _remembered_head_dim(module)
    if _input_width_pruned(module):
        _use_input_width_stand_in(module)
    return {"num_attention_heads": module.num_heads}


def _split_heads(self: nn.Module, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch, tokens, _ = hidden_states.shape
    qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, self.num_heads, _remembered_head_dim(self)).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


def _timesformer_forward(self: nn.Module, hidden_states: torch.Tensor, output_attentions: bool = False):
    """TimeSformer's forward, the head size from the module."""
    query, key, value = _split_heads(self, hidden_states)
    probs = self.attn_drop(((query @ key.transpose(-2, -1)) * self.scale).softmax(dim=-1))
    context = (probs @ value).transpose(1, 2).flatten(2)
    return (context, probs) if output_attentions else (context,)


def _blip_forward(self: nn.Module, hidden_states: torch.Tensor, **kwargs: Any):
    """BLIP's, BLIP-2's and InstructBLIP's vision attention (eager), the head size from the module."""
    query, key, value = _split_heads(self, hidden_states)
    probs = ((query @ key.transpose(-1, -2)) * self.scale).softmax(dim=-1)
    drop = self.dropout if isinstance(getattr(self, "dropout", None), nn.Module) else None
    if drop is not None:
        probs = drop(probs)
    elif self.training and getattr(self, "attention_dropout", 0.0):
        probs = nn.functional.dropout(probs, p=self.attention_dropout)
    return self.projection((probs @ value).transpose(1, 2).flatten(2)), probs


# class -> (its transformers module, the stand-in's forward)
_INPUT_WIDTH_CLASSES = {"TimesformerSelfAttention": ("timesformer.modeling_timesformer", _timesformer_forward),
                        "BlipAttention": ("blip.modeling_blip", _blip_forward),
                        "Blip2Attention": ("blip_2.modeling_blip_2", _blip_forward),
                        "InstructBlipAttention": ("instructblip.modeling_instructblip", _blip_forward),
                        "InstructBlipVideoAttention": ("instructblipvideo.modeling_instructblipvideo", _blip_forward)}
_INPUT_WIDTH_STAND_INS: dict[type, type] = {}


def _use_input_width_stand_in(module: nn.Module) -> None:
    _remember_head_dim(module)
    own = type(module)
    if own in _INPUT_WIDTH_STAND_INS.values():
        return
    if own not in _INPUT_WIDTH_STAND_INS:
        _INPUT_WIDTH_STAND_INS[own] = type(f"Prunable{own.__name__}", (own,),
                                           {"forward": _INPUT_WIDTH_CLASSES[own.__name__][1], "__module__": __name__})
    module.__class__ = _INPUT_WIDTH_STAND_INS[own]


def _use_own_class(module: nn.Module, cls: type) -> None:
    module.__class__ = cls


register_attention_form("hf-timesformer-attention", AttentionForm(
    _input_width_attention("TimesformerSelfAttention"), _remembered_head_dim, _input_width_sync, remember=_remember_head_dim),
    "Hugging Face TimeSformer (fused qkv viewed as (3, heads, width // heads), no output projection inside)")
register_attention_form("hf-blip-vision-attention", AttentionForm(
    _input_width_attention(*(n for n in _INPUT_WIDTH_CLASSES if n.startswith(("Blip", "InstructBlip")))),
    _remembered_head_dim, _input_width_sync, remember=_remember_head_dim),
    "Hugging Face BLIP / BLIP-2 / InstructBLIP vision attention (fused qkv viewed as (3, heads, width // heads), projection)")
for _name, (_module, _) in _INPUT_WIDTH_CLASSES.items():
    register_stand_in(f"transformers.models.{_module}.{_name}",
                      Swap(_input_width_attention(_name), _input_width_pruned, _use_input_width_stand_in, _use_own_class))


# ----------------------------------------------------------------------------- fused qkv of a vision tower

_FUSED_OUTPUTS = ("proj", "projection", "o_proj", "out_proj")


def _fused_qkv_attention(module: nn.Module) -> bool:
    """A vision tower's attention over packed patches (Qwen2-VL's and its ~35 successors': a forward taking
    ``cu_seqlens``) with one ``qkv`` layer of [q; k; v] rows viewed as (tokens, 3, heads, -1), ``num_heads`` heads of
    ``head_dim`` and an output projection."""
    return (_linear(module, "qkv") and _int(module, "num_heads") and _int(module, "head_dim")
            and any(_linear(module, n) for n in _FUSED_OUTPUTS) and module.qkv.out_features % (3 * module.head_dim) == 0
            and takes_cu_seqlens(module))


def _fused_qkv_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.qkv.out_features // (3 * module.head_dim)
    return {"num_attention_heads": module.num_heads}


register_attention_form("hf-fused-qkv-attention", AttentionForm(_fused_qkv_attention, lambda m: m.head_dim, _fused_qkv_sync),
                        "Hugging Face vision towers over packed patches (cu_seqlens) with one qkv layer ([q; k; v] rows "
                        "viewed as (3, heads, head_dim)) and an output projection: Qwen2-VL's family")
