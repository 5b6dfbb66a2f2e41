"""Pruning plans: the kept indices, as JSON, and how to apply them to a model.

A plan is what ``model.json`` records under ``edits``::

    {"kind": "prune", "version": 1,
     "groups":  [{"anchor": "layer1.0.conv1.weight:0", "units": 64, "kept": [[0, 3], [5, 64]]}, ...],
     "tensors": {"layer1.0.conv1.weight": {"0": [[0, 3], [5, 64]]}, ...}}

Index lists are stored as ``[start, stop)`` runs. ``groups`` says, for each coupled group, which
units survived (for people); ``tensors`` says, for every parameter or buffer that shrank, which
indices of which dimension survived (for :func:`apply_plan`). Replaying needs no graph capture:
slice the tensors, then recompute the module attributes that depend on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from slimforge.artifacts import register_edit
from slimforge.errors import ArtifactError
from slimforge.models._hf_config_fit import PER_LAYER, config_value, has_global
from slimforge.prune import _output_projection as output_projection
from slimforge.prune._split_blocks import sync_split_block
from slimforge.prune.attention import _int, find_attention_form, is_linear_like, remember_sizes, sync_attention, use_needed_stand_ins
from slimforge.prune.errors import PruningError

if TYPE_CHECKING:
    from slimforge.prune._graph import DependencyGraph

PLAN_VERSION = 2  # the newest plan this reads; 2 puts back config sizes the pruned forward reads ("config_kept")
PLAIN_PLAN_VERSION = 1  # what a plan without them is written as, so that older readers still take it


def encode_runs(indices: np.ndarray | list[int]) -> list[list[int]]:
    """Sorted indices as [start, stop) runs: [0, 1, 2, 5] -> [[0, 3], [5, 6]]."""
    runs: list[list[int]] = []
    for i in (int(x) for x in indices):
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    return runs


def decode_runs(runs: list[list[int]]) -> list[int]:
    return [i for start, stop in runs for i in range(start, stop)]


def apply_plan(model: nn.Module, plan: dict[str, Any]) -> nn.Module:
    """Slice ``model``'s tensors as ``plan`` says (in place) and update dependent attributes.

    A plan of the wrong shape (types, runs out of order or out of the tensor's range) is an
    :class:`ArtifactError` naming the key; one made for another architecture a :class:`PruningError`.
    """
    if not isinstance(plan, dict):
        raise ArtifactError(f"A pruning edit must be an object, not {type(plan).__name__}; model.json is corrupt.")
    version = plan.get("version", PLAN_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ArtifactError(f"Pruning edit: 'version' must be an integer, not {version!r}; model.json is corrupt.")
    if version > PLAN_VERSION:
        raise PruningError(f"pruning plan version {plan['version']} is newer than this slimforge reads ({PLAN_VERSION}).")
    shapes = {name: tuple(t.shape) for name, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]}
    kept = {name: {d: decode_runs(runs) for d, runs in dims.items()} for name, dims in _checked_tensors(plan, shapes).items()}
    config_kept = _checked_config_kept(plan["config_kept"], model) if "config_kept" in plan else {}
    slice_tensors(model, kept)
    keep_config_values(model, config_kept)
    return model


def config_values(model: nn.Module) -> dict[str, dict[str, int]]:
    """The integer sizes of every transformers config inside ``model``, by the path of the model holding it."""
    from slimforge.models.hf import hf_models

    paths = {id(m): p for p, m in model.named_modules()}
    return {paths[id(hf)]: {k: v for k, v in vars(hf.config).items() if type(v) is int} for hf in hf_models(model)}


CONFIG_KEPT = "slimforge_config_kept"  # on a transformers model: config sizes the sync leaves as they are


def keep_config_values(model: nn.Module, kept: dict[str, dict[str, int]], remember: bool = True) -> None:
    """Put back config sizes the config sync changed that the pruned model's forward reads for something of the
    original size (``kept``: path of the transformers model -> key -> value; a plan's ``config_kept``). The model
    keeps them in ``slimforge_config_kept``, which later syncs (another pruning, ``save_pretrained``) respect."""
    for path, values in kept.items():
        hf = model.get_submodule(path)
        for key, value in values.items():
            setattr(hf.config, key, value)
        if remember:
            setattr(hf, CONFIG_KEPT, {**getattr(hf, CONFIG_KEPT, {}), **values})


def _checked_config_kept(kept: Any, model: nn.Module) -> dict[str, dict[str, int]]:
    """``plan["config_kept"]`` after checking it names transformers models of ``model`` and integer keys their
    configs hold."""
    holders = config_values(model)
    if not isinstance(kept, dict) or not all(isinstance(v, dict) for v in kept.values()):
        raise ArtifactError(f"Pruning edit: 'config_kept' must be an object of model path -> {{key: size}}, not {_short(kept)}; model.json is corrupt.")
    for path, values in kept.items():
        if path not in holders:
            raise PruningError(f"Pruning edit: 'config_kept' names {path!r}, which holds no transformers config in this model.")
        for key, value in values.items():
            if key not in holders[path] or type(value) is not int:
                raise ArtifactError(f"Pruning edit: config_kept[{path!r}][{key!r}] must be an integer size its config holds; model.json is corrupt.")
    return kept


def _checked_tensors(plan: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> dict[str, dict[int, list[list[int]]]]:
    """``plan["tensors"]`` with integer dimensions, after checking every run is ``[start, stop)``
    with 0 <= start < stop, runs increasing and not overlapping, and (for a tensor the model has)
    inside its size, before any index list is built from them."""
    tensors = plan.get("tensors", {})
    if not isinstance(tensors, dict):
        raise ArtifactError(f"Pruning edit: 'tensors' must be an object of tensor name -> kept indices, not {_short(tensors)}; model.json is corrupt.")
    checked: dict[str, dict[int, list[list[int]]]] = {}
    for name, dims in tensors.items():
        where = f"pruning edit tensors[{name!r}]"
        if not isinstance(dims, dict) or not dims:
            raise ArtifactError(f"{where} must be an object of dimension -> kept runs, not {_short(dims)}; model.json is corrupt.")
        shape = shapes.get(name)
        checked[name] = {}
        for key, runs in dims.items():
            if not ((isinstance(key, str) and key.isdigit()) or (isinstance(key, int) and not isinstance(key, bool) and key >= 0)):
                raise ArtifactError(f"{where}: dimension {key!r} is not a non-negative integer; model.json is corrupt.")
            dim = int(key)
            if shape is not None and dim >= len(shape):
                raise PruningError(f"The pruning plan slices dimension {dim} of {name!r}, whose shape is {shape}: the plan was made for a different architecture.")
            size = shape[dim] if shape is not None else None
            checked[name][dim] = _checked_runs(runs, f"{where}[{key!r}]", size)
    return checked


def _checked_runs(runs: Any, where: str, size: int | None) -> list[list[int]]:
    if not isinstance(runs, list) or not runs:
        raise ArtifactError(f"{where} must be a non-empty list of [start, stop) runs, not {_short(runs)}; model.json is corrupt.")
    previous = 0
    for i, run in enumerate(runs):
        ok = isinstance(run, list) and len(run) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in run)
        if not ok or not previous <= run[0] < run[1]:
            raise ArtifactError(
                f"{where} run {i} is {_short(run)}; runs must be [start, stop) integer pairs, increasing and not "
                "overlapping; model.json is corrupt."
            )
        if size is not None and run[1] > size:
            raise PruningError(
                f"The pruning plan keeps indices up to {run[1] - 1} ({where}), but that dimension has size {size}: "
                "the plan was made for a different architecture."
            )
        previous = run[1]
    return runs


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@register_edit("prune")
def _replay(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Artifact replay: re-apply a recorded plan to a freshly built model (weights load after)."""
    if not isinstance(edit, dict) or "tensors" not in edit:  # every recorded plan says which tensors shrank, even none
        raise ArtifactError("Pruning edit: no 'tensors' key (which tensors shrank, and how); model.json is corrupt.")
    largest = max((max(p.shape, default=1) for p in model.parameters()), default=1)  # before slicing: the widths projected back
    apply_plan(model, edit)
    if "outputs" in edit:  # keep_outputs="project": the layers that put narrowed outputs back to their widths
        output_projection.install(model, output_projection.checked_entries(edit["outputs"], largest))
    return model


def kept_indices(graph: DependencyGraph, pruned: set[int]) -> dict[str, dict[int, np.ndarray]]:
    """The indices each tensor keeps, {tensor name: {dim: indices}}, once the units ``pruned`` of ``graph`` are removed."""
    kept: dict[str, dict[int, np.ndarray]] = {}
    for (name, d), idx in graph.kept_positions(pruned).items():
        kept.setdefault(name, {})[d] = idx
    return kept


def slice_tensors(model: nn.Module, kept: dict[str, dict[int, list[int] | np.ndarray]]) -> None:
    """Keep only ``kept[name][dim]`` indices of each named parameter/buffer; sync module attributes."""
    remember_sizes(model)  # head sizes that the sliced weights no longer tell (timm's Twins, CaiT)
    feature_widths = _feature_width_attributes(model)
    owners: dict[str, list[tuple[nn.Module, str, bool]]] = {}
    shapes_before: dict[str, tuple[int, ...]] = {}
    by_id: dict[int, list[tuple[nn.Module, str, bool]]] = {}
    for mpath, module in model.named_modules(remove_duplicate=False):
        for attr, t in list(module._parameters.items()) + list(module._buffers.items()):
            if t is None:
                continue
            entry = (module, attr, attr in module._parameters)
            owners[f"{mpath}.{attr}" if mpath else attr] = [entry]
            shapes_before[f"{mpath}.{attr}" if mpath else attr] = tuple(t.shape)
            by_id.setdefault(id(t), []).append(entry)
    snapshots: dict[int, tuple[nn.Module, dict[str, Any]]] = {}
    weight_norms = _weight_norms_before(model, kept)
    with torch.no_grad():
        for name, dims in kept.items():
            if name not in owners and (_resize_shape_attribute(model, name, dims) or _slice_tensor_attribute(model, name, dims)):
                continue
            if name not in owners:
                raise PruningError(
                    f"The pruning plan slices tensor {name!r}, which this model does not have: the plan was made "
                    "for a different architecture."
                )
            module, attr, is_param = owners[name][0]
            old = getattr(module, attr)
            new = _kept_along(name, old, dims)
            new = nn.Parameter(new.contiguous(), requires_grad=old.requires_grad) if is_param else new.contiguous()
            for m, a, p in by_id.get(id(old), [(module, attr, is_param)]):
                snapshots.setdefault(id(m), (m, _snapshot(m)))
                (m._parameters if p else m._buffers)[a] = new
    for module, snap in snapshots.values():
        _sync_attributes(module, snap)
    _keep_weight_norms(weight_norms)
    _sync_blocks(model)
    use_needed_stand_ins(model)
    _sync_attention_and_config(model)
    _sync_feature_widths(feature_widths, _last_sizes(owners, shapes_before) if feature_widths else {})


# The width of the features a timm model's classifier reads, as attributes of the model and of its head modules
# (reset_classifier builds the new head with them, ConvNeXt's head asserts its in_features; no forward reads them, so
# only a later reset_classifier would fail on a stale value).
_FEATURE_WIDTH_NAMES = ("num_features", "head_hidden_size", "embed_dim", "in_features")


def _feature_width_attributes(model: nn.Module) -> list[tuple[nn.Module, str, Any, Any]]:
    """Before slicing: the feature-width attributes of each timm model (one with ``get_classifier``) and of the
    modules on the path to its classifier, with their values and the classifier's Linear where they equal its input
    width."""
    found = []
    for module in model.modules():
        if not type(module).__module__.startswith("timm.") or not callable(getattr(module, "get_classifier", None)):
            continue
        try:
            head = module.get_classifier()
        except Exception:  # noqa: BLE001 - a model whose classifier accessor needs more than itself
            head = None
        head = head[0] if isinstance(head, tuple) and head else head  # (head, distillation head)
        path = next((p for p, m in module.named_modules() if m is head), None) if isinstance(head, nn.Module) else None
        parts = path.split(".") if path else []
        holders = [module] + [module.get_submodule(".".join(parts[:i])) for i in range(1, len(parts) + 1)]
        linear = next((m for m in head.modules() if isinstance(m, nn.Linear)), None) if isinstance(head, nn.Module) else None
        branches = list(head) if isinstance(head, nn.ModuleList) and all(isinstance(m, nn.Linear) for m in head) else []
        for holder in (h for h in holders if not isinstance(h, nn.Linear)):  # a Linear's in_features is its weight's
            for name in _FEATURE_WIDTH_NAMES:
                value = getattr(holder, name, None)
                if type(value) is int:
                    found.append((holder, name, value, linear if linear is not None and value == linear.in_features else None))
                elif (isinstance(value, (tuple, list)) and branches and value
                      and all(type(v) is int and v in {m.in_features for m in branches} for v in value)):
                    # one width and one head per branch (CrossViT) or per stage (EfficientViM): mapped head by head
                    found.append((holder, name, value, [(m, m.in_features) for m in branches]))
    return found


def _last_sizes(owners: dict[str, list[tuple[nn.Module, str, bool]]], before: dict[str, tuple[int, ...]]) -> dict[int, int]:
    """Each old dimension size -> the size now of the last tensor dimension (in module order) that had it: the
    features a model ends with are the last of their width (its final norm, the head convolution's input)."""
    sizes: dict[int, int] = {}
    for name, shape in before.items():
        module, attr, _ = owners[name][0]
        for old, new in zip(shape, getattr(module, attr).shape):
            sizes[old] = new
    return sizes


def _sync_feature_widths(found: list[tuple[nn.Module, str, Any, Any]], sizes: dict[int, int]) -> None:
    """A feature width that the classifier reads follows the classifier's input (per branch, for one head per
    branch); another (no classifier: ``num_classes=0``; MobileNetV3's ``num_features`` before its head convolution)
    follows the last tensor dimension of its old size."""
    for holder, name, old, linear in found:
        if isinstance(linear, list):
            now = {width: m.in_features for m, width in linear}
            setattr(holder, name, type(old)(now[v] for v in old))
        else:
            setattr(holder, name, linear.in_features if linear is not None else sizes.get(old, old))


def _weight_norms_before(model: nn.Module, kept: dict[str, dict[int, Any]]) -> list[tuple[nn.Module, int, torch.Tensor]]:
    """Each weight-normalised weight (``g * v / ||v||``) whose ``v`` the plan slices: (its parametrization list, its
    ``dim``, the norm of ``v`` before slicing, kept along ``dim`` as the plan keeps ``g``)."""
    found = []
    for path, module in model.named_modules():
        norm = next((p for p in module if type(p).__name__ == "_WeightNorm"), None) if type(module).__name__ == "ParametrizationList" else None
        v_name = f"{path}.original1"
        if norm is None or v_name not in kept or not isinstance(getattr(module, "original1", None), torch.Tensor):
            continue
        v, dim = module.original1.detach(), norm.dim
        before = torch.norm_except_dim(v, 2, dim)
        idx = kept[v_name].get(dim % v.dim()) if dim != -1 else None
        if idx is not None:
            before = before.index_select(dim, torch.as_tensor(np.asarray(idx, dtype=np.int64), device=v.device))
        found.append((module, dim, before))
    return found


def _keep_weight_norms(weight_norms: list[tuple[nn.Module, int, torch.Tensor]]) -> None:
    """After slicing: rescale each weight norm's ``g`` by the norm ``v`` lost, so the kept entries of the weight are the
    entries they were (the norm runs over the removed channels too: wav2vec 2.0's positional convolution)."""
    with torch.no_grad():
        for module, dim, before in weight_norms:
            after = torch.norm_except_dim(module.original1, 2, dim)
            module.original0.mul_((after / before.clamp_min(torch.finfo(before.dtype).tiny)).to(module.original0.dtype))


def _keep_head_size(model: nn.Module, config: Any) -> None:
    """Once heads go, hidden_size / num_attention_heads is no longer the head size; a config that would derive it
    so gets it explicitly (``head_dim``), as transformers reads it where present: PhiMoE's rotary embedding recomputes
    its width from the config in every forward, and the pruned model failed on a 24-wide rotation of 16-wide heads."""
    hidden, heads = config_value(config, "hidden_size"), config_value(config, "num_attention_heads")
    if not (isinstance(hidden, int) and isinstance(heads, int) and heads > 0) or config_value(config, "head_dim", PER_LAYER) is not None:
        return  # a head_dim the config sets, for the model or per layer (Gemma 4's global layers), is read, not derived
    sizes = {_head_size(m, form) for m in model.modules() if (form := find_attention_form(m)) is not None and not form.part}
    if len(sizes) == 1 and (size := sizes.pop()) * heads != hidden:
        config.head_dim = size


def _head_size(module: nn.Module, form: Any) -> int:
    """The attention head size (a form's ``head_dim`` counts a head's channels in its projection: GPT-NeoX's 3 x)."""
    attr = next((a for a in ("head_dim", "head_size", "attention_head_size") if _int(module, a)), None)
    return getattr(module, attr) if attr is not None else form.head_dim(module)


def _sync_blocks(model: nn.Module) -> None:
    """Sizes a module keeps for its children's tensors, having none of its own to slice."""
    for module in model.modules():
        if sync_split_block(module):
            continue
        if type(module).__name__ == "HieraLayer" and _hiera_layer_sizes(module):
            continue
        norm = getattr(module, "per_layer_projection_norm", None)
        if isinstance(getattr(module, "hidden_size_per_layer_input", None), int) and isinstance(getattr(norm, "weight", None), torch.Tensor):
            # Gemma 3n / 4 reshape their per-layer embeddings to (..., layers, hidden_size_per_layer_input): it follows
            # the norm over that width (the decoder layers read their copy only as a flag).
            module.hidden_size_per_layer_input = norm.weight.shape[0]
            continue
        experts = getattr(module, "experts", None)
        if not (isinstance(experts, nn.Module) and _is_experts(experts)) or module is experts:
            continue
        # A mixture-of-experts block views tokens to its width: GraniteMoE's output.view(bsz, length, input_size),
        # ERNIE-4.5-MoE's hidden_states.view(-1, hidden_dim).
        for attr in ("input_size", "hidden_dim"):
            if isinstance(getattr(module, attr, None), int):
                setattr(module, attr, _experts_widths(experts)[0])


def _hiera_layer_sizes(module: nn.Module) -> bool:
    """transformers' HieraLayer views its pooled residual to ``hidden_size_output`` and projects it when
    ``hidden_size != hidden_size_output``: both follow its norms. A pruning that made them equal would skip
    the projection, so it is refused."""
    before, after = getattr(module, "layernorm_before", None), getattr(module, "layernorm_after", None)
    if not (isinstance(before, nn.LayerNorm) and isinstance(after, nn.LayerNorm) and isinstance(getattr(module, "hidden_size", None), int)):
        return False
    was_projected = module.hidden_size != module.hidden_size_output
    module.hidden_size, module.hidden_size_output = before.normalized_shape[0], after.normalized_shape[0]
    if was_projected and module.hidden_size == module.hidden_size_output:
        raise PruningError(f"A HieraLayer's input and output widths both became {module.hidden_size}: its forward would skip its projection.")
    return True


def shape_attribute(module: nn.Module, attr: str) -> list[int] | None:
    """``module.attr`` as a list of sizes when it is a public int or a non-empty sequence of ints: a size the module
    keeps outside its tensors and its forward reads (a weightless LayerNorm's ``normalized_shape``, timm's CSP stages'
    ``expand_chs``, Inception-NeXt's ``split_indexes``); else None."""
    if attr.startswith("_"):
        return None
    value = getattr(module, attr, None)
    if type(value) is int:
        return [value]
    if isinstance(value, (tuple, list)) and value and all(type(v) is int for v in value):
        return list(value)
    return None


def _resize_shape_attribute(model: nn.Module, name: str, dims: dict[int, Any]) -> bool:
    """Plan entry ``name`` = "module.normalized_shape": set each kept dimension's size in that
    attribute (a weightless LayerNorm keeps its width only there). False when ``name`` is no such attribute."""
    path, _, attr = name.rpartition(".")
    try:
        module = model.get_submodule(path)
    except AttributeError:
        return False
    sizes = shape_attribute(module, attr)
    if sizes is None:
        return False
    for d, idx in dims.items():
        if d >= len(sizes) or (len(idx) and max(idx) >= sizes[d]):
            raise PruningError(f"The pruning plan keeps indices outside {name!r} = {tuple(sizes)}: the plan was made for a different architecture.")
        sizes[d] = len(idx)
    old = getattr(module, attr)
    setattr(module, attr, sizes[0] if isinstance(old, int) else type(old)(sizes))  # an int, or the sequence type it was
    return True


def is_tensor_attribute(model: nn.Module, name: str) -> bool:
    """``name`` is a floating-point tensor a module holds as a plain attribute, neither parameter nor buffer."""
    path, _, attr = name.rpartition(".")
    try:
        module = model.get_submodule(path)
    except AttributeError:
        return False
    value = vars(module).get(attr)
    return isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter) and value.is_floating_point()


def _slice_tensor_attribute(model: nn.Module, name: str, dims: dict[int, Any]) -> bool:
    """Plan entry ``name`` = a module's plain tensor attribute (a sinusoidal position table): keep the indices the
    plan says along each dimension. False when ``name`` is no such attribute."""
    if not is_tensor_attribute(model, name):
        return False
    path, _, attr = name.rpartition(".")
    module = model.get_submodule(path)
    setattr(module, attr, _kept_along(name, getattr(module, attr), dims).contiguous())
    return True


def _kept_along(name: str, tensor: torch.Tensor, dims: dict[int, Any]) -> torch.Tensor:
    """``tensor`` with only ``dims[d]``'s indices along each dimension d; a plan reaching outside it is a PruningError."""
    new = tensor
    for d, idx in sorted(dims.items()):
        if d >= new.dim() or (len(idx) and max(idx) >= new.shape[d]):
            raise PruningError(
                f"The pruning plan keeps indices up to {max(idx) if len(idx) else 0} of dimension {d} of {name!r}, whose "
                f"shape is {tuple(tensor.shape)}: the plan was made for a different architecture."
            )
        new = new.index_select(d, torch.as_tensor(np.asarray(idx, dtype=np.int64), device=new.device))
    return new


def _snapshot(module: nn.Module) -> dict[str, Any]:
    if isinstance(module, nn.modules.conv._ConvNd):
        return {"groups": module.groups, "out": module.out_channels, "local_in": module.weight.shape[1]}
    channels = getattr(module, "channels", None)
    if isinstance(channels, int) and not isinstance(channels, bool):
        # A fixed depthwise filter applied with groups=self.channels (timm's BlurPool2d in TResNet): its count follows the filter.
        filters = [n for n, t in (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False))
                   if t.dim() == 4 and t.shape[0] == channels and t.shape[1] == 1]
        return {"channels_filter": filters[0]} if filters else {}
    weight = module._parameters.get("weight")
    if weight is not None and weight.dim() == 1 and all(p.dim() <= 1 for p in module.parameters(recurse=False)):
        # A norm or scale of its own kind keeping its width in an attribute its forward checks (CPM-Ant's
        # CpmAntLayerNorm asserts hidden_states.size(-1) == self.dim_norm): such attributes follow the weight.
        names = [k for k, v in vars(module).items() if not k.startswith("_") and type(v) is int and v == weight.shape[0]]
        return {"width_attributes": names} if names else {}
    return {}


