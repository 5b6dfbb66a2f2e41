"""The dependency graph: which parameter dimensions must lose the same channels together.

Captured with ``torch.export`` (non-strict), not ``torch.fx.symbolic_trace``: fx cannot trace
Hugging Face models (``BertForSequenceClassification`` fails in transformers 5 with "co_varnames
is too small") and stops at Python control flow, while export handles both torchvision and
Hugging Face models, records every node's shape (``meta['val']``, fake tensors, no real compute),
names parameters by their ``state_dict`` keys and keeps the calling module of every op in
``nn_module_stack``, which is what error messages and attention rules need. Its ATen op set is
finite, so an op without a rule is detected rather than guessed at.

How coupling is found: every dimension of every tensor carries a vector of *elements*, one per
index (``None`` means "not prunable here", for example spatial or batch dimensions). A weight's
output dimension gets fresh elements; each op's rule then ties elements that must go together
(an add ties its inputs index by index, a convolution ties its input channels to the weight's
input dimension, a concat concatenates vectors, a flatten repeats them) in a union-find. Tying to
the special element ``PIN`` means "never prune". Afterwards each union-find class that holds a
weight's output index and is not pinned is one prunable *unit*; units that share a parameter
dimension form a *group* (one ratio, one ranking).
"""

from __future__ import annotations

import fnmatch
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from slimforge.prune.attention import find_attention_form, head_axis
from slimforge.prune.errors import PruningError, UnsupportedOpError

PIN = 0
Vec = np.ndarray | None  # elements of one dimension (int64), or None: not prunable
Label = list  # list[Vec], one entry per tensor dimension


