"""Attention forms for timm families beyond ViT, Swin and LeViT (:mod:`slimforge.prune.attention`).

Two kinds:

* families whose own forward already reads the head count from ``num_heads`` and reshapes to
  ``-1`` or to a size derived from it (timm's MaxViT ``AttentionCl``/``Attention2d``,
  EfficientFormer, TinyViT): only their attributes are brought back in line after slicing;
* families whose forward reshapes its output to the input's width ``C`` or computes the head
  size as ``C // num_heads`` (BEiT, EVA, vit_relpos, CaiT, PVT-v2, Twins, XCiT, DaViT, ConViT, GCViT,
  EdgeNeXt, CoaT): while pruning
  and in the pruned model, such a module runs a stand-in, a subclass with the same parameters,
  ``state_dict`` keys and outputs whose forward reads the head size from the module
  (``head_dim``, stored before slicing by the form's ``remember``). A module whose heads all
  stay (and width with them) gets timm's class back; ``slimforge.load`` swaps the stand-in in
  again from the tensor shapes.

Each stand-in forward follows timm 1.0's own line by line except for the sizes it reshapes to
(``tests/prune/test_timm_attention.py`` compares their outputs). Per-head tables and parameters
(relative position bias tables and MLPs, attention biases, XCiT's temperature, CaiT's
talking-heads projections) lose the removed heads through the dependency tracer, which ties
them to the heads they are added to or multiplied with.

timm is imported nowhere here: classes are recognised by module and name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from slimforge.prune.attention import AttentionForm, Swap, register_attention_form, register_stand_in

_OWN: dict[type, type] = {}  # stand-in class -> timm's class
_STAND_INS: dict[type, type] = {}  # timm's class -> its stand-in


def own_class(module: nn.Module) -> type:
    """timm's class of ``module``, also when it runs a stand-in."""
    return _OWN.get(type(module), type(module))


def is_timm(module: nn.Module, where: str, name: str) -> bool:
    """``module`` is timm's class ``timm.<where>.<name>`` (or its stand-in)."""
    cls = own_class(module)
    return cls.__module__ == f"timm.{where}" and cls.__name__ == name


def _int(module: nn.Module, name: str) -> bool:
    value = getattr(module, name, None)
    return isinstance(value, int) and not isinstance(value, bool)


def _sub(module: nn.Module, name: str) -> nn.Module | None:
    """The submodule ``name`` ("kv", "kv.linear") of ``module``, or None."""
    try:
        return module.get_submodule(name)
    except AttributeError:
        return None


def _out_width(layer: nn.Module) -> int:
    return layer.weight.shape[0]  # nn.Linear and 1x1 nn.Conv2d alike


def _in_width(layer: nn.Module) -> int:
    return layer.weight.shape[1]