def _sync_attributes(module: nn.Module, snap: dict[str, Any]) -> None:
    """Attributes that mirror tensor shapes (out_channels, num_features, normalized_shape ...)."""
    if isinstance(module, nn.modules.conv._ConvNd) and module.transposed:  # weight (in, out / groups, kernel...)
        module.in_channels, module.out_channels = module.weight.shape[0], module.weight.shape[1] * module.groups
    elif isinstance(module, nn.modules.conv._ConvNd):
        out = module.weight.shape[0]
        if snap["local_in"] == 1 and snap["groups"] > 1:  # depthwise: one group per input channel
            module.groups = out // (snap["out"] // snap["groups"])
            module.in_channels = module.groups
        else:
            module.in_channels = module.weight.shape[1] * module.groups
        module.out_channels = out
    elif is_linear_like(module):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        ref = module.running_mean if module.running_mean is not None else module.weight
        if ref is not None:
            module.num_features = ref.shape[0]
    elif isinstance(module, nn.LayerNorm) and module.weight is not None:
        module.normalized_shape = tuple(module.weight.shape)
    elif "channels_filter" in snap:
        module.channels = getattr(module, snap["channels_filter"]).shape[0]
    elif _norm_with_shape(module):  # timm's RmsNorm (Gemma 4's ViT) passes normalized_shape to rms_norm with its weight
        module.normalized_shape = tuple(module.weight.shape)
    elif isinstance(module, nn.GroupNorm) and module.weight is not None:
        module.num_channels = module.weight.shape[0]
    elif isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        module.num_embeddings, module.embedding_dim = module.weight.shape
    elif _is_experts(module):  # transformers' mixture-of-experts layers reshape with these
        hidden, inner = _experts_widths(module)
        if _llama4_experts(module):
            module.hidden_size, module.expert_dim, module.intermediate_size = hidden, inner, inner
        else:
            module.hidden_dim, module.intermediate_dim = hidden, inner
    elif _is_router(module):
        module.hidden_dim = module.weight.shape[1]
    elif isinstance(module, nn.RNNBase):
        module.hidden_size, module.input_size = module.weight_hh_l0.shape[1], module.weight_ih_l0.shape[1]
        module._init_flat_weights()  # the list the recurrent op reads still holds the unsliced tensors
    elif type(module).__name__ == "VisionTransformer" and isinstance(getattr(module, "conv_proj", None), nn.Conv2d):
        module.hidden_dim = module.conv_proj.weight.shape[0]  # torchvision's ViT reshapes its patches to hidden_dim
    elif type(module).__name__ == "Scale" and isinstance(getattr(module, "shape", None), tuple) and module.shape:
        module.shape = (module.scale.shape[0], *module.shape[1:])  # timm MetaFormer/PoolFormer: scale.view(shape)
    elif type(module).__name__ == "Conv1D" and isinstance(getattr(module, "nf", None), int):
        module.nf = module.weight.shape[1]  # Hugging Face's Conv1D (GPT-2): weight (in, out), out width in nf
    elif "width_attributes" in snap:
        for name in snap["width_attributes"]:
            setattr(module, name, module.weight.shape[0])


