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

from torch import nn

from slimforge.prune.attention import AttentionForm, _int, _linear, register_attention_form


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