@dataclass(frozen=True)
class TimmFamily:
    """One timm attention class.

    query: the layer whose outputs hold every head's queries (for a fused layer, also keys and values),
    or alternatives ("qkv|q_proj": the first the module has);
    per_head: head sizes per head in that layer (3 for a fused q/k/v);
    forward: the stand-in's forward, or None when timm's own runs with fewer heads;
    head_dim: channels per head in the split the tracer sees (default: ``head_dim``, stored before slicing);
    heads: the head count from the sliced weights (default: query width // (per_head * head_dim));
    after: further attributes to sync once ``num_heads`` is set (sizes derived from it, caches);
    keep: layers inside the module (dotted names for nested ones) that every head shares along its head
    size (MViTv2's pooling convolutions and norms, a multi-query module's one key/value head): their weights stay whole;
    other_head_dims: per-head sizes of other splits (see :class:`AttentionForm`); adaptive_splits: its
    forward's unequal splits follow the pruned weights (see :class:`AttentionForm`);
    own_fits: timm's own forward still runs the module (default: the heads' width is the input's)."""

    where: str
    name: str
    query: str = "qkv"
    per_head: int = 3
    forward: Callable[..., torch.Tensor] | None = None
    head_dim: Callable[[nn.Module], int] | None = None
    heads: Callable[[nn.Module], int] | None = None
    after: Callable[[nn.Module], None] | None = None
    keep: tuple[str, ...] = ()
    other_head_dims: Callable[[nn.Module], tuple[int, ...]] | None = None
    adaptive_splits: bool = False
    own_fits: Callable[[nn.Module], bool] | None = None

    def matches(self, module: nn.Module) -> bool:
        return (is_timm(module, self.where, self.name) and _int(module, "num_heads")
                and self.layer(module) is not None)

    def layer(self, module: nn.Module) -> nn.Module | None:
        """The query layer: the first of ``query``'s names ("qkv|q_proj", dotted for a layer inside a
        child: "kv.linear") that the module has."""
        for name in self.query.split("|"):
            layer = _sub(module, name)
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                return layer
        return None

    def size(self, module: nn.Module) -> int:
        if self.head_dim is not None:
            return self.head_dim(module)
        if _int(module, "head_dim"):
            return module.head_dim
        return _out_width(self.layer(module)) // (self.per_head * module.num_heads)

    def remember(self, module: nn.Module) -> None:
        if self.forward is not None and not _int(module, "head_dim"):
            module.head_dim = self.size(module)

    def single_head(self, module: nn.Module) -> list[tuple[str, int]]:
        """One head: its channels stay (the reshape to (..., 1, head_dim) ties none of them together);
        and the weights of ``keep``'s layers, whatever the head count."""
        shared = [(f"{n}.weight", 0) for n in self.keep if getattr(_sub(module, n), "weight", None) is not None]
        if module.num_heads != 1:
            return shared
        names = dict.fromkeys((*self.query.split("|"), "qkv", "q", "k", "v", "kv", "q_proj", "k_proj", "v_proj"))
        return shared + [(f"{n}.weight", 0) for n in names if isinstance(_sub(module, n), (nn.Linear, nn.Conv2d))]

    def pruned(self, module: nn.Module) -> bool:
        """timm's own forward cannot run it: the heads' width is no longer the input's."""
        if self.own_fits is not None:
            return not self.own_fits(module)
        return _in_width(self.layer(module)) != _in_width(module.proj)

    @property
    def stand_in_name(self) -> str:
        """Unique within this module (timm has several ``Attention`` classes): ``Prunable_beit_Attention``."""
        return f"Prunable_{self.where.removeprefix('models.').replace('.', '_')}_{self.name}"

    def stand_in(self, cls: type) -> type:
        """The stand-in subclass of timm's ``cls``, made once; found by name in this module (so a
        pruned model pickles like any other)."""
        if cls not in _STAND_INS:
            name = self.stand_in_name
            stand_in = type(name, (cls,), {"forward": self.forward, "__module__": __name__, "__qualname__": name,
                                           "__doc__": f"timm's {cls.__name__}, head size from the module."})
            _STAND_INS[cls], _OWN[stand_in] = stand_in, cls
        return _STAND_INS[cls]

    def use(self, module: nn.Module) -> None:
        module.__class__ = self.stand_in(own_class(module))

    def sync(self, module: nn.Module) -> dict[str, int]:
        module.num_heads = (self.heads(module) if self.heads is not None
                            else _out_width(self.layer(module)) // (self.per_head * self.size(module)))
        if self.after is not None:
            self.after(module)
        if self.forward is not None and self.pruned(module):
            self.use(module)
        return {}  # timm models have no config object to update


def register_timm_family(name: str, family: TimmFamily, help: str) -> None:
    """An attention form for ``family`` and, when it has a stand-in forward, the swap used while pruning."""
    register_attention_form(name, AttentionForm(family.matches, family.size, family.sync, remember=family.remember,
                                                  whole=family.single_head, other_head_dims=family.other_head_dims,
                                                  adaptive_splits=family.adaptive_splits), help)
    if family.forward is not None:
        _FAMILIES[family.stand_in_name] = family
        register_stand_in(f"timm.{family.where}.{family.name}",
                          Swap(family.matches, family.pruned, family.use, lambda m, cls: setattr(m, "__class__", cls)))


_FAMILIES: dict[str, TimmFamily] = {}  # stand-in class name -> its family


def __getattr__(name: str) -> type:
    """A stand-in class by name (how pickle finds a pruned model's class), made on first use."""
    family = _FAMILIES.get(name)
    if family is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    own = getattr(importlib.import_module(f"timm.{family.where}"), family.name)
    return family.stand_in(own)


def _attend(m: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """timm's attention core: fused SDPA when the module uses it, else scale, bias, softmax, dropout.
    q: (..., heads, N, head_dim) -> (..., heads, N, head_dim)."""
    drop = getattr(m, "attn_drop", None)
    if getattr(m, "fused_attn", False):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop.p if drop is not None and m.training else 0.0)
    attn = (q * m.scale) @ k.transpose(-2, -1)
    if bias is not None:
        attn = attn + bias
    attn = attn.softmax(dim=-1)
    return (drop(attn) if drop is not None else attn) @ v


def _merge_heads(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, head_dim) -> proj -> proj_drop: (B, N, dim)."""
    x = m.proj(x.transpose(1, 2).flatten(2))
    drop = getattr(m, "proj_drop", None)
    return drop(x) if drop is not None else x


def _fused_qkv(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's fused q/k/v projection with its separate q/v (and zero k) biases, as BEiT, EVA and Swin v2 apply them."""
    if m.q_bias is None:
        return m.qkv(x)
    qkv_bias = torch.cat((m.q_bias, m.k_bias, m.v_bias))
    return m.qkv(x) + qkv_bias if m.qkv_bias_separate else F.linear(x, weight=m.qkv.weight, bias=qkv_bias)


def _split_qkv(m: nn.Module, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, N, 3 * heads * head_dim) -> q, k, v: (B, heads, N, head_dim)."""
    B, N, _ = qkv.shape
    return qkv.reshape(B, N, 3, m.num_heads, m.head_dim).permute(2, 0, 3, 1, 4).unbind(0)


# ----------------------------------------------------------------------------- BEiT, vit_relpos


def _beit_forward(self: nn.Module, x: torch.Tensor, shared_rel_pos_bias: torch.Tensor | None = None) -> torch.Tensor:
    """timm.models.beit.Attention.forward. x: (B, N, dim) -> (B, N, dim)."""
    qkv = _fused_qkv(self, x)
    q, k, v = _split_qkv(self, qkv)
    bias = self._get_rel_pos_bias() if self.relative_position_bias_table is not None else None
    if shared_rel_pos_bias is not None:
        bias = shared_rel_pos_bias if bias is None else bias + shared_rel_pos_bias
    return _merge_heads(self, _attend(self, q, k, v, bias))


register_timm_family("timm-beit-attention", TimmFamily("models.beit", "Attention", forward=_beit_forward),
                     "timm BEiT Attention (fused qkv, q/v biases, relative position bias table per head)")


def _relpos_forward(self: nn.Module, x: torch.Tensor, shared_rel_pos: torch.Tensor | None = None) -> torch.Tensor:
    """timm.models.vision_transformer_relpos.RelPosAttention.forward. x: (B, N, dim) -> (B, N, dim)."""
    q, k, v = _split_qkv(self, self.qkv(x))
    q, k = self.q_norm(q), self.k_norm(k)
    bias = self.rel_pos.get_bias() if self.rel_pos is not None else shared_rel_pos
    return _merge_heads(self, _attend(self, q, k, v, bias))


register_timm_family("timm-relpos-attention",
                     TimmFamily("models.vision_transformer_relpos", "RelPosAttention", forward=_relpos_forward),
                     "timm vit_relpos RelPosAttention (relative position MLP or bias table per head)")


def _rel_pos_sync(module: nn.Module) -> dict[str, int]:
    """timm's relative position modules (layers.pos_embed_rel): head counts in num_heads and bias_shape."""
    if type(module).__name__ == "RelPosMlp":
        module.num_heads = _out_width(module.mlp.fc2)
        module.bias_shape = (*module.bias_shape[:-1], module.num_heads)
    elif type(module).__name__ == "RelPosBias":
        module.bias_shape = (*module.bias_shape[:-1], module.relative_position_bias_table.shape[-1])
    else:  # RelPosBiasTf: table (heads, height, width)
        module.num_heads = module.relative_position_bias_table.shape[0]
        module.bias_shape = (module.num_heads, *module.bias_shape[1:])
    return {}


register_attention_form(
    "timm-relative-position",
    AttentionForm(lambda m: any(is_timm(m, "layers.pos_embed_rel", n) for n in ("RelPosMlp", "RelPosBias", "RelPosBiasTf")),
                  lambda m: 1, _rel_pos_sync, part=True),
    "timm RelPosMlp / RelPosBias / RelPosBiasTf (vit_relpos, MaxViT): one bias per head, a part of an attention form",
)


# ----------------------------------------------------------------------------- CaiT


def _talking_heads_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.cait.TalkingHeadAttn.forward. x: (B, N, dim) -> (B, N, dim)."""
    q, k, v = _split_qkv(self, self.qkv(x))
    attn = (q * self.scale) @ k.transpose(-2, -1)
    attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    attn = attn.softmax(dim=-1)
    attn = self.proj_w(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return _merge_heads(self, self.attn_drop(attn) @ v)


register_timm_family("timm-talking-heads-attention", TimmFamily("models.cait", "TalkingHeadAttn", forward=_talking_heads_forward),
                     "timm CaiT TalkingHeadAttn (heads mixed by proj_l / proj_w)")


def _class_attn_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.cait.ClassAttn.forward (CaiT, XCiT). x: (B, N, dim) -> (B, 1, dim)."""
    B, N, _ = x.shape
    q = self.q(x[:, 0]).unsqueeze(1).reshape(B, 1, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    k = self.k(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    v = self.v(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    return _merge_heads(self, _attend(self, q, k, v))


register_timm_family("timm-class-attention",
                     TimmFamily("models.cait", "ClassAttn", query="q", per_head=1, forward=_class_attn_forward),
                     "timm CaiT / XCiT ClassAttn (the class token attends to all tokens)")


# ----------------------------------------------------------------------------- PVT-v2, Twins


def _reduce(m: nn.Module, x: torch.Tensor, size: tuple[int, int], pool: nn.Module | None = None) -> torch.Tensor:
    """Spatial reduction of keys and values: (B, N, C) -> (B, N', C'). ``flatten`` rather than timm's
    ``reshape(B, C, -1)``: the reduction's width is pruned on its own."""
    x = x.permute(0, 2, 1).reshape(x.shape[0], x.shape[2], *size)
    x = m.sr(pool(x) if pool is not None else x).flatten(2).permute(0, 2, 1)
    return m.norm(x)


def _pvt_forward(self: nn.Module, x: torch.Tensor, feat_size: list[int]) -> torch.Tensor:
    """timm.models.pvt_v2.Attention.forward. x: (B, N, dim) -> (B, N, dim)."""
    B, N, _ = x.shape
    q = self.q(x).reshape(B, N, self.num_heads, -1).permute(0, 2, 1, 3)
    if self.sr is not None:
        x = _reduce(self, x, feat_size, self.pool)
        if self.act is not None:
            x = self.act(x)
    k, v = self.kv(x).reshape(B, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    return _merge_heads(self, _attend(self, q, k, v))


register_timm_family("timm-pvt-attention", TimmFamily("models.pvt_v2", "Attention", query="q", per_head=1, forward=_pvt_forward),
                     "timm PVT-v2 Attention (spatial-reduction keys and values)")


def _twins_global_forward(self: nn.Module, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """timm.models.twins.GlobalSubSampleAttn.forward. x: (B, N, dim) -> (B, N, dim)."""
    B, N, _ = x.shape
    q = self.q(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    if self.sr is not None:
        x = _reduce(self, x, size)
    k, v = self.kv(x).reshape(B, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    return _merge_heads(self, _attend(self, q, k, v))


register_timm_family("timm-twins-global-attention",
                     TimmFamily("models.twins", "GlobalSubSampleAttn", query="q", per_head=1, forward=_twins_global_forward),
                     "timm Twins GlobalSubSampleAttn (spatial-reduction keys and values)")


def _twins_local_forward(self: nn.Module, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """timm.models.twins.LocallyGroupedAttn.forward: attention inside ws x ws windows. x: (B, N, dim) -> (B, N, dim)."""
    B, N, C = x.shape
    H, W = size
    ws = self.ws
    x = x.view(B, H, W, C)
    pad_r, pad_b = (ws - W % ws) % ws, (ws - H % ws) % ws
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    _, Hp, Wp, _ = x.shape
    _h, _w = Hp // ws, Wp // ws
    x = x.reshape(B, _h, ws, _w, ws, C).transpose(2, 3)
    qkv = self.qkv(x).reshape(B, _h * _w, ws * ws, 3, self.num_heads, self.head_dim).permute(3, 0, 1, 4, 2, 5)
    x = _attend(self, *qkv.unbind(0))
    x = x.transpose(2, 3).reshape(B, _h, _w, ws, ws, -1)
    x = x.transpose(2, 3).reshape(B, _h * ws, _w * ws, -1)
    if pad_r > 0 or pad_b > 0:
        x = x[:, :H, :W, :].contiguous()
    return self.proj_drop(self.proj(x.reshape(B, N, -1)))


register_timm_family("timm-twins-local-attention",
                     TimmFamily("models.twins", "LocallyGroupedAttn", forward=_twins_local_forward),
                     "timm Twins LocallyGroupedAttn (window attention)")


# ----------------------------------------------------------------------------- EVA


def _eva_forward(self: nn.Module, x: torch.Tensor, rope: torch.Tensor | None = None,
                 attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
    """timm.models.eva.EvaAttention.forward: fused or separate q/k/v, rotary embeddings, optional
    norm over all heads and gate. x: (B, N, dim) -> (B, N, dim)."""
    from timm.layers import apply_rot_embed_cat  # a stand-in exists only for a timm module

    B, N, _ = x.shape
    gate = self.gate(x).sigmoid() if self.gate is not None else None
    if self.qkv is not None:
        qkv = _fused_qkv(self, x)
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    else:
        q, k, v = (p(x).reshape(B, N, self.num_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
    q, k = self.q_norm(q), self.k_norm(k)
    if rope is not None:
        npt, half = self.num_prefix_tokens, getattr(self, "rotate_half", False)
        q = torch.cat([q[:, :, :npt, :], apply_rot_embed_cat(q[:, :, npt:, :], rope, half=half)], dim=2).type_as(v)
        k = torch.cat([k[:, :, :npt, :], apply_rot_embed_cat(k[:, :, npt:, :], rope, half=half)], dim=2).type_as(v)
    if self.fused_attn:
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop.p if self.training else 0.,
                                           is_causal=is_causal)
    else:
        from timm.layers import maybe_add_mask, resolve_self_attn_mask

        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = maybe_add_mask(attn, resolve_self_attn_mask(N, attn, attn_mask, is_causal=is_causal))
        x = self.attn_drop(attn.softmax(dim=-1)) @ v
    x = self.norm(x.transpose(1, 2).flatten(2))
    if gate is not None:
        x = x * gate
    return self.proj_drop(self.proj(x))


register_timm_family(
    "timm-eva-attention",
    TimmFamily("models.eva", "EvaAttention", query="qkv|q_proj", forward=_eva_forward,
               heads=lambda m: (m.qkv.out_features // 3 if m.qkv is not None else m.q_proj.out_features) // m.head_dim),
    "timm EVA / EVA-02 EvaAttention (fused or separate q/k/v, rotary embeddings, optional gate)",
)


def _gemma4_after(m: nn.Module) -> None:
    m.num_kv_heads = m.k_proj.linear.out_features // m.head_dim
    m.num_kv_groups = m.num_heads // m.num_kv_heads


register_timm_family(
    "timm-gemma4-attention",
    TimmFamily("models.gemma4_vit", "Gemma4Attention", query="q_proj.linear", per_head=1, after=_gemma4_after,
               keep=("q_norm", "k_norm")),
    "timm Gemma 4 ViT Gemma4Attention (q/k/v/o_proj wrapping nn.Linear, grouped key/value heads, per-head norms)",
)


# ----------------------------------------------------------------------------- attention pooling (SigLIP's 'map' head)


def _attention_pool_forward(self: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """timm.layers.attention_pool.AttentionPoolLatent.forward: learned latent queries attend to the
    tokens. x: (B, N, dim) -> (B, out_features) (or (B, latent_len, out_features) unpooled)."""
    B, N, _ = x.shape
    if self.pos_embed is not None:
        x = x + self.pos_embed.unsqueeze(0).to(x.dtype)
    q = self.q(self.latent.expand(B, -1, -1)).reshape(B, self.latent_len, self.num_heads, self.head_dim).transpose(1, 2)
    k, v = self.kv(x).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    x = _merge_heads(self, _attend(self, self.q_norm(q), self.k_norm(k), v, attn_mask))
    if self.mlp is not None:
        x = x + self.mlp(self.norm(x))
    if self.pool == "token":
        return x[:, 0]
    return x.mean(1) if self.pool == "avg" else x


register_timm_family("timm-attention-pool",
                     TimmFamily("layers.attention_pool", "AttentionPoolLatent", query="kv", per_head=2,
                                forward=_attention_pool_forward),
                     "timm AttentionPoolLatent (SigLIP's 'map' pooling head: latent queries, fused kv)")


# ----------------------------------------------------------------------------- SAM's ViT


register_timm_family("timm-sam-attention", TimmFamily("models.vision_transformer_sam", "Attention"),
                     "timm SAM ViT Attention (on a (B, H, W, C) map; decomposed relative position or rotary embeddings)")


# ----------------------------------------------------------------------------- CrossViT


def _cross_attention_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm.models.crossvit.CrossAttention.forward: the class token (x[:, 0]) attends to all tokens
    of the other branch. x: (B, N, dim) -> (B, 1, dim)."""
    B, N, _ = x.shape
    q = self.wq(x[:, 0:1, ...]).reshape(B, 1, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    k = self.wk(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    v = self.wv(x).reshape(B, N, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
    attn = self.attn_drop(((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1))
    return _merge_heads(self, attn @ v)


register_timm_family("timm-crossvit-cross-attention",
                     TimmFamily("models.crossvit", "CrossAttention", query="wq", per_head=1, forward=_cross_attention_forward),
                     "timm CrossViT CrossAttention (one branch's class token attends to the other branch's tokens)")


# ----------------------------------------------------------------------------- TNT


register_timm_family("timm-tnt-attention", TimmFamily("models.tnt", "Attention", query="qk", per_head=2),
                     "timm TNT Attention (inner and outer: fused q/k, separate v)")


def _pixel_embed_sync(module: nn.Module) -> dict[str, int]:
    module.in_dim = _out_width(module.proj)  # TNT reshapes its pixel embeddings to (B * patches, in_dim, -1)
    return {}


register_attention_form(
    "timm-tnt-pixel-embed",
    AttentionForm(lambda m: is_timm(m, "models.tnt", "PixelEmbed"), lambda m: m.in_dim, _pixel_embed_sync, part=True),
    "timm TNT PixelEmbed (a part of TNT's attention model: the inner width it reshapes pixels to follows its projection)",
)