class _UnionFind:
    """Union-find over integer elements; ``PIN`` (0) is always the root of its class."""

    def __init__(self) -> None:
        self.parent: list[int] = [PIN]

    def fresh(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def roots(self, vec: np.ndarray) -> np.ndarray:
        find = self.find
        return np.fromiter((find(int(e)) for e in vec), dtype=np.int64, count=len(vec))

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller id becomes the root, so PIN stays a root
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb

    def tie(self, a: Vec, b: Vec) -> None:
        """Index i of ``a`` and index i of ``b`` go together (None pins the other)."""
        if a is None and b is None:
            return
        if a is None or b is None:
            self.pin(b if a is None else a)
            return
        if len(a) != len(b):
            raise AssertionError(f"tying vectors of lengths {len(a)} and {len(b)}")
        union = self.union
        for x, y in zip(a.tolist(), b.tolist()):
            if x != y:
                union(x, y)

    def pin(self, v: Vec) -> None:
        if v is not None:
            for x in v.tolist():
                self.union(x, PIN)


@dataclass
class Slot:
    """One dimension of one parameter or buffer: ``name`` is its state_dict key."""

    name: str
    dim: int
    elements: np.ndarray
    is_source: bool = False  # an output dimension (conv/linear out, embedding dim)


@dataclass
class Unit:
    """One prunable class: every position of every slot whose class is ``root`` goes together."""

    root: int


@dataclass
class Group:
    """Units coupled through shared parameter dimensions; ranked and pruned with one ratio."""

    anchor: str  # "state_dict_key:dim" of the first output dimension it touches
    module: str  # module path of the anchor, for name patterns
    units: list[Unit]
    width: int  # channels per unit in the anchor dimension (for rounding)
    slots: list[int]  # indices of the slots its units appear in
    # Per unit, the output slot that produces it: a concat's inputs (DenseNet, Inception branches)
    # are one group but several layers, each of which should keep a rounded channel count.
    branches: list[int] = field(default_factory=list)


@dataclass
class DependencyGraph:
    """Slots, the union-find classes over their elements, and the resulting groups."""

    slots: list[Slot]
    groups: list[Group]
    roots: list[np.ndarray]  # per slot: class of every position
    macs_terms: list[list[Any]]  # per MAC-bearing op: factors (int or element vector)
    uf: _UnionFind
    _term_roots: list[list[Any]] | None = None
    fixed_splits: int = 0  # equal splits into sizes the capture records as constants (see _split_op)
    records: list[tuple[torch.fx.Node, Any]] = field(default_factory=list)  # every op's output labels

    def verify(self, pruned_roots: set[int], model: nn.Module, example_inputs: tuple, example_kwargs: dict | None = None) -> None:
        """Capture the pruned model again and check every op's output shape is the one the
        dependency graph predicts; a module that derives a size from elsewhere is caught here."""
        ep = export_model(model, example_inputs, example_kwargs or {})
        # contiguous() of an already contiguous tensor is not captured: a dimension pruned to size 1
        # (one head left) makes a permuted tensor contiguous. It keeps its input's shape, so skip it.
        ops = [n for n in ep.graph.nodes if n.op == "call_function" and _opname(n.target) != "contiguous"]
        records = [(n, label) for n, label in self.records if _opname(n.target) != "contiguous"]
        if [_opname(n.target) for n in ops] != [_opname(n.target) for n, _ in records]:
            raise PruningError(
                "The pruned model's captured graph has different ops from the original's, so slimforge cannot "
                "verify it; this happens when a forward() branches on tensor sizes. Skip the layers involved."
            )
        kept_count: dict[int, int] = {}

        def expected(label: Any, val: Any) -> Any:
            if isinstance(val, torch.Tensor) and isinstance(label, list):
                dims = []
                for vec, size in zip(label, val.shape):
                    if vec is None:
                        dims.append(int(size))
                    else:
                        key = id(vec)
                        if key not in kept_count:
                            kept_count[key] = int(sum(1 for r in self.uf.roots(vec).tolist() if r not in pruned_roots))
                        dims.append(kept_count[key])
                return tuple(dims)
            if isinstance(val, (tuple, list)) and isinstance(label, tuple):
                return tuple(expected(lb, v) for lb, v in zip(label, val))
            return None

        def actual(val: Any) -> Any:
            if isinstance(val, torch.Tensor):
                return tuple(int(s) for s in val.shape)
            if isinstance(val, (tuple, list)):
                return tuple(actual(v) for v in val)
            return None

        for new, (old, label) in zip(ops, records):
            want = expected(label, old.meta.get("val"))
            got = actual(new.meta.get("val"))
            if want is not None and got is not None and _shapes_differ(want, got):
                path = module_path(new)
                raise PruningError(
                    f"After pruning, op {_opname(new.target)!r} in module {path or '<top level>'!r} produces shape "
                    f"{got} where the dependency graph expects {want}: that module computes a size slimforge did not "
                    f"update, and the model would be silently wrong. Skip it: slimforge.prune(..., skip=[{(path or '*')!r}])."
                )

    def kept_positions(self, pruned_roots: set[int]) -> dict[tuple[str, int], np.ndarray]:
        """For every slot that loses positions: the kept indices."""
        kept = {}
        for slot, roots in zip(self.slots, self.roots):
            mask = np.fromiter((r not in pruned_roots for r in roots.tolist()), dtype=bool, count=len(roots))
            if not mask.all():
                kept[(slot.name, slot.dim)] = np.nonzero(mask)[0]
        return kept

    def count_macs(self, pruned_roots: set[int]) -> int:
        """Multiply-accumulates of convolutions, linear layers and matmuls after pruning."""
        if self._term_roots is None:
            self._term_roots = [[self.uf.roots(f) if isinstance(f, np.ndarray) else int(f) for f in fs]
                                for fs in self.macs_terms]
        pruned = np.fromiter(pruned_roots, dtype=np.int64, count=len(pruned_roots))
        total = 0
        for factors in self._term_roots:
            n = 1
            for f in factors:
                n *= int(np.count_nonzero(~np.isin(f, pruned))) if isinstance(f, np.ndarray) else f
            total += n
        return total


# ----------------------------------------------------------------------------- tracing


def export_model(model: nn.Module, args: tuple, kwargs: dict) -> torch.export.ExportedProgram:
    """Export in training mode (so auxiliary heads used only in training are seen), then restore."""
    was_training = model.training
    model.train()
    try:
        return torch.export.export(model, args, kwargs, strict=False)
    except Exception as exc:
        raise PruningError(
            f"torch.export could not capture {type(model).__name__} ({type(exc).__name__}: {str(exc)[:300]}). "
            "slimforge.prune needs an exportable model: make data-dependent control flow static, or prune the "
            "exportable sub-module on its own."
        ) from exc
    finally:
        model.train(was_training)


def build_dependency_graph(
    model: nn.Module,
    example_inputs: tuple,
    example_kwargs: dict | None = None,
    *,
    skip: Sequence[str] = (),
    pin_fixed_splits: bool = False,
) -> DependencyGraph:
    """Capture ``model`` and group its coupled channel dimensions (see the module docstring).

    ``pin_fixed_splits``: keep whole every dimension split into sizes the code fixes
    (``x.split(26, 1)``), which pruning cannot change; by default its equal pieces are pruned
    alike, right when the size is computed from the tensor (``x.split(x.shape[1] // 2, 1)``).
    """
    ep = export_model(model, example_inputs, example_kwargs or {})
    tracer = _Tracer(model, ep, skip, pin_fixed_splits)
    tracer.run()
    return tracer.finish()


def matches(path: str, patterns: Sequence[str]) -> bool:
    """``path`` matches a glob pattern, or lies inside a module that does."""
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, p + ".*") for p in patterns)


def _opaque_attention(module: nn.Module) -> bool:
    """Attention whose forward derives head sizes from its input: its dimensions stay as they are.
    Forms registered in :mod:`slimforge.prune.attention` lose whole heads instead."""
    if find_attention_form(module) is not None:
        return False
    if isinstance(module, nn.MultiheadAttention):
        return True
    if not any(isinstance(getattr(module, a, None), int) for a in ("num_heads", "n_heads")):
        return False
    # The attention itself (it holds the projections), not a block that merely passes num_heads on.
    return bool(module._parameters) or any(isinstance(c, nn.Linear) for c in module.children())


def _attention_sources(model: nn.Module) -> set[tuple[str, int]]:
    """(state_dict key, dim) of parameters that produce attention heads without being a layer's weight."""
    sources = set()
    for path, module in model.named_modules():
        form = find_attention_form(module)
        if form is not None and form.sources is not None:
            sources.update((f"{path}.{name}" if path else name, dim) for name, dim in form.sources(module))
    return sources


