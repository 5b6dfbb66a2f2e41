"""Attention forms whose whole heads can be pruned: how to find a module's head size, and how to
bring its attributes back in line after slicing.

The dependency tracer (:mod:`slimforge.prune._trace`) ties a head's query, key and value rows and
the matching output-projection columns into one unit when the attention's forward splits the
channel dimension into ``(..., heads, head_dim)``: the factor just before a block of
``head_dim`` channels is the head axis. After slicing, :func:`sync_attention` recomputes each
module's head count from its (sliced) weights, so its own ``forward`` keeps working; the head
dimension and the softmax scale never change.

A form is a small record in a registry: ``matches(module)``, ``head_dim(module)`` and
``sync(module)`` (which returns ``{"num_attention_heads": n, ...}`` for the model config). Add
one with :func:`register_attention_form`. ``nn.MultiheadAttention`` and torchvision's Swin and
MaxViT attention derive their head size from their input, so pruning gives them a stand-in
forward (:class:`PrunableMultiheadAttention` ...: same parameters, same outputs) that reads it from
the weights. timm's further families (BEiT, EVA, CaiT, PVT-v2, Twins, XCiT ...) have their forms in
:mod:`slimforge.prune._timm_attention` and :mod:`slimforge.prune._timm_hybrid_attention`. Attention that
matches no form but keeps its head count in an attribute (attention written by hand: ``n_head``, ``heads``,
``num_heads`` ...) loses heads through that attribute (``_rules_view._split_axis``, ``_trace.ATTENTION_MODES``);
one whose heads cannot follow (LeViT's downsampling attention ...) keeps them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.maxvit import RelativePositionalMultiHeadAttention
from torchvision.models.swin_transformer import ShiftedWindowAttention

from slimforge._registry import Registry


@dataclass(frozen=True)
class AttentionForm:
    """matches: is ``module`` this form; head_dim: channels per head (fixed by pruning);
    sync: update the head count (and dependent sizes) from the sliced weights, return config sizes;
    sources: (parameter name inside the module, dimension) that produce heads without being a
    linear layer's weight, which the tracer cannot see as outputs (a packed weight chunked in forward)."""

    matches: Callable[[nn.Module], bool]
    head_dim: Callable[[nn.Module], int]
    sync: Callable[[nn.Module], dict[str, int]]
    sources: Callable[[nn.Module], list[tuple[str, int]]] | None = None
    # Before slicing: store on the module a size its sliced weights no longer tell (timm's Twins
    # and CaiT compute the head size as width // heads; once heads go, it must be kept).
    remember: Callable[[nn.Module], None] | None = None
    # A per-head part of an attention module (a relative position bias), not attention itself.
    part: bool = False
    # (parameter name inside the module, dimension) to keep whole: a single head's channels, which
    # no head split ties together (a reshape to (..., 1, head_dim) drops the size-1 head axis).
    whole: Callable[[nn.Module], list[tuple[str, int]]] | None = None
    # Its forward splits channels into unequal sizes that ``sync`` recomputes from the weights (CoaT's
    # head groups with one convolution each): such a split passes each piece's channels on, unpinned.
    adaptive_splits: bool = False
    # Further per-head sizes its forward splits into, besides head_dim (LeViT's downsampling attention:
    # queries of key_dim channels per head, keys and values of key_dim + val_dim).
    other_head_dims: Callable[[nn.Module], tuple[int, ...]] | None = None
    # The head count its forward builds tensors with, from an attribute ``sync`` keeps in line (T5's zero
    # position bias ``zeros(1, n_heads, q, k)``; ``repeat_kv``'s expand of one key/value head to every query
    # head): such a tensor's head dimension follows the pruned heads instead of pinning them. None: no such tensor.
    built_heads: Callable[[nn.Module], int | None] | None = None
    # With ``built_heads``: it also builds tensors whose first dimension is (batch * heads), batch-major
    # (GPT-NeoX-Japanese's zero scores for ``baddbmm``), whose size then is a multiple of the head count.
    built_batch_heads: bool = False
    # Which factor of a split channel dimension counts heads, where :func:`head_axis`'s rule (the factor
    # followed by exactly head_dim channels) does not tell it (Falcon's (heads, 3) per-head q/k/v).
    split_axis: Callable[[nn.Module, list[int]], int | None] | None = None
    # Its forward slices (or splits) a fused projection's output into q, k and v at offsets it recomputes from
    # the synced head counts (Phi-3's qkv_proj): each piece passes its channels on; every head spans all pieces,
    # so none can empty (a piece one head wide, a single key/value head, stays whole).
    fused: bool = False
    # Its grouped convolutions take one group per piece of a head (EfficientViT's LiteMLA aggregates q, k and v in
    # 3 x heads groups): they lose whole groups, where a grouped convolution elsewhere keeps its group count.
    grouped_heads: bool = False
    # Its forward slices its own input per head (WavLM's gate reads each head's slice of the residual): a view of a
    # tensor made outside the module splits the residual at the same offsets in every slice, not into heads.
    slices_input_per_head: bool = False
    # Grouped-query attention whose query heads go within their key/value groups, the key/value heads kept whole
    # (``repeat_kv`` or SDPA's ``enable_gqa`` maps query head i to key/value head i // (heads / kv_heads), so every
    # group keeps as many query heads as the others): the key/value head count, or None where whole groups go.
    query_groups: Callable[[nn.Module], int | None] | None = None
    # (child, twin) names of Linear children that hold the same heads as a twin from the same input (Longformer's
    # query_global of query): a child the example never reaches (LED without a global attention mask) is sliced as its
    # twin is, so the pruned model still runs it.
    twins: Callable[[nn.Module], list[tuple[str, str]]] | None = None


ATTENTION_FORMS: Registry[AttentionForm] = Registry("attention form")


def register_attention_form(name: str, form: AttentionForm, help: str = "") -> AttentionForm:
    return ATTENTION_FORMS.register(name, help)(form)


def list_attention_forms() -> list[str]:
    return ATTENTION_FORMS.names()


def find_attention_form(module: nn.Module) -> AttentionForm | None:
    """The registered form ``module`` has, or None."""
    for name in ATTENTION_FORMS.names():
        form = ATTENTION_FORMS.get(name)
        if form.matches(module):
            return form
    return None


