"""Why a dimension stays whole: :func:`explain_kept` names the op that tied a parameter's dimension to something
pruning must not change (a model output, a size fixed in the code, an attention of no known form, a skipped layer).

Pruning a model and finding a layer untouched (a low reduction, "nothing to prune") leaves a user guessing which of
thousands of ops was responsible. The tracer already knows: every op rule ties elements together, and a dimension
stays whole when one of its elements is tied to the pinned class. Here the model is captured once and traced twice:
first to find which elements of the dimension end pinned, then watching the first of them to catch the op that
pinned it.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from slimforge.errors import did_you_mean
from slimforge.prune._capture import PIN, _opname, export_model, module_path
from slimforge.prune._trace import _opaque_attention, _Tracer, matches, read_parameters
from slimforge.prune.errors import PruneConfigError
from slimforge.prune.structured import _check_example_batch, capture_kwargs


@dataclass(frozen=True)
class KeptReason:
    """``kept`` of the ``size`` entries of ``parameter``'s dimension ``dim`` stay; ``why``: what tied the first of
    them, at ``module`` (``source``: the line of the model's code, when the capture recorded it)."""

    parameter: str
    dim: int
    size: int
    kept: int
    why: str
    module: str
    source: str

    def __str__(self) -> str:
        where = f" in {self.module!r}" if self.module else ""
        line = f"\n    {self.source}" if self.source else ""
        return f"{self.kept} of {self.size} entries of {self.parameter} dimension {self.dim} stay whole: {self.why}{where}.{line}"


def explain_kept(model: nn.Module, example_inputs: Any = (), example_kwargs: Mapping[str, Any] | None = None, *,
                 parameter: str, dim: int = 0, skip: Sequence[str] = ()) -> KeptReason | None:
    """Why dimension ``dim`` of ``parameter`` (a ``named_parameters`` name, tied names included) cannot shrink, for the
    same capture :func:`slimforge.prune` makes of ``model`` on these example inputs; None when every entry of it
    belongs to a group pruning can shrink."""
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    _check_example_batch(model, args)
    names = dict(model.named_parameters(remove_duplicate=False))
    if parameter not in names:
        raise PruneConfigError(f"{type(model).__name__} has no parameter {parameter!r}.{did_you_mean(parameter, list(names))}")
    shape = tuple(names[parameter].shape)
    if not -len(shape) <= dim < len(shape):
        raise PruneConfigError(f"{parameter} has {len(shape)} dimensions {shape}; dimension {dim} does not exist.")
    dim %= len(shape)
    if shape[dim] <= 1:
        return KeptReason(parameter, dim, shape[dim], shape[dim], "a dimension of size 1 is never pruned", "", "")
    ep = export_model(model, args, capture_kwargs(model, example_kwargs))
    tracer = _Tracer(model, ep, skip)
    tracer.run()
    graph = tracer.finish()
    read = read_parameters(ep)
    aliases = sorted(((fqn not in read, fqn) for fqn in ep.graph_signature.inputs_to_parameters.values()
                      if names.get(fqn) is names[parameter]))  # a tied weight: the name the forward reads, first
    unread, captured = aliases[0]
    slot = tracer.slot_of[(captured, dim)]
    roots = graph.roots[slot]
    if unread:
        return KeptReason(parameter, dim, len(roots), len(roots), "the example inputs never reach it, so pruning cannot "
                          "place it (give example inputs that do)", parameter.rpartition(".")[0], "")
    pinned = [int(e) for e, r in zip(tracer.slots[slot].elements.tolist(), roots.tolist()) if r == PIN]
    if not pinned:
        shrinkable = {u.root for g in graph.groups if len(g.units) > 1 for u in g.units}
        kept = int(sum(r not in shrinkable for r in roots.tolist()))
        if not kept:
            return None
        return KeptReason(parameter, dim, len(roots), kept, "it belongs to no group with more than one unit to choose "
                          "from (no layer makes it an output, or a single head)", parameter.rpartition(".")[0], "")
    watched, seen = pinned[0], []
    tracer = _Tracer(model, ep, skip)

    def on_pin(root: int) -> None:
        # The watched element exists once its parameter's slot is made, which may come after other pins.
        if not seen and watched < len(tracer.uf.parent) and tracer.uf.find(watched) == root:
            seen.append(tracer.current)

    tracer.uf.on_pin = on_pin
    tracer.run()
    why, module, source = _describe(model, tracer, seen[0] if seen else None)
    return KeptReason(parameter, dim, len(roots), len(pinned), why, module, source)


def _describe(model: nn.Module, tracer: _Tracer, node: torch.fx.Node | None) -> tuple[str, str, str]:
    if node is None:
        return "kept by the pruning engine after tracing", "", ""
    if node.op == "output":
        return "it reaches the model's output, whose shape pruning keeps", "", ""
    if node.op == "placeholder":
        name = tracer.param_names.get(node.name, node.name)
        owner = name.rpartition(".")[0]
        for path in tracer.pinned_modules:
            if owner == path or owner.startswith(path + ".") or path == "":
                if tracer.skip and path and matches(path, tracer.skip):
                    return "its module is skipped (skip=...)", path, ""
                module = model.get_submodule(path) if path else model
                if _opaque_attention(module, tracer.attention_modes):
                    return (f"{type(module).__name__} looks like attention (an integer head count and linear layers) but "
                            "matches no registered attention form, so it is kept whole "
                            "(slimforge.prune.list_attention_forms(), register_attention_form)"), path, ""
        return "its attention form keeps this part whole (a single head, or a part every head shares)", owner, ""
    trace = (node.meta.get("stack_trace") or "").strip().splitlines()
    source = trace[-1].strip() if trace else ""
    return (f"op {_opname(node.target)!r} ties it to a dimension that cannot change (a model input, a constant, or a "
            "size fixed in the code)"), module_path(node), source