HEAD_ATTRS = ("num_heads", "n_heads", "num_attention_heads", "num_key_value_heads", "heads")


class _Tracer:
    def __init__(self, model: nn.Module, ep: torch.export.ExportedProgram, skip: Sequence[str], pin_fixed_splits: bool = False) -> None:
        self.model = model
        self.ep = ep
        self.skip = list(skip)
        self.pin_fixed_splits = pin_fixed_splits
        self.fixed_splits = 0
        self.uf = _UnionFind()
        self.labels: dict[torch.fx.Node, Any] = {}
        self.slots: list[Slot] = []
        self.slot_of: dict[tuple[str, int], int] = {}
        self.sources: set[int] = set()  # slot indices that are output dimensions
        self.macs_terms: list[list[Any]] = []
        self.records: list[tuple[torch.fx.Node, Any]] = []
        sig = ep.graph_signature
        self.param_names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        self.placeholder_of: dict[str, torch.fx.Node] = {}
        self.pinned_modules = self._pinned_modules()
        self.extra_sources = _attention_sources(model)

    # ------------------------------------------------------------------ set-up

    def _pinned_modules(self) -> list[str]:
        paths = []
        for path, module in self.model.named_modules():
            if _opaque_attention(module) or (self.skip and path and matches(path, self.skip)):
                paths.append(path)
        return paths

    def _param_pinned(self, name: str) -> bool:
        owner = name.rpartition(".")[0]
        return any(owner == p or owner.startswith(p + ".") or p == "" for p in self.pinned_modules)

    # ------------------------------------------------------------------ run

    def run(self) -> None:
        user_outputs = set()
        for spec in self.ep.graph_signature.output_specs:
            if spec.kind == torch.export.graph_signature.OutputKind.USER_OUTPUT:
                user_outputs.add(getattr(spec.arg, "name", None))
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                self.labels[node] = self._placeholder(node)
            elif node.op == "call_function":
                self.labels[node] = self._call(node)
                self.records.append((node, self.labels[node]))
            elif node.op == "output":
                for out in _flat_nodes(node.args[0]):
                    if out.name in user_outputs:
                        self.pin_label(self.labels.get(out))
            else:
                raise UnsupportedOpError(f"unexpected graph node {node.op} {node.target}")

    def _placeholder(self, node: torch.fx.Node) -> Any:
        name = self.param_names.get(node.name)
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            return None
        if name is None:  # user input or constant: its shape is fixed
            return [None] * val.dim()
        label: Label = []
        for dim, size in enumerate(val.shape):
            if size <= 1:
                label.append(None)
                continue
            vec = self.uf.fresh(int(size))
            self.slot_of[(name, dim)] = len(self.slots)
            self.slots.append(Slot(name, dim, vec))
            label.append(vec)
            if (name, dim) in self.extra_sources:
                self.sources.add(len(self.slots) - 1)
        if self._param_pinned(name):
            self.pin_label(label)
        return label

    def _call(self, node: torch.fx.Node) -> Any:
        target = node.target
        opname = _opname(target)
        rule = RULES.get(opname)
        if rule is None:
            if not _has_tracked_tensor(self, node):
                return _none_like(node)
            path = module_path(node)
            if self.skip and path and matches(path, self.skip):
                for a in _flat_nodes((node.args, node.kwargs)):
                    self.pin_label(self.labels.get(a))
                return _none_like(node)
            raise UnsupportedOpError(
                f"slimforge.prune has no rule for op {opname!r} (graph node {node.name!r}) in module "
                f"{path or '<top level>'!r}: it cannot tell which channels of its inputs and outputs belong together. "
                f"Skip that layer so its channels stay as they are: slimforge.prune(..., skip=[{(path or '*')!r}])."
            )
        try:
            return rule(self, node)
        except PruningError:
            raise
        except Exception as exc:
            path = module_path(node)
            raise PruningError(
                f"slimforge.prune's rule for op {opname!r} (graph node {node.name!r}, module {path or '<top level>'!r}) "
                f"failed: {type(exc).__name__}: {exc}. This is a slimforge bug; work around it with "
                f"slimforge.prune(..., skip=[{(path or '*')!r}])."
            ) from exc

    # ------------------------------------------------------------------ helpers for rules

    def lab(self, arg: Any) -> Label | None:
        if isinstance(arg, torch.fx.Node):
            label = self.labels.get(arg)
            return label if isinstance(label, list) else None
        return None

    def mark_source(self, weight: Any, dim: int) -> None:
        name = self.param_names.get(getattr(weight, "name", ""), None)
        if name is not None and (name, dim) in self.slot_of:
            self.sources.add(self.slot_of[(name, dim)])

    def pin_label(self, label: Any) -> None:
        if isinstance(label, list):
            for v in label:
                if isinstance(v, np.ndarray):
                    self.uf.pin(v)
                elif isinstance(v, list):
                    self.pin_label(v)
        elif isinstance(label, tuple):
            for item in label:
                self.pin_label(item)

    def finish(self) -> DependencyGraph:
        uf = self.uf
        roots = [uf.roots(s.elements) for s in self.slots]
        source_roots: set[int] = set()
        for i in self.sources:
            source_roots.update(r for r in roots[i].tolist() if r != PIN)
        # Units: unpinned classes holding an output dimension, in order of first appearance.
        order: list[int] = []
        seen: set[int] = set()
        for si in sorted(self.sources) + [i for i in range(len(self.slots)) if i not in self.sources]:
            for root in _first_occurrence_order(roots[si]):
                if root in source_roots and root not in seen:
                    seen.add(root)
                    order.append(root)
        # Groups: units that share a slot.
        gu = _UnionFind()
        ids = {root: int(gu.fresh(1)[0]) for root in order}
        slot_units: list[list[int]] = []
        for r in roots:
            present = [x for x in np.unique(r).tolist() if x in ids]
            slot_units.append(present)
            for other in present[1:]:
                gu.union(ids[present[0]], ids[other])
        by_group: dict[int, list[int]] = {}
        for root in order:
            by_group.setdefault(gu.find(ids[root]), []).append(root)
        group_slots: dict[int, list[int]] = {}
        for si, present in enumerate(slot_units):
            if present:
                group_slots.setdefault(gu.find(ids[present[0]]), []).append(si)
        producer: dict[int, int] = {}
        for si in sorted(self.sources):
            for root in slot_units[si]:
                producer.setdefault(root, si)
        groups = []
        for key, members in by_group.items():
            slot_list = group_slots[key]
            anchor = next((si for si in slot_list if si in self.sources and members[0] in slot_units[si]), slot_list[0])
            slot = self.slots[anchor]
            width = max(1, int(np.count_nonzero(roots[anchor] == members[0])))
            groups.append(Group(f"{slot.name}:{slot.dim}", slot.name.rpartition(".")[0], [Unit(r) for r in members],
                                width, slot_list, [producer.get(r, -1) for r in members]))
        return DependencyGraph(self.slots, groups, roots, self.macs_terms, uf, records=self.records, fixed_splits=self.fixed_splits)