def head_axis(module: nn.Module, form: AttentionForm, sizes: list[int]) -> int | None:
    """Which factor of a split channel dimension (``sizes``, e.g. ``[3, heads, head_dim]``)
    counts heads: the one followed by exactly ``head_dim`` channels. None: not a head split."""
    if form.split_axis is not None:
        axis = form.split_axis(module, sizes)
        if axis is not None:
            return axis
    hds = {form.head_dim(module), *(form.other_head_dims(module) if form.other_head_dims is not None else ())}
    for axis in range(len(sizes) - 1):
        if math.prod(sizes[axis + 1:]) in hds and sizes[axis] > 1:
            return axis
    return None


def remember_sizes(model: nn.Module) -> None:
    """Before slicing (pruning, or replaying a plan): each form's sizes that slicing would hide."""
    for module in model.modules():
        form = find_attention_form(module)
        if form is not None and form.remember is not None:
            form.remember(module)


def sync_attention(model: nn.Module) -> dict[str, set[int]]:
    """After slicing: each attention module's head count from its weights; per config key, the
    values seen over all layers (a key with one value is uniform and can go into the config)."""
    sizes: dict[str, set[int]] = {}
    for module in model.modules():
        form = find_attention_form(module)
        if form is not None:
            for key, value in form.sync(module).items():
                sizes.setdefault(key, set()).add(value)
    _no_nested_tensors(model)
    return sizes


def _int(module: nn.Module, name: str) -> bool:
    try:
        value = getattr(module, name, None)
    except RuntimeError:  # a heterogeneous transformers config refuses a per-layer attribute globally
        return False
    return isinstance(value, int) and not isinstance(value, bool)


def _linear(module: nn.Module, name: str) -> bool:
    return is_linear_like(getattr(module, name, None))


def is_linear_like(layer: Any) -> bool:
    """An ``nn.Linear``, or a layer stored as one that is not its subclass: I-BERT's ``QuantLinear`` (a (out, in)
    weight, ``in_features`` / ``out_features``, ``F.linear`` in its float mode)."""
    if isinstance(layer, nn.Linear):
        return True
    weight = getattr(layer, "weight", None)
    return (type(layer).__name__ == "QuantLinear" and isinstance(weight, nn.Parameter) and weight.dim() == 2
            and isinstance(getattr(layer, "out_features", None), int) and isinstance(getattr(layer, "in_features", None), int))


def _timm_class(module: nn.Module, where: str, *names: str) -> bool:
    """``module`` is one of timm's classes ``names`` defined in ``timm.<where>``: look-alikes (BEiT's
    attention has Swin's bias table, torchvision's Swin attention its attributes) reshape their output
    to the input's width, so they need forms (and stand-in forwards) of their own."""
    return type(module).__module__ == f"timm.{where}" and type(module).__name__ in names