def _norm_with_shape(module: nn.Module) -> bool:
    """A norm that is no ``nn.LayerNorm`` but keeps ``normalized_shape`` beside a weight of that shape."""
    shape, weight = getattr(module, "normalized_shape", None), getattr(module, "weight", None)
    return (isinstance(shape, (tuple, list)) and isinstance(weight, torch.Tensor) and weight.dim() == len(shape)
            and all(isinstance(v, int) for v in shape))


def _is_experts(module: nn.Module) -> bool:
    """A transformers experts module: (experts, hidden, intermediate) ``down_proj`` and the sizes as ints, or Llama 4's
    transposed layout (:func:`_llama4_experts`)."""
    down = getattr(module, "down_proj", None)
    return isinstance(down, torch.Tensor) and down.dim() == 3 and (
        _llama4_experts(module)
        or (isinstance(getattr(module, "hidden_dim", None), int) and isinstance(getattr(module, "intermediate_dim", None), int)))


def _llama4_experts(module: nn.Module) -> bool:
    """Llama 4's experts: ``down_proj`` (experts, expert_dim, hidden), sizes in ``hidden_size`` and ``expert_dim``."""
    return all(isinstance(getattr(module, a, None), int) for a in ("hidden_size", "expert_dim")) and not hasattr(module, "hidden_dim")


