"""Structured pruning: remove whole channels, neurons and attention heads.

``prune(model, example_inputs, ratio=0.3)`` captures the model, groups coupled dimensions
(:mod:`slimforge.prune._graph`), ranks each group's units with an importance criterion,
chooses what to keep, slices the tensors in place and records the plan on the model's spec, so
``slimforge.save``/``load`` rebuild the smaller model from the original factory.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from slimforge.artifacts import record_edit
from slimforge.models import adopt_spec
from slimforge.prune import _output_projection as output_projection
from slimforge.prune._capture import per_layer_states, prediction_fields, runs_its_children
from slimforge.prune._config_reads import config_read_for_values
from slimforge.prune._graph import DependencyGraph, Group, unit_step
from slimforge.prune._hf_width_align import align_residual_to_heads
from slimforge.prune._query_groups import balance_groups, balanced_units
from slimforge.prune._trace import (
    ATTENTION_MODES, build_dependency_graph, form_attention, holds_layers, matches, unknown_attention,
)
from slimforge.prune.attention import KEY_VALUE_HEADS, choosing_key_value_heads, prepare_attention, settle_attention
from slimforge.prune.errors import NothingToPruneError, PruneConfigError, PruningError
from slimforge.prune.importance import IMPORTANCES, ImportanceContext, needs_gradients, score_units
from slimforge.prune.latency import LatencySettings, choose_by_latency
from slimforge.prune.plan import CONFIG_KEPT, PLAIN_PLAN_VERSION, PLAN_VERSION, config_values, encode_runs, keep_config_values, kept_indices, slice_tensors

# Channel counts are rounded to a multiple of this by default: on the AVX2 CPUs we measured,
# convolutions with channel counts that are multiples of 8 run at full SIMD width
# (benchmarks/prune_speedup.py --round-sweep; results in benchmarks/results/).
DEFAULT_ROUND_TO = 8
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneConfig:
    """ratio: fraction of units removed, one float or {module pattern: ratio} (first match wins);
    target_params / target_macs: fraction of parameters / MACs to keep (a global ratio is searched);
    target_latency: fraction of the measured latency to keep, channels chosen by importance per
    millisecond saved (:mod:`slimforge.prune.latency`; ``latency`` says how latency is measured);
    skip: module name patterns whose channels stay; round_to: kept channel counts are multiples of this
    (units at least this wide, attention heads, go one at a time: :func:`~slimforge.prune._graph.unit_step`);
    keep_outputs: "auto" (a bare backbone's features narrow and are projected back to their width, other outputs keep
    theirs), True, False (outputs narrow with the model) or "project" (see :func:`prune`)."""

    ratio: float | Mapping[str, float] | None = None
    importance: str = "l2"
    reduction: str = "mean"
    target_params: float | None = None
    target_macs: float | None = None
    skip: tuple[str, ...] = ()
    round_to: int = DEFAULT_ROUND_TO
    seed: int = 0
    check: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    target_latency: float | None = None
    latency: LatencySettings = field(default_factory=LatencySettings)
    keep_outputs: bool | str = "auto"
    key_value_heads: str = "auto"

    def validate(self) -> None:
        if not isinstance(self.keep_outputs, bool) and self.keep_outputs not in ("auto", "project", "fill"):
            raise PruneConfigError(f"keep_outputs is True, False, 'auto', 'project' or 'fill'; got {self.keep_outputs!r}.")
        if self.key_value_heads not in KEY_VALUE_HEADS:
            raise PruneConfigError(f"key_value_heads is one of {', '.join(map(repr, KEY_VALUE_HEADS))}; got {self.key_value_heads!r}.")
        given = [k for k in ("ratio", "target_params", "target_macs", "target_latency") if getattr(self, k) is not None]
        if len(given) != 1:
            raise PruneConfigError(f"Give exactly one of ratio, target_params, target_macs, target_latency (got {given or 'none'}).")
        ratios = self.ratio.values() if isinstance(self.ratio, Mapping) else [self.ratio] if self.ratio is not None else []
        for r in ratios:
            if not 0.0 <= float(r) < 1.0:
                raise PruneConfigError(f"ratio must be in [0, 1) (the fraction of channels removed); got {r}.")
        for key in ("target_params", "target_macs", "target_latency"):
            v = getattr(self, key)
            if v is not None and not 0.0 < v <= 1.0:
                raise PruneConfigError(f"{key} is the fraction kept and must be in (0, 1]; got {v}.")
        if self.importance not in IMPORTANCES:
            IMPORTANCES.get(self.importance)  # raises with the known names
        if self.round_to < 1:
            raise PruneConfigError(f"round_to must be >= 1; got {self.round_to}.")
        if self.target_latency is not None:
            self.latency.validate()


def _check_example_batch(model: nn.Module, args: tuple[Any, ...]) -> None:
    first = args[0] if args else None
    if isinstance(first, torch.Tensor) and first.dim() > 0 and first.shape[0] < 2 and model.training and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        raise PruneConfigError("example_inputs needs a batch of at least 2: BatchNorm in training mode cannot run on one sample.")


def prune(
    model: nn.Module,
    example_inputs: Any = (),
    *,
    example_kwargs: Mapping[str, Any] | None = None,
    ratio: float | Mapping[str, float] | None = None,
    importance: str = "l2",
    target_params: float | None = None,
    target_macs: float | None = None,
    skip: Sequence[str] = (),
    round_to: int = DEFAULT_ROUND_TO,
    reduction: str = "mean",
    calibration: Iterable[Any] | None = None,
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None,
    seed: int = 0,
    check: bool = True,
    target_latency: float | None = None,
    latency: LatencySettings | None = None,
    keep_outputs: bool | str = "auto",
    key_value_heads: str = "auto",
) -> nn.Module:
    """Remove the least important channels/neurons/heads of ``model`` in place and return it.

    example_inputs: a tensor or tuple of tensors the model accepts, e.g. (batch, 3, H, W), batch >= 2.
    example_kwargs: keyword inputs for the example call (``attention_mask=...``). A Hugging Face
    model whose config has ``use_cache`` is captured with ``use_cache=False`` unless given here
    (a key/value cache object cannot be captured); the pruned model still generates with its cache.
    ratio: fraction of each group's units to remove, or {module pattern: ratio}; or give
    target_params / target_macs (fraction to keep), or target_latency (fraction of the latency
    measured at ``latency``'s batch size and threads to keep; see :mod:`slimforge.prune.latency`;
    the result is recorded in the plan under ``latency``). importance: a name from list_importances();
    "taylor" needs calibration (an iterable of (inputs, targets)) and uses loss_fn (default
    cross-entropy). Inputs and outputs keep their shape (of a transformers output with logits: the
    logits and loss; its hidden states narrow with the model); each group keeps at least one unit.
    keep_outputs: how the outputs keep their shape. A bare backbone (``BertModel``, ``AutoModel``'s, a timm
    model with ``num_classes=0``) returns features as wide as the residual every layer adds into: by default
    ("auto"; "project" for any model but an ``nn.Sequential`` or timm's ``FeatureListNet``, which would run the
    added layer as a step) the
    residual narrows like any group and those outputs go back to their width through a dense layer
    (``model.slimforge_outputs``: at first the kept features in their places, each removed place at its mean on
    the example; trained with the rest). "fill" does the same with a smaller layer: the kept features unchanged,
    each removed place a constant plus a learned mix of the kept ones. True keeps such widths whole (only heads
    and MLP neurons go); False lets them narrow, for a head you add later that takes the narrower width
    (``model.config.hidden_size`` follows). Other models' outputs keep their widths under "auto".
    key_value_heads: what grouped-query attention (fewer key/value heads than query heads) loses. "prune": whole
    groups, a key/value head with its query heads (the key/value cache shrinks with the ratio); "keep": the key/value
    heads stay and every group loses as many query heads as the others (finer steps, the cache as it was); "auto"
    (default): "keep" where a model has 2 key/value heads each serving more than 2 query heads (Qwen2.5-0.5B's 14
    over 2, where a whole group is half the heads), else "prune".
    With check=True (default) the pruned model is run once and captured again, and every op's
    output shape is compared with the dependency graph's prediction, so a layer that derives a
    size on its own raises PruningError instead of yielding a silently wrong model.
    """
    config = PruneConfig(ratio, importance, reduction, target_params, target_macs, tuple(skip), round_to, seed, check,
                         target_latency=target_latency, latency=latency or LatencySettings(), keep_outputs=keep_outputs,
                         key_value_heads=key_value_heads)
    config.validate()
    with choosing_key_value_heads(config.key_value_heads):
        return _prune_model(model, example_inputs, example_kwargs, config, calibration, loss_fn)


def _prune_model(model: nn.Module, example_inputs: Any, example_kwargs: Mapping[str, Any] | None, config: PruneConfig,
                 calibration: Iterable[Any] | None, loss_fn: Callable[[Any, Any], torch.Tensor] | None) -> nn.Module:
    """:func:`prune` with ``config`` validated."""
    container = runs_its_children(model)
    if config.keep_outputs in ("project", "fill") and container:
        raise PruneConfigError(f"keep_outputs={config.keep_outputs!r} adds a layer to the model (model.slimforge_outputs), and "
                               f"{type(model).__name__} ({container}) would run it as one of its steps: wrap it in a "
                               "module, or pass keep_outputs=True (outputs keep their widths) or False (they narrow).")
    _check_skip_patterns(model, config.skip)
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    kwargs = capture_kwargs(model, example_kwargs)
    _check_example_batch(model, args)
    adopt_spec(model)  # a transformers model built outside slimforge: described by its config, before it changes
    _clear_property_caches(model)
    if config.target_latency is not None and config.latency.blocks != 0:
        return _prune_in_depth(model, example_inputs, example_kwargs, args, kwargs, config, calibration, loss_fn)
    reference = _output_shapes(model, args, kwargs) if config.check else None
    ctx = importance_context(model, config, calibration, loss_fn)
    # 1. Capture the model and find the coupled groups (nn.MultiheadAttention gets a forward
    # that reads its head count from its weights first: PyTorch's reads it from the input).
    swapped = prepare_attention(model)
    try:
        plan = _prune_graph(model, args, kwargs, config, ctx, reference)
    except BaseException:
        settle_attention(swapped, failed=True)
        raise
    settle_attention(swapped, failed=False)
    # 5. Record (on the spec; a model without one keeps the plan for save(factory=...) / attach_spec).
    record_edit(model, plan)
    return model


def _prune_in_depth(model: nn.Module, example_inputs: Any, example_kwargs: Mapping[str, Any] | None, args: tuple,
                    kwargs: dict[str, Any], config: PruneConfig, calibration: Iterable[Any] | None,
                    loss_fn: Callable[[Any, Any], torch.Tensor] | None) -> nn.Module:
    """``target_latency`` with ``latency.blocks``: whole blocks removed, the rest narrowed to the same measured target
    (:mod:`slimforge.prune.depth`). Candidates are pruned copies; ``model`` changes only once one is chosen, by the
    same two edits a folder replays (``skip_blocks``, then the plan), and takes the chosen copy's weights."""
    from slimforge.artifacts import edit_replay, recorded_edits
    from slimforge.measure import _batch_of
    from slimforge.prune import depth
    from slimforge.prune.latency import _layout, time_models

    if not isinstance(args[0], torch.Tensor):
        raise PruneConfigError("target_latency needs a single tensor input (batch, ...) to time the model with.")
    batches = list(calibration) if calibration is not None else None
    batch = _batch_of(args[0], config.latency.batch_size)
    channels_last = _layout(model, batch, config.latency)
    fixed = replace(config.latency, blocks=0, channels_last=channels_last)

    def measure(original: nn.Module, candidate: nn.Module) -> float:
        base, after = time_models(copy.deepcopy(original), copy.deepcopy(candidate), batch, fixed, channels_last)
        return after / base

    def narrow(dropped: nn.Module, fraction: float) -> nn.Module:
        return prune(dropped, example_inputs, example_kwargs=example_kwargs, importance=config.importance, skip=config.skip,
                     round_to=config.round_to, reduction=config.reduction, calibration=batches, loss_fn=loss_fn, seed=config.seed,
                     check=config.check, target_latency=fraction, latency=fixed, keep_outputs=config.keep_outputs)

    choice = depth.choose_depth(model, args, kwargs, config.target_latency, config.latency.blocks, batches, measure, narrow,
                                kept=lambda name: matches(name, config.skip))
    plan = [e for e in recorded_edits(choice.model) if e.get("kind") == "prune"][-1]
    within = plan["latency"]
    plan["latency"] = {**within, "target": config.target_latency, "measured": within["measured"] * choice.depth_fraction,
                       "predicted": within["predicted"] * choice.depth_fraction, "base_ms": within["base_ms"] / choice.depth_fraction,
                       "blocks": choice.blocks, "blocks_fraction": choice.depth_fraction}
    log.info("latency-aware pruning in depth: %d block(s) removed (%s; alone %.3f of the latency), the rest narrowed to %.3f of "
             "what was left; %.3f of the original measured", len(choice.blocks), ", ".join(choice.blocks) or "none",
             choice.depth_fraction, within["target"], plan["latency"]["measured"])
    if choice.blocks:
        depth.skip_blocks(model, choice.blocks)
        record_edit(model, {"kind": depth.EDIT_KIND, "version": depth.EDIT_VERSION, "blocks": choice.blocks})
    edit_replay("prune")(model, plan)
    model.load_state_dict(choice.model.state_dict())
    record_edit(model, plan)
    return model