def _hf_conv1d(module: nn.Module, name: str) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2): a linear layer whose weight is (in, out), width in ``nf``."""
    layer = getattr(module, name, None)
    return type(layer).__name__ == "Conv1D" and _int(layer, "nf") and getattr(layer, "weight", None) is not None


# ----------------------------------------------------------------------------- forms


def _hf_self_attention(module: nn.Module) -> bool:
    sized = _int(module, "attention_head_size") or _int(module, "head_dim")
    # ConvBERT's span-based convolution heads (conv_kernel_layer) fold the heads into the batch: not this form.
    return (_int(module, "num_attention_heads") and sized and any(_linear(module, n) for n in ("query", "q_proj", "q", "query_proj"))
            and not hasattr(module, "conv_kernel_layer"))


def _hf_head_dim(module: nn.Module) -> int:
    return getattr(module, "attention_head_size", None) or module.head_dim


def _hf_sync(module: nn.Module) -> dict[str, int]:
    query = next(getattr(module, n) for n in ("query", "q_proj", "q", "query_proj") if _linear(module, n))
    width = module.num_attention_heads * _hf_head_dim(module)  # every head's channels, before the sync
    if module.num_attention_heads > 1 and _int(module, "head_size") and module.head_size == width:
        module.head_size = query.out_features  # LXMERT's name for every head's channels (views its output to it)
    module.num_attention_heads = query.out_features // _hf_head_dim(module)
    if hasattr(module, "all_head_size"):
        module.all_head_size = query.out_features
    sizes = {"num_attention_heads": module.num_attention_heads}
    if _int(module, "num_key_value_heads") and _linear(module, "k_proj"):
        module.num_key_value_heads = module.k_proj.out_features // _hf_head_dim(module)
        sizes["num_key_value_heads"] = module.num_key_value_heads
    return sizes


def _hf_single_head(module: nn.Module) -> list[tuple[str, int]]:
    # SegFormer's first stage: one head, reshaped to (..., 1, head_dim), which ties no channels into a head.
    if module.num_attention_heads != 1:
        return []
    names = ("query", "key", "value", "q_proj", "k_proj", "v_proj", "q", "k", "v", "query_proj", "key_proj", "value_proj")
    return [(f"{n}.weight", 0) for n in names if _linear(module, n)]


def _hf_built_heads(module: nn.Module) -> int | None:
    # DeBERTa-v2's relative attention expands its position index to (batch * heads) with its head count;
    # YOSO repeats its attention mask once per head (repeat_interleave) for its (batch * heads) scores.
    built = _int(module, "pos_ebd_size") or isinstance(getattr(module, "lsh_config", None), dict)
    return module.num_attention_heads if built else None


def _hf_layout_head_dims(module: nn.Module) -> tuple[int, ...]:
    # LiLT's layout stream: the same heads, attention_head_size // channel_shrink_ratio channels each.
    r = getattr(module, "channel_shrink_ratio", None)
    return (_hf_head_dim(module) // r,) if isinstance(r, int) and r > 1 else ()


register_attention_form("hf-self-attention", AttentionForm(_hf_self_attention, _hf_head_dim, _hf_sync, whole=_hf_single_head,
                                                           built_heads=_hf_built_heads, other_head_dims=_hf_layout_head_dims),
                        "Hugging Face BERT/RoBERTa/ViT/MPNet/DeBERTa/SegFormer: num_attention_heads, attention_head_size, query/q_proj/q/query_proj")


def _hf_named_heads(heads: str, head_dim: str, *linears: str) -> Callable[[nn.Module], bool]:
    """A Hugging Face attention whose head count is ``heads`` and head size ``head_dim`` (both ints),
    with the linear layers ``linears`` (query first), reshaped to (..., -1, head_dim) in its forward."""
    def matches(module: nn.Module) -> bool:
        return _int(module, heads) and _int(module, head_dim) and all(_linear(module, n) for n in linears)
    return matches


def _named_heads_sync(heads: str, head_dim: str, query: str, width: str | None) -> Callable[[nn.Module], dict[str, int]]:
    def sync(module: nn.Module) -> dict[str, int]:
        out = getattr(module, query).out_features
        setattr(module, heads, out // getattr(module, head_dim))
        if width is not None:
            setattr(module, width, out)
        return {"num_attention_heads": getattr(module, heads)}
    return sync


def _t5_built_heads(module: nn.Module) -> int:
    return module.n_heads  # a layer without its own position bias adds zeros(1, n_heads, q, k)


register_attention_form("hf-distilbert-attention", AttentionForm(
    _hf_named_heads("n_heads", "attention_head_size", "q_lin", "k_lin", "v_lin", "out_lin"),
    lambda m: m.attention_head_size, _named_heads_sync("n_heads", "attention_head_size", "q_lin", None)),
    "Hugging Face DistilBERT (n_heads, attention_head_size, q_lin/k_lin/v_lin/out_lin)")
register_attention_form("hf-t5-attention", AttentionForm(
    _hf_named_heads("n_heads", "key_value_proj_dim", "q", "k", "v", "o"),
    lambda m: m.key_value_proj_dim, _named_heads_sync("n_heads", "key_value_proj_dim", "q", "inner_dim"),
    built_heads=_t5_built_heads),
    "Hugging Face T5 / mT5 (n_heads, key_value_proj_dim, q/k/v/o; relative_attention_bias columns per head)")
register_attention_form("hf-pix2struct-attention", AttentionForm(
    _hf_named_heads("n_heads", "key_value_proj_dim", "query", "key", "value", "output"),
    lambda m: m.key_value_proj_dim, _named_heads_sync("n_heads", "key_value_proj_dim", "query", "inner_dim"),
    built_heads=_t5_built_heads),
    "Hugging Face Pix2Struct (T5's attention with query/key/value/output layers, vision and text)")


def _hf_grouped_query(module: nn.Module) -> bool:
    """Llama/Qwen2/Mistral-style: q/k/v/o projections, ``head_dim``, head counts only in the config
    (Phi names its output projection ``dense``, LFM2 ``out_proj``, ModernBERT's decoder ``Wo``; MiniCPM5-MoE its gated
    query ``q_gate_proj``)."""
    return (not _int(module, "num_attention_heads") and _int(module, "head_dim")
            and (_linear(module, "q_proj") or _linear(module, "q_gate_proj")) and _linear(module, "k_proj") and _linear(module, "v_proj")
            and _grouped_output(module) is not None and not _hf_out_proj_attention(module)  # CLIP's has a form of its own
            and _queries_fit_head_dim(module))


def _queries_fit_head_dim(module: nn.Module) -> bool:
    """Its queries and keys are heads of ``head_dim``: a class of the user's that keeps another size for them (RetNet's
    ``key_dim``, half its values' ``head_dim``) is no such attention, and its own attributes decide its heads. (A size
    pruning never changes: the head counts it does change are stale between slicing and sync.)"""
    return not _int(module, "key_dim") or module.key_dim == module.head_dim


GROUPED_OUTPUTS = ("o_proj", "dense", "out_proj", "Wo")  # Llama, Phi, LFM2, ModernBERT's decoder


def _grouped_output(module: nn.Module) -> nn.Module | None:
    return next((getattr(module, n) for n in GROUPED_OUTPUTS if _linear(module, n)), None)


def _hf_grouped_query_sync(module: nn.Module) -> dict[str, int]:
    # repeat_kv ties every query head to its key/value head, so whole groups go and num_key_value_groups
    # (query heads per key/value head) stays as it is; with one key/value head (multi-query), query heads go
    # alone and num_key_value_groups is the query head count (repeat_kv expands the key/value head to it); with two,
    # every group keeps as many query heads as the other, and num_key_value_groups is that count.
    # The query heads are counted at the output projection's input: a gated query (Qwen3-Next's q_proj holds each
    # head's query and its output gate, 2 * head_dim rows) has twice as many rows as heads * head_dim.
    hd = module.head_dim
    out = _grouped_output(module)
    heads, kv_heads = out.in_features // _value_head_dim(module), module.k_proj.out_features // hd
    for name, value in (("num_key_value_groups", heads // kv_heads), ("num_heads", heads), ("num_key_value_heads", kv_heads)):
        if _int(module, name):  # StableLM's forward views with self.num_heads / self.num_key_value_heads
            setattr(module, name, value)
    return {"num_attention_heads": heads, "num_key_value_heads": kv_heads}


def _hf_single_key_value_head(module: nn.Module) -> list[tuple[str, int]]:
    # Multi-query (Gemma-2B, Falcon-style): one key/value head, reshaped to (..., 1, head_dim), ties no channels.
    # With too few key/value heads to lose whole groups (_hf_query_groups), they stay whole too.
    whole = module.k_proj.out_features == module.head_dim or _hf_query_groups(module) is not None
    return [("k_proj.weight", 0), ("v_proj.weight", 0)] if whole else []


WHOLE_GROUPS_FROM = 3  # key/value heads: with fewer, whole groups are too coarse a step

# What grouped-query attention loses, as ``prune(key_value_heads=...)`` says: "auto" (the rule below), "keep" (the
# key/value heads stay and query heads go within their groups) or "prune" (whole groups go, the key/value heads too).
KEY_VALUE_HEADS = ("auto", "keep", "prune")
_KEY_VALUE_HEADS: ContextVar[str] = ContextVar("slimforge_key_value_heads", default="auto")


@contextlib.contextmanager
def choosing_key_value_heads(choice: str) -> Iterator[None]:
    """While pruning: how grouped-query attention loses heads (one of :data:`KEY_VALUE_HEADS`)."""
    token = _KEY_VALUE_HEADS.set(choice)
    try:
        yield
    finally:
        _KEY_VALUE_HEADS.reset(token)


def _hf_query_groups(module: nn.Module) -> int | None:
    """Query heads go within their groups where a model has 2 key/value heads, each serving more query heads than
    that (Qwen2.5 0.5-3B, Qwen3-Next's full attention): losing a whole group there takes half the heads, 14 -> 7 for
    Qwen2.5-0.5B at ratio 0.3. With 3 key/value heads or more, or 2 of 2 query heads each, whole groups are as fine a
    step and go, the key/value cache with them. Under ``choosing_key_value_heads("keep")`` the key/value heads of any
    grouped attention (2 query heads per group or more) stay; under ``"prune"`` whole groups go everywhere. The
    key/value count, or None."""
    kv = module.k_proj.out_features // module.head_dim
    heads = _grouped_output(module).in_features // _value_head_dim(module)
    grouped = 1 < kv and heads % kv == 0 and heads // kv > 1
    choice = _KEY_VALUE_HEADS.get()
    if choice == "prune" or not grouped:
        return None
    return kv if choice == "keep" or (kv < WHOLE_GROUPS_FROM and heads // kv > kv) else None


def _multi_query_heads(module: nn.Module) -> int | None:
    """With one key/value head, repeat_kv expands it to num_key_value_groups = every query head: that expand
    follows the query heads (any count of them works). With more, the expand stays tied to its key/value head."""
    hd = module.head_dim
    return _grouped_query_rows(module) // hd if module.k_proj.out_features == hd else None


def _grouped_query_rows(module: nn.Module) -> int:
    """Rows of the query projection: ``q_proj``, or MiniCPM5-MoE's ``q_gate_proj`` (each head's query and its gate)."""
    return (module.q_proj if _linear(module, "q_proj") else module.q_gate_proj).out_features


def _value_head_dim(module: nn.Module) -> int:
    """A value head's size: ``head_dim``, or ``v_head_dim`` where values are wider than queries and keys (MiMo-V2)."""
    return module.v_head_dim if _int(module, "v_head_dim") else module.head_dim