def _first_occurrence_order(roots: np.ndarray) -> list[int]:
    values, first = np.unique(roots, return_index=True)
    return values[np.argsort(first)].tolist()


def _shapes_differ(want: Any, got: Any) -> bool:
    if isinstance(want, tuple) and want and isinstance(want[0], tuple):
        return any(w is not None and g is not None and _shapes_differ(w, g) for w, g in zip(want, got))
    return want != got


def _flat_nodes(obj: Any) -> list[torch.fx.Node]:
    out: list[torch.fx.Node] = []
    torch.fx.node.map_arg(obj, lambda n: out.append(n) or n)
    return out


def _none_like(node: torch.fx.Node) -> Any:
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return [None] * val.dim()
    if isinstance(val, (list, tuple)):
        return tuple([None] * v.dim() if isinstance(v, torch.Tensor) else None for v in val)
    return None


def _has_tracked_tensor(tr: _Tracer, node: torch.fx.Node) -> bool:
    """Does any input still carry a prunable (not pinned) element?"""

    def live(label: Any) -> bool:
        if isinstance(label, tuple):
            return any(live(x) for x in label)
        if isinstance(label, list):
            return any(v is not None and any(tr.uf.find(int(e)) != PIN for e in v) for v in label)
        return False

    return any(live(tr.labels.get(a)) for a in _flat_nodes((node.args, node.kwargs)))


