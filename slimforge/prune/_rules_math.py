"""Op rules for ops that compute with weights or across channels (embedding, linear, conv, matmul,
attention, norms, einsum): how each ties elements and which MACs it adds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from slimforge.prune._capture import PIN, Label, Tracing, Vec, _arg, _norm_dim, _opname, _rule, _shape, _size, a_new_fill, module_paths
from slimforge.prune._query_groups import sdpa_group_heads
from slimforge.prune.attention import find_attention_form


@_rule("embedding")
def _embedding(tr: Tracing, node: torch.fx.Node) -> Any:
    weight, indices = node.args[0], node.args[1]
    lw = tr.lab(weight) or [None, None]
    tr.uf.pin(lw[0])
    tr.pin_label(tr.lab(indices))
    tr.mark_source(weight, 1)
    return [None] * len(_shape(indices)) + [lw[1]]


@_rule("embedding_bag", "_embedding_bag", "_embedding_bag_forward_only")
def _embedding_bag(tr: Tracing, node: torch.fx.Node) -> Any:
    """``nn.EmbeddingBag`` (a recommender's multi-hot features): each bag's rows pooled, output (bags, dim) whose
    columns are the table's; rows, indices, offsets and per-sample weights stay. The op also returns its
    bookkeeping (offset2bag, bag sizes, max indices), which has no channels."""
    weight, indices = node.args[0], node.args[1]
    lw = tr.lab(weight) or [None, None]
    tr.uf.pin(lw[0])
    for other in (indices, *node.args[2:]):
        if isinstance(other, torch.fx.Node):
            tr.pin_label(tr.lab(other))
    tr.mark_source(weight, 1)
    out = [None, lw[1]]
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):
        return (out, *[[None] * v.dim() if isinstance(v, torch.Tensor) else None for v in val[1:]])
    return out


@_rule("linear")
def _linear(tr: Tracing, node: torch.fx.Node) -> Any:
    x, weight, bias = node.args[0], node.args[1], _arg(node, 2, "bias")
    lx = tr.lab(x) or [None] * len(_shape(x))
    if len(_shape(weight)) == 1:  # a weight vector (D-FINE's integral over its bins): a dot product, no output dimension
        tr.uf.tie(lx[-1], (tr.lab(weight) or [None])[0])
        tr.macs_terms.append([_count(v, s) for v, s in zip(lx, _shape(x))])
        return list(lx[:-1])
    lw = tr.lab(weight) or [None, None]
    tr.uf.tie(lx[-1], lw[1])
    lb = tr.lab(bias)
    if lb is not None:
        tr.uf.tie(lb[0], lw[0])
    tr.mark_source(weight, 0)
    out = list(lx[:-1]) + [lw[0]]
    tr.macs_terms.append([_count(v, s) for v, s in zip(out, _shape(node))] + [_count(lw[1], _shape(weight)[1])])
    return out


@_rule("_grouped_mm", "grouped_mm", "transformers::grouped_mm_fallback")
def _grouped_mm(tr: Tracing, node: torch.fx.Node) -> Any:
    """Mixture-of-experts layers: rows of ``input (S, in)`` sorted by expert, each times its expert's
    ``weight[e] (in, out)``. The experts' dimension stays; an input feature or output neuron goes from
    every expert at once (one tensor holds them all)."""
    x, weight = node.args[0], node.args[1]
    lx = tr.lab(x) or [None] * len(_shape(x))
    lw = tr.lab(weight) or [None] * len(_shape(weight))
    if len(lw) != 3 or len(lx) != 2:
        tr.pin_label(lx)
        tr.pin_label(lw)
        return [None] * len(_shape(node))
    tr.uf.pin(lw[0])
    tr.uf.tie(lx[-1], lw[1])
    tr.mark_source(weight, 2)  # through the transpose of a weight stored (experts, out, in)
    tr.macs_terms.append([_shape(x)[0], _count(lw[1], _shape(weight)[1]), _count(lw[2], _shape(weight)[2])])
    return [lx[0], lw[2]]


def _count(vec: Vec, size: int) -> Any:
    return vec if vec is not None else size


@_rule("conv1d", "conv2d", "conv3d", "convolution", "_convolution")
def _conv(tr: Tracing, node: torch.fx.Node) -> Any:
    name = _opname(node.target)
    x, weight, bias = node.args[0], node.args[1], _arg(node, 2, "bias")
    if name in ("convolution", "_convolution"):
        if node.args[6]:
            return _transposed_conv(tr, node, x, weight, bias, node.args[8])
        groups = node.args[8]
    else:
        groups = _arg(node, 6, "groups", 1)
    lx = tr.lab(x) or [None] * len(_shape(x))
    lw = tr.lab(weight) or [None] * len(_shape(weight))
    wshape = _shape(weight)
    for v in lw[2:]:
        tr.uf.pin(v)
    co, cl = wshape[0], wshape[1]
    vin, vo, vl = lx[1], lw[0], lw[1]
    tr.mark_source(weight, 0)
    if groups == 1:
        tr.uf.tie(vin, vl)
    elif cl == 1:  # depthwise: each input channel feeds its own block of outputs
        per = co // groups
        tr.uf.tie(vo, None if vin is None else np.repeat(vin, per))
    elif vin is not None and vo is not None and _groups_are_head_pieces(tr, node, cl):
        # each group a head's query, key or value: groups go whole, the form's sync recounts them
        for row_in, row_out in zip(vin.reshape(groups, cl), vo.reshape(groups, co // groups)):
            tr.uf.tie(np.full(cl, int(row_in[0])), row_in)
            tr.uf.tie(np.full(len(row_out), int(row_in[0])), row_out)
        tr.uf.pin(vl)
    else:  # grouped: every group keeps the same local channels, so groups stay equal
        if vin is None:
            tr.uf.pin(vl)
        else:
            grid = vin.reshape(groups, cl)
            for row in grid:
                tr.uf.tie(row, vl)
        if vo is not None:
            grid = vo.reshape(groups, co // groups)
            for row in grid[1:]:
                tr.uf.tie(row, grid[0])
    lb = tr.lab(bias)
    if lb is not None:
        tr.uf.tie(lb[0], vo)
    out_shape = _shape(node)
    out = [lx[0], vo] + _conv_spatial(tr, node, lx[2:])
    kernel = math.prod(wshape[2:])
    tr.macs_terms.append([_count(v, s) for v, s in zip(out, out_shape)] + [_count(vl, cl), kernel])
    return out


def _groups_are_head_pieces(tr: Tracing, node: torch.fx.Node, width: int) -> bool:
    """A grouped convolution inside an attention of a registered form whose grouped convolutions take one group per
    piece of a head (``grouped_heads``: EfficientViT's LiteMLA aggregates ``3 * heads`` groups of ``dim`` channels, a
    head being ``3 * dim``): heads go whole, so its groups do; keeping the same channels of every group would tie
    every head together. (SqueezeBERT's grouped projections read the residual stream: not such a form.)"""
    for path in reversed(module_paths(node)):
        try:
            module = tr.model.get_submodule(path)
        except AttributeError:
            continue
        form = find_attention_form(module)
        if form is not None:
            return form.grouped_heads and form.head_dim(module) % width == 0
    return False


def _conv_spatial(tr: Tracing, node: torch.fx.Node, labels: list[Any]) -> list[Any]:
    """Labels of a convolution's spatial output dimensions. One that holds prunable channels passes them on
    where output position i is centred on input position i: stride 1 and an output as long as the input (CoaT's
    aggregate runs a Conv1d of kernel 1 along the embedding; ECA's channel attention a Conv1d of kernel 3-7 with
    "same" padding along the channels, each channel mixed with its neighbours, which after pruning are the kept
    ones around it). Under any other stride or padding its size shapes the output, so it stays whole."""
    conv = _opname(node.target) in ("convolution", "_convolution")
    stride = _arg(node, 3, "stride", 1)
    in_sizes, out_sizes = _shape(node.args[0])[2:], _shape(node)[2:]
    out = []
    for i, v in enumerate(labels):
        if v is None:
            out.append(None)
            continue
        s = stride[i] if isinstance(stride, (list, tuple)) else stride
        if s == 1 and in_sizes[i] == out_sizes[i] and not (conv and node.args[6]):
            out.append(v)
        else:
            tr.uf.pin(v)
            out.append(None)
    return out


@_rule("_weight_norm", "_weight_norm_interface")
def _weight_norm(tr: Tracing, node: torch.fx.Node) -> Any:
    """Weight normalisation ``g * v / ||v||``, the norm over every dimension but ``dim`` (wav2vec 2.0's positional
    convolution, dim 2: one norm per kernel tap over all channels): the weight keeps ``v``'s labels and ``g`` follows
    ``v`` along ``dim``. Removing channels changes the norm; :func:`slimforge.prune.plan.apply_plan` rescales ``g`` so
    the kept entries of the weight stay as they were."""
    v, g = node.args[0], node.args[1]
    lv = tr.lab(v) or [None] * len(_shape(v))
    lg = tr.lab(g)
    d = _norm_dim(_arg(node, 2, "dim", 0), len(lv))
    if lg is not None:
        tr.uf.tie(lv[d], lg[d])
    out = list(lv)
    return (out, [None] * len(_shape(v))) if _opname(node.target) == "_weight_norm_interface" else out


@_rule("matmul", "bmm", "mm", "baddbmm", "addmm")
def _matmul(tr: Tracing, node: torch.fx.Node) -> Any:
    name = _opname(node.target)
    if name in ("baddbmm", "addmm"):
        c, a, b = node.args[0], node.args[1], node.args[2]
    else:
        c, a, b = None, node.args[0], node.args[1]
    la, lb = tr.lab(a), tr.lab(b)
    sa, sb = _shape(a), _shape(b)
    if len(sa) < 2 or len(sb) < 2:
        tr.pin_label(la)
        tr.pin_label(lb)
        return [None] * len(_shape(node))
    la = la or [None] * len(sa)
    lb = lb or [None] * len(sb)
    tr.uf.tie(la[-1], lb[-2])
    out_shape = _shape(node)
    batch = _broadcast_tie(tr, [(la[:-2], sa[:-2]), (lb[:-2], sb[:-2])], out_shape[:-2])
    out = batch + [la[-2], lb[-1]]
    if c is not None:
        lc = tr.lab(c)
        if lc is not None:
            sc = _shape(c)
            off = len(out) - len(sc)
            fill = a_new_fill(c) and not tr.pin_fixed_splits
            for d, v in enumerate(lc):
                if sc[d] == 1:
                    continue
                if fill and v is None and out[d + off] is not None:
                    # a fill sized in the code from the operands (Stable Diffusion's baddbmm onto torch.empty(q.shape[0],
                    # ...)): guessed to follow them; its own label follows too, so the check sees it
                    lc[d] = out[d + off]
                    tr.fixed_splits += 1
                else:
                    tr.uf.tie(out[d + off], v)
    tr.macs_terms.append([_count(v, s) for v, s in zip(out, out_shape)] + [_count(la[-1], sa[-1])])
    if len(sb) == 2:  # x @ W with W a parameter (Hugging Face's Conv1D): W's last dimension is an output
        tr.mark_source(b, 1)
        if isinstance(b, torch.fx.Node) and _opname(b.target) in ("t", "numpy_T", "transpose", "permute"):
            tr.mark_source(b.args[0], 0)  # x @ W.T (Falcon's FalconLinear): W's rows are outputs
    elif len(sb) == 3:  # experts' (experts, in, out) weights in one bmm (Llama 4): W's last dimension is an output
        tr.mark_source(b, 2)
    return out


@_rule("cdist", "_cdist_forward", "_euclidean_dist")
def _cdist(tr: Tracing, node: torch.fx.Node) -> Any:
    """Distances between the rows of two tensors, (..., P, M) and (..., R, M) -> (..., P, R) (a vector quantizer's
    distance to each codebook entry, Mimi's): the features M of both are summed over together, so they go together;
    P and R are the two operands' rows."""
    a, b = node.args[0], node.args[1]
    sa, sb = _shape(a), _shape(b)
    la, lb = tr.lab(a) or [None] * len(sa), tr.lab(b) or [None] * len(sb)
    tr.uf.tie(la[-1], lb[-1])
    out_shape = _shape(node)
    batch = _broadcast_tie(tr, [(la[:-2], sa[:-2]), (lb[:-2], sb[:-2])], out_shape[:-2])
    return batch + [la[-2], lb[-2]]


@_rule("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def _conv_transpose(tr: Tracing, node: torch.fx.Node) -> Any:
    return _transposed_conv(tr, node, node.args[0], node.args[1], _arg(node, 2, "bias"), _arg(node, 6, "groups", 1))


def _transposed_conv(tr: Tracing, node: torch.fx.Node, x: Any, weight: Any, bias: Any, groups: int) -> Any:
    """A transposed convolution (LowFormer's upsampling): its weight is (in, out / groups, kernel...), so input
    channels are the weight's rows and its columns are outputs (ungrouped). A grouped one stays whole; the spatial
    sizes it produces are never prunable."""
    lx = tr.lab(x) or [None] * len(_shape(x))
    lw = tr.lab(weight) or [None] * len(_shape(weight))
    wshape, out_shape = _shape(weight), _shape(node)
    for v in lw[2:] + lx[2:]:
        tr.uf.pin(v)
    lb = tr.lab(bias)
    if groups != 1:
        tr.pin_label([lx[1], lw[0], lw[1], lb[0] if lb is not None else None])
        vo = None
    else:
        tr.mark_source(weight, 1)
        tr.uf.tie(lx[1], lw[0])
        vo = lw[1]
        if lb is not None:
            tr.uf.tie(lb[0], vo)
    tr.macs_terms.append([_count(v, s) for v, s in zip(lx, _shape(x))] + [_count(vo, wshape[1]), math.prod(wshape[2:])])
    return [lx[0], vo] + [None] * (len(out_shape) - 2)


def _broadcast_sizes(*shapes: tuple) -> tuple:
    """``torch.broadcast_shapes`` where a size the capture could not fix is -1 (Idefics3 batches only the images
    that hold pixels, a count the data decides): such a size broadcasts as any other above 1."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for d in range(rank):
        sizes = {s[len(s) - rank + d] for s in shapes if len(s) - rank + d >= 0} - {1}
        known = sizes - {-1}
        out.append(max(known) if known else (-1 if sizes else 1))
    return tuple(out)


def _broadcast_tie(tr: Tracing, parts: list[tuple[list, tuple]], out_shape: tuple) -> Label:
    out: Label = [None] * len(out_shape)
    seen = [False] * len(out_shape)
    for label, shape in parts:
        off = len(out_shape) - len(shape)
        for d, s in enumerate(shape):
            if s == 1:
                continue
            od = d + off
            if not seen[od]:
                out[od], seen[od] = label[d], True
            else:
                tr.uf.tie(out[od], label[d])
                if label[d] is None:
                    out[od] = None
    return out


@_rule("broadcast_tensors")
def _broadcast_tensors(tr: Tracing, node: torch.fx.Node) -> Any:
    """``torch.broadcast_tensors`` (DAC's quantizer, before its distances to the codebook): every output has the
    common shape, its dimensions tied as a broadcasting op ties them."""
    vals = node.meta.get("val")
    out = _broadcast_tie(tr, _labelled(tr, node.args[0]), tuple(_size(s) for s in vals[0].shape))
    return tuple(list(out) for _ in vals)


@_rule("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
def _pointwise_loss(tr: Tracing, node: torch.fx.Node) -> Any:
    """A loss between two tensors element by element (DAC's quantizer computes its commitment loss, ``F.mse_loss``,
    in its forward): the two are tied as a broadcasting op ties them; a reduced loss (``reduction`` mean or sum, the
    default) is a scalar, and with none it keeps their shape."""
    out = _broadcast_tie(tr, _labelled(tr, node.args[:2]), _shape(node.args[0]))
    return out if _arg(node, 2, "reduction", 1) == 0 else []


def _labelled(tr: Tracing, operands: Any) -> list[tuple[list, tuple]]:
    """(label, shape) of each operand, an unlabelled one all None."""
    return [(tr.lab(a) or [None] * len(_shape(a)), _shape(a)) for a in operands]


@_rule("scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention_for_cpu")
def _sdpa(tr: Tracing, node: torch.fx.Node) -> Any:
    q, k, v = node.args[:3]
    mask = _arg(node, 3, "attn_mask")
    lq, lk, lv = (tr.lab(t) or [None] * len(_shape(t)) for t in (q, k, v))
    sq, sk, sv = _shape(q), _shape(k), _shape(v)
    if _arg(node, 7, "enable_gqa", False) and len(sq) >= 3 and sk[-3] not in (sq[-3], 1):
        # grouped-query: key/value head j serves query heads j*rep .. (j+1)*rep-1 (repeat_interleave);
        # a single key/value head (multi-query) broadcasts to any count of query heads
        rep = sq[-3] // sk[-3]
        if (heads := sdpa_group_heads(tr, node, sk[-3], rep)) is not None:  # query heads go within their groups
            lk, lv = ([*lab[:-3], heads, *lab[-2:]] for lab in (lk, lv))
        else:
            lk, lv = ([*lab[:-3], None if lab[-3] is None else np.repeat(lab[-3], rep), *lab[-2:]] for lab in (lk, lv))
        sk, sv = ((*s[:-3], sq[-3], *s[-2:]) for s in (sk, sv))
    tr.uf.tie(lq[-1], lk[-1])
    tr.uf.tie(lk[-2], lv[-2])
    batch_shape = _broadcast_sizes(sq[:-2], sk[:-2], sv[:-2])
    batch = _broadcast_tie(tr, [(lq[:-2], sq[:-2]), (lk[:-2], sk[:-2]), (lv[:-2], sv[:-2])], batch_shape)
    if isinstance(mask, torch.fx.Node):
        lm = tr.lab(mask) or [None] * len(_shape(mask))
        _broadcast_tie(tr, [(batch + [lq[-2], lk[-2]], batch_shape + (sq[-2], sk[-2])), (lm, _shape(mask))],
                       batch_shape + (sq[-2], sk[-2]))
    out = batch + [lq[-2], lv[-1]]
    tr.macs_terms.append([_count(x, s) for x, s in zip(batch, batch_shape)] + [sq[-2], sk[-2], _count(lq[-1], sq[-1])])
    tr.macs_terms.append([_count(x, s) for x, s in zip(batch, batch_shape)] + [sq[-2], sk[-2], _count(lv[-1], sv[-1])])
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):
        return tuple([list(out)] + [_none_like_tensor(t) for t in val[1:]])
    return out


def _none_like_tensor(t: Any) -> Any:
    return [None] * t.dim() if isinstance(t, torch.Tensor) else None


_BN = ("batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit_functional",
       "_native_batch_norm_legit", "native_batch_norm", "_batch_norm_with_update", "_batch_norm_no_update",
       "cudnn_batch_norm", "_batch_norm_impl_index", "instance_norm")


@_rule("prelu", "_prelu_kernel")
def _prelu(tr: Tracing, node: torch.fx.Node) -> Any:
    """PReLU's weight holds one slope per channel (dim 1), or a single shared one."""
    x, weight = node.args[0], node.args[1]
    lx = tr.lab(x) or [None] * len(_shape(x))
    lw = tr.lab(weight) if isinstance(weight, torch.fx.Node) else None
    shape = _shape(weight) if isinstance(weight, torch.fx.Node) else ()
    if lw is not None and len(lx) > 1 and len(shape) == 1 and shape[0] == _shape(x)[1] and shape[0] > 1:
        tr.uf.tie(lw[0], lx[1])
    return list(lx)


@_rule(*_BN)
def _batch_norm(tr: Tracing, node: torch.fx.Node) -> Any:
    x = node.args[0]
    lx = tr.lab(x) or [None] * len(_shape(x))
    c = lx[1] if len(lx) > 1 else None
    for p in node.args[1:5]:
        lp = tr.lab(p)
        if lp is not None:
            tr.uf.tie(lp[0], c)
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):
        outs: list[Any] = [list(lx)]
        for t in val[1:]:
            if isinstance(t, torch.Tensor) and t.dim() == 1 and len(lx) > 1 and t.shape[0] == _shape(x)[1]:
                outs.append([c])
            else:
                outs.append(_none_like_tensor(t))
        return tuple(outs)
    return list(lx)


@_rule("layer_norm", "native_layer_norm", "rms_norm", "_fused_rms_norm")
def _layer_norm(tr: Tracing, node: torch.fx.Node) -> Any:
    x, normalized = node.args[0], node.args[1]
    lx = tr.lab(x) or [None] * len(_shape(x))
    k = len(normalized)
    params = [tr.lab(p) for p in node.args[2:4] if isinstance(p, torch.fx.Node)]
    for j in range(k):
        d = len(lx) - k + j
        # No affine weight to slice: the module's normalized_shape attribute is resized instead
        # (OLMo's LayerNorm, nn.LayerNorm(elementwise_affine=False)). Where none holds it, the size is a constant
        # of the capture that the code may read off the tensor (Ergo's per-expert norm: rms_norm(x, (x.shape[-1],))):
        # guessed to follow it, as an equal split's size is, and kept whole if the pruned model then fails to run.
        if not params and not tr.attribute_slot(node, "normalized_shape", j, lx[d], list(normalized)) and lx[d] is not None:
            tr.fixed_splits += 1
            if tr.pin_fixed_splits:
                tr.uf.pin(lx[d])
        for lp in params:
            tr.uf.tie(lx[d], lp[j])
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):
        return tuple([list(lx)] + [_none_like_tensor(t) for t in val[1:]])
    return list(lx)


@_rule("group_norm", "native_group_norm")
def _group_norm(tr: Tracing, node: torch.fx.Node) -> Any:
    x = node.args[0]
    lx = tr.lab(x) or [None] * len(_shape(x))
    if _opname(node.target) == "group_norm":
        groups, params = node.args[1], node.args[2:4]
    else:
        params, groups = node.args[1:3], node.args[6]
    c = lx[1]
    n = _shape(x)[1]
    if c is not None:
        grid = c.reshape(groups, n // groups)
        if not _whole_groups(tr, node, grid):
            for row in grid[1:]:
                tr.uf.tie(row, grid[0])
    for p in params:
        lp = tr.lab(p)
        if lp is not None:
            tr.uf.tie(lp[0], c)
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):
        return tuple([list(lx)] + [_none_like_tensor(t) for t in val[1:]])
    return list(lx)


def _whole_groups(tr: Tracing, node: torch.fx.Node, grid: np.ndarray) -> bool:
    """A group norm whose groups are whole units (RetNet's ``GroupNorm(heads, width)`` over its heads, each group one
    head): groups go whole and the norm's ``num_groups`` follows, instead of every group keeping the same positions."""
    roots = tr.uf.roots(grid.reshape(-1)).reshape(grid.shape)
    groups = len(grid)
    if groups < 2 or not (roots == roots[:, :1]).all() or (roots[:, 0] == PIN).any() or len(set(roots[:, 0].tolist())) != groups:
        return False
    return tr.attribute_slot(node, "num_groups", 0, np.ascontiguousarray(grid[:, 0]), [groups])


@_rule("tensordot")
def _tensordot(tr: Tracing, node: torch.fx.Node) -> Any:
    """``tensordot(a, b, dims_a, dims_b)``: the paired dimensions are contracted (tied); the output is a's other
    dimensions, then b's (AutoInt's ``tensordot(inputs, W, dims=([-1], [0]))``)."""
    a, b = node.args[0], node.args[1]
    sa, sb = _shape(a), _shape(b)
    la, lb = tr.lab(a) or [None] * len(sa), tr.lab(b) or [None] * len(sb)
    da = [_norm_dim(d, len(sa)) for d in _arg(node, 2, "dims_self", [])]
    db = [_norm_dim(d, len(sb)) for d in _arg(node, 3, "dims_other", [])]
    for i, j in zip(da, db):
        tr.uf.tie(la[i], lb[j])
    free_a, free_b = [d for d in range(len(sa)) if d not in da], [d for d in range(len(sb)) if d not in db]
    for d in free_b:  # a weight's dimensions that are not contracted are outputs (units), as a linear layer's rows
        tr.mark_source(b, d)
    tr.macs_terms.append([_count(la[d], sa[d]) for d in free_a] + [_count(lb[d], sb[d]) for d in free_b]
                         + [_count(la[d], sa[d]) for d in da])
    return [la[d] for d in free_a] + [lb[d] for d in free_b]


@_rule("outer", "ger")
def _outer(tr: Tracing, node: torch.fx.Node) -> Any:
    """The outer product of two vectors: each output dimension is one input's (a rotary table's positions x
    frequencies)."""
    la, lb = (tr.lab(t) or [None] for t in node.args[:2])
    return [la[0], lb[0]]


@_rule("einsum")
def _einsum(tr: Tracing, node: torch.fx.Node) -> Any:
    """Each subscript letter is one dimension: all operands' vectors for a letter are tied."""
    equation, operands = node.args[0].replace(" ", ""), list(node.args[1])
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    shapes = [_shape(o) for o in operands]
    n_ell = max((len(sh) - len(t.replace("...", "")) for t, sh in zip(terms, shapes) if "..." in t), default=0)
    ell = "".join(chr(0x100 + i) for i in range(n_ell))
    if not rhs and "->" not in equation:
        letters = [c for c in lhs.replace(",", "").replace("...", "")]
        rhs = "..." + "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    vec_of: dict[str, Vec] = {}
    for term, operand, shape in zip(terms, operands, shapes):
        k = len(shape) - len(term.replace("...", ""))
        letters = term.replace("...", ell[n_ell - k:] if k else "")
        label = tr.lab(operand) or [None] * len(shape)
        if len(set(letters)) != len(letters):  # a diagonal: keep that operand whole
            tr.pin_label(label)
            continue
        for c, vec, size in zip(letters, label, shape):
            if size == 1:
                tr.uf.pin(vec)
            elif c in vec_of:
                tr.uf.tie(vec_of[c], vec)
                if vec is None:
                    vec_of[c] = None
            else:
                vec_of[c] = vec
    out_letters = rhs.replace("...", ell)
    return [vec_of.get(c) for c in out_letters]
