"""The ground the dependency graph stands on: element labels (PIN, Vec, Label), the union-find
over elements, capture with ``torch.export``, helpers that read captured nodes, and the op-rule
registry that the rule modules (``_rules_view``, ``_rules_math``) fill. See ``_graph`` for how
coupling is found."""

from __future__ import annotations

import contextlib
import io
import logging
import operator
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from slimforge.prune._hf_varlen_capture import forward_parameters, packed_segments_as_flash
from slimforge.prune.errors import PruningError


log = logging.getLogger(__name__)

PIN = 0
Vec = np.ndarray | None  # elements of one dimension (int64), or None: not prunable
Label = list  # list[Vec], one entry per tensor dimension


class _UnionFind:
    """Union-find over integer elements; ``PIN`` (0) is always the root of its class."""

    def __init__(self) -> None:
        self.parent: list[int] = [PIN]
        self.on_pin: Callable[[int], None] | None = None  # called with a root as it joins PIN (slimforge.prune.explain)

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
            if self.on_pin is not None and PIN in (ra, rb):
                self.on_pin(max(ra, rb))
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


# ----------------------------------------------------------------------------- tracing


class Tracing(Protocol):
    """What an op rule sees of the tracer (``_trace._Tracer``): the labels so far, the union-find,
    the MAC terms, and the ways to change them."""

    model: nn.Module
    uf: _UnionFind
    labels: dict[torch.fx.Node, Any]
    param_names: dict[str, str]  # graph input name -> parameter or buffer name
    macs_terms: list[list[Any]]
    pin_fixed_splits: bool
    fixed_splits: int

    def lab(self, arg: Any) -> Label | None: ...

    def mark_source(self, weight: Any, dim: int) -> None: ...

    def pin_label(self, label: Any) -> None: ...

    def attribute_slot(self, node: torch.fx.Node, attr: str, index: int, vec: Any, value: list[int], path: str | None = None) -> bool: ...

    def attention_mode(self, module: nn.Module) -> str: ...



def export_model(model: nn.Module, args: tuple, kwargs: dict) -> torch.export.ExportedProgram:
    """Export in training mode (so auxiliary heads used only in training are seen), then restore. A model
    whose training forward cannot be captured (LayerDrop's random skip of whole layers in M2M100 or LED
    branches on a random number) is captured in eval mode instead. A transformers model whose capture fails is
    captured again with the position ids it computes for itself (Qwen2-VL's 3-D positions, a data-dependent loop;
    :func:`_with_its_own_positions`), or, given ``input_ids`` without ``attention_mask``, with a mask of ones, which
    it treats as no mask (LongT5's local attention builds its blocks from the mask, and under torch.export it does
    not make one itself)."""
    was_training = model.training
    try:
        with _quiet_draft_report(), _forward_calls_recorded(model):
            return _export_with_fallbacks(model, args, kwargs)
    finally:
        model.train(was_training)


# Where Module.__call__ calls forward: _call_impl, or the function nested in it that runs the hooks.
_CALL_IMPL = {nn.Module._call_impl.__code__,
              *(c for c in nn.Module._call_impl.__code__.co_consts if isinstance(c, type(nn.Module._call_impl.__code__)))}


@contextlib.contextmanager
def _forward_calls_recorded(model: nn.Module) -> Iterator[None]:
    """While capturing: a submodule's ``forward`` called directly (mistral-src's ``self.attention.forward(...)``,
    BERT4Rec's ``lambda _x: self.attention.forward(_x, ...)``) goes through ``__call__``, so the capture records the
    module whose code runs (torch.export records only modules called). Called from ``__call__``, or from the module's
    own code (a subclass's ``super().forward(...)``), it is the class's ``forward`` as always. Patched on the classes
    (not torch's own), not the instances: torch.export names modules differently when an instance has a forward."""
    patched = []
    for cls in {type(m) for m in model.modules()}:
        own = cls.__dict__.get("forward")
        if own is None or cls.__module__.startswith("torch.") or getattr(own, "_slimforge_routed", False):
            continue

        def forward(self: nn.Module, *args: Any, _own: Any = own, **kwargs: Any) -> Any:
            caller = sys._getframe(1)
            if caller.f_code in _CALL_IMPL or caller.f_locals.get("self") is self:
                return _own(self, *args, **kwargs)
            return self(*args, **kwargs)

        forward._slimforge_routed = True  # type: ignore[attr-defined]
        forward.__wrapped__ = own  # type: ignore[attr-defined]  (inspect.signature reads the real one)
        setattr(cls, "forward", forward)
        patched.append((cls, own))
    try:
        yield
    finally:
        for cls, own in patched:
            setattr(cls, "forward", own)


