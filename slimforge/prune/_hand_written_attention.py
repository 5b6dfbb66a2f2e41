"""Attention written by hand (a user's own module, no registered form): which factor of a split counts its heads,
and the int attributes (head counts, a merged width) that follow the heads kept. Used by the view rules
(:mod:`slimforge.prune._rules_view`); the modes a class goes through are :data:`slimforge.prune._trace.ATTENTION_MODES`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from slimforge.prune._capture import PIN, Label, Tracing, _opname, head_counts, module_path, module_paths
from slimforge.prune.attention import find_attention_form


def enclosing_paths(tr: Tracing, node: torch.fx.Node) -> Iterator[tuple[str, Any]]:
    """(path, module) of the modules whose forward ran ``node``, innermost first."""
    for path in reversed(module_paths(node)):
        try:
            yield path, tr.model.get_submodule(path)
        except AttributeError:
            continue


def innermost_form(tr: Tracing, node: torch.fx.Node) -> tuple[Any, Any]:
    """(module, attention form) of the innermost module around ``node`` that has a form; (None, None) if none."""
    for _, module in enclosing_paths(tr, node):
        form = find_attention_form(module)
        if form is not None:
            return module, form
    return None, None


def counting_modules(tr: Tracing, node: torch.fx.Node, root: bool = False) -> Iterator[tuple[str, Any, dict[str, int]]]:
    """(path, module, head counts) of the modules around ``node`` that count heads in attributes, innermost first,
    up to the first attention of a registered form (whose own rules apply). The model itself only with ``root``: a
    head count there is its configuration (TimeSformer's ``self.heads``), which its feed-forward layers' chunks do not
    split by, though the per-head masks and biases it builds are repeated by it."""
    for path, module in enclosing_paths(tr, node):
        if find_attention_form(module) is not None:
            return
        if not path and not root:
            continue
        counts = head_counts(module)
        if counts:
            yield path, module, counts


_TOWARDS_THE_LAYER = {"getitem", "select", "squeeze", "unsqueeze", "view", "reshape", "_unsafe_view", "transpose", "permute",
                      "movedim", "contiguous", "clone", "mul", "div", "_to_copy", "to", "type_as", "unflatten", "flatten",
                      "split", "split_with_sizes", "chunk", "unbind", "cat", "expand", "slice"}


def producing_attention(tr: Tracing, node: torch.fx.Node) -> tuple[str, Any, dict[str, int]] | None:
    """(path, module, head counts) of the attention written by hand whose linear layer made what ``node`` reshapes,
    where that module lies inside the module running ``node`` but is not among those whose forward ran it: the heads
    are split or merged by the code of a module around it, calling methods of the attention rather than its forward
    (SD3's joint block: ``x_block.attn.pre_attention(x)`` gives q, k and v, and the block's own code runs attention
    over both streams with ``x_block.attn.num_heads``). Its head counts then count these heads. None otherwise."""
    arg = node.args[0] if node.args else None
    for _ in range(24):
        if not isinstance(arg, torch.fx.Node) or arg.op != "call_function":
            return None
        op = _opname(arg.target)
        if op in ("linear", "conv1d", "conv2d", "convolution"):
            break
        if op not in _TOWARDS_THE_LAYER:
            return None
        arg = arg.args[0][0] if op == "cat" else arg.args[0]
    else:
        return None
    weight = tr.param_names.get(getattr(arg.args[1], "name", None)) if len(arg.args) > 1 else None
    if not weight:
        return None
    here, layer = module_path(node), weight.rpartition(".")[0]
    parts = layer.split(".")
    for end in range(len(parts) - 1, 0, -1):  # the innermost module around the layer that counts heads, inside ``here``
        path = ".".join(parts[:end])
        if (here and not path.startswith(here + ".")) or path == here:
            return None
        module = tr.model.get_submodule(path)
        if find_attention_form(module) is not None or library_class(module):
            return None
        counts = head_counts(module)
        if counts:
            return path, module, counts
    return None


def _follow_or_pin(tr: Tracing, node: torch.fx.Node, path: str, names: list[str], vec: np.ndarray, size: int) -> bool:
    """Each attribute ``names`` of the module at ``path`` (all holding ``size``) follows ``vec``; where one cannot,
    ``vec`` is pinned. True when they all follow."""
    if all([tr.attribute_slot(node, name, 0, vec, [size], path=path) for name in names]):
        return True
    tr.uf.pin(vec)
    return False


_LENGTHS = ("position", "seq", "len", "window")  # sequence lengths (DeepSeek-V2's max_position_embeddings); not "token":
# T2T-ViT's token_dim is a width


def _widths(module: torch.nn.Module, counts: dict[str, int], size: int) -> list[str]:
    """The module's public int attributes holding ``size`` that are neither head counts, per-head sizes nor sequence
    lengths (a ``max_position_embeddings`` of 64 beside a width of 64 is not a width)."""
    return [a for a, v in vars(module).items()
            if type(v) is int and v == size and a not in counts and "head" not in a and not a.startswith("_")
            and not any(n in a.lower() for n in _LENGTHS)]


def library_class(module: torch.nn.Module) -> bool:
    return type(module).__module__.partition(".")[0] in ("transformers", "timm", "torchvision", "torch", "slimforge")


def counted_head_axis(osizes: list[int], counts: dict[str, int]) -> int | None:
    """The factor that counts heads in an attention written by hand: the last one, before at least one more
    (the head size), whose size an attribute counting heads holds (``(3, heads, head_dim)`` with 3 heads too), or,
    failing that, a multiple of it (heads merged with the batch, ``view(len, batch * num_heads, head_dim)`` in
    ``F.multi_head_attention_forward``: :func:`heads_follow` checks the heads repeat batch by batch)."""
    for exact in (True, False):
        found = [a for a in range(len(osizes) - 1)
                 if osizes[a] > 1 and math.prod(osizes[a + 1:]) > 1
                 and any(osizes[a] == c if exact else c > 1 and osizes[a] % c == 0 for c in counts.values())]
        if found:
            return found[-1]
    return None


def heads_follow(tr: Tracing, node: torch.fx.Node, counted_by: tuple, heads: np.ndarray, head_size: int) -> None:
    """The attributes that count these heads follow them (pinned where they cannot). In "coupled" mode the width
    of what the projection before the split reads is tied to the heads, ``head_size`` channels to a head, so
    the forward's ``x.shape[-1] // self.num_heads`` still gives the head size."""
    path, module, counts = counted_by
    size = len(heads)
    if size not in counts.values():  # heads merged with the batch: the same heads, batch after batch
        size = next((c for c in sorted(counts.values(), reverse=True) if c > 1 and len(heads) % c == 0
                     and (tr.uf.roots(heads) == np.tile(tr.uf.roots(heads[:c]), len(heads) // c)).all()), 0)
        if not size:
            tr.uf.pin(heads)
            return
        heads = np.ascontiguousarray(heads[:size])
    if not _follow_or_pin(tr, node, path, [name for name, value in counts.items() if value == size], heads, size):
        return
    if tr.attention_mode(module) != "coupled":
        return
    width = projection_input_width(tr, node.args[0])
    if width is not None and len(width) == size * head_size:
        for i, element in enumerate(width.tolist()):
            tr.uf.union(int(heads[i // head_size]), element)
        if names := _widths(module, counts, len(width)):  # ``self.embed_dim``, checked against the input's width
            _follow_or_pin(tr, node, path, names, width, len(width))


_PASS_THROUGH = {"getitem", "select", "squeeze", "unsqueeze", "split", "split_with_sizes", "chunk", "unbind", "view",
                 "reshape", "_unsafe_view", "transpose", "permute", "contiguous", "clone", "mul", "div", "mul_", "div_",
                 "_to_copy", "to", "type_as", "unflatten", "flatten"}


def projection_input_width(tr: Tracing, arg: Any) -> np.ndarray | None:
    """The label of the channel dimension entering the linear layer or convolution whose output ``arg`` is
    (through views, splits and scalings), or None."""
    for _ in range(16):
        if not isinstance(arg, torch.fx.Node) or arg.op != "call_function":
            return None
        op = _opname(arg.target)
        if op in ("linear", "conv1d", "conv2d", "convolution"):
            label = tr.lab(arg.args[0])
            if not label:
                return None
            return label[-1] if op == "linear" else label[1] if len(label) > 1 else None
        if op not in _PASS_THROUGH:
            return None
        arg = arg.args[0]
    return None


def merged_width_follows(tr: Tracing, node: torch.fx.Node, vec: np.ndarray, size: int) -> None:
    """Heads merged back to one width that an attention written by hand keeps in an attribute of its own
    (``view(b, t, self.inner_dim)``, ``self.all_head_size``): the attribute follows the heads kept."""
    path, module, counts = next(counting_modules(tr, node), (None, None, None))
    if module is not None and tr.attention_mode(module) != "opaque" and (names := _widths(module, counts, size)):
        _follow_or_pin(tr, node, path, names, vec, size)


def heads_view_follows(tr: Tracing, node: torch.fx.Node, out: Label, out_shape: tuple) -> None:
    """A view in an attention written by hand that keeps a dimension of heads as it is, with a size its head count
    gives (the Nyströmformer's ``Q.reshape(-1, self.num_head, landmarks, ...)`` of heads split in the module around
    it): the count follows those heads, as it does where they are split off."""
    if _opname(node.target) not in ("view", "reshape", "_unsafe_view"):  # not an unsqueeze: no size given there
        return
    path, module, counts = next(counting_modules(tr, node), (None, None, None))
    if module is None or library_class(module) or tr.attention_mode(module) == "opaque" or module_path(node) != path:
        return
    for d, vec in enumerate(out[:-1]):  # the last is a head's channels (of a size that may equal the count)
        names = [name for name, value in counts.items() if value == out_shape[d]]
        if vec is not None and names and out_shape[d] > 1 and not (tr.uf.roots(vec) == PIN).all():
            _follow_or_pin(tr, node, path, names, vec, out_shape[d])


def merged_heads_follow(tr: Tracing, node: torch.fx.Node, vec: np.ndarray, size: int) -> None:
    """Heads counted in another unit merged into one dimension that an attention written by hand counts: Falcon's
    key/value groups, each (queries per group) query heads, flattened to ``self.num_heads`` query heads. The count
    follows the heads kept (a group that goes takes its query heads with it)."""
    path, module, counts = next(counting_modules(tr, node), (None, None, None))
    if module is None or library_class(module) or tr.attention_mode(module) == "opaque":
        return
    if names := [name for name, value in counts.items() if value == size]:
        _follow_or_pin(tr, node, path, names, vec, size)


def expanded_to_counted_heads(tr: Tracing, node: torch.fx.Node, label: Label, in_shape: tuple, out_shape: tuple,
                               out: Label) -> Label:
    """Multi-query attention written by hand: one key/value head expanded to ``self.n_heads`` query heads
    (``k.unsqueeze(1).expand(-1, self.n_heads, -1, -1)``). The expanded dimension follows the attribute, and with it
    the query heads. Not where the input already has a prunable dimension before the expanded one (``repeat_kv``'s
    expand of every key/value head by ``n_rep``, whose size may equal a head count too); one after it is no head
    (Linformer's keys projected to ``k`` positions by a parameter, ``(b, 1, k, d_h)``)."""
    lead = len(out_shape) - len(label)
    path, module, counts = next(((p, m, c) for p, m, c in counting_modules(tr, node, root=True)
                                 if tr.attention_mode(m) != "opaque"), (None, None, None))
    if module is None:
        return out
    for d, size in enumerate(in_shape):
        wide = out_shape[lead + d]
        names = [name for name, value in counts.items() if value == wide]
        if any(v is not None for v in label[:d]):
            return out
        if size == 1 and wide > 1 and names and lead + d > 0:  # not the first: a batch (TimeSformer's class token
            # repeated over a batch of 2, as many as its heads)
            vec = tr.uf.fresh(wide)
            if all([tr.attribute_slot(node, name, 0, vec, [wide], path=path) for name in names]):
                out[lead + d] = vec
            break
    return out


def split_into_heads(tr: Tracing, node: torch.fx.Node, vec: np.ndarray, sizes: list[int]) -> bool:
    """Equal pieces, as many as an attention written by hand counts heads (``torch.split(q, self.d_head, dim=2)``
    before the pieces are stacked or concatenated along the batch: AutoInt, the Set Transformer): each piece is one
    head, its channels one unit, and the head counts follow; an int attribute holding the whole width
    (``self.dim_V``, which the piece size is computed from) follows the channels kept. False: not such a split."""
    n = sizes[0]
    if n < 2 or len(sizes) < 2 or len(set(sizes)) != 1 or _pieces_feed_layers(node):
        return False
    path, module, counts = next(counting_modules(tr, node), (None, None, None))
    if module is None or tr.attention_mode(module) == "opaque" or len(sizes) not in counts.values():
        return False
    if module_path(node) != path:  # split in the attention's own forward, not in a layer inside it (a GEGLU's chunk(2))
        return False
    for k in range(len(sizes)):
        for element in vec[k * n + 1:(k + 1) * n].tolist():
            tr.uf.union(int(vec[k * n]), element)
    heads_follow(tr, node, (path, module, counts), np.ascontiguousarray(vec[::n]), n)
    if names := _widths(module, counts, len(vec)):
        _follow_or_pin(tr, node, path, names, vec, len(vec))
    return True


_LAYERS = ("linear", "conv1d", "conv2d", "conv3d", "convolution")
_ON_THE_WAY = {"getitem", "add", "add_", "mul", "mul_", "view", "reshape", "_unsafe_view", "contiguous", "clone", "to",
               "_to_copy", "flatten", "transpose", "permute"}


def _pieces_feed_layers(node: torch.fx.Node, depth: int = 6) -> bool:
    """A piece of the split enters a layer of its own (EfficientViT's cascaded group attention: one convolution per
    head over its chunk of the input): the pieces are inputs of per-head layers, not heads to stack or concatenate,
    and a head's piece may not go (its layer would be left with no inputs)."""
    frontier, seen = [node], set()
    for _ in range(depth):
        nxt = []
        for n in frontier:
            for user in n.users:
                if user in seen or user.op != "call_function":
                    continue
                seen.add(user)
                op = _opname(user.target)
                if op in _LAYERS and user.args and user.args[0] is n:
                    return True
                if op in _ON_THE_WAY:
                    nxt.append(user)
        frontier = nxt
    return False