def _prune_graph(model: nn.Module, args: tuple, kwargs: dict[str, Any], config: PruneConfig, ctx: ImportanceContext,
                 reference: Any) -> Any:
    """Steps 1-4 of :func:`prune`; returns the plan. A bare backbone whose projected outputs fail (a width its code
    takes from the config after the last layer: GLM-4V's vision tower views its merger's input to
    ``config.out_hidden_size``) is pruned again with its outputs' widths kept, as ``keep_outputs=True`` would."""
    try:
        return _prune_graph_once(model, args, kwargs, config, ctx, reference)
    except PruningError as failure:
        if config.keep_outputs != "auto" or not getattr(failure, "projected", False):
            raise
        log.warning("slimforge.prune: %s did not prune with its outputs narrowed and projected back (%s); pruning "
                    "again with their widths kept whole.", type(model).__name__, str(failure)[:200])
    return _prune_graph_once(model, args, kwargs, replace(config, keep_outputs=True), ctx, reference)


def _prune_graph_once(model: nn.Module, args: tuple, kwargs: dict[str, Any], config: PruneConfig, ctx: ImportanceContext,
                      reference: Any) -> Any:
    graph = build_dependency_graph(model, args, kwargs, skip=config.skip, keep_outputs=config.keep_outputs)
    if graph.unreached:
        _warn_unreached(model, graph.unreached)
    try:
        try:
            return _prune_with_fixed_splits_kept(model, args, kwargs, config, ctx, reference, graph, config.skip, {})
        except PruningError as failure:
            return _prune_without_failing_module(model, args, kwargs, config, ctx, reference, failure)
    except PruningError as failure:
        failure.projected = bool(graph.projected_outputs)  # the outputs were free to narrow: worth a try without
        raise