def _export_with_fallbacks(model: nn.Module, args: tuple, kwargs: dict) -> torch.export.ExportedProgram:
    try:
        return _export_in_some_mode(model, args, kwargs)
    except PruningError as first:
        for fallback, what in ((_with_its_own_positions, "the position ids it computes"), (_with_a_mask_of_ones, "attention_mask of ones")):
            retried = fallback(model, args, kwargs)
            if retried is None:
                continue
            try:
                ep = _export_in_some_mode(model, args, retried)
            except PruningError:
                continue
            log.info("slimforge.prune: captured %s with %s (it failed without).", type(model).__name__, what)
            return ep
        raise first from None


def _export_in_some_mode(model: nn.Module, args: tuple, kwargs: dict) -> torch.export.ExportedProgram:
    try:
        return _export(model.train(), args, kwargs)
    except Exception as exc:
        try:
            ep = _export(model.eval(), args, kwargs)
        except Exception as again:
            if not _data_dependent(again):
                raise _capture_error(model, exc) from exc
            # it branches on data in eval mode; in training mode it may also need what the example lacks
            # (FastSpeech2-Conformer's labels)
            return _export_specialised(model, args, kwargs, again)
        # Its training-mode forward branches on data, or does what torch.export cannot capture (Gemma 3n's AltUp
        # clamps its weights in place while training).
        log.info("slimforge.prune: captured %s in eval mode: its training-mode forward cannot be captured (%s).",
                 type(model).__name__, str(exc).splitlines()[0][:120])
        return ep


def _export_specialised(model: nn.Module, args: tuple, kwargs: dict, exc: BaseException) -> torch.export.ExportedProgram:
    """Capture of a forward that branches on its data in eval mode too (Longformer's and LED's ``if
    is_global_attn``, a ``.item()`` of the mask): ``torch.export.draft_export`` runs the real example
    beside the trace and takes the branch it takes. The graph then holds that one path; which channels
    belong together is the same on the others where they use the same layers, and the pruned model is
    checked eagerly afterwards as always."""
    try:
        with warnings.catch_warnings(), _quiet_draft_report(), _nonzero_tuples_unbound():
            warnings.simplefilter("ignore")
            ep = _inline_wrapped_regions(torch.export.draft_export(model.eval(), args, kwargs))
    except Exception:
        raise _capture_error(model, exc) from exc
    log.info("slimforge.prune: captured %s along the branches its example takes: its forward branches on data (%s).",
             type(model).__name__, str(exc).splitlines()[0][:120])
    return ep


@contextlib.contextmanager
def _nonzero_tuples_unbound() -> Iterator[None]:
    """``x.nonzero(as_tuple=True)``, ``torch.nonzero(x, as_tuple=True)`` and ``torch.where(x)`` as
    ``x.nonzero().unbind(1)`` (the same tensors) while capturing, and ``x[mask]`` by a boolean mask as ``x`` indexed by
    those: under draft_export the tuple form leaves its data-dependent count pending and the capture fails
    (``PendingUnbackedSymbolNotFound``; Longformer's global-attention indices, Phi-4-multimodal's audio token
    positions, BLT's patch starts, torch 2.14)."""
    method, function, where = torch.Tensor.nonzero, torch.nonzero, torch.where

    def unbound(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(method(x).unbind(1)) if x.dim() else (method(x.reshape(1)).reshape(-1),)

    def nonzero_method(self: torch.Tensor, *args: Any, as_tuple: bool = False, **kwargs: Any) -> Any:
        return unbound(self) if as_tuple and not args and not kwargs else method(self, *args, as_tuple=as_tuple, **kwargs)

    def nonzero_function(x: torch.Tensor, *args: Any, as_tuple: bool = False, **kwargs: Any) -> Any:
        return unbound(x) if as_tuple and not args and not kwargs else function(x, *args, as_tuple=as_tuple, **kwargs)

    def where_function(*args: Any, **kwargs: Any) -> Any:
        return unbound(args[0]) if len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor) else where(*args, **kwargs)

    # torch.Tensor.nonzero is inherited from torch._C.TensorBase: on the way out it is deleted from torch.Tensor's
    # own namespace again. (x[mask] goes through a torch function mode instead: __getitem__ is a type slot, and one
    # set on torch.Tensor and deleted again leaves every tensor looking like a sequence to torch.tensor([...]).)
    own = torch.Tensor.__dict__.get("nonzero")
    torch.Tensor.nonzero = nonzero_method  # type: ignore[method-assign]
    torch.nonzero, torch.where = nonzero_function, where_function  # type: ignore[assignment]
    try:
        with _MaskIndexUnbound(unbound):
            yield
    finally:
        torch.nonzero, torch.where = function, where  # type: ignore[assignment]
        if own is not None:
            torch.Tensor.nonzero = own  # type: ignore[method-assign]
        else:
            del torch.Tensor.nonzero


