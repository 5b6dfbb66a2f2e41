"""Op rules for ops that move, view, index and combine tensors (reshape, permute, cat, split,
index, pad ...): how each ties its inputs' elements to its output's."""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from slimforge.prune._capture import (
    HEAD_ATTRS, PIN, Label, Tracing, _arg, a_new_fill, head_counts, _clean, _flat_nodes, _none_like, _norm_dim, _opname, _rule, _shape, module_path, module_paths, state_space_mixer,
)
from slimforge.prune._hand_written_attention import (
    counted_head_axis, counting_modules, enclosing_paths, expanded_to_counted_heads, heads_follow, heads_view_follows, innermost_form,
    library_class, merged_heads_follow, merged_width_follows, producing_attention, projection_input_width, split_into_heads,
)
from slimforge.prune._query_groups import merged_group_heads, repeat_per_group
from slimforge.prune._split_blocks import is_split_block, split_follows
from slimforge.prune.attention import find_attention_form, head_axis


@_rule(
    "relu", "relu_", "gelu", "gelu_", "silu", "silu_", "sigmoid", "sigmoid_", "hardswish", "hardswish_",
    "hardsigmoid", "hardsigmoid_", "hardtanh", "hardtanh_", "tanh", "tanh_", "dropout", "dropout_", "feature_dropout",
    "alpha_dropout", "clone", "contiguous", "alias", "detach", "detach_", "_to_copy", "to", "lift_fresh_copy",
    "softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax", "neg", "exp", "log", "sqrt", "rsqrt", "abs",
    "erf", "leaky_relu", "leaky_relu_", "elu", "elu_", "mish", "clamp", "clamp_", "clamp_min", "clamp_max", "relu6",
    "bernoulli", "bernoulli_", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
    "reciprocal", "square", "sign", "logical_not", "bitwise_not", "native_dropout",
    "selu", "celu", "softplus", "log_sigmoid", "glu_placeholder", "fill_", "zero_", "dropout2d", "cos", "sin",
    "real", "imag", "conj", "conj_physical", "resolve_conj", "angle",
    "type_as",  # only the other tensor's dtype: its shape may differ (gemma_pytorch's rotary, x_out.type_as(x))
    # the rest of the elementwise functions of one tensor (YOSO's acos), and in-place random fills (a router's exponential_)
    "acos", "asin", "atan", "tan", "cosh", "sinh", "acosh", "asinh", "atanh", "expm1", "log1p", "log2", "log10", "exp2",
    "floor", "ceil", "round", "trunc", "frac", "sgn", "isnan", "isinf", "isfinite", "nan_to_num", "nan_to_num_", "logit",
    "erfc", "erfinv", "digamma", "lgamma", "threshold", "hardshrink", "softshrink", "tanhshrink", "positive", "signbit",
    "i0", "sinc", "deg2rad", "rad2deg", "sin_", "cos_", "exp_", "log_", "sqrt_", "abs_", "neg_", "reciprocal_", "rsqrt_",
    "exp2_", "floor_", "ceil_", "round_", "trunc_", "sign_", "sgn_", "logical_not_", "erf_", "clamp_max_", "clamp_min_",
    "log1p_", "expm1_", "bitwise_not_", "exponential_", "uniform_", "normal_", "random_", "geometric_", "cauchy_", "log_normal_",
)
def _unary(tr: Tracing, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    val = node.meta.get("val")
    if label is None:
        return _none_like(node)
    if isinstance(val, (tuple, list)):  # native_dropout: (output, mask)
        return tuple(list(label) for _ in val)
    if isinstance(val, torch.Tensor) and tuple(val.shape) != _shape(node.args[0]):
        return _binary(tr, node)
    return list(label)


@_rule("isin")
def _isin(tr: Tracing, node: torch.fx.Node) -> Any:
    """``torch.isin(elements, test_elements)``: elementwise on the elements (Grounding DINO's special token ids); every
    test element is compared with each of them, so the test elements stay whole."""
    if len(node.args) > 1 and isinstance(node.args[1], torch.fx.Node):
        tr.pin_label(tr.lab(node.args[1]))
    label = tr.lab(node.args[0]) if isinstance(node.args[0], torch.fx.Node) else None
    return _none_like(node) if label is None else list(label)


@_rule(
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "multiply", "divide", "subtract", "true_divide", "where", "maximum", "minimum", "eq", "ne",
    "lt", "gt", "le", "ge", "pow", "masked_fill", "masked_fill_", "logical_and", "logical_or", "copy_",
    "floor_divide", "remainder", "fmod", "lerp", "addcmul", "addcdiv", "atan2", "hypot", "bitwise_and", "bitwise_or", "pow_",
    "polar", "complex",  # complex numbers from magnitude and angle (Llama 4's and DeepSeek-V2's rotary frequencies)
    "copysign", "copysign_", "fmax", "fmin", "xlogy", "nextafter", "ldexp", "float_power", "logaddexp", "logaddexp2",
    "bitwise_xor", "logical_xor", "heaviside", "gcd", "lcm",  # the rest of the elementwise functions of two (Kolibri's copysign)
)
def _binary(tr: Tracing, node: torch.fx.Node) -> Any:
    """Broadcasting elementwise op: aligned dimensions are tied index by index."""
    if _opname(node.target) == "copy_" and not tr.pin_fixed_splits:
        _copied_into_a_fill(tr, node)
    out_shape = _shape(node)
    nd = len(out_shape)
    out: Label = [None] * nd
    seen = [False] * nd
    expanded, fills = [], []
    for a in _flat_nodes((node.args, node.kwargs)):
        label = tr.lab(a)
        shape = _shape(a)
        if label is None or not shape and not label:
            continue
        offset = nd - len(shape)
        for d, size in enumerate(shape):
            od = d + offset
            if od < 0 or size == 1 or out_shape[od] != size:
                continue
            if (label[d] is None and not tr.pin_fixed_splits and (chain := _constant_along(a, d))
                    and _opname(chain[0].target) == "expand_as"):
                expanded.append((chain, d, od))  # broadcast by hand to another tensor's size: like a size of 1 (below)
                continue
            if label[d] is None and not tr.pin_fixed_splits and a_new_fill(a):
                fills.append((a, d, od))  # a fill made to the size of what it is added to (below)
                continue
            if not seen[od]:
                out[od], seen[od] = label[d], True
            else:
                tr.uf.tie(out[od], label[d])
                if out[od] is None or label[d] is None:
                    out[od] = None
    for fill, d, od in fills:
        # OpenAI CLIP's class token: class_embedding + torch.zeros(b, 1, x.shape[-1]): the fill's size there follows
        # the width (its label is the traced one, so the check sees it), a guess where no width attribute holds it
        fill_label = tr.lab(fill)
        if out[od] is not None and isinstance(fill_label, list):
            fill_label[d] = out[od]
            _fill_size_follows(tr, fill, d, out[od])
    for chain, d, od in expanded:
        # An operand expanded from size 1 to another tensor's size along a tracked dimension (F.normalize divides by
        # the norm ``.expand_as(x)``): it holds one value along it, so it broadcasts as a size of 1 would, and its size
        # follows x's. Not an ``expand`` to sizes the code states: HY-V4 copies its hidden states into a fixed number
        # of streams, whose count must not follow a weight's rows.
        if out[od] is None:
            continue
        tr.fixed_splits += 1
        _chain_follows(tr, chain, d, out[od])
    return out


def _fill_size_follows(tr: Tracing, fill: torch.fx.Node, d: int, vec: np.ndarray) -> None:
    """A new fill's dimension ``d`` takes ``vec``: its size follows the width it is combined with. Where the module
    that makes it keeps that size in a width attribute of its own (SAINT's ``torch.empty(n1, n2, self.dim)``), the
    attribute follows; else the size is a guess (the code may give it as a constant), counted so that pruning is
    redone with the fill kept whole if the pruned model disagrees."""
    size = _shape(fill)[d]
    module = _sizing_module(tr, fill, hand_written=True)
    names = [a for a, v in vars(module).items() if not a.startswith("_") and type(v) is int and v == size and size >= 8
             and any(w in a.lower() for w in _WIDTH_NAMES) and "head" not in a] if module is not None else []
    if not (names and all([tr.attribute_slot(fill, a, 0, vec, [size]) for a in names])):
        tr.fixed_splits += 1


_VIEWS_OF_A_FILL = ("select", "slice", "alias")


def _copied_into_a_fill(tr: Tracing, node: torch.fx.Node) -> None:
    """``fill[:, i, :] = layer(x)`` (``copy_`` into a select or slice of ``torch.empty(...)``: SAINT writes each
    column's embedding into a fill): the fill's dimensions that the copy fills element for element take the copied
    tensor's labels, so later copies into it and what it is concatenated with line up instead of pinning them."""
    dst, src = node.args[0], node.args[1]
    src_label = tr.lab(src)
    if not isinstance(dst, torch.fx.Node) or not src_label or _shape(src) != _shape(dst):
        return
    chain, dims, cur = [], list(range(len(_shape(dst)))), dst  # dims: where each of dst's dimensions is in cur
    while isinstance(cur, torch.fx.Node) and _opname(cur.target) in _VIEWS_OF_A_FILL:
        chain.append((cur, list(dims)))
        if _opname(cur.target) == "select":
            k = _norm_dim(cur.args[1], len(_shape(cur.args[0])))
            dims = [j if j < k else j + 1 for j in dims]
        cur = cur.args[0]
    if not chain or not a_new_fill(cur):
        return
    for j, vec in enumerate(src_label):
        fill_label = tr.lab(cur)
        if vec is None or fill_label is None or fill_label[dims[j]] is not None:
            continue
        if _shape(cur)[dims[j]] != len(vec):  # a part of the fill's dimension (EfficientLoFTR's emb[..., 1::2] = ...)
            continue
        fill_label[dims[j]] = vec
        for view, where in chain:
            view_label = tr.lab(view)
            if view_label is not None and view_label[where[j]] is None:
                view_label[where[j]] = vec
        _fill_size_follows(tr, cur, dims[j], vec)


def _chain_follows(tr: Tracing, chain: list[torch.fx.Node], d: int, vec: np.ndarray) -> None:
    """The nodes of an expand (and the conversions after it, :func:`_constant_along`) take ``vec`` along dimension
    ``d`` where they had none: their size there follows it, which the pruned-graph check then expects."""
    for n in chain:
        lbl = tr.labels.get(n)
        if isinstance(lbl, list) and -len(lbl) <= d < len(lbl) and lbl[d] is None and _shape(n)[d] == len(vec):
            lbl[d] = vec


@_rule("mean", "sum", "amax", "amin", "var", "std", "linalg_vector_norm", "linalg_norm", "norm", "logsumexp", "var_mean", "prod",
       "max", "min", "argmax", "argmin", "all", "any")
def _reduce(tr: Tracing, node: torch.fx.Node) -> Any:
    if len(node.args) > 1 and isinstance(node.args[1], torch.fx.Node):  # torch.min(a, b): elementwise (T5's buckets)
        return _binary(tr, node)
    x = node.args[0]
    label = tr.lab(x)
    shape = _shape(x)
    if label is None:
        return _none_like(node)
    bound = _bind(node)
    dims = bound.get("dim")
    keepdim = bool(bound.get("keepdim") or False)
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        dims = list(range(len(shape)))
    dims = [_norm_dim(d, len(shape)) for d in ([dims] if isinstance(dims, int) else dims)]
    if _returns_positions(node):  # a position along the dimension (a router's chosen expert): that dimension stays whole
        tr.pin_label([label[d] for d in dims])
    if keepdim:
        out = [None if d in dims else v for d, v in enumerate(label)]
    else:
        out = [v for d, v in enumerate(label) if d not in dims]
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):  # (values, indices) or (var, mean)
        return tuple(list(out) for _ in val)
    return out