def _grouped_query_head_dims(module: nn.Module) -> tuple[int, ...]:
    """Per-head sizes besides ``head_dim``: Qwen3-Next's gated query (q_proj rows are (heads, 2 * head_dim), each
    head's query then its output gate); MiMo-V2's value heads of ``v_head_dim``."""
    out = _grouped_output(module)
    gated = (2 * module.head_dim,) if _grouped_query_rows(module) == 2 * out.in_features else ()
    values = (module.v_head_dim,) if _value_head_dim(module) != module.head_dim else ()
    return gated + values


register_attention_form("hf-grouped-query", AttentionForm(_hf_grouped_query, lambda m: m.head_dim, _hf_grouped_query_sync,
                                                          whole=_hf_single_key_value_head, built_heads=_multi_query_heads,
                                                          other_head_dims=_grouped_query_head_dims, query_groups=_hf_query_groups),
                        "Hugging Face Llama/Qwen2/Mistral/Gemma/Phi (grouped-query): whole key/value groups; "
                        "2 key/value heads: query heads within their groups; multi-query: query heads")


def _falcon_grouped_attention(module: nn.Module) -> bool:
    """Falcon's newer layout (``new_decoder_architecture``, Falcon-40B/180B): ``query_key_value`` rows
    (key/value heads, query heads per key/value head + 2, head_dim): each group its queries, key and value."""
    return (_linear(module, "query_key_value") and _linear(module, "dense") and _int(module, "num_heads")
            and _int(module, "head_dim") and _int(module, "num_kv_heads") and _int(module, "num_key_value_groups")
            and getattr(module, "new_decoder_architecture", None) is True)


def _falcon_grouped_split_axis(module: nn.Module, sizes: list[int]) -> int | None:
    # view(..., num_kv_heads, -1, head_dim) of the (groups * (queries + 2), head_dim) view: whole groups.
    per_group = module.num_key_value_groups + 2
    for axis in range(len(sizes) - 1):
        if sizes[axis] == module.num_kv_heads and sizes[axis + 1] == per_group:
            return axis
    return None


def _falcon_grouped_sync(module: nn.Module) -> dict[str, int]:
    module.num_kv_heads = module.query_key_value.out_features // ((module.num_key_value_groups + 2) * module.head_dim)
    module.num_heads = module.num_kv_heads * module.num_key_value_groups
    return {"num_attention_heads": module.num_heads, "num_kv_heads": module.num_kv_heads}


def _falcon_single_group(module: nn.Module) -> list[tuple[str, int]]:
    # One key/value head: the view to (..., 1, queries + 2, head_dim) ties no group, so its rows stay.
    return [("query_key_value.weight", 0)] if module.num_kv_heads == 1 else []


register_attention_form("hf-falcon-grouped-attention", AttentionForm(
    _falcon_grouped_attention, lambda m: m.head_dim, _falcon_grouped_sync, split_axis=_falcon_grouped_split_axis,
    whole=_falcon_single_group), "Hugging Face Falcon, new_decoder_architecture (grouped query_key_value): whole key/value groups")


def _gpt_neox_attention(module: nn.Module) -> bool:
    """GPT-NeoX (Pythia): ``query_key_value`` viewed as (..., heads, 3 * head_size), chunked into q, k, v;
    no head count attribute (the views use -1)."""
    return (_linear(module, "query_key_value") and _linear(module, "dense") and _int(module, "head_size")
            and not _int(module, "num_heads") and not _int(module, "num_attention_heads"))