class _MaskIndexUnbound(torch.overrides.TorchFunctionMode):
    """``x[mask]`` with a boolean mask over ``x``'s leading dimensions as ``x`` indexed by the mask's nonzero
    positions, unbound (the same elements; BLT's patch starts), while capturing."""

    def __init__(self, unbound: Any) -> None:
        super().__init__()
        self.unbound = unbound

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is torch.Tensor.__getitem__ and len(args) == 2 and isinstance(args[1], torch.Tensor):
            x, index = args
            if index.dtype == torch.bool and 0 < index.dim() <= x.dim():
                return func(x, self.unbound(index))
        return func(*args, **(kwargs or {}))


class _quiet_draft_report:
    """draft_export logs a page-wide report of the data-dependent places it specialised, and the shape solver a
    whole graph where it finds no user code for a symbol (``nn.Transformer``'s causal-mask check); the info line
    above says what matters."""

    NAMES = ("torch.export._draft_export", "torch.fx.experimental.symbolic_shapes")

    def __enter__(self) -> None:
        self.levels = [(logger, logger.level) for logger in map(logging.getLogger, self.NAMES)]
        for logger, _ in self.levels:
            logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for logger, level in self.levels:
            logger.setLevel(level)


def _with_its_own_positions(model: nn.Module, args: tuple, kwargs: dict) -> dict | None:
    """``kwargs`` plus the ``position_ids`` a transformers model computes for itself, where its forward takes them, none
    were given and computing them is what cannot be captured (Qwen2-VL's 3-D M-RoPE positions loop over the image and
    text tokens): recorded from an eager run, as the first ``position_ids`` one of its modules receives, and used only
    if the model gives the same outputs with them. None otherwise."""
    if kwargs.get("position_ids") is not None or not type(model).__module__.startswith("transformers.") or "position_ids" not in forward_parameters(type(model)):
        return None
    seen: list[torch.Tensor] = []

    def record(module: nn.Module, _args: tuple, module_kwargs: dict) -> None:
        if not seen and isinstance(module_kwargs.get("position_ids"), torch.Tensor):
            seen.append(module_kwargs["position_ids"])

    hooks = [m.register_forward_pre_hook(record, with_kwargs=True) for m in model.modules() if m is not model]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            before = model(*args, **kwargs)
            if not seen:
                return None
            retried = {**kwargs, "position_ids": seen[0]}
            after = model(*args, **retried)
    except Exception:  # noqa: BLE001 - no positions to offer, the first capture error stands
        return None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    same = _first_tensor(before) is not None and torch.equal(_first_tensor(before), _first_tensor(after))
    return retried if same else None


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    values = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else []
    return next((t for t in (_first_tensor(v) for v in values) if t is not None), None)


def _with_a_mask_of_ones(model: nn.Module, args: tuple, kwargs: dict) -> dict | None:
    """``kwargs`` plus ``attention_mask`` of ones where a transformers model's forward takes one and was not given
    one; None otherwise."""
    ids = kwargs.get("input_ids")
    if not isinstance(ids, torch.Tensor) or kwargs.get("attention_mask") is not None or not type(model).__module__.startswith("transformers."):
        return None
    takes = "attention_mask" in forward_parameters(type(model))
    return {**kwargs, "attention_mask": torch.ones_like(ids)} if takes else None