def module_path(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return _clean_path(path)


def module_paths(node: torch.fx.Node) -> list[str]:
    stack = node.meta.get("nn_module_stack") or {}
    return [_clean_path(v[0]) for v in stack.values()]


def _clean_path(path: str) -> str:
    if path.startswith("L['self']"):
        path = path[len("L['self']"):].lstrip(".")
    return path


def _opname(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name.split("::", 1)[-1]
    if target is operator.getitem:
        return "getitem"
    return getattr(target, "__name__", str(target))


def _shape(node: Any) -> tuple[int, ...]:
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    if isinstance(val, torch.Tensor):
        return tuple(int(s) for s in val.shape)
    return ()


# ----------------------------------------------------------------------------- rules

Rule = Callable[[_Tracer, torch.fx.Node], Any]
RULES: dict[str, Rule] = {}


def _rule(*names: str) -> Callable[[Rule], Rule]:
    def add(fn: Rule) -> Rule:
        for n in names:
            RULES[n] = fn
        return fn

    return add


def _arg(node: torch.fx.Node, i: int, name: str, default: Any = None) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _norm_dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _clean(tr: _Tracer, vec: Vec, size: int) -> Vec:
    """A dimension of size 1 is never prunable (at least one channel stays)."""
    if vec is not None and size <= 1:
        tr.uf.pin(vec)
        return None
    return vec


@_rule(
    "relu", "relu_", "gelu", "gelu_", "silu", "silu_", "sigmoid", "sigmoid_", "hardswish", "hardswish_",
    "hardsigmoid", "hardsigmoid_", "hardtanh", "hardtanh_", "tanh", "tanh_", "dropout", "dropout_", "feature_dropout",
    "alpha_dropout", "clone", "contiguous", "alias", "detach", "detach_", "_to_copy", "to", "lift_fresh_copy",
    "softmax", "_softmax", "log_softmax", "_log_softmax", "_safe_softmax", "neg", "exp", "log", "sqrt", "rsqrt", "abs",
    "erf", "leaky_relu", "leaky_relu_", "elu", "elu_", "mish", "clamp", "clamp_", "clamp_min", "clamp_max", "relu6",
    "bernoulli", "bernoulli_", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
    "reciprocal", "square", "sign", "logical_not", "bitwise_not", "native_dropout",
    "selu", "celu", "softplus", "log_sigmoid", "glu_placeholder", "fill_", "zero_", "dropout2d", "cos", "sin",
)
def _unary(tr: _Tracer, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    val = node.meta.get("val")
    if label is None:
        return _none_like(node)
    if isinstance(val, (tuple, list)):  # native_dropout: (output, mask)
        return tuple(list(label) for _ in val)
    if isinstance(val, torch.Tensor) and tuple(val.shape) != _shape(node.args[0]):
        return _binary(tr, node)
    return list(label)


@_rule(
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "where", "maximum", "minimum", "eq", "ne",
    "lt", "gt", "le", "ge", "pow", "masked_fill", "masked_fill_", "logical_and", "logical_or", "copy_", "type_as",
    "floor_divide", "remainder", "fmod", "lerp", "addcmul", "addcdiv", "atan2", "hypot", "bitwise_and", "bitwise_or",
)
def _binary(tr: _Tracer, node: torch.fx.Node) -> Any:
    """Broadcasting elementwise op: aligned dimensions are tied index by index."""
    out_shape = _shape(node)
    nd = len(out_shape)
    out: Label = [None] * nd
    seen = [False] * nd
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
            if not seen[od]:
                out[od], seen[od] = label[d], True
            else:
                tr.uf.tie(out[od], label[d])
                if out[od] is None or label[d] is None:
                    out[od] = None
    return out


@_rule("mean", "sum", "amax", "amin", "var", "std", "linalg_vector_norm", "norm", "logsumexp", "var_mean", "prod",
       "max", "min", "argmax", "argmin", "all", "any")
def _reduce(tr: _Tracer, node: torch.fx.Node) -> Any:
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
    if keepdim:
        out = [None if d in dims else v for d, v in enumerate(label)]
    else:
        out = [v for d, v in enumerate(label) if d not in dims]
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):  # (values, indices) or (var, mean)
        return tuple(list(out) for _ in val)
    return out


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
       "upsample_nearest2d", "upsample_bilinear2d", "_adaptive_avg_pool2d", "upsample_bicubic2d")
def _pool(tr: _Tracer, node: torch.fx.Node) -> Any:
    """Spatial ops: channels (dims 0..1) pass through, spatial dims are never prunable."""
    label = tr.lab(node.args[0]) or []
    ndim = len(_shape(node.args[0]))
    spatial = {"1d": 1, "2d": 2, "3d": 3}[_opname(node.target)[-2:]] if _opname(node.target)[-2:] in ("1d", "2d", "3d") else 2
    for v in label[ndim - spatial:]:
        tr.uf.pin(v)
    out = list(label[: ndim - spatial]) + [None] * spatial
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):
        return tuple(list(out) for _ in val)
    return out


@_rule("view", "reshape", "_unsafe_view", "view_copy", "flatten", "unflatten", "squeeze", "squeeze_", "unsqueeze",
       "unsqueeze_", "_reshape_alias", "reshape_as", "view_as")
def _reshape(tr: _Tracer, node: torch.fx.Node) -> Any:
    x = node.args[0]
    label = tr.lab(x)
    in_shape, out_shape = _shape(x), _shape(node)
    if label is None:
        return [None] * len(out_shape)
    return _reshape_label(tr, node, label, in_shape, out_shape)


def _reshape_label(tr: _Tracer, node: torch.fx.Node, label: Label, in_shape: tuple, out_shape: tuple) -> Label:
    out: Label = [None] * len(out_shape)
    ins = [d for d, s in enumerate(in_shape) if s != 1]
    outs = [d for d, s in enumerate(out_shape) if s != 1]
    for d, s in enumerate(in_shape):
        if s == 1:
            tr.uf.pin(label[d])
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
        vecs = [label[d] for d in bi]
        tracked = [k for k, v in enumerate(vecs) if v is not None]
        if not tracked:
            continue
        if len(bi) == 1 and len(bo) == 1:
            out[bo[0]] = vecs[0]
            continue
        if len(tracked) > 1:  # two prunable dimensions merged: keep both whole
            for k in tracked:
                tr.uf.pin(vecs[k])
            continue
        k = tracked[0]
        sizes = [in_shape[d] for d in bi]
        grid_shape = [1] * len(sizes)
        grid_shape[k] = sizes[k]
        merged = np.broadcast_to(vecs[k].reshape(grid_shape), sizes).reshape(-1)
        osizes = [out_shape[d] for d in bo]
        if len(bo) == 1:
            out[bo[0]] = np.ascontiguousarray(merged)
            continue
        axis = _split_axis(tr, node, merged, osizes)
        if axis < 0:
            tr.uf.pin(merged)
            continue
        out[bo[axis]] = _split(tr, merged, osizes, axis)
    return out