def _prune_with_fixed_splits_kept(model: nn.Module, args: tuple, kwargs: dict[str, Any], config: PruneConfig,
                                  ctx: ImportanceContext, reference: Any, graph: DependencyGraph, skip: Sequence[str],
                                  modes: dict[type, str]) -> Any:
    """:func:`_prune_checked` on ``graph``; if that fails, once more with the dimensions kept whole that are split into
    sizes fixed in the code (x.split(26, 1)) or gathered by an index of a fixed size, if any was guessed to follow."""
    try:
        return _prune_checked(model, args, kwargs, config, ctx, reference, graph)
    except PruningError:
        if not graph.fixed_splits:
            raise
    graph = build_dependency_graph(model, args, kwargs, skip=skip, pin_fixed_splits=True, attention_modes=modes,
                                   keep_outputs=config.keep_outputs)
    return _prune_checked(model, args, kwargs, config, ctx, reference, graph)


def _prune_checked(model: nn.Module, args: tuple, kwargs: dict[str, Any], config: PruneConfig, ctx: ImportanceContext,
                   reference: Any, graph: DependencyGraph) -> Any:
    """Steps 2-4 of :func:`prune`; returns the plan. On any failure the model is put back exactly as it was."""
    # 2. Rank the units of every group.
    scores = score_units(graph, ctx, config.importance, config.reduction)
    # 3. Choose what to keep: fixed ratios, the global ratio that meets a target, or the cut that meets a measured latency.
    if config.target_latency is not None:
        pruned, achieved = choose_by_latency(model, graph, scores, config.target_latency, config.round_to, args[0], config.latency,
                                             calibration=ctx.calibration, loss_fn=ctx.loss_fn)
        pruned = balance_groups(graph, scores, pruned)
        plan = {**make_plan(graph, pruned), "latency": asdict(achieved)}
    else:
        pruned = choose_pruned_units(model, graph, scores, config)
        if config.target_macs is None:
            pruned = _without_costly_projections(model, graph, pruned, fill=config.keep_outputs == "fill")
        pruned = align_residual_to_heads(model, graph, scores, pruned, config.round_to, _reach_pools)
        if not pruned:
            _explain_nothing_pruned(graph, config)
        plan = make_plan(graph, pruned)
    # 4. Slice and check; put projected outputs back to their widths (keep_outputs="project").
    means = _output_means(model, args, kwargs) if graph.projected_outputs else {}
    restore = _restore_point(model)
    projections: list[dict[str, Any]] = []
    sizes = config_values(model)
    try:
        slice_tensors(model, kept_indices(graph, pruned))
        if reference is not None:
            kept_config = _check_outputs_keeping_config(model, args, kwargs, reference, sizes, widths=config.keep_outputs is True)
            attributes = _tensor_attributes(model)  # real forwards: what one keeps as a plain attribute stays as it was
            try:
                read = config_read_for_values(model, args, kwargs, sizes)  # Falcon's ALiBi scale
            finally:
                _restore_attributes(attributes)
            for path, values in read.items():
                kept_config.setdefault(path, {}).update(values)
            if kept_config:
                plan.update(config_kept=kept_config, version=PLAN_VERSION)  # projections come next
            if pruned:
                # a spectrogram as long as the frames it now predicts
                reference = _recounted(reference, graph.verify(pruned, model, args, kwargs))
        projections = output_projection.entries_for(graph, pruned, taken=list(getattr(model, output_projection.ATTRIBUTE, {})),
                                                    fill=config.keep_outputs == "fill")
        output_projection.install(model, projections)
        output_projection.initialise(model, projections, means)
        if reference is not None and config.keep_outputs not in (True, False):
            _check_outputs(model, args, kwargs, reference, widths="features")
    except BaseException:
        output_projection.remove(model, [p["key"] for p in projections])
        restore()
        raise
    if projections:
        plan["outputs"] = [{**p, "targets": [output_projection.target_record(t) for t in p["targets"]], "kept": encode_runs(p["kept"])} for p in projections]
        _log_projections(model, projections)
    return plan