def _export(model: nn.Module, args: tuple, kwargs: dict) -> torch.export.ExportedProgram:
    with warnings.catch_warnings():
        # nn.LSTM/GRU/RNN refresh their list of weights in forward; export warns about that list (not a buffer).
        warnings.filterwarnings("ignore", message=r"The tensor attributes .*_flat_weights.* were assigned during export")
        with _unchanging_module_to(), _capture_forwards(model), packed_segments_as_flash(model), _no_partial_graph_print():
            return _inline_wrapped_regions(torch.export.export(model, args, kwargs, strict=False))


@contextlib.contextmanager
def _no_partial_graph_print() -> Iterator[None]:
    """torch.export prints the whole graph it traced so far to stderr when a capture fails on a data-dependent branch
    (``nn.Transformer``'s causal-mask check), before raising; slimforge then captures another way and says so in one
    line. Everything else written to stderr meanwhile is passed on."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    except Exception as exc:
        graph = getattr(exc, "partial_fx_graph", None)
        sys.stderr.write(buffer.getvalue().replace(f"{graph}\n", "") if graph is not None else buffer.getvalue())
        raise
    sys.stderr.write(buffer.getvalue())


_CAPTURE_FORWARDS: dict[str, Callable[..., Any]] = {}


def register_capture_forward(qualified_name: str, forward: Callable[..., Any]) -> None:
    """While a model is captured, modules of class ``qualified_name`` run ``forward(module, ...)`` instead of their
    own: an equivalent torch.export can capture (a loop over the experts the data picked, run densely)."""
    _CAPTURE_FORWARDS[qualified_name] = forward


@contextlib.contextmanager
def _capture_forwards(model: nn.Module) -> Iterator[None]:
    patched = []
    for module in model.modules():
        forward = _CAPTURE_FORWARDS.get(f"{type(module).__module__}.{type(module).__qualname__}")
        if forward is not None and "forward" not in vars(module):
            module.forward = forward.__get__(module)  # type: ignore[method-assign]
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward


@contextlib.contextmanager
def _unchanging_module_to() -> Iterator[None]:
    """During capture, ``module.to(dtype or device)`` that would change none of its tensors returns the module
    untouched. Switch Transformers' router calls ``self.classifier = self.classifier.to(self.dtype)`` in every
    forward; eagerly that is a no-op, but under torch.export ``to`` tries to swap the (fake) parameters and fails.
    A ``to`` that really converts is left to torch."""
    original = nn.Module.to

    def to(self: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
        device, dtype, _, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        tensors = [t for t in (*self.parameters(), *self.buffers()) if t.is_floating_point() or t.is_complex()]
        if memory_format is None and all((dtype is None or t.dtype == dtype) and (device is None or t.device == device)
                                         for t in tensors):
            return self
        return original(self, *args, **kwargs)

    nn.Module.to = to  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.to = original  # type: ignore[method-assign]


def _data_dependent(exc: BaseException) -> bool:
    return "data-dependent" in str(exc) or "DataDependent" in type(exc).__name__


def _capture_error(model: nn.Module, exc: BaseException) -> PruningError:
    return PruningError(
        f"torch.export could not capture {type(model).__name__} ({type(exc).__name__}: {str(exc)[:300]}). "
        "slimforge.prune needs an exportable model: make data-dependent control flow static, or prune the "
        "exportable sub-module on its own."
    )


# Higher-order ops torch.export makes of a context manager inside forward (``torch.no_grad()``, an autocast
# region, also one that turns autocast off as timm's EfficientViT (MIT) does), by the index of their sub-graph argument.
_WRAPPERS = {"wrap_with_autocast": 4, "wrap_with_set_grad_enabled": 1}


def _inline_wrapped_regions(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Copy the sub-graph of each autocast / grad-mode region into the main graph (in place): such a
    region only changes dtypes and gradient tracking, not which channels belong together, and the
    tracer reads one flat graph. (A region nested in another is not unpacked: capture fails, as before.)"""
    graph, owner = ep.graph, ep.graph_module
    for node in list(graph.nodes):
        where = _WRAPPERS.get(getattr(node.target, "__name__", "")) if node.op == "call_function" else None
        if where is None:
            continue
        sub = getattr(owner, node.args[where].target).graph
        env = dict(zip([n for n in sub.nodes if n.op == "placeholder"], node.args[where + 1:]))
        with graph.inserting_before(node):
            for inner in sub.nodes:
                if inner.op == "call_function":
                    env[inner] = graph.node_copy(inner, env.__getitem__)
                elif inner.op == "output":
                    results = [env[r] for r in inner.args[0]]
        for user in list(node.users):  # getitem(region, i) -> the region's i-th result
            user.replace_all_uses_with(results[user.args[1]])
            graph.erase_node(user)
        getter = node.args[where]
        graph.erase_node(node)
        if not getter.users:
            graph.erase_node(getter)
    return ep


