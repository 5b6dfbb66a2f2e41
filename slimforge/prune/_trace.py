"""Tracing a captured model into a :class:`~slimforge.prune._graph.DependencyGraph`: every op's
output dimensions get labels from its rule (``_rules_view``, ``_rules_math``), and the labels tie
elements together in the union-find."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from slimforge.prune import _rules_math, _rules_rnn, _rules_view  # noqa: F401  (registers the op rules)
from slimforge.prune._capture import (
    PIN, RULES, Label, _first_occurrence_order, head_counts, _flat_nodes, _has_tracked_tensor, _none_like, _opname, qualified_opname, _UnionFind, export_model, module_path, module_paths, bare_backbone, output_leaf_fields, output_leaves_to_keep, per_layer_states, state_space_mixer,
)
from slimforge.prune._graph import DependencyGraph, Group, Slot, Unit
from slimforge.prune.attention import find_attention_form
from slimforge.prune.plan import is_tensor_attribute, shape_attribute
from slimforge.prune.errors import PruningError, UnsupportedOpError


def build_dependency_graph(
    model: nn.Module,
    example_inputs: tuple,
    example_kwargs: dict | None = None,
    *,
    skip: Sequence[str] = (),
    pin_fixed_splits: bool = False,
    attention_modes: Mapping[type, str] | None = None,
    keep_outputs: bool | str = "auto",
) -> DependencyGraph:
    """Capture ``model`` and group its coupled channel dimensions (see the module docstring).

    ``pin_fixed_splits``: keep whole every dimension split into sizes the code fixes
    (``x.split(26, 1)``), which pruning cannot change; by default its equal pieces are pruned
    alike, right when the size is computed from the tensor (``x.split(x.shape[1] // 2, 1)``).
    ``attention_modes``: per class of attention of no registered form, how it is pruned (:data:`ATTENTION_MODES`;
    "heads" where not given).
    ``keep_outputs=False``: the model's outputs may narrow with it (a bare backbone); by default their widths stay;
    ``"project"``: an output whose width reaches enough parameters that narrowing it saves more than a projection
    back costs (a residual stream) narrows and is recorded in ``graph.projected_outputs``
    (:mod:`slimforge.prune._output_projection` puts it back to its width); others keep their widths; ``"auto"``
    (default): ``"project"`` for a bare backbone (:func:`~slimforge.prune._capture.bare_backbone`), else True.
    """
    ep = export_model(model, example_inputs, example_kwargs or {})
    modes = dict(attention_modes or {})
    while True:
        tracer = _Tracer(model, ep, skip, pin_fixed_splits, modes, keep_outputs)
        try:
            tracer.run()
            break
        except UnsupportedOpError:
            # An op without a rule inside an attention of no registered form (Longformer's as_strided
            # chunks): that attention keeps its heads, and the rest is traced again.
            around = _unknown_attention_around(model, tracer.current, modes)
            if around is None:
                raise
            modes[around] = ATTENTION_MODES[-1]
    graph = tracer.finish()
    graph.unreached = unreached_modules(model, ep, followed=tracer.followed)
    return graph


def unreached_modules(model: nn.Module, ep: torch.export.ExportedProgram, followed: set[str] = frozenset()) -> list[str]:
    """Modules owning a parameter the captured forward never reads (LUKE's entity-aware attention when the example
    has no ``entity_ids``): pruning cannot see how they connect, so it leaves them as they are. ``followed``: unread
    parameters tied to others all the same (a training-only embedding, a global projection's local twin)."""
    named = dict(model.named_parameters(remove_duplicate=False))
    read = {id(named[fqn]) for fqn in read_parameters(ep) | set(followed) if fqn in named}
    paths = [n.rpartition(".")[0] for n, p in model.named_parameters() if id(p) not in read]
    return list(dict.fromkeys(paths))


def read_parameters(ep: torch.export.ExportedProgram) -> set[str]:
    """Names of the parameters the captured forward reads (torch.export lifts every parameter, read or not)."""
    used = {n.name for n in ep.graph.nodes if n.op == "placeholder" and n.users}
    return {fqn for ph, fqn in ep.graph_signature.inputs_to_parameters.items() if ph in used}


def matches(path: str, patterns: Sequence[str]) -> bool:
    """``path`` matches a glob pattern, or lies inside a module that does."""
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(path, p + ".*") for p in patterns)


# How an attention of no registered form is pruned (see ``unknown_attention``), tried in this order: "heads" (the
# head counts it keeps in attributes follow whole heads, found where its forward splits channels into heads),
# "coupled" (the same, its input's width tied to its heads, head_dim channels to a head: a forward that reshapes
# to ``C // num_heads`` of its input's width C, or back to C), "opaque" (its heads stay; see ``_opaque_open_dims``).
ATTENTION_MODES = ("heads", "coupled", "opaque")


def unknown_attention(module: nn.Module) -> bool:
    """Attention of no registered form, as written by hand: it keeps a head count in an attribute
    (:func:`head_counts`) and holds projections (parameters, linear layers or convolutions of its own)."""
    if find_attention_form(module) is not None or not head_counts(module):
        return False
    if state_space_mixer(module):
        return False
    if any((form := find_attention_form(c)) is not None and not form.part for c in module.children()):
        return False  # a block around an attention of a known form (SigLIP 2's pooling head keeps num_heads and a probe)
    # The attention itself (it holds the projections), not a block that merely passes num_heads on.
    return holds_layers(module)


def holds_layers(module: nn.Module) -> bool:
    """The module has parameters, linear layers or convolutions of its own (not only through deeper blocks)."""
    return bool(module._parameters) or any(isinstance(c, (nn.Linear, nn.modules.conv._ConvNd)) for c in module.children())


def form_attention(module: nn.Module) -> bool:
    """An attention class that a registered form matches and that counts its heads in an attribute (a user's own
    fairseq or ESM ``q_proj`` ... ``out_proj`` with ``num_heads`` and ``head_dim``; Hugging Face PvT-v2): the form
    prunes its heads, and when its forward then fails (it checks its input's width against ``self.embed_dim``,
    or reshapes its heads back to its input's width) it may go on to the "coupled" mode."""
    return find_attention_form(module) is not None and bool(head_counts(module))


def _unknown_attention_around(model: nn.Module, node: torch.fx.Node | None, modes: Mapping[type, str]) -> type | None:
    """The class of the innermost attention of no registered form whose forward ran ``node`` and whose heads
    may still go (its mode is not "opaque"), or None."""
    for path in reversed(module_paths(node) if node is not None else []):
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        if unknown_attention(module):
            return type(module) if modes.get(type(module), ATTENTION_MODES[0]) != ATTENTION_MODES[-1] else None
    return None


def _opaque_attention(module: nn.Module, modes: Mapping[type, str] | None = None) -> bool:
    """Attention whose dimensions stay as they are: ``nn.MultiheadAttention`` before its stand-in, and an
    attention of no registered form whose heads could not follow (``modes`` says "opaque" for its class)."""
    if find_attention_form(module) is not None:
        return False
    if isinstance(module, nn.MultiheadAttention):
        return True
    if not unknown_attention(module) or (modes or {}).get(type(module), ATTENTION_MODES[0]) != ATTENTION_MODES[-1]:
        return False
    # Its parameters stay where it keeps num_heads / n_heads (else only the splits into heads stay whole: ConvBERT's
    # num_attention_heads, whose span convolutions keep their own widths) and holds its projections.
    return (any(isinstance(getattr(module, a, None), int) for a in ("num_heads", "n_heads"))
            and (bool(module._parameters) or any(isinstance(c, nn.Linear) for c in module.children())))


def _attention_slots(model: nn.Module, field: str) -> set[tuple[str, int]]:
    """(state_dict key, dim) that attention forms name in ``field``: ``sources``, parameters that produce
    heads without being a layer's weight; ``whole``, dimensions to keep whole (a single head's channels)."""
    slots = set()
    for path, module in model.named_modules():
        form = find_attention_form(module)
        named = getattr(form, field, None) if form is not None else None
        if named is not None:
            slots.update((f"{path}.{name}" if path else name, dim) for name, dim in named(module))
    return slots


def _coupled_whole_inputs(model: nn.Module, modes: Mapping[type, str]) -> set[tuple[str, int]]:
    """In "coupled" mode an attention's input width is tied to its heads; a single head kept whole (the form's
    ``whole``) then keeps the width its projections read whole too (PvT-v2's first stage reshapes its one head
    back to its input's width)."""
    slots = set()
    for path, module in model.named_modules():
        form = find_attention_form(module) if modes.get(type(module)) == "coupled" else None
        if form is not None and form.whole is not None:
            slots.update((f"{path}.{name}" if path else name, 1) for name, dim in form.whole(module) if dim == 0)
    return slots


def _kept_outputs(node: torch.fx.Node, specs: list, kept: set[int]) -> list[tuple[int, torch.fx.Node]]:
    """(position among the output specs, node) of the output node's arguments at the positions ``kept``. Matched by
    position: a spec's name can differ from its node's (Reformer's captured graph returns ``linear_13`` where its
    signature says ``getitem_8``), and a logits output matched by name alone was then left free to narrow."""
    outs = node.args[0] if isinstance(node.args[0], (tuple, list)) else (node.args[0],)
    if len(outs) == len(specs):
        return [(i, out) for i, out in enumerate(outs) if i in kept and isinstance(out, torch.fx.Node)]
    position = {getattr(specs[i].arg, "name", None): i for i in kept}
    return [(position[out.name], out) for out in _flat_nodes(node.args[0]) if out.name in position]


_NORMS = ("layer_norm", "rms_norm")
_CASTS = ("to", "_to_copy", "contiguous", "clone", "dropout", "alias", "detach", "type_as")


def _through_casts(node: Any) -> Any:
    """The node a chain of casts and copies (``x.to(dtype)``, ``contiguous``, dropout) starts from."""
    while isinstance(node, torch.fx.Node) and node.op == "call_function" and _opname(node.target) in _CASTS and node.args:
        node = node.args[0]
    return node


def _through_transposes(node: Any, dim: int) -> tuple[Any, int]:
    """The node a chain of transposes / permutes starts from, and which of its dimensions ``dim`` is."""
    while isinstance(node, torch.fx.Node) and node.op == "call_function" and _opname(node.target) in ("transpose", "t", "permute"):
        ndim = node.meta["val"].dim()
        if _opname(node.target) == "permute":
            dim = list(node.args[1])[dim] % ndim
        elif _opname(node.target) == "transpose":
            a, b = (d % ndim for d in node.args[1:3])
            dim = b if dim == a else a if dim == b else dim
        else:
            dim = 1 - dim
        node = node.args[0]
    return node, dim


# A parameter only the training forward reads -> the parameters (relative to its module; the first present is taken)
# whose dimension carries the same channels, and that dimension. wav2vec 2.0 and its family (HuBERT, WavLM, UniSpeech,
# SEW, data2vec-audio) replace masked frames of the feature projection's output with ``masked_spec_embed``; their layer
# drop makes the training forward uncapturable, so the capture runs in eval mode, where the embedding is never read,
# and it kept the old width (a fine-tuning forward then failed on it).
TRAINING_ONLY = {"masked_spec_embed": (("feature_projection.projection.weight", 0), ("feature_projection.weight", 0))}


def _kernel_slots(model: nn.Module) -> set[tuple[str, int]]:
    """(weight name, dimension) of every convolution's spatial kernel dimensions, which never shrink: whole from the
    start, so a weight computed from its parameter before the convolution (timm's ScaledStdConv2d standardises
    ``weight.reshape(1, out, -1)``, merging the input channels with the kernel) keeps its input channels prunable."""
    return {(f"{path}.weight" if path else "weight", d)
            for path, module in model.named_modules(remove_duplicate=False) if isinstance(module, nn.modules.conv._ConvNd)
            for d in range(2, module.weight.dim())}


# The ratio at which keep_outputs="project" / "fill" weighs a projection's cost against what narrowing an output saves.
PROJECTION_BREAK_EVEN_RATIO = 0.3
# The least share of a model's parameters that narrowing an output must save for keep_outputs="project" or "fill" to do it.
PROJECTION_MIN_SAVING = 0.02


class _Tracer:
    def __init__(self, model: nn.Module, ep: torch.export.ExportedProgram, skip: Sequence[str], pin_fixed_splits: bool = False,
                 attention_modes: Mapping[type, str] | None = None, keep_outputs: bool | str = "auto") -> None:
        self.model = model
        self.keep_outputs = keep_outputs
        self.projected: list[tuple[int, str | None, int | None, Any]] = []  # keep_outputs="project": (leaf, field, part, label)
        self.attention_modes = dict(attention_modes or {})
        self.ep = ep
        self.skip = list(skip)
        self.pin_fixed_splits = pin_fixed_splits
        self.fixed_splits = 0
        self.uf = _UnionFind()
        self.labels: dict[torch.fx.Node, Any] = {}
        self.slots: list[Slot] = []
        self.slot_of: dict[tuple[str, int], int] = {}
        self.slot_starting_at: dict[int, int] = {}  # first element of a parameter dimension -> its slot
        self.sources: set[int] = set()  # slot indices that are output dimensions
        self.macs_terms: list[list[Any]] = []
        # Query heads pruned within their key/value groups (AttentionForm.query_groups): per attention, the heads'
        # elements as (groups, heads per group), each group to keep as many as the others; and the first element of
        # an expand's per-group repeats -> the number of groups, until a view merges the two into heads.
        self.balanced: list[np.ndarray] = []
        self.group_repeats: dict[int, int] = {}
        self.records: list[tuple[torch.fx.Node, Any]] = []
        self.current: torch.fx.Node | None = None  # the node being traced (for slimforge.prune.explain)
        sig = ep.graph_signature
        self.param_names = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **_attribute_tables(model, sig)}
        self.placeholder_of: dict[str, torch.fx.Node] = {}
        self.pinned_modules = self._pinned_modules()
        self.opaque = {p for p in self.pinned_modules if not (self.skip and p and matches(p, self.skip))}
        self.opaque_open = self._opaque_open_dims()
        self.extra_sources = _attention_slots(model, "sources")
        self.whole = _attention_slots(model, "whole") | _kernel_slots(model) | _coupled_whole_inputs(model, self.attention_modes)
        self.read = read_parameters(ep)
        self.followed: set[str] = set()  # unread parameters tied to read ones (training-only, ``AttentionForm.twins``)

    # ------------------------------------------------------------------ set-up

    def _pinned_modules(self) -> list[str]:
        paths = []
        for path, module in self.model.named_modules():
            if _opaque_attention(module, self.attention_modes) or (self.skip and path and matches(path, self.skip)):
                paths.append(path)
        return paths

    def _param_pinned(self, name: str) -> bool:
        """A parameter of a skipped module or of an attention of no known form (whose dimensions stay, less those
        :meth:`_opaque_open_dims` leaves open)."""
        owner = name.rpartition(".")[0]
        return any(owner == p or owner.startswith(p + ".") or p == "" for p in self.pinned_modules)

    def _opaque_open_dims(self) -> dict[str, set[int]]:
        """Per parameter of an attention of no known form, the dimensions that may still shrink: a linear layer's
        input columns (what enters the module: the residual width), and its rows where its output leaves the module
        (the output projection). Every other dimension stays, and with them the heads' sizes its forward derives. A
        forward that derives a size from its input fails once that input narrows, and the module is then kept
        whole entirely (``structured._prune_without_failing_module``)."""
        if not self.opaque:
            return {}
        open_dims: dict[str, set[int]] = {}
        for node in self.ep.graph.nodes:
            op = _opname(node.target) if node.op == "call_function" else None
            owner = next((p for p in module_paths(node) if p in self.opaque), None) if op in ("linear", *_NORMS) else None
            if owner is None or len(node.args) < 2:
                continue
            if op in _NORMS:  # a norm of what enters the module (Perceiver's layernorm1 of its input): its width follows
                source = _through_casts(node.args[0])
                if isinstance(source, torch.fx.Node) and owner not in module_paths(source):
                    for arg in node.args[2:4]:
                        name = self.param_names.get(getattr(arg, "name", None))
                        if name is not None:
                            open_dims.setdefault(name, set()).add(0)
                continue
            name = self.param_names.get(getattr(node.args[1], "name", None))
            if name is None:
                continue
            dims = open_dims.setdefault(name, set())
            dims.add(1)
            if any(user.op == "output" or owner not in module_paths(user) for user in node.users):
                dims.add(0)
                bias = self.param_names.get(getattr(node.args[2], "name", None)) if len(node.args) > 2 else None
                if bias is not None:
                    open_dims.setdefault(bias, set()).add(0)
        return open_dims

    # ------------------------------------------------------------------ run

    def run(self) -> None:
        specs = self.ep.graph_signature.output_specs
        user = [i for i, spec in enumerate(specs) if spec.kind == torch.export.graph_signature.OutputKind.USER_OUTPUT]
        # A transformers output keeps its prediction's shape (logits); its hidden states may narrow.
        kept = {user[i] for i in output_leaves_to_keep(self.ep, len(user))} if self.keep_outputs else set()
        for node in self.ep.graph.nodes:
            self.current = node
            if node.op == "placeholder":
                self.labels[node] = self._placeholder(node)
            elif node.op == "call_function":
                self.labels[node] = self._call(node)
                self.records.append((node, self.labels[node]))
            elif node.op == "output":
                self._settle_outputs(node, specs, user, kept)
            else:
                raise UnsupportedOpError(f"unexpected graph node {node.op} {node.target}")
        self._tie_training_only()
        self._tie_unread_twins()

    def _settle_outputs(self, node: torch.fx.Node, specs: list, user: list[int], kept: set[int]) -> None:
        """Pin the outputs whose widths stay; with keep_outputs="project" ("auto" for a bare backbone), record instead
        those worth projecting back to their width (a residual stream), and let a transformers output's per-layer
        states (``hidden_states``, a tuple) narrow as they do beside logits; other fields of several tensors (a
        backbone's ``feature_maps``) are projected tensor by tensor where worth it (a ViT backbone's maps are its
        residual), else keep their widths."""
        mode = self.keep_outputs
        if mode == "auto":
            mode = "project" if bare_backbone(self.model, self.ep) else True
        fields = output_leaf_fields(self.ep, len(user)) if mode in ("project", "fill") else None
        for i, out in _kept_outputs(node, specs, kept):
            label = self.labels.get(out)
            if fields is not None and i in user:
                leaf = user.index(i)
                field, nested = fields[leaf]
                if nested and per_layer_states(field):  # hidden_states, attentions: narrow as beside logits
                    continue
                if self._worth_projecting(label):
                    part = sum(1 for f in fields[:leaf] if f[0] == field) if nested else None  # its place in the field
                    self.projected.append((leaf, field, part, label))
                    continue
            self.pin_label(label)

    def _worth_projecting(self, label: Any) -> bool:
        """Does narrowing this output's width save enough? Narrowing saves about r (0.3) of every parameter tensor
        one of whose dimensions shares a prunable class with the output; worth it where that is more than the layer
        that puts the output back costs (a dense ``OutputProjection``: (1 - r) w^2 parameters for width w; an
        ``OutputFill``, ``keep_outputs="fill"``: w constants and an r w x (1 - r) w mix) and at least
        :data:`PROJECTION_MIN_SAVING` of the model: a residual stream, which every layer reads and writes (15-25% of
        a transformer), but not a single layer's outputs (BERT's pooler, AltCLIP's text projection, a pose head's
        heatmaps), which keep their width, so a transformers model keeps its plain-transformers folder."""
        if not isinstance(label, list):
            return False
        vectors = [v for v in label if isinstance(v, np.ndarray)]
        wanted = {r for v in vectors for r in self.uf.roots(v).tolist() if r != PIN}
        if not wanted:
            return False
        width = max(len(v) for v in vectors if wanted.intersection(self.uf.roots(v).tolist()))
        sizes = {name: p.numel() for name, p in self.model.named_parameters(remove_duplicate=False)}
        touched = {s.name for s in self.slots if s.name in sizes and wanted.intersection(self.uf.roots(s.elements).tolist())}
        r = PROJECTION_BREAK_EVEN_RATIO
        # The fill asks for twice its estimate: on MobileNetV3's 1280 head channels it was estimated to save 0.6% of
        # the model net and cost 2.1% instead (the removed units are not r of the width exactly).
        cost = 2 * (width + r * (1 - r) * width * width) if self.keep_outputs == "fill" else (1 - r) * width * width
        saved = r * sum(sizes[name] for name in touched)
        return saved > max(cost, PROJECTION_MIN_SAVING * sum(sizes.values()))


    def _tie_training_only(self) -> None:
        """Parameters only a training forward reads, which an eval-mode capture never reaches, follow the parameter
        dimension that carries their channels (see :data:`TRAINING_ONLY`)."""
        for name, dim in list(self.slot_of):
            owner, _, attr = name.rpartition(".")
            if attr not in TRAINING_ONLY or dim != 0 or name in self.read:
                continue
            for relative, other_dim in TRAINING_ONLY[attr]:
                other = (f"{owner}.{relative}" if owner else relative, other_dim)
                if other in self.slot_of:
                    a, b = self.slots[self.slot_of[(name, dim)]].elements, self.slots[self.slot_of[other]].elements
                    if len(a) == len(b):
                        self.uf.tie(a, b)
                        self.followed.add(name)
                    break

    def _tie_unread_twins(self) -> None:
        """Children an attention form names as twins of others (``AttentionForm.twins``) whose parameters the example
        never reads follow their twins' dimensions (and are no longer counted as unreached)."""
        for path, module in self.model.named_modules():
            form = find_attention_form(module)
            for child, twin in form.twins(module) if form is not None and form.twins is not None else []:
                prefix = f"{path}." if path else ""
                names = [(f"{prefix}{child}.{attr}", f"{prefix}{twin}.{attr}") for attr in ("weight", "bias")]
                if any(name in self.read for name, _ in names):
                    continue
                for name, other in names:
                    for dim in (0, 1):
                        a, b = self.slot_of.get((name, dim)), self.slot_of.get((other, dim))
                        if a is not None and b is not None and len(self.slots[a].elements) == len(self.slots[b].elements):
                            self.uf.tie(self.slots[a].elements, self.slots[b].elements)
                    self.followed.add(name)

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
            self.slot_starting_at[int(vec[0])] = len(self.slots)
            self.slots.append(Slot(name, dim, vec))
            label.append(vec)
            if (name, dim) in self.extra_sources:
                self.sources.add(len(self.slots) - 1)
            if (name, dim) in self.whole:
                self.uf.pin(vec)
        if self._param_pinned(name):
            open_dims = self.opaque_open.get(name, set())
            self.pin_label([None if d in open_dims else v for d, v in enumerate(label)])
        return label

    def _call(self, node: torch.fx.Node) -> Any:
        target = node.target
        opname = _opname(target)
        qualified = qualified_opname(target)
        # A custom op is looked up by its full name: mylib::add is not aten's add.
        rule = RULES.get(qualified) if qualified and not qualified.startswith("aten::") else RULES.get(opname)
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
                f"Skip that layer so its channels stay as they are: slimforge.prune(..., skip=[{(path or '*')!r}]); or "
                f"teach slimforge the op: slimforge.prune.register_op_rule({qualified or opname!r}, like='relu') "
                f"for an elementwise op, or a rule of your own (docs/extending.md)."
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
        """Dimension ``dim`` of ``weight`` produces units: of the parameter itself, or of the one it
        transposes (experts' weights stored (experts, out, in) and transposed for a grouped matmul)."""
        label, label_dim = self.lab(weight), dim
        weight, dim = _through_transposes(weight, dim)
        name = self.param_names.get(getattr(weight, "name", ""), None)
        if name is not None and (name, dim) in self.slot_of:
            self.sources.add(self.slot_of[(name, dim)])
            return
        # A weight computed from a parameter (timm's ScaledStdConv2d standardises its weight in forward; a scaled or
        # re-parametrised weight alike): its dimension still carries the parameter's own elements where every op on
        # the way kept them, so the parameter's slot is the source.
        vec = label[label_dim] if label is not None and label_dim < len(label) else None
        slot = self.slot_starting_at.get(int(vec[0])) if vec is not None and len(vec) else None
        if slot is not None and np.array_equal(self.slots[slot].elements, vec):
            self.sources.add(slot)

    def attention_mode(self, module: nn.Module) -> str:
        return self.attention_modes.get(type(module), ATTENTION_MODES[0])

    def attribute_slot(self, node: torch.fx.Node, attr: str, index: int, vec: Any, value: list[int], path: str | None = None) -> bool:
        """Make entry ``index`` of the calling module's ``attr`` (a shape the module keeps in an
        attribute, not in a tensor: a LayerNorm's ``normalized_shape`` without weights) a prunable
        dimension tied to ``vec``. False when the module holds no such attribute equal to ``value``
        (the graph's constant), or it must stay as it is: then the caller pins ``vec``. ``path``: another
        module's attribute than the calling one's (an enclosing attention's head count)."""
        if vec is None:
            return True
        path = module_path(node) if path is None else path
        try:
            module = self.model.get_submodule(path)
        except AttributeError:
            return False
        if shape_attribute(module, attr) != [int(v) for v in value] or self._param_pinned(f"{path}.{attr}"):
            return False
        key = (f"{path}.{attr}" if path else attr, index)
        if key in self.slot_of:
            self.uf.tie(self.slots[self.slot_of[key]].elements, vec)
        else:
            self.slot_of[key] = len(self.slots)
            self.slots.append(Slot(key[0], index, vec))
        return True

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
        reach: dict[int, list[int]] = {}  # per unit: the slots it appears in
        for si, present in enumerate(slot_units):
            if present:
                group_slots.setdefault(gu.find(ids[present[0]]), []).append(si)
            for root in present:
                reach.setdefault(root, []).append(si)
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
            signature: dict[tuple[int, ...], int] = {}
            classes = [signature.setdefault(tuple(reach[r]), len(signature)) for r in members]
            groups.append(Group(f"{slot.name}:{slot.dim}", slot.name.rpartition(".")[0], [Unit(r) for r in members],
                                width, slot_list, [producer.get(r, -1) for r in members], classes))
        return DependencyGraph(self.slots, groups, roots, self.macs_terms, uf, records=self.records, fixed_splits=self.fixed_splits,
                               projected_outputs=self.projected, balanced=self.balanced)


def _attribute_tables(model: nn.Module, sig: Any) -> dict[str, str]:
    """The captured constants that are floating-point tensors a module holds as a plain attribute, neither parameter
    nor buffer (VideoMAE's sinusoidal position table, ``self.position_embeddings = table(...)``): placeholder -> name.
    They are sliced with the channels they meet, as a buffer would be, and the slicing is replayed on load."""
    out = {}
    for placeholder, name in getattr(sig, "inputs_to_lifted_tensor_constants", {}).items():
        if is_tensor_attribute(model, name):
            out[placeholder] = name
    return out