def _returns_positions(node: torch.fx.Node) -> bool:
    """argmax / argmin, or max / min along a dimension whose indices are used: what they return are positions
    along the reduced dimension, which pruning would renumber (Switch Transformers routes each token to the argmax
    of its router's logits, then one-hot encodes it with the configured number of experts)."""
    name = _opname(node.target)
    if name in ("argmax", "argmin"):
        return True
    return name in ("max", "min") and any(u.target is operator.getitem and u.args[1] == 1 for u in node.users)


def _bind(node: torch.fx.Node) -> dict[str, Any]:
    """Arguments by schema name (defaults filled in)."""
    bound: dict[str, Any] = {}
    schema = getattr(node.target, "_schema", None)
    if schema is None:
        return bound
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            bound[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            bound[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            bound[arg.name] = arg.default_value
    return bound


@_rule("adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "max_pool2d_with_indices", "adaptive_max_pool2d",
       "adaptive_avg_pool1d", "avg_pool1d", "max_pool1d", "adaptive_avg_pool3d", "avg_pool3d", "max_pool3d",
       "upsample_nearest2d", "upsample_bilinear2d", "_adaptive_avg_pool2d", "upsample_bicubic2d",
       "_upsample_bicubic2d_aa", "_upsample_bilinear2d_aa", "_upsample_nearest_exact2d", "upsample_nearest1d",
       "upsample_linear1d", "upsample_nearest3d", "upsample_trilinear3d")
def _pool(tr: Tracing, node: torch.fx.Node) -> Any:
    """Spatial ops: channels (dims 0..1) pass through, spatial dims are never prunable."""
    label = tr.lab(node.args[0]) or []
    ndim = len(_shape(node.args[0]))
    spatial = {"1d": 1, "2d": 2, "3d": 3}[_opname(node.target)[-2:]] if _opname(node.target)[-2:] in ("1d", "2d", "3d") else 2
    kept = _untouched_dims(node, ndim, spatial)
    for d, v in enumerate(label[ndim - spatial:], ndim - spatial):
        if d not in kept:
            tr.uf.pin(v)
    out = list(label[: ndim - spatial]) + [label[d] if d in kept and d < len(label) else None for d in range(ndim - spatial, ndim)]
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):
        return tuple(list(out) for _ in val)
    return out


@_rule("tril", "triu")
def _triangle(tr: Tracing, node: torch.fx.Node) -> Any:
    """``tril`` / ``triu`` (Gated DeltaNet's chunked scan masks each chunk's (positions, positions) matrix): an entry is
    kept or zeroed by its place in the last two dimensions, which are never prunable; the others pass through."""
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    for v in label[-2:]:
        tr.uf.pin(v)
    return list(label[:-2]) + [None, None]


@_rule("grid_sampler", "grid_sampler_2d", "grid_sampler_3d")
def _grid_sample(tr: Tracing, node: torch.fx.Node) -> Any:
    """``F.grid_sample(x, grid)`` (GLM-4V's position embeddings resampled to each image's patch grid): every channel
    is read at the grid's points, so channels (dim 1) pass through; the input's positions and the grid, coordinates,
    are never prunable, and the output's positions are the grid's."""
    label = tr.lab(node.args[0]) or []
    tr.pin_label(tr.lab(node.args[1]))
    for v in label[2:]:
        tr.uf.pin(v)
    return list(label[:2]) + [None] * (len(_shape(node)) - len(label[:2]))


def _untouched_dims(node: torch.fx.Node, ndim: int, spatial: int) -> set[int]:
    """Spatial dims a window pooling leaves as they are: a window 1 wide that keeps the size (Funnel pools
    (B, 1, T, width) with a (2, 1) window: the width, its residual, passes through)."""
    if _opname(node.target) not in ("avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d", "max_pool2d", "max_pool3d",
                                    "max_pool2d_with_indices"):
        return set()
    kernel = _arg(node, 1, "kernel_size")
    kernel = [kernel] * spatial if isinstance(kernel, int) else list(kernel or [])
    if len(kernel) == 1:
        kernel = kernel * spatial
    in_shape, out_shape = _shape(node.args[0]), _shape(node)
    return {d for d, k in zip(range(ndim - spatial, ndim), kernel) if k == 1 and in_shape[d] == out_shape[d]}


@_rule("unfold")
def _sliding_windows(tr: Tracing, node: torch.fx.Node) -> Any:
    """Tensor.unfold(dim, size, step) (HaloNet's halo windows): ``dim`` becomes the window count and a
    new last dimension the positions in a window; both are spatial, the other dimensions pass through."""
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    d = _norm_dim(node.args[1], len(label))
    tr.uf.pin(label[d])
    return [None if i == d else v for i, v in enumerate(label)] + [None]


@_rule("col2im")
def _col2im(tr: Tracing, node: torch.fx.Node) -> Any:
    """F.fold: (B, C * k*k, L) -> (B, C, H, W), summing each channel's k*k kernel positions: they go together."""
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    tr.uf.pin(label[-1])
    channels = _shape(node)[-3]
    vec = label[-2]
    if vec is not None:
        grid = vec.reshape(channels, -1)
        for row in grid:
            for e in row[1:].tolist():
                tr.uf.union(int(row[0]), e)
        vec = np.ascontiguousarray(grid[:, 0])
    return [*label[:-2], vec, None, None]


@_rule("view", "reshape", "_unsafe_view", "view_copy", "flatten", "unflatten", "squeeze", "squeeze_", "unsqueeze",
       "unsqueeze_", "_reshape_alias", "reshape_as", "view_as")
def _reshape(tr: Tracing, node: torch.fx.Node) -> Any:
    x = node.args[0]
    label = tr.lab(x)
    in_shape, out_shape = _shape(x), _shape(node)
    if label is None:
        return [None] * len(out_shape)
    out = _reshape_label(tr, node, label, in_shape, out_shape)
    _width_attribute_view(tr, node, out, out_shape)
    heads_view_follows(tr, node, out, out_shape)
    return out


def _width_attribute_view(tr: Tracing, node: torch.fx.Node, out: Label, out_shape: tuple) -> None:
    """A reshape to a width the module keeps in an int attribute of its own (Swin2SR's patch un-embedding,
    ``x.view(b, self.embed_dim, h, w)``, a module without weights): the capture records the size as a constant, so
    the attribute becomes a prunable size tied to that dimension and follows it. Taken only for names of a width
    (``embed_dim``, ``num_channels``, ``hidden_size`` ...), from 8 up: if the forward reads the size from its input
    instead, the attribute still ends up naming the width the module now has (Qwen2-VL's patch merger views its
    input to ``self.hidden_size``, four patches' width). An attribute that cannot follow (the
    module is kept whole) keeps the dimension whole."""
    if not any(v is not None for v in out):
        return
    module = _sizing_module(tr, node)
    if module is None or any(_attention_like(m) for m in _enclosing_modules(tr, node)):
        return  # inside attention, per-head sizes are its form's (BotNet's relative positions keep dim_head)
    for d, vec in enumerate(out):
        size = out_shape[d]
        if vec is None or size < 8 or _all_pinned(tr, vec):
            continue
        names = [a for a, v in vars(module).items() if not a.startswith("_") and type(v) is int and v == size
                 and any(w in a.lower() for w in _WIDTH_NAMES) and "head" not in a
                 and not any(g in a for g in _GEOMETRY if g != "size")]
        if names and not all([tr.attribute_slot(node, a, 0, vec, [size]) for a in names]):
            tr.uf.pin(vec)


_WIDTH_NAMES = ("dim", "channel", "feature", "hidden", "chs")  # not "width": an image's, as often as a layer's


def _attention_like(module: torch.nn.Module) -> bool:
    return find_attention_form(module) is not None or any(isinstance(getattr(module, a, None), int) for a in HEAD_ATTRS)


def _reshape_label(tr: Tracing, node: torch.fx.Node, label: Label, in_shape: tuple, out_shape: tuple) -> Label:
    out: Label = [None] * len(out_shape)
    if any(s < 0 for s in (*in_shape, *out_shape)):  # a size the data decides (-1: Reformer's .item() of its positions)
        return _reshape_unknown_sizes(tr, node, label, in_shape, out_shape)
    ins = [d for d, s in enumerate(in_shape) if s != 1]
    outs = [d for d, s in enumerate(out_shape) if s != 1]
    for d, s in enumerate(in_shape):
        if s == 1:
            tr.uf.pin(label[d])
    one_head = _one_head_split(tr, node, in_shape, out_shape)
    i = j = 0
    while i < len(ins) or j < len(outs):
        bi, bo = [ins[i]], [outs[j]]
        pi, po = in_shape[ins[i]], out_shape[outs[j]]
        i, j = i + 1, j + 1
        while pi != po:
            if pi < po:
                bi.append(ins[i]); pi *= in_shape[ins[i]]; i += 1  # noqa: E702
            else:
                bo.append(outs[j]); po *= out_shape[outs[j]]; j += 1  # noqa: E702
        # A dimension already pinned whole carries nothing prunable (a single key/value head's channels
        # beside the query heads in multi-query attention's output): merging it pins nothing more.
        vecs = [None if v is not None and _all_pinned(tr, v) else v for v in (label[d] for d in bi)]
        tracked = [k for k, v in enumerate(vecs) if v is not None]
        if not tracked:
            continue
        if len(bi) == 1 and len(bo) == 1:
            if one_head and bo[0] == len(out_shape) - 1:
                tr.uf.pin(vecs[0])
                if _coupled(tr, node) and (width := projection_input_width(tr, node.args[0])) is not None:
                    tr.uf.pin(width)  # its input's width is tied to the head, kept whole
            elif bo[0] == len(out_shape) - 1 or not one_head or _attention_size_follows(tr, node, vecs[0], out_shape[bo[0]]):
                out[bo[0]] = vecs[0]
            continue
        if len(tracked) > 1:  # two prunable dimensions merged: keep both whole
            for k in tracked:
                tr.uf.pin(vecs[k])
            continue
        k = tracked[0]
        sizes = [in_shape[d] for d in bi]
        if len(bo) == 1 and (heads := merged_group_heads(tr, vecs[k], sizes, k)) is not None:
            out[bo[0]] = heads  # repeat_kv's (groups, repeats) -> query heads, pruned within their groups
            continue
        grid_shape = [1] * len(sizes)
        grid_shape[k] = sizes[k]
        merged = np.broadcast_to(vecs[k].reshape(grid_shape), sizes).reshape(-1)
        osizes = [out_shape[d] for d in bo]
        if len(bo) == 1:
            out[bo[0]] = np.ascontiguousarray(merged)
            if bo[0] == len(out_shape) - 1:  # heads merged back into the last dimension: a width
                merged_width_follows(tr, node, out[bo[0]], osizes[0])
            elif len(bi) > 1:  # groups of heads merged into one dimension of heads
                merged_heads_follow(tr, node, out[bo[0]], osizes[0])
            continue
        axis, counted_by = _split_axis(tr, node, merged, osizes)
        if axis < 0:
            tr.uf.pin(merged)
            continue
        out[bo[axis]] = _split(tr, merged, osizes, axis)
        if counted_by is not None:
            heads_follow(tr, node, counted_by, out[bo[axis]], math.prod(osizes[axis + 1:]))
        elif (names := _group_count_attributes(tr, node, osizes[axis])) and not all(
                [tr.attribute_slot(node, a, 0, out[bo[axis]], [osizes[axis]]) for a in names]):
            tr.uf.pin(out[bo[axis]])
    return out


def _one_head_split(tr: Tracing, node: torch.fx.Node, in_shape: tuple, out_shape: tuple) -> bool:
    """``(b, n, W) -> (b, n, 1, W)`` inside an attention: ``W`` channels split into one head of ``W`` (PvT-v2's first
    stage, ``view(b, n, self.num_attention_heads, self.attention_head_size)`` with one head; a single key/value head
    viewed to ``self.dim_head``). The size-1 head axis leaves the channels looking free, but the head's size is fixed
    in the code (an int attribute of the module holds it): they stay whole, as any head's channels do. A view only:
    an unsqueeze there is ``repeat_kv``'s ``x[:, :, :, None, :]`` before its expand, not a head."""
    if not (_opname(node.target) in _VIEWS and len(in_shape) >= 3 and len(out_shape) == len(in_shape) + 1
            and in_shape[-1] == out_shape[-1] and out_shape[-2] == 1 and in_shape[-2] != 1):
        return False
    attention = _innermost_attention(tr, node)
    # the head's size is fixed in the code where the module keeps it (self.dim_head); a size the view derives
    # (rearrange's 'b n (h d)' with h=1, a Perceiver's single cross-attention head) may shrink
    return (attention is not None and not state_space_mixer(attention)
            and any(type(v) is int and v == in_shape[-1] for k, v in vars(attention).items() if not k.startswith("_")))


_VIEWS = ("view", "reshape", "_unsafe_view", "view_copy")  # not unsqueeze: repeat_kv's x[:, :, :, None, :] adds no head


def _innermost_attention(tr: Tracing, node: torch.fx.Node) -> torch.nn.Module | None:
    return next((m for m in _enclosing_modules(tr, node) if _attention_like(m)), None)


def _attention_size_follows(tr: Tracing, node: torch.fx.Node, vec: np.ndarray, size: int) -> bool:
    """A prunable dimension before the channels (positions a parameter projects to: Linformer's keys,
    ``einsum('bnd,nk->bkd')`` with ``proj_k``) viewed whole, in a view that makes one head of the channels
    (``reshape(b, k, -1, d_h)``), in the forward of an attention written by hand: the
    module's int attributes holding its size (``self.k``, which the view reads; not a per-head size such as
    ``self.dim_head``, which may hold the same number) follow it, pinned where they cannot. False where it is pinned."""
    path, module, counts = next(counting_modules(tr, node), (None, None, None))
    if module is None or module_path(node) != path or tr.attention_mode(module) == "opaque":
        return True
    names = [a for a, v in vars(module).items()
             if type(v) is int and v == size and a not in counts and "head" not in a and not a.startswith("_")]
    if not names or all([tr.attribute_slot(node, a, 0, vec, [size], path=path) for a in names]):
        return True
    tr.uf.pin(vec)
    return False


def _coupled(tr: Tracing, node: torch.fx.Node) -> bool:
    attention = _innermost_attention(tr, node)
    return attention is not None and tr.attention_mode(attention) == "coupled"


def _reshape_unknown_sizes(tr: Tracing, node: torch.fx.Node, label: Label, in_shape: tuple, out_shape: tuple) -> Label:
    """A reshape with sizes the data decides: leading and trailing dimensions of the same size (the same symbol where
    unknown) are element for element, and what lies between is reshaped as usual if its sizes are known, else kept
    whole. Idefics3 flattens its images' features, (images, tokens, width) -> (images * tokens, width), and its pixel
    shuffle folds positions into the width of each image, the image count from the data."""
    raw_in, raw_out = _raw_shape(node.args[0]), _raw_shape(node)

    def same(i: int, j: int) -> bool:
        if in_shape[i] >= 0 or out_shape[j] >= 0:
            return in_shape[i] == out_shape[j]
        return len(raw_in) == len(in_shape) and len(raw_out) == len(out_shape) and str(raw_in[i]) == str(raw_out[j])

    n_in, n_out = len(in_shape), len(out_shape)
    head = tail = 0
    while head < min(n_in, n_out) and same(head, head):
        head += 1
    while tail < min(n_in, n_out) - head and same(n_in - 1 - tail, n_out - 1 - tail):
        tail += 1
    out: Label = [None] * n_out
    out[:head] = label[:head]
    if tail:
        out[n_out - tail:] = label[n_in - tail:]
    mid_in, mid_out = in_shape[head:n_in - tail], out_shape[head:n_out - tail]
    if all(s >= 0 for s in (*mid_in, *mid_out)) and math.prod(mid_in) == math.prod(mid_out):
        out[head:n_out - tail] = _reshape_label(tr, node, label[head:n_in - tail], mid_in, mid_out)
    else:
        tr.pin_label(label[head:n_in - tail])
    return out


def _raw_shape(node: Any) -> tuple:
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return tuple(val.shape) if isinstance(val, torch.Tensor) else ()


def _all_pinned(tr: Tracing, vec: np.ndarray) -> bool:
    return bool((tr.uf.roots(vec) == PIN).all())


def _made_outside(x: Any, path: str) -> bool:
    """``x`` was computed outside the module at ``path`` (it entered that module's forward as an argument)."""
    return isinstance(x, torch.fx.Node) and path not in module_paths(x)


def _split_axis(tr: Tracing, node: torch.fx.Node, merged: np.ndarray, osizes: list[int]) -> tuple[int, tuple | None]:
    """Which factor of a split dimension stays prunable: one the elements already follow, else
    the head axis of a registered attention form, else that of an attention of no registered form whose
    head count an attribute holds (then also (path, module, head counts) of that module, whose counts follow),
    else the largest factor (so a channel shuffle loses the same channel of every group). -1: none."""
    grid = tr.uf.roots(merged).reshape(osizes)
    for axis in range(len(osizes)):
        g = np.moveaxis(grid, axis, 0).reshape(osizes[axis], -1)
        if (g == g[:, :1]).all():
            return axis, None
    for path, module in enclosing_paths(tr, node):
        form = find_attention_form(module)
        if form is not None and form.slices_input_per_head and _made_outside(node.args[0], path):
            return len(osizes) - 1, None  # the offsets within each slice: a residual channel in every slice alike
        if form is not None:
            axis = head_axis(module, form, osizes)
            if axis is None:
                return -1, None
            # A class of the user's that a form matches by its attributes (q_proj ... o_proj, head_dim): the form's
            # sync keeps the library's names in line, and the head counts the user's own forward reads follow too.
            # A library class whose forward failed with its heads pruned alone ("coupled" mode: PvT-v2 reshapes its
            # heads back to its input's width) counts them too, so that its input's width follows them.
            counts = head_counts(module) if not library_class(module) or tr.attention_mode(module) == "coupled" else {}
            return axis, ((path, module, counts) if counts else None)
        counts = head_counts(module)
        if not path and module_path(node) and (found := _producer_axis(tr, node, osizes)) is not None:
            return found  # the model's own head count is its configuration; the attention inside counts these heads
        if counts or any(isinstance(getattr(module, a, None), int) for a in HEAD_ATTRS):
            if tr.attention_mode(module) == "opaque":
                return -1, None
            axis = counted_head_axis(osizes, counts)
            if axis is not None:
                return axis, (path, module, counts)
            if _projection_pieces(osizes, counts):  # q, k and v out of one projection; the heads come later
                return len(osizes) - 1, None
            return -1, None  # attention of unknown layout: which factor it derives from its input is unknown
    if (found := _producer_axis(tr, node, osizes)) is not None:
        return found
    grouped = [a for a, size in enumerate(osizes) if _group_count_attributes(tr, node, size)]
    if len(grouped) == 1:
        return grouped[0], None
    # The largest factor is a guess that its size follows the tensor: a channel shuffle's C // groups does, a size
    # read from the config does not (TimesFM's quantile head, view(b, n, config.output_quantile_len, quantiles)).
    # Counted with the sizes fixed in the code, it is kept whole if the pruned model fails.
    tr.fixed_splits += 1
    return (-1 if tr.pin_fixed_splits else int(np.argmax(osizes))), None


def _producer_axis(tr: Tracing, node: torch.fx.Node, osizes: list[int]) -> tuple[int, tuple] | None:
    """The head axis of a split whose heads an attention written by hand inside the running module counts (SD3's joint
    block, :func:`producing_attention`), with (path, module, head counts) of that attention; None where there is none."""
    producer = producing_attention(tr, node)
    if producer is None or tr.attention_mode(producer[1]) == "opaque":
        return None
    axis = counted_head_axis(osizes, producer[2])
    return None if axis is None else (axis, producer)


def _group_count_attributes(tr: Tracing, node: torch.fx.Node, size: int) -> list[str]:
    """The int attributes named for a group count (``groups``, ``num_groups``) of the module, not an attention, whose
    forward splits its channels into ``size`` groups (timm's EvoNorm: ``x.reshape(B, self.groups, C // groups, H, W)``
    for statistics per group). The groups are the factor that shrinks: whole groups go and the count follows, so each
    group kept normalises the same channels as before and ``C % groups`` still holds. (The channels of a group cannot
    shrink there: the statistic reduced over them is expanded back to them, a size no label carries; and the largest
    factor, the choice without such a count, shrank against a count fixed in the module.) Only counts from 2 up."""
    module = _sizing_module(tr, node)
    if module is None or size < 2:
        return []
    return [a for a, v in vars(module).items() if not a.startswith("_") and type(v) is int and v == size and "group" in a.lower()]


def _projection_pieces(osizes: list[int], counts: dict[str, int]) -> bool:
    """``(2 or 3, width)``: keys and values, or queries, keys and values, out of one projection, each ``width``
    channels that a counted number of heads share (``F.multi_head_attention_forward``'s packed ``in_proj``:
    ``unflatten(-1, (3, E))``). Channel ``j`` of each piece are one element; the heads are split off later."""
    return len(osizes) == 2 and osizes[0] in (2, 3) and any(c > 1 and osizes[1] % c == 0 for c in counts.values())


def _split(tr: Tracing, merged: np.ndarray, osizes: list[int], axis: int) -> np.ndarray:
    grid = np.moveaxis(merged.reshape(osizes), axis, 0).reshape(osizes[axis], -1)
    for row in grid:
        first = int(row[0])
        for e in row[1:].tolist():
            tr.uf.union(first, e)
    return np.ascontiguousarray(grid[:, 0])


@_rule("permute", "permute_copy")
def _permute(tr: Tracing, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    dims = node.args[1]
    if label is None:
        return [None] * len(dims)
    return [label[_norm_dim(d, len(label))] for d in dims]


@_rule("movedim", "moveaxis")
def _movedim(tr: Tracing, node: torch.fx.Node) -> Any:
    """``x.movedim(source, destination)`` (SD3's ``qkv.reshape(b, l, 3, -1, d).movedim(2, 0)``): a permutation."""
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    source, destination = _arg(node, 1, "source"), _arg(node, 2, "destination")
    source = [source] if isinstance(source, int) else list(source)
    destination = [destination] if isinstance(destination, int) else list(destination)
    n = len(label)
    order: list[int | None] = [None] * n
    for s, d in zip(source, destination):
        order[_norm_dim(d, n)] = _norm_dim(s, n)
    rest = iter(i for i in range(n) if i not in order)
    return [label[next(rest) if i is None else i] for i in order]


@_rule("transpose", "swapaxes", "t", "numpy_T", "transpose_")
def _transpose(tr: Tracing, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    out = list(label)
    if len(out) < 2:
        return out
    a, b = (node.args[1], node.args[2]) if len(node.args) > 2 else (0, 1)
    a, b = _norm_dim(a, len(out)), _norm_dim(b, len(out))
    out[a], out[b] = out[b], out[a]
    return out


@_rule("expand", "expand_as", "expand_copy", "broadcast_to")
def _expand(tr: Tracing, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0]) or []
    in_shape, out_shape = _shape(node.args[0]), _shape(node)
    lead = len(out_shape) - len(label)
    out = [None] * lead + [v if v is not None and len(v) == out_shape[lead + d] else None for d, v in enumerate(label)]
    if repeat_per_group(tr, node, in_shape, out_shape, out):
        return out
    heads = _built_heads(tr, node)
    if heads is None:
        return expanded_to_counted_heads(tr, node, label, in_shape, out_shape, out)
    if heads < 2:
        return out
    ones = [d for d, size in enumerate(in_shape) if size == 1]
    for d in ones:
        if out_shape[lead + d] == heads:
            out[lead + d] = tr.uf.fresh(heads)  # repeat_kv of one key/value head: as many as the query heads
            return out
    for d in ones:  # (batch * heads), batch-major: DeBERTa-v2's relative positions expanded for its merged scores
        if out_shape[lead + d] % heads == 0:
            out[lead + d] = np.tile(tr.uf.fresh(heads), out_shape[lead + d] // heads)
            return out
    return out


def _built_heads(tr: Tracing, node: torch.fx.Node) -> int | None:
    """The head count the innermost attention module around ``node`` builds tensors with (the form's
    ``built_heads``), or None: a tensor that size built there follows the pruned heads."""
    module, form = innermost_form(tr, node)
    return form.built_heads(module) if form is not None and form.built_heads is not None else None


def _enclosing_modules(tr: Tracing, node: torch.fx.Node) -> Iterator[Any]:
    """The modules whose forward ran ``node``, innermost first."""
    for _, module in enclosing_paths(tr, node):
        yield module


@_rule("select", "select_copy")
def _select(tr: Tracing, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    d = _norm_dim(node.args[1], len(label))
    # An unused pick (BART's inputs_embeds[:, :, -1], "needed for the shape only") pins nothing, nor does a pick from
    # a constant fill, the same value at every index (GIT's token types: zeros_like(embeddings, dtype=int)[..., 0]).
    if node.users and not _a_fill(node.args[0]):
        tr.uf.pin(label[d])
    return [v for i, v in enumerate(label) if i != d]


_FILLS = ("zeros_like", "ones_like", "full_like")


def _a_fill(x: Any) -> bool:
    return isinstance(x, torch.fx.Node) and x.op == "call_function" and _opname(x.target) in _FILLS




@_rule("slice", "slice_copy")
def _slice(tr: Tracing, node: torch.fx.Node) -> Any:
    return _sliced(tr, node, _arg(node, 1, "dim", 0), _arg(node, 4, "step", 1), (_arg(node, 2, "start", None), _arg(node, 3, "end", None)))


@_rule("narrow", "narrow_copy")
def _narrow(tr: Tracing, node: torch.fx.Node) -> Any:
    """``x.narrow(dim, start, length)``: the slice ``start:start + length`` (PE Audio's rotary ``cos.narrow(-1, 0, d // 2)``)."""
    start, length = _arg(node, 2, "start", 0), _arg(node, 3, "length", None)
    end = start + length if isinstance(start, int) and isinstance(length, int) else length  # else not a constant: kept whole
    return _sliced(tr, node, _arg(node, 1, "dim", 0), 1, (start, end))


def _sliced(tr: Tracing, node: torch.fx.Node, dim: int, step: Any, bounds: tuple[Any, Any]) -> Any:
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    shape = _shape(node.args[0])
    d = _norm_dim(dim, len(label))
    out = list(label)
    if _shape(node)[d] == shape[d]:
        return out
    if not all(b is None or isinstance(b, int) for b in (step, *bounds)):  # bounds the data decides (Reformer's .item())
        tr.uf.pin(label[d])
        out[d] = None
        return out
    start, end, _ = slice(*bounds).indices(shape[d])
    if label[d] is not None and step > 1 and shape[d] % step == 0 and start < step and end >= shape[d] - step + start + 1:
        # Every step-th position from one of the first ``step``: an interleaved piece (GPT-OSS's gate and up
        # columns, gate_up[..., ::2] and [..., 1::2]). Each block of ``step`` consecutive positions goes or stays
        # whole, so the pruned tensor interleaves the same way and the same slice still picks the same piece.
        vec = label[d]
        for j in range(1, step):
            tr.uf.tie(vec[0::step], vec[j::step])
        out[d] = _clean(tr, vec[start::step], shape[d] // step)
        return out
    _, form = innermost_form(tr, node)
    if label[d] is not None and step == 1 and form is not None and form.fused:
        # Phi-3's q, k, v rows of its fused qkv_proj, at bounds its forward computes from the synced head counts
        out[d] = _adaptive_piece(tr, node, label[d], start, start + _shape(node)[d]) if _shape(node)[d] else None
        return out
    if label[d] is not None and step == 1 and (piece := _attribute_boundary(tr, node, label[d], start, end, shape[d])) is not None:
        out[d] = piece
        return out
    tr.uf.pin(label[d])  # a part of a prunable dimension: keep it whole
    out[d] = None
    return out


def _attribute_boundary(tr: Tracing, node: torch.fx.Node, vec: np.ndarray, start: int, end: int, size: int) -> np.ndarray | None:
    """A slice cut at an index the module keeps in an int attribute of its own (DPN's ``x[:, :self.num_1x1_c]`` and
    ``x[:, self.num_1x1_c:]``, ReXNet's ``x[:, 0:self.in_channels]``): the part before the cut and the part after
    each shrink on their own (keeping a channel each), and the attribute follows the first part's width. Returns the
    slice's label, or None where the cut matches no attribute (it then stays whole). Cuts below 8 and geometry
    attributes are not taken, as for splits."""
    cut = end if start == 0 and end < size else start if start > 0 and end == size else None
    if cut is None or cut < 8:
        return None
    module = _sizing_module(tr, node)
    if module is None:
        return None
    if not any([tr.attribute_slot(node, a, 0, vec[:cut], [cut]) for a in _piece_size_attributes(module, cut)]):
        return None
    tr.uf.pin(vec[:1])
    tr.uf.pin(vec[cut:cut + 1])  # neither part may empty
    return _clean(tr, vec[start:end], end - start)


@_rule("cat", "concat", "concatenate")
def _cat(tr: Tracing, node: torch.fx.Node) -> Any:
    tensors = [t for t in node.args[0] if _shape(t) and 0 not in _shape(t)]
    out_shape = _shape(node)
    d = _norm_dim(_arg(node, 1, "dim", 0), len(out_shape))
    out: Label = [None] * len(out_shape)
    labels = [tr.lab(t) or [None] * len(out_shape) for t in tensors]
    moved = _identity_dim(tr, labels, skip=d) if all(label[d] is None for label in labels) else None
    if moved is not None:  # whole heads concatenated along another dimension (the Set Transformer's batch)
        parts = [np.full(_shape(t)[d], int(tr.uf.roots(label[moved])[0]), dtype=np.int64) for t, label in zip(tensors, labels)]
        for od in range(len(out_shape)):
            if od not in (d, moved):
                out[od] = labels[0][od]
                for label in labels[1:]:
                    tr.uf.tie(out[od], label[od])
        out[d] = np.concatenate(parts)
        return out
    parts = [label[d] if label[d] is not None else np.zeros(max(_shape(t)[d], 0), dtype=np.int64)
             for t, label in zip(tensors, labels)]
    # A new fill (``torch.zeros(1, self.bias.shape[1])`` before FT-Transformer's bias rows) is guessed to take the
    # size of what it is concatenated with: counted, so the pruning is redone with it kept whole if that is wrong.
    is_fill = [a_new_fill(t) and not tr.pin_fixed_splits for t in tensors]
    ordered = sorted(range(len(tensors)), key=lambda i: is_fill[i])  # fills last
    for rank, i in enumerate(ordered):
        label = labels[i]
        for od in range(len(out_shape)):
            if od == d:
                continue
            if is_fill[i] and label[od] is None and out[od] is not None:
                label[od] = out[od]  # the fill's own shape follows (its label is the traced one: the check sees it)
                _fill_size_follows(tr, tensors[i], od, out[od])
            elif out[od] is None and rank == 0:
                out[od] = label[od]
            else:
                tr.uf.tie(out[od], label[od])
    if any(_shape(t)[d] < 0 for t in tensors) or out_shape[d] < 0:  # tokens routed by the data: never channels
        for label in labels:
            tr.uf.pin(label[d])
        out[d] = None
        return out
    out[d] = _clean(tr, np.concatenate(parts), out_shape[d]) if any(p.any() for p in parts) else None
    return out


@_rule("stack")
def _stack(tr: Tracing, node: torch.fx.Node) -> Any:
    tensors = node.args[0]
    out_shape = _shape(node)
    d = _norm_dim(_arg(node, 1, "dim", 0), len(out_shape))
    labels = [tr.lab(t) or [None] * (len(out_shape) - 1) for t in tensors]
    moved = _identity_dim(tr, labels)
    stacked = None
    if moved is not None:  # each a whole head: the heads go to the new dimension
        stacked = np.array([int(tr.uf.roots(label[moved])[0]) for label in labels], dtype=np.int64)
        labels = [[None if e == moved else v for e, v in enumerate(label)] for label in labels]
    first = labels[0]
    for label in labels[1:]:
        for a, b in zip(first, label):
            tr.uf.tie(a, b)
    return list(first[:d]) + [stacked] + list(first[d:])


def _identity_dim(tr: Tracing, labels: list[Label], skip: int = -1) -> int | None:
    """A dimension along which each of ``labels`` is one unit, a different one for each (pieces that are whole
    heads, :func:`split_into_heads`): stacking or concatenating them along another dimension moves that identity
    there, instead of tying the pieces' dimensions to each other. None where there is none."""
    if len(labels) < 2:
        return None
    for e in range(len(labels[0])):
        if e == skip:
            continue
        vecs = [label[e] if e < len(label) else None for label in labels]
        if any(v is None or len(v) == 0 for v in vecs):
            continue
        roots = [tr.uf.roots(v) for v in vecs]
        if all((r == r[0]).all() and r[0] != PIN for r in roots) and len({int(r[0]) for r in roots}) == len(roots):
            return e
    return None


@_rule("split", "split_with_sizes", "chunk", "unsafe_split", "unsafe_chunk", "tensor_split", "unsafe_split_with_sizes")
def _split_op(tr: Tracing, node: torch.fx.Node) -> Any:
    x = node.args[0]
    label = tr.lab(x)
    outs = node.meta.get("val")
    ndim = len(_shape(x))
    d = _norm_dim(_arg(node, 2, "dim", 0), ndim)
    if label is None or label[d] is None:
        return tuple(list(label) if label else [None] * ndim for _ in outs)
    sizes = [int(o.shape[d]) for o in outs]
    vec = label[d]
    if (pieces := _pieces_that_follow(tr, node, vec, sizes)) is not None:
        return tuple([*label[:d], piece, *label[d + 1:]] for piece in pieces)
    # chunk(n) (and tensor_split into n sections) follows the tensor's size; split(size) takes a
    # size the capture records as a constant, which may be fixed in the code or computed from the tensor.
    op = _opname(node.target)
    adapts = op in ("chunk", "unsafe_chunk") or (op == "tensor_split" and isinstance(_arg(node, 1, "sections"), int))
    equal = len(set(sizes)) == 1
    if equal and split_into_heads(tr, node, vec, sizes):  # each piece one head, moved to another dimension later
        n = sizes[0]
        return tuple([*label[:d], vec[k * n:(k + 1) * n], *label[d + 1:]] for k in range(len(sizes)))
    if equal and sizes[0] == 1 and not adapts and not tr.pin_fixed_splits:
        # pieces of one (AutoInt's torch.split(result, 1) of its heads before concatenating them): each keeps its own
        # unit; a guess, as a split's size fixed in the code is
        tr.fixed_splits += 1
        return tuple([*label[:d], vec[k:k + 1], *label[d + 1:]] for k in range(len(sizes)))
    if equal and not adapts and not _width_attribute_split(tr, node, vec, sizes):
        tr.fixed_splits += 1
        equal = not tr.pin_fixed_splits
    if equal:  # equal chunks: the same local index goes in every chunk
        n = sizes[0]
        for k in range(1, len(sizes)):
            tr.uf.tie(vec[:n], vec[k * n:(k + 1) * n])
        piece = _clean(tr, vec[:n], n)
        return tuple([*label[:d], piece, *label[d + 1:]] for _ in sizes)
    if _adaptive_splits(tr, node):
        starts = np.cumsum([0, *sizes]).tolist()
        return tuple([*label[:d], _adaptive_piece(tr, node, vec, a, b), *label[d + 1:]] for a, b in zip(starts[:-1], starts[1:]))
    if not equal and (pieces := _attribute_sized_split(tr, node, vec, sizes)) is not None:
        return tuple([*label[:d], piece, *label[d + 1:]] for piece in pieces)
    tr.uf.pin(vec)
    return tuple([*label[:d], None, *label[d + 1:]] for _ in outs)


@_rule("glu")
def _glu(tr: Tracing, node: torch.fx.Node) -> Any:
    """GLU halves a dimension (value, gate): channel i of the output is value i gated by gate i, so the two halves
    lose the same local channels (a Conformer's pointwise convolution before its depthwise one)."""
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    d = _norm_dim(_arg(node, 1, "dim", -1), len(label))
    vec = label[d]
    if vec is None:
        return list(label)
    n = len(vec) // 2
    tr.uf.tie(vec[:n], vec[n:])
    return [*label[:d], _clean(tr, vec[:n], n), *label[d + 1:]]


def _sizing_module(tr: Tracing, node: torch.fx.Node, hand_written: bool = False) -> torch.nn.Module | None:
    """The module whose forward ran ``node``, if its own int attributes may size what ``node`` splits or slices: not
    an attention module (a registered form, or any head count), whose per-head sizes (DeepSeek's latent attention
    splits each head into ``qk_nope_head_dim`` and ``qk_rope_head_dim``) its form governs. ``hand_written``: an
    attention written by hand whose heads may go (no registered form, a head count, not "opaque") may size them too."""
    try:
        module = tr.model.get_submodule(module_path(node))
    except AttributeError:
        return None
    if not _attention_like(module):
        return module
    if (hand_written and find_attention_form(module) is None and head_counts(module) and not library_class(module)
            and tr.attention_mode(module) != "opaque"):
        return module
    return None


def _width_attribute_split(tr: Tracing, node: torch.fx.Node, vec: np.ndarray, sizes: list[int]) -> bool:
    """An equal split in a module that keeps the split dimension's whole width, or one piece's, in an int attribute of
    its own, which its forward reads to size the pieces (timm's CSP stages: ``x.split(self.expand_chs // 2)``;
    Res2Net: ``torch.split(x, self.width)``): each such attribute becomes a prunable size tied to the width it names,
    so the split follows pruning. False: the module keeps no such attribute. A piece's size is taken only from 8 up
    and not from a geometry attribute: small ints (a stride of 2) match piece sizes by chance."""
    module = _sizing_module(tr, node)
    if module is None:
        return False
    width, piece = sum(sizes), sizes[0]
    wholes = [a for a, v in vars(module).items() if not a.startswith("_") and type(v) is int and v == width] if width > 1 else []
    pieces = [a for a in _piece_size_attributes(module, piece) if a not in wholes]
    return any([tr.attribute_slot(node, a, 0, vec, [width]) for a in wholes]
               + [tr.attribute_slot(node, a, 0, vec[:piece], [piece]) for a in pieces])


_GEOMETRY = ("stride", "kernel", "dilation", "pad", "groups", "window", "patch", "size")


def _piece_size_attributes(module: torch.nn.Module, size: int, geometry: tuple[str, ...] = _GEOMETRY) -> list[str]:
    """``module``'s public int attributes equal to ``size``, a piece of a dimension: only from 8 up and not geometry
    names, since small ints (a stride of 2) match piece sizes by chance."""
    if size < 8:
        return []
    return [a for a, v in vars(module).items()
            if not a.startswith("_") and type(v) is int and v == size and not any(g in a for g in geometry)]


# In an attention written by hand "size" names widths (Gemma's q_size and kv_size), not an image's geometry.
_ATTENTION_GEOMETRY = tuple(g for g in _GEOMETRY if g != "size")


def _attribute_sized_split(tr: Tracing, node: torch.fx.Node, vec: np.ndarray, sizes: list[int]) -> list[np.ndarray] | None:
    """An unequal split whose sizes the module keeps in its own int attributes: one sequence of all of them (Inception-
    NeXt's ``split_indexes``, MambaOut's ``split_indices``) or one attribute per piece (FasterNet's ``dim_conv3`` and
    ``dim_untouched``; SHViT's ``[qk_dim, qk_dim, pdim]``, whose two pieces of one size lose the same channels), the
    last piece possibly the rest of a width it keeps (SHViT's ``[pdim, dim - pdim]``). Each piece then shrinks on its
    own (keeping at least one channel) and its size entry follows it.
    None: the module keeps no such attributes (the sizes are fixed in the code, and the dimension stays whole)."""
    module = _sizing_module(tr, node, hand_written=True)  # Gemma's qkv.split([self.q_size, self.kv_size, self.kv_size])
    if module is None:
        return None
    geometry = _ATTENTION_GEOMETRY if _attention_like(module) else _GEOMETRY
    starts = np.cumsum([0, *sizes]).tolist()
    pieces = [vec[a:b] for a, b in zip(starts[:-1], starts[1:])]
    named = [(a, v) for a, v in vars(module).items() if not a.startswith("_") and not any(g in a for g in geometry)]
    sequence = next((a for a, v in named if isinstance(v, (list, tuple)) and list(v) == sizes
                     and all(type(s) is int for s in v)), None)
    whole: str | None = None
    if sequence is not None:
        slots = [(sequence, j) for j in range(len(sizes))]
    else:
        per_piece = [next(iter(_piece_size_attributes(module, s, geometry)), None) for s in sizes]
        if per_piece.count(None) == 1:  # the last piece as the rest of a width the module keeps (SHViT: dim - pdim)
            whole = next((a for a, v in named if type(v) is int and v == sum(sizes)), None)
        if (per_piece.count(None) > (whole is not None)
                or any(per_piece.count(a) > 1 and len({s for s, b in zip(sizes, per_piece) if b == a}) > 1 for a in per_piece if a)):
            return None
        slots = [(a, 0) for a in per_piece]
        for a in {a for a in per_piece if a and per_piece.count(a) > 1}:  # one size for several pieces (SHViT's q and k)
            same = [piece for piece, b in zip(pieces, per_piece) if b == a]
            for other in same[1:]:
                tr.uf.tie(same[0], other)
    value = lambda a: list(getattr(module, a)) if isinstance(getattr(module, a), (list, tuple)) else [getattr(module, a)]
    if not all(a is None or tr.attribute_slot(node, a, j, piece, value(a)) for (a, j), piece in zip(slots, pieces)):
        return None
    if sequence is None:
        # Another attribute of the same value may be the one the forward reads (DeepSeek-V2's q_lora_rank beside its
        # kv_lora_rank, both 32, and the split's is the second): each follows the piece, so whichever it reads is right.
        # Not a per-head size or head count (a q_head_dim of 16 beside ranks of 16), which the heads govern.
        for (a, _), piece, size in zip(slots, pieces, sizes):
            for other in _piece_size_attributes(module, size, geometry) if a is not None else []:
                if other not in per_piece and "head" not in other:
                    tr.attribute_slot(node, other, 0, piece, [size])
    if whole is not None and not tr.attribute_slot(node, whole, 0, vec, [sum(sizes)]):
        return None
    if not _attention_like(module):  # in attention the pieces' heads are units that span them all: none empties
        for piece in pieces:
            tr.uf.pin(piece[:1])  # a piece feeds a layer of its own: it may not empty
    return [_clean(tr, piece, len(piece)) for piece in pieces]


def _pieces_that_follow(tr: Tracing, node: torch.fx.Node, vec: np.ndarray, sizes: list[int]) -> list[np.ndarray | None] | None:
    """A split in a module whose class says which pieces' sizes its forward reads from its children's weights
    (:func:`split_follows`): those shrink on their own (a group always keeps a unit, so none empties); the others stay
    whole. None where the module says nothing."""
    try:
        module = tr.model.get_submodule(module_path(node))
    except AttributeError:
        return None
    follows = split_follows(module, len(sizes))
    if follows is None:
        return None
    starts = np.cumsum([0, *sizes]).tolist()
    pieces: list[np.ndarray | None] = []
    for a, b, follow in zip(starts[:-1], starts[1:], follows):
        if not follow:
            tr.uf.pin(vec[a:b])
        pieces.append(_clean(tr, vec[a:b], b - a) if follow else None)
    return pieces


def _adaptive_splits(tr: Tracing, node: torch.fx.Node) -> bool:
    """The split runs inside a module whose attention form recomputes the split sizes after pruning (CoaT's head
    groups; a fused projection's q, k and v), or directly in a split block (MixNet's mixed convolution), whose
    sizes :func:`sync_split_block` recomputes."""
    if _in_split_block(tr, node):
        return True
    _, form = innermost_form(tr, node)
    return form is not None and (form.adaptive_splits or form.fused)


def _in_split_block(tr: Tracing, node: torch.fx.Node) -> bool:
    return is_split_block(next(_enclosing_modules(tr, node), None) or torch.nn.Module())


def _adaptive_piece(tr: Tracing, node: torch.fx.Node, vec: np.ndarray, a: int, b: int) -> np.ndarray:
    """Elements ``a:b`` of an adaptive split. Unequal head groups (CoaT, a convolution each) and a split block's
    pieces may not empty, so each piece's first unit stays; a fused projection's piece one head wide (a single
    key/value head) stays whole."""
    module, form = (None, None) if _in_split_block(tr, node) else innermost_form(tr, node)
    if form is None or not form.fused:
        tr.uf.pin(vec[a:a + 1])
    elif b - a == form.head_dim(module):
        tr.uf.pin(vec[a:b])
    return _clean(tr, vec[a:b], b - a)


@_rule("unbind")
def _unbind(tr: Tracing, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    outs = node.meta.get("val")
    if label is None:
        return tuple(_none_like(node))
    d = _norm_dim(_arg(node, 1, "dim", 0), len(label))
    tr.uf.pin(label[d])
    return tuple([v for i, v in enumerate(label) if i != d] for _ in outs)


@_rule("getitem")
def _getitem(tr: Tracing, node: torch.fx.Node) -> Any:
    src = tr.labels.get(node.args[0])
    if isinstance(src, tuple):
        item = src[node.args[1]]
        return list(item) if isinstance(item, list) else item
    return _none_like(node)


def _pin_dims(tr: Tracing, node: torch.fx.Node, dims: list[int]) -> Any:
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    out = list(label)
    for d in dims:
        d = _norm_dim(d, len(out))
        tr.uf.pin(out[d])
        out[d] = None
    return out


@_rule("roll")
def _roll(tr: Tracing, node: torch.fx.Node) -> Any:
    dims = _arg(node, 2, "dims", [])
    return _pin_dims(tr, node, [dims] if isinstance(dims, int) else list(dims) or list(range(len(_shape(node)))))


@_rule("flip")
def _flip(tr: Tracing, node: torch.fx.Node) -> Any:
    return _pin_dims(tr, node, list(node.args[1]))


_FFT_DEFAULT_DIMS = {1: [-1], 2: [-2, -1]}  # fft / rfft ... act on the last dimension, fft2 / rfft2 ... on the last two


@_rule("fft_fft", "fft_ifft", "fft_rfft", "fft_irfft", "fft_hfft", "fft_ihfft",
       "fft_fft2", "fft_ifft2", "fft_rfft2", "fft_irfft2", "fft_fftn", "fft_ifftn", "fft_rfftn", "fft_irfftn",
       "_fft_r2c", "_fft_c2r", "_fft_c2c")
def _fft(tr: Tracing, node: torch.fx.Node) -> Any:
    """A Fourier transform mixes every position of the dimensions it runs along (FNet's ``fftn`` over sequence
    and hidden): those are pinned; the others pass through. ``fft_*n`` without ``dim`` runs along the last
    ``len(s)`` dimensions, or all of them."""
    op = _opname(node.target)
    ndim = len(_shape(node.args[0]))
    if op.startswith("_fft_"):
        dims = list(node.args[1])
    else:
        dim = _arg(node, 2, "dim")
        if dim is None:
            size = _arg(node, 1, "s")
            dims = _FFT_DEFAULT_DIMS.get(2 if op.endswith("2") else 1) if not op.endswith("n") else (
                list(range(ndim - len(size), ndim)) if size is not None else list(range(ndim)))
        else:
            dims = [dim] if isinstance(dim, int) else list(dim)
    return _pin_dims(tr, node, dims)


@_rule("cumsum", "cumprod")
def _cum(tr: Tracing, node: torch.fx.Node) -> Any:
    return _pin_dims(tr, node, [node.args[1]])


@_rule("constant_pad_nd", "pad")
def _pad(tr: Tracing, node: torch.fx.Node) -> Any:
    pad = list(node.args[1])
    ndim = len(_shape(node.args[0]))
    dims = [ndim - 1 - i // 2 for i in range(len(pad)) if pad[i] != 0]
    return _pin_dims(tr, node, sorted(set(dims)))


@_rule("repeat", "tile")
def _repeat(tr: Tracing, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0]) or [None] * len(_shape(node.args[0]))
    reps = list(node.args[1])
    reps = [1] * (len(label) - len(reps)) + reps  # tile with fewer reps than dimensions repeats the last ones (Hiera's window position embedding)
    lead = len(reps) - len(label)
    out = [None] * lead + list(label)
    for d, r in enumerate(reps):
        if r != 1 and out[d] is not None:  # r copies one after another: each keeps the same elements
            out[d] = np.tile(out[d], r)  # (DeBERTa-v2 tiles its relative position heads over the batch)
    if _built_heads(tr, node) is None:  # a bias repeated once per head a module counts (Graphormer's
        in_shape = (1,) * lead + _shape(node.args[0])  # attn_bias.unsqueeze(1).repeat(1, self.num_heads, 1, 1))
        out = expanded_to_counted_heads(tr, node, [None] * lead + list(label), in_shape, _shape(node), out)
    return out


@_rule("repeat_interleave")
def _repeat_interleave(tr: Tracing, node: torch.fx.Node) -> Any:
    """x.repeat_interleave(r, dim): dimensions other than ``dim`` pass through (GCViT repeats its
    global queries over the batch); a repeated prunable dimension stays whole."""
    label = tr.lab(node.args[0])
    dim = _arg(node, 2, "dim")
    if label is None or dim is None:  # no dim: the input is flattened first
        tr.pin_label(label)
        return _none_like(node)
    d = _norm_dim(dim, len(label))
    out = list(label)
    repeats = _arg(node, 1, "repeats")
    in_attention = innermost_form(tr, node)[1] is not None or _in_hand_written_attention(tr, node)
    if out[d] is not None and isinstance(repeats, int) and in_attention:
        # Inside an attention form, a group's vector repeated once per head of the group (Mamba-2's B and C over
        # its heads, grouped-query keys): each output follows the input it copies, so a group goes with its heads.
        # The same in an attention written by hand whose heads may go (gemma_pytorch's repeat_interleave of keys).
        out[d] = np.repeat(out[d], repeats)
        return out
    if out[d] is not None:
        tr.uf.pin(out[d])
        out[d] = None
    heads = _built_heads(tr, node)
    if heads is not None and heads > 1 and _shape(node.args[0])[d] == 1 and _shape(node)[d] == heads:
        out[d] = tr.uf.fresh(heads)  # a mask repeated once per head (YOSO's), like expand: it follows the pruned heads
    return out


def _in_hand_written_attention(tr: Tracing, node: torch.fx.Node) -> bool:
    """``node`` runs inside an attention written by hand that counts its heads and whose heads may go."""
    return any(tr.attention_mode(module) != "opaque" and not library_class(module)
               for _, module, _ in counting_modules(tr, node))


@_rule("index", "_unsafe_index")
def _index(tr: Tracing, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    indices = list(node.args[1])
    out_shape = _shape(node)
    for idx in indices:
        tr.pin_label(tr.lab(idx))
    if label is None:
        return [None] * len(out_shape)
    # Indexed dimensions (a boolean mask covers as many as it has) are replaced by the indices' broadcast shape, in
    # place when the indexed dimensions are adjacent, else in front; the other dimensions pass through (ViLT picks
    # patches by two index tensors, x[rows, cols], and keeps the channels).
    passing, indexed, pos = [], [], 0
    for idx in indices:
        if idx is None:
            passing.append(pos)
            pos += 1
            continue
        val = idx.meta.get("val") if isinstance(idx, torch.fx.Node) else None
        n = val.dim() if isinstance(val, torch.Tensor) and val.dtype == torch.bool else 1
        indexed.extend(range(pos, pos + n))
        pos += n
    passing.extend(range(pos, len(label)))
    tr.pin_label([label[d] for d in indexed if d < len(label)])
    broadcast = len(out_shape) - len(passing)
    if not indexed or broadcast < 0 or pos > len(label):
        tr.pin_label(label)
        return [None] * len(out_shape)
    if indexed == list(range(indexed[0], indexed[-1] + 1)):  # adjacent: the indices' dimensions take their place
        before = [d for d in passing if d < indexed[0]]
        after = [d for d in passing if d > indexed[-1]]
        return [label[d] for d in before] + [None] * broadcast + [label[d] for d in after]
    return [None] * broadcast + [label[d] for d in passing]


@_rule("index_select")
def _index_select(tr: Tracing, node: torch.fx.Node) -> Any:
    """index_select(x, dim, index): positions along ``dim`` are picked (pinned); every other dimension passes
    through (XLNet's relative shift selects key positions of a (batch, heads, query, key) score). Where ``x``'s
    ``dim`` is untracked and the index is tracked (an ALiBi stand-in's own head indices), ``dim`` follows the index."""
    label, index = tr.lab(node.args[0]), tr.lab(node.args[2])
    d = _norm_dim(node.args[1], len(_shape(node.args[0])))
    if index is not None and index[0] is not None and (label is None or label[d] is None):
        # Rows of a tensor no pruning touches, picked by a tracked index (the heads of a model-wide ALiBi bias,
        # picked by an attention's own head indices): output row j goes with index j.
        return [index[0] if i == d else v for i, v in enumerate(label or [None] * len(_shape(node.args[0])))]
    tr.pin_label(index)
    if label is None:
        return _none_like(node)
    tr.uf.pin(label[d])
    return [None if i == d else v for i, v in enumerate(label)]


@_rule("gather")
def _gather(tr: Tracing, node: torch.fx.Node) -> Any:
    """gather(x, dim, index): positions along ``dim`` come from the index (pinned). Every other dimension
    the index spans whole passes through from ``x`` where the index's own is tracked too (DeBERTa's relative
    positions expanded to the heads, which an attention form's ``built_heads`` labels); an index of a size
    fixed in the capture pins that dimension."""
    label, index = tr.lab(node.args[0]), tr.lab(node.args[2])
    shape, ishape = _shape(node.args[0]), _shape(node.args[2])
    if label is None:
        tr.pin_label(index)
        return _none_like(node)
    d = _norm_dim(node.args[1], len(label))
    index = index or [None] * len(ishape)
    out: list[Any] = []
    for e, (vec, ivec) in enumerate(zip(label, index)):
        if e == d or ishape[e] != shape[e]:
            tr.uf.pin(vec)
            tr.uf.pin(ivec)
            out.append(None)
        elif ivec is None and vec is not None and (chain := _constant_along(node.args[2], e)) and not tr.pin_fixed_splits:
            # An index that repeats one value along e (ViTMAE's ``ids.unsqueeze(-1).repeat(1, 1, dim)``): gathered
            # element e comes from x's element e whatever the index says, so e follows x as long as the index's size
            # does. The capture records that size as a constant, fixed in the code or read from x; guess the latter,
            # and if the pruned model then fails to run, pruning is redone with such dimensions kept whole.
            tr.fixed_splits += 1
            _chain_follows(tr, chain, e, vec)  # the index's size along e follows x's too
            out.append(vec)
        elif ivec is None:  # an index of fixed size there (or one sized from x, which a capture cannot tell apart)
            tr.uf.pin(vec)
            out.append(None)
        else:
            tr.uf.tie(vec, ivec)
            out.append(vec if vec is not None else ivec)
    return out


def _constant_along(index: Any, e: int) -> list[torch.fx.Node]:
    """If ``index`` is an ``expand`` or ``repeat`` of a tensor whose size along dimension ``e`` (counted from the
    right, as both align) was 1 or that lacked it, so that every position along ``e`` holds the same value: the nodes from that op to
    ``index`` (conversions in between, ``.to(device)`` or a copy, are looked through); else an empty list."""
    chain = []
    while isinstance(index, torch.fx.Node) and _opname(index.target) in ("to", "_to_copy", "clone", "contiguous", "detach",
                                                                          "bitwise_not", "logical_not"):
        chain.append(index)
        index = index.args[0]
    if not isinstance(index, torch.fx.Node) or _opname(index.target) not in ("expand", "expand_as", "expand_copy", "repeat"):
        return []
    src, out = _shape(index.args[0]), _shape(index)
    k = len(out) - e  # position from the right
    # a dimension the expand adds in front (Inkling 2's (q, k) distances expanded to (batch, heads, q, k)) is constant too
    return [index, *chain] if (k > len(src) or src[len(src) - k] == 1) and out[e] > 1 else []


@_rule("view_as_complex", "view_as_real")
def _complex_view(tr: Tracing, node: torch.fx.Node) -> Any:
    """``view_as_complex`` reads the last dimension (of size 2) as the real and imaginary parts of one number; a
    rotary embedding pairs a head's channels so. ``view_as_real`` gives that dimension back. The rest pass through."""
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    if _opname(node.target) == "view_as_complex":
        tr.uf.pin(label[-1])
        return list(label[:-1])
    return [*label, None]


@_rule("topk", "sort", "argsort")
def _along_one_dim(tr: Tracing, node: torch.fx.Node) -> Any:
    """Selects or orders along one dimension (Doge's dynamic mask keeps each head's top keys): that dimension's
    entries move with the data, so it stays whole; every other dimension passes through (the heads, the channels)."""
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    d = _norm_dim(_bind(node).get("dim", -1), len(label))
    tr.pin_label([label[d]])
    out = [None if i == d else v for i, v in enumerate(label)]
    val = node.meta.get("val")
    return tuple(list(out) for _ in val) if isinstance(val, (tuple, list)) else out


@_rule("scatter", "scatter_add", "scatter_reduce", "scatter_", "scatter_add_", "scatter_reduce_")
def _scatter(tr: Tracing, node: torch.fx.Node) -> Any:
    """``self.scatter(dim, index, src)``: along ``dim`` entries land where the index says, so that dimension stays
    whole; along every other one, index and src of the output's size are element for element with it (tied),
    smaller ones write a corner of it (pinned). Into a new fill (BLT pools its bytes into patches:
    ``torch.zeros(b, patches, width).scatter_reduce(1, ids.expand(-1, -1, width), h, "amax")``) the fill's size
    follows src's channels, and an index expanded along them (one value for every channel) follows as well."""
    bound = _bind(node)
    x, index, src = bound.get("self"), bound.get("index"), bound.get("src")
    shape = _shape(node)
    d = _norm_dim(bound.get("dim"), len(shape))
    out = list(tr.lab(x) or [None] * len(shape))
    tr.pin_label([out[d]])
    out[d] = None
    src_label = tr.lab(src) if isinstance(src, torch.fx.Node) else None
    fill_label = tr.lab(x) if a_new_fill(x) and not tr.pin_fixed_splits else None
    if src_label is not None and isinstance(fill_label, list):
        for i, size in enumerate(_shape(src)):
            if i != d and out[i] is None and src_label[i] is not None and size == shape[i]:
                out[i] = fill_label[i] = src_label[i]
                _fill_size_follows(tr, x, i, src_label[i])
    for other in (src, index):
        label = tr.lab(other) if isinstance(other, torch.fx.Node) else None
        if label is None:
            continue
        tr.pin_label([label[d]])
        for i, size in enumerate(_shape(other)):
            if i == d:
                continue
            if size == shape[i] and out[i] is not None and label[i] is not None:
                tr.uf.tie(out[i], label[i])
            elif other is index and label[i] is None and out[i] is not None and not tr.pin_fixed_splits and (chain := _constant_along(index, i)):
                tr.fixed_splits += 1  # the index's size along it is a guess that it follows (it may be fixed in the code)
                _chain_follows(tr, chain, i, out[i])
            else:
                tr.pin_label([label[i], out[i]])
                out[i] = None
    return out


@_rule("index_add", "index_copy", "index_reduce", "index_fill")
def _index_add(tr: Tracing, node: torch.fx.Node) -> Any:
    """``self.index_add(dim, index, source)`` (a mixture of experts adds each expert's rows back to the tokens they
    came from; ``index_copy``, ``index_reduce`` and ``index_fill`` alike): along ``dim`` rows land where the index
    says, so that dimension stays whole; along every other one, source is element for element with the output.
    ``index_copy`` with an index that is the model's own tensor (slimforge's ``OutputFill``: a pruned model's kept
    features written back into their places) ties source's rows to the index's entries: dropping a row and its
    entry leaves that place as ``self`` holds it, so the rows stay prunable."""
    bound = _bind(node)
    x, source, index = bound.get("self"), bound.get("source"), bound.get("index")
    shape = _shape(node)
    d = _norm_dim(bound.get("dim"), len(shape))
    out = list(tr.lab(x) or [None] * len(shape))
    tr.pin_label([out[d]])
    out[d] = None
    label = tr.lab(source) if isinstance(source, torch.fx.Node) else None
    index_label = tr.lab(index) if isinstance(index, torch.fx.Node) else None
    rows_follow = (_opname(node.target) == "index_copy" and index_label is not None and index.op == "placeholder" and label is not None
                   and d < len(label) and len(index_label) == 1
                   and isinstance(label[d], np.ndarray) and isinstance(index_label[0], np.ndarray)
                   and len(label[d]) == len(index_label[0]))
    if rows_follow:
        tr.uf.tie(label[d], index_label[0])
    else:
        tr.pin_label(index_label)
    if label is not None:
        src_shape = _shape(source)
        for i, vec in enumerate(label):
            if i == d and rows_follow:
                continue
            if i == d or i >= len(shape) or src_shape[i] != shape[i]:
                tr.pin_label([vec, out[i] if i != d and i < len(shape) else None])
                if i != d and i < len(shape):
                    out[i] = None
            elif out[i] is None:
                out[i] = vec
            else:
                tr.uf.tie(out[i], vec)
    return out


@_rule("index_put", "index_put_", "_index_put_impl_", "_unsafe_index_put")
def _index_put(tr: Tracing, node: torch.fx.Node) -> Any:
    """``x[indices] = values`` (X-MOD writes each language's adapter output back to its tokens with a mask): the
    dimensions the indices select stay whole; the ones after them are element for element with ``values``'s last ones."""
    bound = _bind(node)
    x, indices, values = bound.get("self"), bound.get("indices") or [], bound.get("values")
    shape = _shape(x)
    out = list(tr.lab(x) or [None] * len(shape))
    consumed, plain = 0, True
    for idx in indices:
        if idx is None:  # a full slice before or between indices: where values' dimensions land is not tracked
            plain, consumed = False, consumed + 1
            continue
        val = idx.meta.get("val") if isinstance(idx, torch.fx.Node) else None
        mask = isinstance(val, torch.Tensor) and val.dtype == torch.bool
        n = val.dim() if mask else 1
        followed = []
        for d in range(consumed, min(consumed + n, len(shape))):
            chain = _constant_along(idx, d - consumed) if mask and _a_scalar(values) and not tr.pin_fixed_splits else []
            if chain and out[d] is not None:
                # a mask that holds one value along d, filled with one value (wav2vec 2.0 zeroes padded frames:
                # hidden[~mask.unsqueeze(-1).repeat(1, 1, hidden.shape[2])] = 0): d is element for element, and the
                # mask's size there follows (a guess, as a size fixed in the code is: redone whole if the check fails)
                tr.fixed_splits += 1
                _chain_follows(tr, chain, d - consumed, out[d])
                followed.append(d - consumed)
                continue
            tr.uf.pin(out[d])
            out[d] = None
        index_label = tr.lab(idx)
        tr.pin_label([v for j, v in enumerate(index_label) if j not in followed] if index_label else index_label)
        consumed += n
    label = tr.lab(values) if isinstance(values, torch.fx.Node) else None
    fill = a_new_fill(x) and not tr.pin_fixed_splits
    if label is not None:
        vshape = _shape(values)
        for j, vec in enumerate(label):
            d = len(shape) - len(vshape) + j  # values broadcast against x[indices], right-aligned
            if plain and d >= consumed and vshape[j] == shape[d] and out[d] is None and vec is not None and fill:
                # written into a new fill (Longformer's global keys: key_vectors.new_zeros(b, n, self.num_heads,
                # self.head_dim)[positions] = ...): the fill's size follows what is written (a guess, counted)
                out[d] = vec
                if isinstance(own := tr.lab(x), list):
                    own[d] = vec  # the fill's own shape follows (its label is the traced one: the check sees it)
                _fill_size_follows(tr, x, d, vec)
            elif plain and d >= consumed and vshape[j] == shape[d] and out[d] is not None and vec is not None:
                tr.uf.tie(out[d], vec)
            else:
                tr.pin_label([vec])
    return out


def _a_scalar(values: Any) -> bool:
    """One value, written wherever a mask says (``x[mask] = 0``)."""
    return not isinstance(values, torch.fx.Node) or math.prod(_shape(values)) == 1


@_rule("pixel_shuffle", "pixel_unshuffle")
def _pixel_shuffle(tr: Tracing, node: torch.fx.Node) -> Any:
    """``pixel_shuffle(x, r)``: output channel c is made of input channels c r^2 .. (c + 1) r^2 - 1 spread over an
    r x r block of pixels, so those r^2 go together (a super-resolution model's upsampler, Swin2SR's); ``pixel_unshuffle``
    the other way round. The spatial dimensions change size and stay whole."""
    label = tr.lab(node.args[0])
    out = _none_like(node)
    if label is None or not isinstance(out, list) or len(label) < 3:
        return out
    r = int(_arg(node, 1, "upscale_factor" if _opname(node.target) == "pixel_shuffle" else "downscale_factor"))
    tr.pin_label(label[-2:])
    vec = label[-3]
    if vec is not None:
        out[-3] = _split(tr, vec, [len(vec) // (r * r), r * r], 0) if _opname(node.target) == "pixel_shuffle" \
            else np.repeat(vec, r * r)
    out[:-3] = label[:-3]
    return out


@_rule("masked_scatter", "masked_scatter_")
def _masked_scatter(tr: Tracing, node: torch.fx.Node) -> Any:
    """``x.masked_scatter(mask, source)`` (a vision-language model writes its image features over the image tokens'
    embeddings): the output is element for element with ``x``. Where the mask repeats one value along the last
    dimension (``mask.unsqueeze(-1).expand_as(x)``), every masked row takes a whole row of ``source`` in order, so
    ``source``'s last dimension is element for element with ``x``'s; else the rows land wherever the mask says and
    that dimension stays whole. The source's other dimensions (its rows) are pinned."""
    bound = _bind(node)
    x, mask, source = bound.get("self"), bound.get("mask"), bound.get("source")
    shape = _shape(node)
    out = list(tr.lab(x) or [None] * len(shape))
    src = tr.lab(source) if isinstance(source, torch.fx.Node) else None
    sshape = _shape(source) if isinstance(source, torch.fx.Node) else ()
    whole_rows = bool(shape) and bool(sshape) and sshape[-1] == shape[-1] and shape[-1] > 1
    mlabel = tr.lab(mask) if isinstance(mask, torch.fx.Node) else None
    mshape = _shape(mask) if isinstance(mask, torch.fx.Node) else ()
    chain = _constant_along(mask, len(mshape) - 1) if whole_rows and len(mshape) == len(shape) else []
    if whole_rows and (mlabel is None or mlabel[-1] is None) and mshape and mshape[-1] == 1:
        chain = [mask]  # broadcast from size 1: one value along the last dimension
    elif whole_rows and mlabel is not None and mlabel[-1] is not None:
        chain = [mask]  # a mask tracked along it: it follows x there
        tr.uf.tie(out[-1], mlabel[-1])
    if whole_rows and chain and out[-1] is not None:
        _chain_follows(tr, chain, -1, out[-1])  # a mask expanded to x's size (read from x, as expand_as does)
        if src is not None and src[-1] is not None:
            tr.uf.tie(out[-1], src[-1])
            tr.pin_label(src[:-1])
            return out
    tr.pin_label([out[-1]] if out else None)
    if out:
        out[-1] = None
    tr.pin_label(src)
    return out


@_rule("take_along_dim", "nonzero")
def _pin_all(tr: Tracing, node: torch.fx.Node) -> Any:
    for a in _flat_nodes((node.args, node.kwargs)):
        tr.pin_label(tr.labels.get(a))
    return _none_like(node)


@_rule("zeros", "ones", "full", "empty", "new_zeros", "new_ones", "new_full", "new_empty")
def _created(tr: Tracing, node: torch.fx.Node) -> Any:
    """A tensor of fixed shape, except that inside an attention module that builds tensors with its head
    count (T5's zero position bias, (1, n_heads, q, k)), its first dimension of that size follows the heads."""
    out = _none_like(node)
    heads = _built_heads(tr, node)
    if heads is None or heads < 2 or not isinstance(out, list):
        return out
    shape = list(_shape(node))
    if heads in shape:
        out[shape.index(heads)] = tr.uf.fresh(heads)
    elif shape and shape[0] % heads == 0 and innermost_form(tr, node)[1].built_batch_heads:
        out[0] = np.tile(tr.uf.fresh(heads), shape[0] // heads)  # (batch * heads, ...), batch-major
    return out


@_rule("arange", "scalar_tensor",
       "rand", "randn", "randint", "linspace", "tensor", "eye", "empty_strided", "sym_size", "sym_numel", "sym_stride",
       "_assert_async", "_assert_scalar", "sym_constrain_range_for_size", "_local_scalar_dense", "item",
       "_assert", "_check", "_check_is_size", "size", "dim", "numel", "stride", "_assert_tensor_metadata")
def _no_coupling(tr: Tracing, node: torch.fx.Node) -> Any:
    """Creates tensors of fixed shape or reads sizes: nothing to tie."""
    return _none_like(node)


@_rule("as_strided", "as_strided_copy")
def _as_strided(tr: Tracing, node: torch.fx.Node) -> Any:
    """A strided view (Longformer's overlapping chunks of its sequence, ``(batch * heads, chunks, 2w, head_dim)``): an
    input dimension passes to a view dimension of its size where every entry of the view at index i along it was read
    from index i along the input's (checked on the layout itself: the view's and the input's sizes, strides and
    offsets), as a head's channels and the ``batch * heads`` dimension do. Every other input dimension stays whole."""
    x = node.args[0]
    label = tr.lab(x)
    out_shape = _shape(node)
    out: list[Any] = [None] * len(out_shape)
    val = x.meta.get("val") if isinstance(x, torch.fx.Node) else None
    if label is None or not isinstance(val, torch.Tensor):
        return out
    size, stride = [int(v) for v in node.args[1]], [int(v) for v in node.args[2]]
    offset = _arg(node, 3, "storage_offset", None)
    reads = _source_positions(val, (size, stride, val.storage_offset() if offset is None else int(offset)))
    for d, v in enumerate(label):
        if v is None:
            continue
        j = next((j for j in dict.fromkeys((d, len(out_shape) - (val.dim() - d)))
                  if 0 <= j < len(size) and out[j] is None and _reads_along(val, reads, d, j)), None)
        if j is None:
            tr.uf.pin(v)
        else:
            out[j] = v
    return out


def _source_positions(val: torch.Tensor, view: tuple[list[int], list[int], int]) -> torch.Tensor | None:
    """For each entry of the strided ``view`` (size, stride, storage offset) of ``val``'s storage, the flat index of
    the entry of ``val`` it reads (-1: none), found by writing each entry's index into a storage laid out as ``val`` and
    reading it back through the view. None where ``val`` overlaps itself."""
    size, stride, offset = view
    reach = max(val.storage_offset() + sum((n - 1) * s for n, s in zip(val.shape, val.stride())),
                offset + sum((n - 1) * s for n, s in zip(size, stride)))
    storage = torch.full((int(reach) + 1,), -1, dtype=torch.long)
    flat = torch.arange(val.numel()).view(tuple(val.shape))
    written = storage.as_strided(tuple(val.shape), val.stride(), val.storage_offset())
    written.copy_(flat)
    if not torch.equal(written, flat):
        return None
    return storage.as_strided(size, stride, offset)


def _reads_along(val: torch.Tensor, reads: torch.Tensor | None, d: int, j: int) -> bool:
    """Does the view whose entries read ``reads`` (:func:`_source_positions`) read, at index i along its dimension
    ``j``, only entries at index i along ``val``'s dimension ``d``?"""
    if reads is None or reads.shape[j] != val.shape[d] or bool((reads < 0).any()):
        return False
    along_d = reads // math.prod(val.shape[d + 1:]) % val.shape[d]
    return torch.equal(along_d, torch.arange(reads.shape[j]).view([-1 if i == j else 1 for i in range(reads.dim())]).expand(reads.shape))


@_rule("im2col")
def _im2col(tr: Tracing, node: torch.fx.Node) -> Any:
    """nn.Unfold (ConvBERT's span convolution): (B, C, H, W) -> (B, C * kh * kw, L), channel-major, so each
    channel's element repeats over its kernel positions; spatial positions are never prunable."""
    label = tr.lab(node.args[0])
    shape = _shape(node.args[0])
    kernel = int(np.prod(list(node.args[1])))
    if label is None:
        return _none_like(node)
    channels = label[len(shape) - 3]
    for v in label[len(shape) - 2:]:
        tr.uf.pin(v)
    return [*label[:len(shape) - 3], None if channels is None else np.repeat(channels, kernel), None]