def _split_axis(tr: _Tracer, node: torch.fx.Node, merged: np.ndarray, osizes: list[int]) -> int:
    """Which factor of a split dimension stays prunable: one the elements already follow, else
    the head axis of a registered attention form, else the largest factor (so a
    channel shuffle loses the same channel of every group)."""
    grid = tr.uf.roots(merged).reshape(osizes)
    for axis in range(len(osizes)):
        g = np.moveaxis(grid, axis, 0).reshape(osizes[axis], -1)
        if (g == g[:, :1]).all():
            return axis
    for path in reversed(module_paths(node)):
        try:
            module = tr.model.get_submodule(path)
        except AttributeError:
            continue
        form = find_attention_form(module)
        if form is not None:
            axis = head_axis(module, form, osizes)
            return -1 if axis is None else axis
        if any(isinstance(getattr(module, a, None), int) for a in HEAD_ATTRS):
            return -1  # attention of unknown layout: which factor it derives from its input is unknown
    return int(np.argmax(osizes))


def _split(tr: _Tracer, merged: np.ndarray, osizes: list[int], axis: int) -> np.ndarray:
    grid = np.moveaxis(merged.reshape(osizes), axis, 0).reshape(osizes[axis], -1)
    for row in grid:
        first = int(row[0])
        for e in row[1:].tolist():
            tr.uf.union(first, e)
    return np.ascontiguousarray(grid[:, 0])


@_rule("permute", "permute_copy")
def _permute(tr: _Tracer, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    dims = node.args[1]
    if label is None:
        return [None] * len(dims)
    return [label[_norm_dim(d, len(label))] for d in dims]


@_rule("transpose", "swapaxes", "t", "numpy_T", "transpose_")
def _transpose(tr: _Tracer, node: torch.fx.Node) -> Any:
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
def _expand(tr: _Tracer, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0]) or []
    out_shape = _shape(node)
    lead = len(out_shape) - len(label)
    return [None] * lead + [v if v is not None and len(v) == out_shape[lead + d] else None for d, v in enumerate(label)]