def _output_means(model: nn.Module, args: tuple, kwargs: dict[str, Any]) -> dict[int, list[torch.Tensor]]:
    """Per output tensor (pytree position), the unpruned model's mean along each dimension, for the constants a
    projection puts where features were removed; {leaf: [mean along dim 0, dim 1, ...]}."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return output_projection.output_means(model(*args, **kwargs))
    finally:
        model.train(was_training)


def _without_costly_projections(model: nn.Module, graph: DependencyGraph, pruned: set[int], fill: bool) -> set[int]:
    """``pruned`` less the units of each projected output (keep_outputs="project") whose narrowing saves fewer
    parameters than the layer that puts it back costs, counted exactly on the chosen cut: those outputs keep their
    width. The trace's estimate (:meth:`~slimforge.prune._trace._Tracer._worth_projecting`) counts every tensor an
    output's channels touch as losing r of itself, which the channels' other dimensions, pruned too, make less: on a
    64-wide bottleneck ResNet's stage maps the projections cost 0.6 points more than they saved."""
    params = count_params_after(model, graph, pruned)
    for roots in output_projection.projected_classes(graph):
        removed = {r for r in roots if r in pruned}
        if not removed:
            continue
        kept = sum(1 for r in roots if r not in pruned)
        whole = count_params_after(model, graph, pruned - removed)
        if whole <= params + output_projection.layer_size(len(roots), kept, fill):
            pruned, params = pruned - removed, whole
    return pruned


def _log_projections(model: nn.Module, projections: list[dict[str, Any]]) -> None:
    shown = ", ".join(f"{' and '.join(output_projection.target_name(t) for t in p['targets'])} {len(p['kept'])} -> {p['width']}"
                      for p in projections)
    log.warning("slimforge.prune: %s returns features whose width its layers share; they narrowed with the model and "
                "are put back to their width, each removed place filled with its mean on the example (%s; model.%s, "
                "trained with the rest). "
                "keep_outputs=True keeps those widths whole instead; keep_outputs=False lets the outputs narrow.",
                type(model).__name__, shown, output_projection.ATTRIBUTE)


def _warn_unreached(model: nn.Module, paths: list[str]) -> None:
    shown = ", ".join(p or "(the model itself)" for p in paths[:6]) + (f" and {len(paths) - 6} more" if len(paths) > 6 else "")
    log.warning("slimforge.prune: the example inputs never reach the parameters of %d module(s) of %s (%s), so pruning "
                "cannot see how they connect and leaves them as they are. If the model uses them with other inputs "
                "(LUKE's entity inputs, an optional branch), they may no longer fit the pruned layers: give example "
                "inputs that reach them.", len(paths), type(model).__name__, shown)


MAX_FAILING_CLASSES = 3  # classes kept whole, one by one, before giving up


def _prune_without_failing_module(model: nn.Module, args: tuple, kwargs: dict[str, Any], config: PruneConfig,
                                  ctx: ImportanceContext, reference: Any, failure: PruningError) -> Any:
    """The pruned model failed to run inside a module that computes a size from elsewhere (a view to a width it
    keeps in a constant of its own): prune again with every module of that class kept whole, and say so (up to MAX_FAILING_CLASSES classes); re-raise when no module is to blame.
    An attention of no registered form first goes through the rest of ``ATTENTION_MODES`` (its heads tied to
    its input's width, then its heads kept) before it is kept whole; a class of a registered form that counts its
    heads in an attribute tries its heads tied to its input's width (and is kept whole if that moves the failure out
    of every module)."""
    skip = list(config.skip)
    modes: dict[type, str] = {}
    kept_whole = 0
    layers_tried: set[type] = set()
    first = failure
    escalated: nn.Module | None = None
    while kept_whole < MAX_FAILING_CLASSES:
        module = _failing_module(model, failure, kept=skip)
        blamed = module is not None
        if not blamed:  # a new mode moved the failure out of any module (a classifier's config-sized reshape):
            module, escalated = escalated, None  # the class last tried in it is kept whole instead
            if module is None:
                break
        why = failure.__cause__ if failure.__cause__ is not None else failure
        mode = modes.get(type(module), ATTENTION_MODES[0])
        escalates = blamed and ((unknown_attention(module) and mode != ATTENTION_MODES[-1]) or (
            form_attention(module) and mode == ATTENTION_MODES[0]))
        if escalates:
            escalated = module
            modes[type(module)] = ATTENTION_MODES[ATTENTION_MODES.index(mode) + 1]
            log.info("slimforge.prune: the pruned model failed to run in %s (%s: %s); pruning again with its heads %s.",
                     type(module).__name__, type(why).__name__, str(why)[:160],
                     "tied to its input's width" if modes[type(module)] == "coupled" else "kept")
            if not kept_whole:  # as the first try: sizes fixed in the code kept whole only if that fails
                graph = build_dependency_graph(model, args, kwargs, skip=skip, attention_modes=modes,
                                               keep_outputs=config.keep_outputs)
                try:
                    return _prune_with_fixed_splits_kept(model, args, kwargs, config, ctx, reference, graph, skip, modes)
                except PruningError as again:
                    failure = again
                continue
        else:
            same = [p for p, m in model.named_modules() if p and type(m) is type(module) and not matches(p, skip)]
            one_layer = type(module).__module__.startswith("torch.nn.") and type(module) not in layers_tried
            if one_layer:  # one of torch's layers (a Linear handed a narrower input by the code around it): first that
                # layer alone, then every layer of its class (Deformable DETR's reference points kept all 29 Linears
                # whole, 11.5% instead of 22.8%)
                layers_tried.add(type(module))
                same = [p for p, m in model.named_modules() if m is module and p in same][:1]
            if not same:
                break
            log.warning("slimforge.prune: the pruned model failed to run in %s (%s: %s); pruning again with its %d %s "
                        "module(s) kept whole.", same[0], type(why).__name__, str(why)[:160], len(same), type(module).__name__)
            skip += same
            kept_whole += 0 if one_layer else 1
        graph = build_dependency_graph(model, args, kwargs, skip=skip, pin_fixed_splits=True, attention_modes=modes,
                                       keep_outputs=config.keep_outputs)
        try:
            return _prune_checked(model, args, kwargs, config, ctx, reference, graph)
        except PruningError as again:
            failure = again
    # where keeping the failing modules whole left nothing to prune, the first failure says what went wrong
    raise first if isinstance(failure, NothingToPruneError) else failure