def _gpt_neox_sync(module: nn.Module) -> dict[str, int]:
    return {"num_attention_heads": module.query_key_value.out_features // (3 * module.head_size)}


# head_dim is a head's block of query_key_value rows: its query, key and value channels together.
register_attention_form("hf-gpt-neox-attention", AttentionForm(_gpt_neox_attention, lambda m: 3 * m.head_size, _gpt_neox_sync),
                        "Hugging Face GPT-NeoX / Pythia (query_key_value rows (heads, 3 * head_size))")


def _cvt_attention(module: nn.Module) -> bool:
    """CvT's self-attention: convolutional projections, then projection_query/key/value; head size
    embed_dim // num_heads, computed in its forward (so embed_dim follows the heads)."""
    return (all(_linear(module, f"projection_{n}") for n in ("query", "key", "value")) and _int(module, "num_heads")
            and _int(module, "embed_dim"))


def _cvt_sync(module: nn.Module) -> dict[str, int]:
    if not _int(module, "head_dim"):  # before the first slice: the head size the sliced weights no longer tell
        module.head_dim = module.embed_dim // module.num_heads
    module.embed_dim = module.projection_query.out_features
    module.num_heads = module.embed_dim // module.head_dim
    return {"num_attention_heads": module.num_heads}  # CvT's config has per-stage num_heads, fitted by save_pretrained


def _cvt_remember(module: nn.Module) -> None:
    if not _int(module, "head_dim"):
        module.head_dim = module.embed_dim // module.num_heads


def _cvt_single_head(module: nn.Module) -> list[tuple[str, int]]:
    return [(f"projection_{n}.weight", 0) for n in ("query", "key", "value")] if module.num_heads == 1 else []


register_attention_form("hf-cvt-attention", AttentionForm(_cvt_attention, lambda m: getattr(m, "head_dim", None) or m.embed_dim // m.num_heads,
                                                          _cvt_sync, remember=_cvt_remember, whole=_cvt_single_head),
                        "Hugging Face CvT (convolutional projections, projection_query/key/value, head size embed_dim // num_heads)")


def _falcon_attention(module: nn.Module) -> bool:
    """Falcon's original layout (``new_decoder_architecture`` and ``multi_query`` off): a fused
    ``query_key_value`` whose rows are (heads, 3, head_dim), each head's query, key and value together. With ALiBi
    (Falcon-RW), ``hf-falcon-alibi-attention`` (:mod:`slimforge.prune._hf_alibi_attention`)."""
    return falcon_original_layout(module) and not getattr(getattr(module, "config", None), "alibi", False)


def falcon_original_layout(module: nn.Module) -> bool:
    return (_linear(module, "query_key_value") and _linear(module, "dense") and _int(module, "num_heads")
            and _int(module, "head_dim") and getattr(module, "new_decoder_architecture", None) is False
            and getattr(module, "multi_query", None) is False)


def _falcon_split_axis(module: nn.Module, sizes: list[int]) -> int | None:
    # unflatten(-2, (num_heads, 3)) of the (3 * heads, head_dim) view: the heads, not the 3 (q, k, v).
    for axis in range(len(sizes) - 1):
        if sizes[axis] == module.num_heads and sizes[axis + 1] == 3 and math.prod(sizes[axis + 2:]) in (1, module.head_dim):
            return axis
    return None


def _falcon_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.num_kv_heads = module.query_key_value.out_features // (3 * module.head_dim)
    module.num_key_value_groups = 1
    return {"num_attention_heads": module.num_heads, "num_kv_heads": module.num_heads}


register_attention_form("hf-falcon-attention", AttentionForm(_falcon_attention, lambda m: m.head_dim, _falcon_sync,
                                                             split_axis=_falcon_split_axis),
                        "Hugging Face Falcon, original layout (fused query_key_value, (heads, 3, head_dim))")


def _gpt2_attention(module: nn.Module) -> bool:
    return (_hf_conv1d(module, "c_attn") and _hf_conv1d(module, "c_proj") and _int(module, "num_heads")
            and _int(module, "head_dim") and _int(module, "split_size") and not getattr(module, "is_cross_attention", False))


def _gpt2_sync(module: nn.Module) -> dict[str, int]:
    # As transformers' own (removed) GPT2Attention.prune_heads did: split_size and num_heads follow
    # the heads; embed_dim is the residual width and stays.
    width = module.c_attn.weight.shape[1] // 3
    module.num_heads = width // module.head_dim
    module.split_size = width
    return {"num_attention_heads": module.num_heads}


register_attention_form("hf-gpt2", AttentionForm(_gpt2_attention, lambda m: m.head_dim, _gpt2_sync),
                        "Hugging Face GPT-2 self-attention (Conv1D c_attn/c_proj)")


def _hf_out_proj_attention(module: nn.Module) -> bool:
    """CLIP / SigLIP-style: ``num_heads``, ``head_dim``, q/k/v/out_proj, heads reshaped with ``-1``; as many
    key/value heads as query heads."""
    if _int(module, "num_attention_heads") or not (_int(module, "num_heads") and _int(module, "head_dim")):
        return False
    if not all(_linear(module, n) for n in ("q_proj", "k_proj", "v_proj", "out_proj")):
        return False
    return module.q_proj.out_features == module.k_proj.out_features == module.v_proj.out_features


def _hf_out_proj_sync(module: nn.Module) -> dict[str, int]:
    inner = module.num_heads * module.head_dim
    merged = getattr(module, "_slimforge_embed_dim_merged", getattr(module, "embed_dim", None) == inner)
    module.num_heads = module.q_proj.out_features // module.head_dim
    if merged:  # XGLM's forward reshapes its heads' output to embed_dim: it follows them
        module.embed_dim = module.q_proj.out_features
    if module.num_heads < getattr(module, "_slimforge_heads_before", module.num_heads) and (swap := swap_for(type(module))):
        swap.use(module)  # a forward that merges to its input's width gets its stand-in (a plan replayed on load too)
    return {"num_attention_heads": module.num_heads}


def _hf_out_proj_remember(module: nn.Module) -> None:
    """Whether ``embed_dim`` is the heads' merged width, and the head count, told before slicing: a user's class whose
    ``num_heads`` follows the heads in the plan (wav2vec 2.0's attention copied into a project) has the new count by
    sync time."""
    if not hasattr(module, "_slimforge_embed_dim_merged"):
        module._slimforge_embed_dim_merged = getattr(module, "embed_dim", None) == module.num_heads * module.head_dim
    if not hasattr(module, "_slimforge_heads_before"):
        module._slimforge_heads_before = module.num_heads


register_attention_form("hf-out-proj-attention",
                        AttentionForm(_hf_out_proj_attention, lambda m: m.head_dim, _hf_out_proj_sync, remember=_hf_out_proj_remember),
                        "Hugging Face CLIP / SigLIP attention (num_heads, head_dim, q/k/v_proj, out_proj)")


def _timm_attention(module: nn.Module) -> bool:
    """timm ``Attention`` (ViT, DeiT, MobileViT) and ``AttentionRope`` with a fused qkv: reshape to (B, N, 3, heads, head_dim)."""
    return (_timm_class(module, "layers.attention", "Attention", "AttentionRope") and _linear(module, "qkv")
            and _linear(module, "proj") and _int(module, "num_heads") and _int(module, "head_dim") and _int(module, "attn_dim"))


def _timm_single_head(module: nn.Module) -> list[tuple[str, int]]:
    return [("qkv.weight", 0)] if module.num_heads == 1 else []


def _timm_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.qkv.out_features // (3 * module.head_dim)
    module.attn_dim = module.num_heads * module.head_dim
    if _int(module, "num_kv_heads"):  # AttentionRope: a fused qkv has as many key/value heads as query heads
        module.num_kv_heads = module.num_heads
    return {}  # timm models have no config object to update


register_attention_form("timm-attention", AttentionForm(_timm_attention, lambda m: m.head_dim, _timm_sync, whole=_timm_single_head),
                        "timm Attention (ViT, DeiT): fused qkv, num_heads, head_dim, attn_dim")


def _timm_window_attention(module: nn.Module) -> bool:
    """timm Swin ``WindowAttention``: fused qkv, a relative position bias table with one column per head."""
    table = getattr(module, "relative_position_bias_table", None)
    return (_timm_class(module, "models.swin_transformer", "WindowAttention") and _linear(module, "qkv")
            and _linear(module, "proj") and _int(module, "num_heads") and isinstance(table, nn.Parameter) and table.dim() == 2)


def _window_head_dim(module: nn.Module) -> int:
    return module.qkv.out_features // (3 * module.num_heads)


def _window_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.relative_position_bias_table.shape[1]
    return {}


register_attention_form("timm-window-attention", AttentionForm(_timm_window_attention, _window_head_dim, _window_sync),
                        "timm Swin WindowAttention (relative position bias per head)")


class PrunableMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` whose head count follows its weights: the same parameters and
    state_dict keys, the same outputs, but ``num_heads * head_dim`` may be smaller than
    ``embed_dim`` (PyTorch's own forward derives the head size from the input's width).
    ``query``: (L, E) or (L, B, E) ((B, L, E) with ``batch_first``); output the same shape.
    A 3-D ``attn_mask`` ((B * heads, L, S)) must match the current head count."""

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        # (L, B, E) from here on
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        q, k, v = (F.linear(t, w, b).unflatten(-1, (-1, self.head_dim)).permute(1, 2, 0, 3)  # (B, H, L, hd)
                   for t, w, b in ((query, w_q, b_q), (key, w_k, b_k), (value, w_v, b_v)))
        mask = self._mask(attn_mask, key_padding_mask, q)
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1)
            if mask is not None:
                scores = scores + mask
            weights = torch.softmax(scores, dim=-1)
            out = F.dropout(weights, dropout, self.training) @ v
            if average_attn_weights:
                weights = weights.mean(1)
            if not batched:
                weights = weights.squeeze(0)
        else:
            causal = is_causal and mask is None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)
        out = self.out_proj(out.permute(2, 0, 1, 3).flatten(2))  # (L, B, E)
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, weights

    def _mask(self, attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None,
              q: torch.Tensor) -> torch.Tensor | None:
        """One additive float mask broadcastable to (B, H, L, S), or None."""
        mask = None
        if attn_mask is not None:
            mask = _additive(attn_mask, q.dtype)
            if mask.dim() == 3:
                mask = mask.view(q.shape[0], -1, *mask.shape[-2:])
        if key_padding_mask is not None:
            pad = _additive(key_padding_mask, q.dtype)[:, None, None, :]
            mask = pad if mask is None else mask + pad
        return mask


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def _packed_multihead_attention(module: nn.Module) -> bool:
    """``nn.MultiheadAttention`` with packed q/k/v (one ``in_proj_weight``), no bias_k/bias_v or zero attention."""
    return (isinstance(module, nn.MultiheadAttention) and module._qkv_same_embed_dim and module.bias_k is None
            and not module.add_zero_attn)


def _mha_sync(module: nn.Module) -> dict[str, int]:
    module.embed_dim = module.kdim = module.vdim = module.in_proj_weight.shape[1]
    module.num_heads = module.in_proj_weight.shape[0] // (3 * module.head_dim)
    if _mha_pruned(module):
        _use_prunable_forward(module)
    return {}


def _mha_pruned(module: nn.Module) -> bool:
    """PyTorch's own forward needs num_heads * head_dim == embed_dim."""
    return module.in_proj_weight.shape[0] != 3 * module.in_proj_weight.shape[1]


def _slow_path_only(module: nn.Module, args: tuple) -> None:
    """A forward pre-hook that does nothing: ``nn.TransformerEncoderLayer`` skips its fused inference
    kernel (which assumes num_heads * head_dim == embed_dim) for modules that have hooks."""
    return None


def _use_prunable_forward(module: nn.Module) -> None:
    module.__class__ = PrunableMultiheadAttention
    if _slow_path_only not in module._forward_pre_hooks.values():
        module.register_forward_pre_hook(_slow_path_only)


def _use_own_forward(module: nn.Module, cls: type) -> None:
    module.__class__ = cls
    for key, hook in list(module._forward_pre_hooks.items()):
        if hook is _slow_path_only:
            del module._forward_pre_hooks[key]


def _no_nested_tensors(model: nn.Module) -> None:
    """``nn.TransformerEncoder`` would hand its layers nested tensors, which only the fused kernel reads;
    ``nn.Transformer`` checks its inputs' width against ``d_model``, which follows its encoder's final norm."""
    for module in model.modules():
        if isinstance(module, nn.TransformerEncoder) and any(
                _packed_multihead_attention(m) and _mha_pruned(m) for m in module.modules()):
            module.use_nested_tensor = False
        if isinstance(module, nn.Transformer) and isinstance(getattr(module.encoder, "norm", None), nn.LayerNorm):
            module.d_model = int(module.encoder.norm.normalized_shape[0])


def prepare_attention(model: nn.Module) -> list[tuple[nn.Module, type]]:
    """Before capture: give every module of a class whose own forward reads its head size from
    its input (``nn.MultiheadAttention``, torchvision's ``ShiftedWindowAttention``) the forward
    that reads it from its weights (same outputs). Returns (module, old class) for :func:`settle_attention`."""
    own = {id(m): type(m) for m in model.modules()}
    remember_sizes(model)
    changed = [(m, own[id(m)]) for m in model.modules() if type(m) is not own[id(m)]]  # stand-ins a form's remember made (MPT's)
    for module in model.modules():
        swap = swap_for(type(module))
        if swap is not None and swap.matches(module):
            changed.append((module, type(module)))
            swap.use(module)
    return changed


def settle_attention(changed: list[tuple[nn.Module, type]], failed: bool) -> None:
    """After pruning: modules whose shapes their own forward still handles (all of them, if
    pruning failed) get their own class back."""
    for module, cls in changed:
        swap = swap_for(cls)
        if failed or not swap.pruned(module):
            swap.undo(module, cls)


def use_needed_stand_ins(model: nn.Module) -> None:
    """After slicing (pruning, or a plan replayed on load): each module with a registered stand-in and no attention
    form whose own forward can no longer run its shapes (FocalNet's modulation) gets the stand-in. An attention
    form's sync makes its own swap."""
    for module in model.modules():
        swap = swap_for(type(module))
        if swap is not None and find_attention_form(module) is None and swap.matches(module) and swap.pruned(module):
            swap.use(module)


@dataclass(frozen=True)
class Swap:
    """A class whose forward derives the head size from its input, and its stand-in."""

    matches: Callable[[nn.Module], bool]
    pruned: Callable[[nn.Module], bool]  # its own forward can no longer run it
    use: Callable[[nn.Module], None]
    undo: Callable[[nn.Module, type], None]


class NamedStandIn:
    """A stand-in subclass, named ``Prunable<own>`` and defined in the module ``home``, with its own ``forward``, of
    a class recognised by its name ``own`` (transformers' PEGASUS-X and ConvBERT attention): made once per class."""

    def __init__(self, own: str, forward: Callable[..., Any], home: str, doc: str, attributes: dict[str, Any] | None = None) -> None:
        self.own, self.name, self.forward, self.home, self.doc = own, f"Prunable{own}", forward, home, doc
        self.attributes = attributes or {}  # class attributes the tracer reads (``slimforge_split_follows``)
        self.classes: dict[type, type] = {}

    def own_class(self, cls: type) -> type:
        return cls.__mro__[1] if cls.__name__ == self.name else cls

    def use(self, module: nn.Module) -> None:
        own = self.own_class(type(module))
        if own not in self.classes:
            self.classes[own] = type(self.name, (own,), {"forward": self.forward, "__module__": self.home,
                                                         "__qualname__": self.name, "__doc__": self.doc, **self.attributes})
        module.__class__ = self.classes[own]


_SWAPS: dict[type, Swap] = {
    nn.MultiheadAttention: Swap(_packed_multihead_attention, _mha_pruned, _use_prunable_forward, _use_own_forward),
}
# By "module.ClassName", for classes of optional packages (timm) that are not imported here.
_NAMED_SWAPS: dict[str, Swap] = {}


def register_stand_in(qualified_name: str, swap: Swap) -> None:
    """Give the class ``qualified_name`` ("timm.models.beit.Attention") a stand-in forward while pruning."""
    _NAMED_SWAPS[qualified_name] = swap


# Stand-ins for every class a test accepts (transformers' attention classes whose forward merges the heads' output
# to the input's width, found by their source): (test, swap), tried in order after the named ones.
_CLASS_TEST_SWAPS: list[tuple[Callable[[type], bool], Swap]] = []


def register_stand_in_for(test: Callable[[type], bool], swap: Swap) -> None:
    """Give every class for which ``test(cls)`` holds a stand-in forward while pruning."""
    _CLASS_TEST_SWAPS.append((test, swap))


def swap_for(cls: type) -> Swap | None:
    found = _SWAPS.get(cls) or _NAMED_SWAPS.get(f"{cls.__module__}.{cls.__qualname__}")
    return found or next((swap for test, swap in _CLASS_TEST_SWAPS if test(cls)), None)


register_attention_form(
    "torch-multihead-attention",
    AttentionForm(_packed_multihead_attention, lambda m: m.head_dim, _mha_sync, sources=lambda m: [("in_proj_weight", 0)]),
    "torch nn.MultiheadAttention (torchvision ViT, nn.TransformerEncoderLayer): whole heads",
)


def _levit_attention(module: nn.Module) -> bool:
    """timm LeViT ``Attention``: qkv is a LinearNorm (or ConvNorm), each head holds key_dim query,
    key_dim key and val_dim value channels; a learned bias per head and relative position."""
    qkv = getattr(module, "qkv", None)
    return (_timm_class(module, "models.levit", "Attention") and all(_int(module, a) for a in ("num_heads", "key_dim", "val_dim", "val_attn_dim"))
            and qkv is not None and hasattr(qkv, "bn") and isinstance(getattr(module, "attention_biases", None), nn.Parameter))


def _levit_head_dim(module: nn.Module) -> int:
    return 2 * module.key_dim + module.val_dim


def _levit_sync(module: nn.Module) -> dict[str, int]:
    module.num_heads = module.attention_biases.shape[0]
    module.key_attn_dim = module.key_dim * module.num_heads
    module.val_attn_dim = module.val_dim * module.num_heads
    module.attention_bias_cache = {}  # eval-mode cache of the biases, sized for the old head count
    return {}


register_attention_form("timm-levit-attention", AttentionForm(_levit_attention, _levit_head_dim, _levit_sync),
                        "timm LeViT Attention (key_dim/val_dim per head, attention biases per head)")


class PrunableShiftedWindowAttention(ShiftedWindowAttention):
    """torchvision's Swin ``ShiftedWindowAttention`` whose head size comes from its weights
    (torchvision's computes it as the input's width // num_heads). Same parameters, same outputs.
    x: (B, H, W, C) -> (B, H, W, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ws, shift = self.window_size, list(self.shift_size)
        B, H, W, C = x.shape
        x = F.pad(x, (0, 0, 0, (ws[1] - W % ws[1]) % ws[1], 0, (ws[0] - H % ws[0]) % ws[0]))
        _, pad_h, pad_w, _ = x.shape
        shift = [0 if ws[i] >= size else shift[i] for i, size in enumerate((pad_h, pad_w))]
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        windows = (pad_h // ws[0]) * (pad_w // ws[1])
        x = x.view(B, pad_h // ws[0], ws[0], pad_w // ws[1], ws[1], C)
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(B * windows, ws[0] * ws[1], C)
        attn, v = self._scores(x)
        if sum(shift) > 0:
            attn = attn.view(x.size(0) // windows, windows, self.num_heads, x.size(1), x.size(1))
            attn = attn + _shift_mask(x, pad_h, pad_w, ws, shift, windows).unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, x.size(1), x.size(1))
        attn = F.dropout(F.softmax(attn, dim=-1), p=self.attention_dropout, training=self.training)
        x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), -1)
        x = F.dropout(self.proj(x), p=self.dropout, training=self.training)
        x = x.view(B, pad_h // ws[0], pad_w // ws[1], ws[0], ws[1], -1).permute(0, 1, 3, 2, 4, 5).reshape(B, pad_h, pad_w, -1)
        if sum(shift) > 0:
            x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
        return x[:, :H, :W, :].contiguous()

    def _scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows (B*windows, N, C) -> attention scores (B*windows, heads, N, N) with the position bias, and the values."""
        head_dim = self.qkv.out_features // (3 * self.num_heads)
        q, k, v = self.qkv(x).reshape(x.size(0), x.size(1), 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        return (q * head_dim ** -0.5).matmul(k.transpose(-2, -1)) + self.get_relative_position_bias(), v


def _shift_mask(x: torch.Tensor, pad_h: int, pad_w: int, ws: list[int], shift: list[int], windows: int) -> torch.Tensor:
    """(windows, N, N): -100 between positions that the cyclic shift brought from different regions."""
    mask = x.new_zeros((pad_h, pad_w))
    count = 0
    for h in ((0, -ws[0]), (-ws[0], -shift[0]), (-shift[0], None)):
        for w in ((0, -ws[1]), (-ws[1], -shift[1]), (-shift[1], None)):
            mask[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    mask = mask.view(pad_h // ws[0], ws[0], pad_w // ws[1], ws[1]).permute(0, 2, 1, 3).reshape(windows, ws[0] * ws[1])
    mask = mask.unsqueeze(1) - mask.unsqueeze(2)
    return mask.masked_fill(mask != 0, float(-100.0)).masked_fill(mask == 0, float(0.0))


def _bias_table_heads(module: nn.Module) -> int:
    return module.relative_position_bias_table.shape[1]


def _stand_in(own: type, prunable: type, qkv: str, heads: str,
              count: Callable[[nn.Module], int] = _bias_table_heads) -> tuple[Callable[[nn.Module], bool], Callable[[nn.Module], dict[str, int]]]:
    """For a torchvision attention class ``own`` with a stand-in ``prunable`` (same parameters, head
    count from a per-head tensor, ``count``: its bias table by default): registers the swap, returns
    (matches, sync) for its AttentionForm. ``qkv``: its fused projection; ``heads``: its head-count attribute."""

    def matches(module: nn.Module) -> bool:
        return type(module) in (own, prunable)

    def pruned(module: nn.Module) -> bool:
        layer = getattr(module, qkv)
        return layer.out_features != 3 * layer.in_features

    def use(module: nn.Module) -> None:
        module.__class__ = prunable

    def undo(module: nn.Module, cls: type) -> None:
        module.__class__ = cls

    def sync(module: nn.Module) -> dict[str, int]:
        setattr(module, heads, count(module))
        if pruned(module):
            use(module)
        return {}

    _SWAPS[own] = Swap(matches, pruned, use, undo)
    return matches, sync


# torchvision Swin (v1) ``ShiftedWindowAttention``; v2's cosine attention is not handled.
_swin_matches, _swin_sync = _stand_in(ShiftedWindowAttention, PrunableShiftedWindowAttention, "qkv", "num_heads")

register_attention_form(
    "torchvision-window-attention",
    AttentionForm(_swin_matches, lambda m: m.qkv.out_features // (3 * m.num_heads), _swin_sync),
    "torchvision Swin ShiftedWindowAttention (v1): whole heads, relative position bias columns",
)


class PrunableRelativePositionalAttention(RelativePositionalMultiHeadAttention):
    """torchvision MaxViT's attention whose output width comes from its heads (torchvision's
    reshapes it to the input's width). Same parameters, same outputs. x: (B, G, P, D) -> (B, G, P, D)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, G, P, _ = x.shape
        q, k, v = (t.reshape(B, G, P, self.n_heads, self.head_dim).permute(0, 1, 3, 2, 4)
                   for t in torch.chunk(self.to_qkv(x), 3, dim=-1))
        dot_prod = torch.einsum("B G H I D, B G H J D -> B G H I J", q, k * self.scale_factor)
        attn = F.softmax(dot_prod + self.get_relative_positional_bias(), dim=-1)
        out = torch.einsum("B G H I J, B G H J D -> B G H I D", attn, v)
        return self.merge(out.permute(0, 1, 3, 2, 4).reshape(B, G, P, -1))


_maxvit_matches, _maxvit_sync = _stand_in(RelativePositionalMultiHeadAttention, PrunableRelativePositionalAttention, "to_qkv", "n_heads")

register_attention_form(
    "torchvision-maxvit-attention",
    AttentionForm(_maxvit_matches, lambda m: m.head_dim, _maxvit_sync),
    "torchvision MaxViT RelativePositionalMultiHeadAttention: whole heads, relative position bias columns",
)