def _experts_widths(module: nn.Module) -> tuple[int, int]:
    """(hidden, intermediate) of an experts module's ``down_proj``."""
    down = module.down_proj
    return (int(down.shape[2]), int(down.shape[1])) if _llama4_experts(module) else (int(down.shape[1]), int(down.shape[2]))


def _is_router(module: nn.Module) -> bool:
    """A transformers top-k router: a (experts, hidden) ``weight`` beside ``num_experts`` (Inkling's: routed and shared,
    ``n_total_experts``) and ``hidden_dim``, which its forward reshapes to."""
    weight = getattr(module, "weight", None)
    return (isinstance(weight, torch.Tensor) and weight.dim() == 2 and isinstance(getattr(module, "hidden_dim", None), int)
            and weight.shape[0] in (getattr(module, "num_experts", None), getattr(module, "n_total_experts", None)))


def _sync_attention_and_config(model: nn.Module) -> None:
    """Head counts of every registered attention form (:mod:`slimforge.prune.attention`), and
    the model config's sizes where they are uniform over layers."""
    sizes = sync_attention(model)
    for path, module in model.named_modules():
        if path.endswith("intermediate.dense") and isinstance(module, nn.Linear):
            sizes.setdefault("intermediate_size", set()).add(module.out_features)
        if path.endswith("embeddings.word_embeddings") and isinstance(module, nn.Embedding):
            sizes.setdefault("hidden_size", set()).add(module.embedding_dim)
        if isinstance(getattr(module, "num_channels", None), int) and isinstance(getattr(module, "projection", None), nn.Conv2d):
            module.num_channels = module.projection.in_channels  # PVT's patch embeddings check their input's width with it
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        return
    for key, values in sizes.items():
        if len(values) == 1 and has_global(config, key):  # not a per-layer key of a heterogeneous config
            setattr(config, key, values.pop())
    _keep_head_size(model, config)
    from slimforge.models.hf import sync_config

    sync_config(model)  # every transformers config inside, from its layers' shapes (ViT, GPT-2's n_inner ...)