def _failing_module(model: nn.Module, failure: BaseException, kept: Sequence[str] = ()) -> nn.Module | None:
    """The innermost module of ``model`` whose code was running when the pruned model's forward raised, that is not
    kept whole already (``kept``: skipped module paths; a module that fails with its own sizes kept was handed
    sizes by the one that called it: BERT4Rec's scaled dot product, called by its multi-head attention); for a
    pruned model that ran but computed a shape the graph did not expect, the innermost attention of no known form
    around that op (its forward derived a size from its narrowed input), else the innermost module with layers of
    its own around it."""
    found = _innermost_module(model, failure.__cause__, kept)
    if found is not None:
        return found[1]
    inside = {id(m) for p, m in model.named_modules() if p and not matches(p, kept)}
    modules = []
    for path in reversed(getattr(failure, "module_paths", [])):
        try:
            module = model.get_submodule(path) if path else None
        except AttributeError:
            continue
        if module is not None and id(module) in inside:
            modules.append(module)
    # the innermost attention of no known form; else the innermost module holding layers of its own, whose
    # forward computed the size (what the error would tell the user to skip)
    return (next((m for m in modules if unknown_attention(m)), None)
            or next((m for m in modules if holds_layers(m)), None))


def capture_kwargs(model: nn.Module, example_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The keyword inputs of the capture: ``example_kwargs``, plus ``use_cache=False`` for a model
    whose config has a key/value cache (torch.export cannot return a cache object such as
    transformers' ``DynamicCache``). Pruning changes no cache code: generation still uses it."""
    kwargs = dict(example_kwargs or {})
    if _uses_cache(getattr(model, "config", None)) and "use_cache" not in kwargs and _accepts(model, "use_cache"):
        log.warning("slimforge.prune: capturing %s with use_cache=False (its key/value cache cannot be captured); "
                    "the pruned model generates with the cache as before.", type(model).__name__)
        kwargs["use_cache"] = False
    return kwargs


def _uses_cache(config: Any) -> bool:
    """The config, its text model's (a vision-language model keeps ``use_cache`` in its ``text_config``) or one of
    its parts' (MusicGen's ``decoder``) turns the key/value cache on."""
    if getattr(config, "use_cache", None):
        return True
    text_config = getattr(config, "get_text_config", None)
    try:
        if callable(text_config) and getattr(text_config(), "use_cache", None):
            return True
    except Exception:  # noqa: BLE001 - a config without a text part answers in its own way
        pass
    parts = [getattr(config, key, None) for key in (getattr(config, "sub_configs", None) or {})]
    return any(getattr(part, "use_cache", None) is True for part in parts)


def _accepts(model: nn.Module, name: str) -> bool:
    """``model.forward`` takes ``name``: as a parameter, or, for a transformers model, through ``**kwargs``
    (GraniteMoE's causal LM hands ``use_cache`` on to its decoder that way)."""
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    if name in parameters:
        return True
    passes_on = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return passes_on and type(model).__module__.startswith("transformers.") and not _sets_itself(model, name)


def _sets_itself(model: nn.Module, name: str) -> bool:
    """The forward passes ``name=`` to its inner model itself beside ``**kwargs`` (T5Gemma 2's classifier calls its
    encoder-decoder with ``use_cache=False, **kwargs``): given again, the call fails."""
    try:
        source = inspect.getsource(type(model).forward)
    except (OSError, TypeError):
        return False
    return re.search(rf"\b{name}\s*=", source) is not None


def _explain_nothing_pruned(graph: DependencyGraph, config: PruneConfig) -> None:
    """A ratio above 0 that removes nothing is an error, not a silent 1.00x "pruned" model."""
    ratios = list(config.ratio.values()) if isinstance(config.ratio, Mapping) else [config.ratio]
    if config.ratio is None or max(float(r) for r in ratios) <= 0:
        return
    prunable = [g for g in graph.groups if len(g.units) > 1]
    if not prunable:
        why = f"the skip patterns {list(config.skip)} leave no" if config.skip else "the model has no"
        raise NothingToPruneError(f"Nothing to prune: {why} group of channels, neurons or heads that can shrink "
                           "(inputs, outputs and attention sizes stay fixed). slimforge.prune.explain_kept(model, "
                           "example, parameter=..., dim=...) names the op that keeps a layer's dimension whole.")
    raise NothingToPruneError(
        f"ratio {config.ratio} removes nothing: rounding each of the {len(prunable)} prunable groups' kept count "
        f"(to whole units, multiples of round_to={config.round_to} channels) keeps every unit. Raise the ratio or lower round_to."
    )


def _check_skip_patterns(model: nn.Module, skip: Sequence[str]) -> None:
    """A skip pattern that names no module is a typo: it would leave nothing alone, silently."""
    names = [name for name, _ in model.named_modules() if name]
    unused = [p for p in skip if not any(matches(name, [p]) for name in names)]
    if unused:
        from slimforge.errors import did_you_mean

        raise PruneConfigError(
            f"skip pattern(s) {unused} match no module of {type(model).__name__}.{did_you_mean(unused[0], names)} "
            f"Module names look like: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}."
        )


def _restore_point(model: nn.Module) -> Callable[[], None]:
    """What slicing changes (each module's tensors, its public attributes such as out_channels, a
    Hugging Face config's sizes), by reference; calling the result puts all of it back."""
    saved = []
    for module in model.modules():
        attrs = {k: v for k, v in vars(module).items() if not k.startswith("_")}
        config = getattr(module, "config", None)
        saved.append((module, dict(module._parameters), dict(module._buffers), attrs,
                      (config, dict(vars(config))) if config is not None and hasattr(config, "__dict__") else None))

    def restore() -> None:
        for module, params, buffers, attrs, config in saved:
            module._parameters.clear()
            module._parameters.update(params)
            module._buffers.clear()
            module._buffers.update(buffers)
            vars(module).update(attrs)
            if CONFIG_KEPT not in attrs:  # added by this try (config sizes it kept): gone with it
                vars(module).pop(CONFIG_KEPT, None)
            if config is not None:
                vars(config[0]).update(config[1])

    return restore


def importance_context(model: nn.Module, config: PruneConfig, calibration: Iterable[Any] | None,
                       loss_fn: Callable[[Any, Any], torch.Tensor] | None) -> ImportanceContext:
    tensors = dict(model.state_dict(keep_vars=True))
    norm_types = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    norms = frozenset(f"{p}.weight" if p else "weight" for p, m in model.named_modules() if isinstance(m, norm_types))
    taylor = None
    batches = list(calibration) if calibration is not None else None  # read twice: Taylor scores, latency sensitivity
    if needs_gradients(config.importance):
        if batches is None:
            raise PruneConfigError(
                f"importance={config.importance!r} needs gradients: pass calibration=[(inputs, targets), ...] (a few batches)."
            )
        taylor = _taylor_products(model, batches, loss_fn)
    return ImportanceContext(tensors, norms, torch.Generator().manual_seed(config.seed), taylor, batches, loss_fn)


def _taylor_products(model: nn.Module, calibration: Iterable[Any], loss_fn: Callable | None) -> dict[str, torch.Tensor]:
    """Sum over calibration batches of weight * dL/dweight, per parameter."""
    loss_fn = loss_fn or nn.functional.cross_entropy
    params = dict(model.named_parameters())
    acc = {k: torch.zeros_like(p, dtype=torch.float32) for k, p in params.items()}
    was_training = model.training
    model.eval()
    try:
        for batch in calibration:
            inputs, targets = batch[0], batch[1]
            model.zero_grad(set_to_none=True)
            out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
            out = getattr(out, "logits", out)
            loss_fn(out, targets).backward()
            for k, p in params.items():
                if p.grad is not None:
                    acc[k] += (p.detach() * p.grad).float()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return acc


def choose_pruned_units(model: nn.Module, graph: DependencyGraph, scores: list[np.ndarray], config: PruneConfig) -> set[int]:
    """Roots of the units to remove."""
    if config.ratio is not None:
        return _prune_at(graph, scores, lambda g: _ratio_for(g, config.ratio), config.round_to)
    total_params = sum(p.numel() for p in _unique_params(model))
    base_macs = graph.count_macs(set()) if config.target_macs is not None else 0

    def kept_fraction(r: float) -> float:
        pruned = _prune_at(graph, scores, lambda g: r, config.round_to)
        if config.target_params is not None:
            return count_params_after(model, graph, pruned) / total_params
        return graph.count_macs(pruned) / max(base_macs, 1)

    target = config.target_params if config.target_params is not None else config.target_macs
    lo, hi = 0.0, 0.99
    if kept_fraction(hi) > target:
        raise PruningError(
            f"Even removing 99% of every prunable group keeps {kept_fraction(hi):.3f} of the "
            f"{'parameters' if config.target_params is not None else 'MACs'}, above the target {target}: "
            "too much of the model is pinned (inputs, outputs, skipped layers, attention sizes)."
        )
    for _ in range(14):
        mid = (lo + hi) / 2
        if kept_fraction(mid) > target:
            lo = mid
        else:
            hi = mid
    return _prune_at(graph, scores, lambda g: hi, config.round_to)


def _ratio_for(group: Group, ratio: float | Mapping[str, float]) -> float:
    if not isinstance(ratio, Mapping):
        return float(ratio)
    for pattern, r in ratio.items():
        if matches(group.module, [pattern]):
            return float(r)
    return 0.0


def _prune_at(graph: DependencyGraph, scores: list[np.ndarray], ratio_of: Callable[[Group], float], round_to: int) -> set[int]:
    pruned: set[int] = set()
    per_group_heads = balanced_units(graph)
    for g, (group, s) in enumerate(zip(graph.groups, scores)):
        r = ratio_of(group)
        n = len(group.units)
        if r <= 0 or n <= 1:
            continue
        branched = round_to > 1 and len(set(group.branches)) > 1  # each producing layer rounds its own count
        step = 1 if branched else round_to
        # query heads within their key/value groups: the ratio applied to each group's heads
        blocks = [block for attention in per_group_heads.get(g, []) for block in attention]
        dropped = []
        for pool in _reach_pools(group, np.concatenate(blocks) if blocks else None) + blocks:
            ranked = pool[np.argsort(s[pool], kind="stable")]  # ascending: least important first
            dropped.extend(ranked[: len(pool) - keep_count(len(pool), r, group.width, step)].tolist())
        if branched:
            dropped = _per_branch(group, s, np.asarray(dropped, dtype=int), round_to)
        pruned.update(group.units[i].root for i in dropped)
    return pruned


MIN_POOL = 8  # units: a class of fewer joins the others' common pool


def _reach_pools(group: Group, apart: np.ndarray | None = None) -> list[np.ndarray]:
    """The group's units split by reach (``Group.classes``: the slots each appears in), for a ratio
    applied to each part. A unit's score is a mean over the slots it appears in, so units read by
    many layers (a residual stream's channels) all score near the mean while units read by few
    (an attention's inner channels tied to it) spread wide: ranked together, the first are never
    dropped. Classes under ``MIN_POOL`` units are ranked together in one pool. Units ``apart`` (query heads pruned
    within their key/value groups, each group a pool of its own) are left out."""
    if len(set(group.classes)) <= 1:
        pools = [np.arange(len(group.units))]
    else:
        classes = np.asarray(group.classes)
        pools, rest = [], []
        for c in np.unique(classes).tolist():
            members = np.flatnonzero(classes == c)
            (pools if len(members) >= MIN_POOL else rest).append(members)
        if rest:
            pools.append(np.concatenate(rest))
    if apart is not None:
        pools = [p for p in (p[~np.isin(p, apart)] for p in pools) if len(p)]
    return pools


def _per_branch(group: Group, scores: np.ndarray, dropped: np.ndarray, round_to: int) -> list[int]:
    """Units to drop when a group spans several producing layers (a concat's inputs): the choice
    ``dropped``, then each layer's kept count rounded to ``round_to`` channels (keeping its best-scored
    units), so no layer is left with an odd width or with none. Counts are rounded down, then the
    steps the group's total still asks for go to the layers that had the largest remainders, so the
    group lands near its ratio (rounding each layer to the nearest step cut every 16-channel DenseNet
    layer to 8 at ratio 0.3)."""
    branches = np.asarray(group.branches)
    is_dropped = np.zeros(len(branches), dtype=bool)
    is_dropped[dropped] = True
    step = unit_step(group.width, round_to)
    layers = [np.flatnonzero(branches == b) for b in np.unique(branches).tolist()]
    kept = [int((~is_dropped[m]).sum()) for m in layers]
    keep = [max(1, min(len(m), k)) if len(m) <= step else min(len(m), max(step, k // step * step)) for m, k in zip(layers, kept)]
    can_grow = [i for i, m in enumerate(layers) if len(m) > step and keep[i] + step <= len(m)]
    can_grow.sort(key=lambda i: keep[i] - kept[i])  # the largest remainder first (stable: layer order on ties)
    for i in can_grow[: max(0, round((sum(kept) - sum(keep)) / step))]:
        keep[i] += step
    out: list[int] = []
    for members, k in zip(layers, keep):
        ranked = members[np.argsort(scores[members], kind="stable")]  # ascending within the layer
        out.extend(ranked[: len(members) - k].tolist())
    return out


def keep_count(n: int, ratio: float, width: int, round_to: int) -> int:
    """Units kept: n*(1-ratio), rounded so kept channels (units*width) are a multiple of round_to, >= 1."""
    step = unit_step(width, round_to)
    want = n * (1.0 - ratio)
    if n <= step:
        return max(1, min(n, round(want)))
    keep = max(step, int(round(want / step)) * step)
    return min(n, keep)


def count_params_after(model: nn.Module, graph: DependencyGraph, pruned: set[int]) -> int:
    kept = kept_indices(graph, pruned)
    total = 0
    for name, p in _unique_named_params(model):
        dims = kept.get(name, {})
        total += math.prod(len(dims[d]) if d in dims else s for d, s in enumerate(p.shape))
    return total


def _unique_named_params(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return list(model.named_parameters())


def _unique_params(model: nn.Module) -> list[torch.Tensor]:
    return [p for _, p in _unique_named_params(model)]


def make_plan(graph: DependencyGraph, pruned: set[int]) -> dict[str, Any]:
    """The JSON plan (see :mod:`slimforge.prune.plan`)."""
    groups = []
    for group in graph.groups:
        kept = [i for i, u in enumerate(group.units) if u.root not in pruned]
        if len(kept) < len(group.units):
            groups.append({"anchor": group.anchor, "units": len(group.units), "kept": encode_runs(kept)})
    tensors = {name: {str(d): encode_runs(idx) for d, idx in sorted(dims.items())} for name, dims in kept_indices(graph, pruned).items()}
    return {"kind": "prune", "version": PLAIN_PLAN_VERSION, "groups": groups, "tensors": tensors}


def _output_shapes(model: nn.Module, args: tuple, kwargs: dict[str, Any]) -> Any:
    """Shapes of the model's eval-mode outputs on ``args``, computed on the meta device (no
    arithmetic: a ViT-H forward costs milliseconds, not seconds); a real forward where some op
    has no meta kernel."""
    was_training = model.training
    model.eval()
    attributes = _tensor_attributes(model)
    try:
        with torch.no_grad():
            try:
                meta = {k: torch.empty_like(v, device="meta") for k, v in _tensors(model).items()}
                out = torch.func.functional_call(model, meta, _to_meta(args), _to_meta(kwargs), strict=False)
            except Exception:  # noqa: BLE001 - no meta kernel somewhere: run it for real
                _restore_attributes(attributes)
                out = model(*args, **kwargs)
    finally:
        model.train(was_training)
        _restore_attributes(attributes)
    return _shapes(out)


def _clear_property_caches(model: nn.Module) -> None:
    """A tensor that a property caches in a private attribute of its name (Mimi's and EnCodec's codebooks: ``embed``
    computes ``_embed`` from the ``embed_sum`` buffer once) is dropped: the capture then sees it computed from the
    buffer, which pruning slices with the channels it meets, and the pruned model computes it again at its new width
    (a cached copy would be read instead, the buffer left whole, and a reloaded model, which starts without the
    cache, would not fit)."""
    for module in model.modules():
        for name, value in list(vars(module).items()):
            if (isinstance(value, torch.Tensor) and name.startswith("_") and not name.startswith("__")
                    and isinstance(getattr(type(module), name[1:], None), property)):
                module.__dict__[name] = None


def _tensor_attributes(model: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor | None]]:
    """Plain tensor attributes (neither parameters nor buffers) of every module, and those still None: a forward may
    move one to its input's device (OpenAI CLIP's ``self.attn_mask = self.attn_mask.to(device=x.device)``) or fill a
    cache (Mimi's codebook ``_embed``), which the meta-device run would leave on the meta device."""
    return [(m, k, v) for m in model.modules() for k, v in vars(m).items()
            if isinstance(v, torch.Tensor) or (v is None and not k.startswith("__"))]


def _restore_attributes(attributes: list[tuple[nn.Module, str, torch.Tensor | None]]) -> None:
    for module, name, value in attributes:
        if module.__dict__.get(name) is not value:
            module.__dict__[name] = value


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers(remove_duplicate=False))}


def _to_meta(args: Any) -> Any:
    if isinstance(args, torch.Tensor):
        return args.to("meta")
    if isinstance(args, Mapping):
        return {k: _to_meta(v) for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        return type(args)(_to_meta(v) for v in args)
    return args


def _shapes(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, Mapping):
        fields = prediction_fields(type(out), list(out.keys()))  # logits of a transformers output (see _trace)
        return {k: _shapes(v) for k, v in out.items() if fields is None or k in fields}
    if isinstance(out, (list, tuple)):
        return [_shapes(v) for v in out]
    return None


def _tensor_fields(shapes: Any) -> Any:
    """Output shapes with the sizes of a mapping's per-layer states forgotten (a bare backbone's ``hidden_states``:
    free to narrow while its features are projected back; :func:`~slimforge.prune._capture.per_layer_states`)."""
    if isinstance(shapes, Mapping):
        return {k: _ranks(v) if per_layer_states(k) else v for k, v in shapes.items()}
    return shapes


def _ranks(shapes: Any) -> Any:
    """Output shapes with every size forgotten: what stays when outputs may narrow."""
    if isinstance(shapes, tuple):
        return len(shapes)
    if isinstance(shapes, Mapping):
        return {k: _ranks(v) for k, v in shapes.items()}
    if isinstance(shapes, list):
        return [_ranks(v) for v in shapes]
    return shapes


def _innermost_module(model: nn.Module, exc: BaseException | None, kept: Sequence[str] = ()) -> tuple[str, nn.Module] | None:
    """(path, module) of the innermost submodule of ``model`` (not under the ``kept`` patterns) whose code was running
    when ``exc`` was raised, or None."""
    inside = {id(m): (p, m) for p, m in model.named_modules() if p and not matches(p, kept)}
    tb, found = getattr(exc, "__traceback__", None), None
    while tb is not None:
        module = tb.tb_frame.f_locals.get("self")
        if isinstance(module, nn.Module) and id(module) in inside:
            found = inside[id(module)]
        tb = tb.tb_next
    return found


def _check_outputs_keeping_config(model: nn.Module, args: tuple, kwargs: dict[str, Any], reference: Any,
                                  before: dict[str, dict[str, int]], widths: bool | str) -> dict[str, dict[str, int]]:
    """:func:`_check_outputs`; where the pruned model no longer runs, once more with the config sizes the sync changed
    put back (Grounding DINO's decoder sizes a sine embedding of the reference points from ``config.d_model`` in its
    forward, for a layer whose input that embedding is, which keeps its width). Returns those sizes (path -> key ->
    value) where that made it run, for the plan to put back on replay; {} where none was needed."""
    try:
        _check_outputs(model, args, kwargs, reference, widths=widths)
        return {}
    except PruningError as failure:
        if not getattr(failure, "did_not_run", False):
            raise
        synced = config_values(model)
        changed = {path: {k: v for k, v in values.items() if synced.get(path, {}).get(k, v) != v} for path, values in before.items()}
        changed = {path: values for path, values in changed.items() if values}
        if not changed:
            raise
        keep_config_values(model, changed)
        try:
            _check_outputs(model, args, kwargs, reference, widths=widths)
        except PruningError:
            keep_config_values(model, {path: {k: synced[path][k] for k in values} for path, values in changed.items()}, remember=False)
            raise failure from failure.__cause__
    log.warning("slimforge.prune: %s runs pruned only with its config's %s as before (its forward reads them for sizes "
                "pruning kept); the config no longer describes the pruned shapes, so save_pretrained refuses it.",
                type(model).__name__, ", ".join(sorted({k for values in changed.values() for k in values})))
    return changed


def _recounted(shapes: Any, counts: dict[int, int]) -> Any:
    """Output shapes with each size read off the data (``counts``: original -> pruned model's) replaced by the new one:
    a text-to-speech model's frames follow the durations it predicts, which pruning changes."""
    if not counts:
        return shapes
    if isinstance(shapes, tuple) and all(isinstance(s, int) for s in shapes):
        return tuple(counts.get(s, s) for s in shapes)
    if isinstance(shapes, Mapping):
        return {k: _recounted(v, counts) for k, v in shapes.items()}
    if isinstance(shapes, (list, tuple)):
        return type(shapes)(_recounted(v, counts) for v in shapes)
    return shapes


def _check_outputs(model: nn.Module, args: tuple, kwargs: dict[str, Any], reference: Any, widths: bool | str = True) -> None:
    """The pruned model runs and its outputs have the reference's shapes (widths=True), ranks (False), or shapes
    where a field holds one tensor ("features": a projected bare backbone's per-layer states may narrow)."""
    try:
        got = _output_shapes(model, args, kwargs)
    except Exception as exc:
        path = (_innermost_module(model, exc) or (None,))[0]
        where, advice = (f" in {path}", f"pass skip=[{path!r}]") if path else ("", "find it in the traceback and pass skip=['<its module path>']")
        error = PruningError(
            f"The pruned model no longer runs{where} ({type(exc).__name__}: {str(exc)[:300]}). Some layer computes sizes "
            f"that slimforge did not update; {advice}."
        )
        error.did_not_run = True  # not a wrong shape: a size pruning missed, which a kept config size may explain
        raise error from exc
    compare = {True: lambda shapes: shapes, False: _ranks, "features": _tensor_fields}[widths]
    if compare(got) != compare(reference):
        raise PruningError(
            f"Pruning changed the output shape from {reference} to {got}; this is a slimforge bug. "
            "Skip the layers near the output with skip=[...] to work around it."
        )