PREDICTION_FIELDS = ("loss", "logits")
PREDICTION_PREFIXES = ("pred_", "predicted_")  # a detector's boxes, a depth or pose model's maps beside its logits


def prediction_fields(out_type: type, keys: list[str]) -> list[str] | None:
    """The fields of a transformers ``ModelOutput`` that are the model's prediction, whose shapes pruning keeps:
    ``logits`` and ``loss``, and beside them a detector's ``pred_boxes`` (YOLOS, DETR: 4 coordinates a box); an
    image-text model's ``logits_per_image`` / ``logits_per_text`` and the ``*_embeds`` they compare (CLIP-like dual
    encoders, whose embeddings users index). The other fields (a seq2seq model's ``encoder_last_hidden_state``, a
    tower's ``vision_model_output``) are states inside the model, free to narrow with it. None: not such an output,
    every field is kept."""
    if not getattr(out_type, "__module__", "").startswith("transformers"):
        return None
    if "logits" in keys:
        return [k for k in keys if k in PREDICTION_FIELDS or k.startswith(PREDICTION_PREFIXES)]
    if any(k.startswith("logits_per_") for k in keys):
        return [k for k in keys if k == "loss" or k.startswith("logits") or k.endswith("_embeds")]
    return None


# Words in a field name of a transformers output that make it a prediction, not a backbone's features: TimesFM's
# mean_predictions, Decision Transformer's action_preds, SAM's iou_scores and pred_masks, a detector's pred_boxes,
# VitPose's heatmaps, a vocoder's waveform or spectrogram.
_PREDICTION_WORDS = ("pred", "score", "heatmap", "waveform", "spectrogram")


def predicted_fields(keys: Sequence[str]) -> list[str]:
    """The fields of a transformers output named as a prediction (:data:`_PREDICTION_WORDS`, or logits other than
    an MoE's ``router_logits``)."""
    return [k for k in keys if any(w in k for w in _PREDICTION_WORDS) or ("logits" in k and "router" not in k)]


def bare_backbone(model: torch.nn.Module, ep: torch.export.ExportedProgram) -> bool:
    """A model without a task head, whose output is its features: a transformers output without a prediction
    (``BertModel``, ``Dinov2Model``, ``AutoModel``'s, DPR's encoders, LXMERT: no loss, no logits, no field named as a
    prediction, :data:`_PREDICTION_WORDS`; an MoE's ``router_logits`` are no prediction), or a timm model built with
    ``num_classes=0`` returning one tensor, or timm's ``features_only`` model returning its maps. A user's own module
    is not guessed at: its outputs keep their widths."""
    spec = ep.call_spec.out_spec
    if spec is None:
        return False
    if timm_feature_net(model):
        return True
    if spec.type is not None and getattr(spec.type, "__module__", "").startswith("transformers"):
        keys = list(spec.context) if isinstance(spec.context, list) else []
        return bool(keys) and "loss" not in keys and prediction_fields(spec.type, keys) is None and not predicted_fields(keys)
    return spec.is_leaf() and getattr(model, "num_classes", None) == 0 and hasattr(model, "pretrained_cfg")


# timm's features_only wrappers whose forward runs each child in turn (FeatureGetterNet calls its model's own
# forward_intermediates instead).
_TIMM_STEPPING_WRAPPERS = ("FeatureListNet", "FeatureDictNet", "FeatureHookNet")


def timm_feature_net(model: torch.nn.Module) -> bool:
    """A timm model built with ``features_only=True`` (``FeatureGetterNet``, ``EfficientNetFeatures`` ...): no head,
    it returns a list of feature maps. ``FeatureListNet`` runs its children in turn, so it takes no added layer."""
    return (type(model).__module__.startswith("timm.") and hasattr(model, "feature_info")
            and not hasattr(model, "num_classes") and not runs_its_children(model))