@_rule("select", "select_copy")
def _select(tr: _Tracer, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    d = _norm_dim(node.args[1], len(label))
    tr.uf.pin(label[d])
    return [v for i, v in enumerate(label) if i != d]


@_rule("slice", "slice_copy")
def _slice(tr: _Tracer, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    if label is None:
        return _none_like(node)
    shape = _shape(node.args[0])
    d = _norm_dim(_arg(node, 1, "dim", 0), len(label))
    out = list(label)
    if _shape(node)[d] != shape[d]:  # a part of a prunable dimension: keep it whole
        tr.uf.pin(label[d])
        out[d] = None
    return out


@_rule("cat", "concat", "concatenate")
def _cat(tr: _Tracer, node: torch.fx.Node) -> Any:
    tensors = [t for t in node.args[0] if _shape(t) and 0 not in _shape(t)]
    out_shape = _shape(node)
    d = _norm_dim(_arg(node, 1, "dim", 0), len(out_shape))
    out: Label = [None] * len(out_shape)
    parts = []
    for t in tensors:
        label = tr.lab(t) or [None] * len(out_shape)
        parts.append(label[d] if label[d] is not None else np.zeros(_shape(t)[d], dtype=np.int64))
        for od in range(len(out_shape)):
            if od != d:
                if out[od] is None and t is tensors[0]:
                    out[od] = label[od]
                else:
                    tr.uf.tie(out[od], label[od])
    out[d] = _clean(tr, np.concatenate(parts), out_shape[d]) if any(p.any() for p in parts) else None
    return out


@_rule("stack")
def _stack(tr: _Tracer, node: torch.fx.Node) -> Any:
    tensors = node.args[0]
    out_shape = _shape(node)
    d = _norm_dim(_arg(node, 1, "dim", 0), len(out_shape))
    first = tr.lab(tensors[0]) or [None] * (len(out_shape) - 1)
    for t in tensors[1:]:
        for a, b in zip(first, tr.lab(t) or [None] * len(first)):
            tr.uf.tie(a, b)
    return list(first[:d]) + [None] + list(first[d:])


@_rule("split", "split_with_sizes", "chunk", "unsafe_split", "unsafe_chunk", "tensor_split", "unsafe_split_with_sizes")
def _split_op(tr: _Tracer, node: torch.fx.Node) -> Any:
    x = node.args[0]
    label = tr.lab(x)
    outs = node.meta.get("val")
    ndim = len(_shape(x))
    d = _norm_dim(_arg(node, 2, "dim", 0), ndim)
    if label is None or label[d] is None:
        return tuple(list(label) if label else [None] * ndim for _ in outs)
    sizes = [int(o.shape[d]) for o in outs]
    vec = label[d]
    # chunk(n) (and tensor_split into n sections) follows the tensor's size; split(size) takes a
    # size the capture records as a constant, which may be fixed in the code or computed from the tensor.
    op = _opname(node.target)
    adapts = op in ("chunk", "unsafe_chunk") or (op == "tensor_split" and isinstance(_arg(node, 1, "sections"), int))
    equal = len(set(sizes)) == 1
    if equal and not adapts:
        tr.fixed_splits += 1
        equal = not tr.pin_fixed_splits
    if equal:  # equal chunks: the same local index goes in every chunk
        n = sizes[0]
        for k in range(1, len(sizes)):
            tr.uf.tie(vec[:n], vec[k * n:(k + 1) * n])
        piece = _clean(tr, vec[:n], n)
        return tuple([*label[:d], piece, *label[d + 1:]] for _ in sizes)
    tr.uf.pin(vec)
    return tuple([*label[:d], None, *label[d + 1:]] for _ in outs)


@_rule("unbind")
def _unbind(tr: _Tracer, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    outs = node.meta.get("val")
    if label is None:
        return tuple(_none_like(node))
    d = _norm_dim(_arg(node, 1, "dim", 0), len(label))
    tr.uf.pin(label[d])
    return tuple([v for i, v in enumerate(label) if i != d] for _ in outs)


@_rule("getitem")
def _getitem(tr: _Tracer, node: torch.fx.Node) -> Any:
    src = tr.labels.get(node.args[0])
    if isinstance(src, tuple):
        item = src[node.args[1]]
        return list(item) if isinstance(item, list) else item
    return _none_like(node)


def _pin_dims(tr: _Tracer, node: torch.fx.Node, dims: list[int]) -> Any:
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
def _roll(tr: _Tracer, node: torch.fx.Node) -> Any:
    dims = _arg(node, 2, "dims", [])
    return _pin_dims(tr, node, [dims] if isinstance(dims, int) else list(dims) or list(range(len(_shape(node)))))


@_rule("flip")
def _flip(tr: _Tracer, node: torch.fx.Node) -> Any:
    return _pin_dims(tr, node, list(node.args[1]))


@_rule("cumsum", "cumprod")
def _cum(tr: _Tracer, node: torch.fx.Node) -> Any:
    return _pin_dims(tr, node, [node.args[1]])


@_rule("constant_pad_nd", "pad")
def _pad(tr: _Tracer, node: torch.fx.Node) -> Any:
    pad = list(node.args[1])
    ndim = len(_shape(node.args[0]))
    dims = [ndim - 1 - i // 2 for i in range(len(pad)) if pad[i] != 0]
    return _pin_dims(tr, node, sorted(set(dims)))


@_rule("repeat", "tile")
def _repeat(tr: _Tracer, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0]) or [None] * len(_shape(node.args[0]))
    reps = list(node.args[1])
    lead = len(reps) - len(label)
    out = [None] * lead + list(label)
    for d, r in enumerate(reps):
        if r != 1 and out[d] is not None:
            tr.uf.pin(out[d])
            out[d] = None
    return out


@_rule("index", "_unsafe_index")
def _index(tr: _Tracer, node: torch.fx.Node) -> Any:
    label = tr.lab(node.args[0])
    indices = list(node.args[1])
    out_shape = _shape(node)
    for idx in indices:
        tr.pin_label(tr.lab(idx))
    if label is None:
        return [None] * len(out_shape)
    used = [i for i, idx in enumerate(indices) if idx is not None]
    if len(used) == 1:
        p = used[0]
        tr.uf.pin(label[p])
        idx_ndim = len(_shape(indices[p]))
        return list(label[:p]) + [None] * idx_ndim + list(label[p + 1:])
    tr.pin_label(label)
    return [None] * len(out_shape)


@_rule("gather", "scatter", "scatter_add", "index_select", "take_along_dim", "topk", "sort", "argsort", "nonzero")
def _pin_all(tr: _Tracer, node: torch.fx.Node) -> Any:
    for a in _flat_nodes((node.args, node.kwargs)):
        tr.pin_label(tr.labels.get(a))
    return _none_like(node)


@_rule("arange", "zeros", "ones", "full", "empty", "scalar_tensor", "new_zeros", "new_ones", "new_full", "new_empty",
       "rand", "randn", "randint", "linspace", "tensor", "eye", "empty_strided", "sym_size", "sym_numel", "sym_stride",
       "_assert_async", "_assert_scalar", "sym_constrain_range_for_size", "_local_scalar_dense", "item",
       "_assert", "_check", "_check_is_size", "size", "dim", "numel", "stride", "_assert_tensor_metadata")
def _no_coupling(tr: _Tracer, node: torch.fx.Node) -> Any:
    """Creates tensors of fixed shape or reads sizes: nothing to tie."""
    return _none_like(node)


@_rule("embedding")
def _embedding(tr: _Tracer, node: torch.fx.Node) -> Any:
    weight, indices = node.args[0], node.args[1]
    lw = tr.lab(weight) or [None, None]
    tr.uf.pin(lw[0])
    tr.pin_label(tr.lab(indices))
    tr.mark_source(weight, 1)
    return [None] * len(_shape(indices)) + [lw[1]]


@_rule("linear")
def _linear(tr: _Tracer, node: torch.fx.Node) -> Any:
    x, weight, bias = node.args[0], node.args[1], _arg(node, 2, "bias")
    lx = tr.lab(x) or [None] * len(_shape(x))
    lw = tr.lab(weight) or [None, None]
    tr.uf.tie(lx[-1], lw[1])
    lb = tr.lab(bias)
    if lb is not None:
        tr.uf.tie(lb[0], lw[0])
    tr.mark_source(weight, 0)
    out = list(lx[:-1]) + [lw[0]]
    tr.macs_terms.append([_count(v, s) for v, s in zip(out, _shape(node))] + [_count(lw[1], _shape(weight)[1])])
    return out


def _count(vec: Vec, size: int) -> Any:
    return vec if vec is not None else size


@_rule("conv1d", "conv2d", "conv3d", "convolution", "_convolution")
def _conv(tr: _Tracer, node: torch.fx.Node) -> Any:
    name = _opname(node.target)
    x, weight, bias = node.args[0], node.args[1], _arg(node, 2, "bias")
    if name in ("convolution", "_convolution"):
        if node.args[6]:
            raise UnsupportedOpError(
                f"slimforge.prune has no rule for transposed convolutions (module {module_path(node)!r}). "
                f"Skip that layer: slimforge.prune(..., skip=[{module_path(node)!r}])."
            )
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
    out = [lx[0], vo] + [None] * (len(out_shape) - 2)
    kernel = math.prod(wshape[2:])
    tr.macs_terms.append([_count(v, s) for v, s in zip(out, out_shape)] + [_count(vl, cl), kernel])
    return out


@_rule("matmul", "bmm", "mm", "baddbmm", "addmm")
def _matmul(tr: _Tracer, node: torch.fx.Node) -> Any:
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
            for d, v in enumerate(lc):
                if sc[d] != 1:
                    tr.uf.tie(out[d + off], v)
    tr.macs_terms.append([_count(v, s) for v, s in zip(out, out_shape)] + [_count(la[-1], sa[-1])])
    if len(sb) == 2:  # x @ W with W a parameter (Hugging Face's Conv1D): W's last dimension is an output
        tr.mark_source(b, 1)
    return out


def _broadcast_tie(tr: _Tracer, parts: list[tuple[list, tuple]], out_shape: tuple) -> Label:
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


@_rule("scaled_dot_product_attention", "_scaled_dot_product_attention_math", "_scaled_dot_product_flash_attention_for_cpu")
def _sdpa(tr: _Tracer, node: torch.fx.Node) -> Any:
    q, k, v = node.args[:3]
    mask = _arg(node, 3, "attn_mask")
    lq, lk, lv = (tr.lab(t) or [None] * len(_shape(t)) for t in (q, k, v))
    sq, sk, sv = _shape(q), _shape(k), _shape(v)
    if _arg(node, 7, "enable_gqa", False) and len(sq) >= 3 and sk[-3] != sq[-3]:
        # grouped-query: key/value head j serves query heads j*rep .. (j+1)*rep-1 (repeat_interleave)
        rep = sq[-3] // sk[-3]
        lk, lv = ([*lab[:-3], None if lab[-3] is None else np.repeat(lab[-3], rep), *lab[-2:]] for lab in (lk, lv))
        sk, sv = ((*s[:-3], sq[-3], *s[-2:]) for s in (sk, sv))
    tr.uf.tie(lq[-1], lk[-1])
    tr.uf.tie(lk[-2], lv[-2])
    batch_shape = tuple(torch.broadcast_shapes(sq[:-2], sk[:-2], sv[:-2]))
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
def _prelu(tr: _Tracer, node: torch.fx.Node) -> Any:
    """PReLU's weight holds one slope per channel (dim 1), or a single shared one."""
    x, weight = node.args[0], node.args[1]
    lx = tr.lab(x) or [None] * len(_shape(x))
    lw = tr.lab(weight) if isinstance(weight, torch.fx.Node) else None
    shape = _shape(weight) if isinstance(weight, torch.fx.Node) else ()
    if lw is not None and len(lx) > 1 and len(shape) == 1 and shape[0] == _shape(x)[1] and shape[0] > 1:
        tr.uf.tie(lw[0], lx[1])
    return list(lx)


@_rule(*_BN)
def _batch_norm(tr: _Tracer, node: torch.fx.Node) -> Any:
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
def _layer_norm(tr: _Tracer, node: torch.fx.Node) -> Any:
    x, normalized = node.args[0], node.args[1]
    lx = tr.lab(x) or [None] * len(_shape(x))
    k = len(normalized)
    params = [tr.lab(p) for p in node.args[2:4] if isinstance(p, torch.fx.Node)]
    for j in range(k):
        d = len(lx) - k + j
        if not params:  # no affine weight to slice: the normalised size is fixed
            tr.uf.pin(lx[d])
        for lp in params:
            tr.uf.tie(lx[d], lp[j])
    val = node.meta.get("val")
    if isinstance(val, (tuple, list)):
        return tuple([list(lx)] + [_none_like_tensor(t) for t in val[1:]])
    return list(lx)


@_rule("group_norm", "native_group_norm")
def _group_norm(tr: _Tracer, node: torch.fx.Node) -> Any:
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


@_rule("einsum")
def _einsum(tr: _Tracer, node: torch.fx.Node) -> Any:
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