def runs_its_children(model: torch.nn.Module) -> str | None:
    """What a model is whose forward runs every child in turn (so an added layer would run as a step): an
    ``nn.Sequential``, or one of timm's features_only wrappers built on ``nn.ModuleDict``; else None."""
    if isinstance(model, torch.nn.Sequential):
        return "nn.Sequential"
    if type(model).__module__.startswith("timm.") and type(model).__name__ in _TIMM_STEPPING_WRAPPERS:
        return f"timm {type(model).__name__}, which runs its children in turn"
    return None


def per_layer_states(field: str | None) -> bool:
    """A transformers output field of per-layer states (``hidden_states``, ``attentions``, ``encoder_hidden_states``;
    XLNet's ``mems``, each layer's input kept for the next segment, returned in eval mode only and so never in the
    captured graph), which narrow with the model beside its prediction or its projected features."""
    return field is not None and (field.endswith(("hidden_states", "attentions")) or field == "mems")


def output_leaf_fields(ep: torch.export.ExportedProgram, count: int) -> list[tuple[str | None, bool]]:
    """Per user output of the exported program: (the field of the model's output it belongs to, whether that field
    holds several tensors, a transformers ``hidden_states`` tuple). (None, False) for every output of a model that
    returns tensors without fields."""
    spec = ep.call_spec.out_spec
    keys = list(spec.context) if spec is not None and isinstance(spec.context, list) else []
    if not keys or spec.num_children != len(keys) or not all(isinstance(k, str) for k in keys):
        return [(None, False)] * count
    fields: list[tuple[str | None, bool]] = []
    for key, child in zip(keys, spec.children()):
        fields.extend([(key, child.num_leaves > 1 or not child.is_leaf())] * child.num_leaves)
    return fields if len(fields) == count else [(None, False)] * count


def output_leaves_to_keep(ep: torch.export.ExportedProgram, count: int) -> set[int]:
    """Indices of the exported program's ``count`` user outputs whose shapes pruning keeps."""
    spec = ep.call_spec.out_spec
    keys = list(spec.context) if spec is not None and isinstance(spec.context, list) else []
    fields = prediction_fields(spec.type, keys) if spec is not None and spec.type is not None else None
    if fields is None or spec.num_children != len(keys):
        return set(range(count))
    keep, start = set(), 0
    for key, child in zip(keys, spec.children()):
        if key in fields:
            keep.update(range(start, start + child.num_leaves))
        start += child.num_leaves
    return keep if start == count else set(range(count))


def _first_occurrence_order(roots: np.ndarray) -> list[int]:
    values, first = np.unique(roots, return_index=True)
    return values[np.argsort(first)].tolist()


def _shapes_differ(want: Any, got: Any) -> bool:
    """Shapes that differ; a size the data decides (-1 from :func:`_size`, on either side: one capture may know an
    unbacked size's example value where the other carries its expression) matches any size."""
    if want is None or got is None:  # an output with nothing to compare against (its record disagrees with the op)
        return False
    nested = isinstance(want, tuple) and any(w is None or isinstance(w, tuple) for w in want)
    if nested or (isinstance(got, tuple) and any(g is None or isinstance(g, tuple) for g in got)):  # several outputs
        return any(_shapes_differ(w, g) for w, g in zip(want, got))
    if isinstance(want, tuple) and isinstance(got, tuple) and len(want) == len(got):
        return any(w != g and w != -1 and g != -1 for w, g in zip(want, got))
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


def _has_tracked_tensor(tr: Tracing, node: torch.fx.Node) -> bool:
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
        return tuple(_size(s) for s in val.shape)
    return ()


def _size(s: Any) -> int:
    """A dimension's size; -1 for one that depends on the data (a count of tokens routed to an expert, captured as an
    unbacked symbol with no example value): no channel of it can be pruned, so its exact value is never needed."""
    try:
        return int(s)
    except torch.fx.experimental.symbolic_shapes.GuardOnDataDependentSymNode:
        return -1


# ----------------------------------------------------------------------------- rules

Rule = Callable[[Tracing, torch.fx.Node], Any]
RULES: dict[str, Rule] = {}


def _rule(*names: str) -> Callable[[Rule], Rule]:
    def add(fn: Rule) -> Rule:
        for n in names:
            RULES[n] = fn
        return fn

    return add


def register_op_rule(op: str, rule: Rule | None = None, *, like: str | None = None, replace: bool = False) -> Any:
    """Teach the pruning engine an op it has no rule for (a custom op, ``mylib::fused_act``).

    ``like="relu"``: the op ties its inputs' and output's elements as that built-in op does
    (elementwise, reduction, matmul ...). Otherwise ``rule(tr, node)`` returns the output's label,
    one entry per output dimension: ``tr.lab(node.args[i])`` is input i's label (a list with, per
    dimension, an array of element ids or None), ``tr.uf.tie(a, b)`` ties element i of ``a`` to
    element i of ``b`` (they are pruned together), ``tr.pin_label(label)`` keeps every element of
    ``label``. Without ``rule`` or ``like`` it is a decorator. ``op`` is the op's qualified name
    (``namespace::name``); a name that already has a rule is refused unless ``replace``.
    """
    key = op.removeprefix("aten::")
    if like is not None:
        if rule is not None:
            raise ValueError("register_op_rule takes a rule or like=, not both.")
        if like.removeprefix("aten::") not in RULES:
            from slimforge.errors import did_you_mean

            raise ValueError(f"like={like!r}: slimforge.prune has no rule for that op.{did_you_mean(like, sorted(RULES))}")
        rule = RULES[like.removeprefix("aten::")]

    def add(fn: Rule) -> Rule:
        if key in RULES and not replace and RULES[key] is not fn:
            raise ValueError(f"op {op!r} already has a pruning rule; pass replace=True to change it.")
        RULES[key] = fn
        return fn

    return add if rule is None else add(rule)


def qualified_opname(target: Any) -> str:
    """``demo::channel_gate`` for a custom op, ``aten::relu`` for a built-in one ("" for others)."""
    return target._schema.name if isinstance(target, torch._ops.OpOverload) else ""


def _arg(node: torch.fx.Node, i: int, name: str, default: Any = None) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _norm_dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _clean(tr: Tracing, vec: Vec, size: int) -> Vec:
    """A dimension of size 1 is never prunable (at least one channel stays)."""
    if vec is not None and size <= 1:
        tr.uf.pin(vec)
        return None
    return vec


HEAD_ATTRS = ("num_heads", "n_heads", "num_attention_heads", "num_key_value_heads", "heads")

_NEW_FILLS = ("zeros", "ones", "full", "empty", "new_zeros", "new_ones", "new_full", "new_empty", "zeros_like", "ones_like",
              "full_like", "empty_like")


def a_new_fill(x: Any) -> bool:
    """A tensor of one value made in the forward, whose size the code gives (not data)."""
    return isinstance(x, torch.fx.Node) and x.op == "call_function" and _opname(x.target) in _NEW_FILLS


# An int attribute that counts heads, as attention is written by hand: n_head (nanoGPT), heads (vit-pytorch),
# num_heads (timm), n_local_heads / n_local_kv_heads (Meta's Llama), nhead (PyTorch), h (the Annotated Transformer),
# head_num (DeepCTR's AutoInt), no_heads (OpenFold), num_heads_kv (flash-attn), num_attention_heads_per_partition
# (Megatron's heads on one tensor-parallel rank) ...
_HEAD_COUNT = re.compile(r"(?:n|no|num|number|nb)?_?(?:of_)?(?:local_|attn_|attention_|kv_|key_value_|q_|query_)*"
                         r"(?:heads?|h)(?:_kv|_q)?(?:_num|_count|_number)?(?:_per_partition|_per_rank|_per_shard)?")


def state_space_mixer(module: nn.Module) -> bool:
    """A state-space mixer (Mamba-2's): it counts heads, but is no attention (its ``B``/``C`` viewed to
    ``(b, l, n_groups, d_state)`` with one group are no head)."""
    return isinstance(getattr(module, "A_log", None), nn.Parameter)


def head_counts(module: nn.Module) -> dict[str, int]:
    """The module's own int attributes that count heads (by name), with their values."""
    return {name: value for name, value in vars(module).items()
            if type(value) is int and value >= 1 and _HEAD_COUNT.fullmatch(name)}

