"""Low-rank factorisation: replace a layer's weight by a truncated SVD.

* ``nn.Linear(in, out)`` becomes ``Sequential(Linear(in, r, bias=False), Linear(r, out))``;
* ``nn.Conv2d(cin, cout, k)`` becomes ``Sequential(Conv2d(cin, r, k, bias=False), Conv2d(r, cout, 1))``
  (a channel decomposition: the k x k filters are spanned by r basis filters, then mixed);
* with ``include_embeddings``, ``nn.Embedding(rows, d)`` becomes ``Sequential(Embedding(rows, r),
  Linear(r, d, bias=False))``: each row a mix of r basis rows (a recommender's tables).

The rank of each layer is the smallest that keeps ``energy`` of the squared singular values,
or, given ``target_ratio``, one energy threshold shared by all layers found by bisection so
the model keeps at most that fraction of its parameters. A layer is only factorised when that
saves parameters. The ranks are recorded as a ``factorize`` edit in ``model.json`` so
:func:`slimforge.load` rebuilds the low-rank structure. Fine-tune afterwards with the trainer.

    result = factorize(model, FactorizeConfig(energy=0.9))
    slimforge.train(result.model, data, TrainConfig(epochs=2), out="runs/x-svd")
"""

from __future__ import annotations

from slimforge._callable import make_callable

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from slimforge.artifacts import record_edit, register_edit
from slimforge.errors import ArtifactError, ConfigError, SlimforgeError
from slimforge.models import adopt_spec

EDIT_KIND = "factorize"


class FactorizeError(SlimforgeError):
    """Nothing to factorise, or a recorded factorisation does not fit the model."""


@dataclass(frozen=True)
class FactorizeConfig:
    """energy: fraction of sum(s^2) each layer keeps (0 < energy <= 1);
    target_ratio: when set, the fraction of the model's parameters to keep (overrides energy);
    layers: module names to consider (empty: every Linear and Conv2d);
    exclude: module names never factorised; include_conv: consider Conv2d layers;
    min_rank: smallest rank a layer may get; keep_last: leave the last Linear/Conv2d (the
    classifier) whole: it holds few parameters and a rank below the class count costs accuracy;
    include_embeddings: also consider ``nn.Embedding`` tables (off: text models' token tables
    keep their rows); rank_multiple: round each rank up to a multiple of this (8 lets a factor
    table's rows pack into whole bytes at int8/int4/int2, see ``slimforge.recsys.quantize``)."""

    energy: float = 0.9
    target_ratio: float | None = None
    layers: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_conv: bool = True
    min_rank: int = 1
    keep_last: bool = True
    include_embeddings: bool = False
    rank_multiple: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.energy <= 1:
            raise ConfigError(f"FactorizeConfig.energy must be in (0, 1], got {self.energy}.")
        if self.target_ratio is not None and not 0 < self.target_ratio < 1:
            raise ConfigError(f"FactorizeConfig.target_ratio must be in (0, 1), got {self.target_ratio}.")
        if self.min_rank < 1:
            raise ConfigError(f"FactorizeConfig.min_rank must be >= 1, got {self.min_rank}.")
        if self.rank_multiple < 1:
            raise ConfigError(f"FactorizeConfig.rank_multiple must be >= 1, got {self.rank_multiple}.")


@dataclass
class FactorizeResult:
    """model: the factorised model (edited in place); ranks: module name -> rank kept."""

    model: nn.Module
    ranks: dict[str, int]
    params_before: int
    params_after: int
    energy: float
    layer_energy: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.params_after / self.params_before

    def to_json(self) -> dict[str, Any]:
        return {
            "ranks": self.ranks,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "ratio": round(self.ratio, 4),
            "energy": self.energy,
            "layer_energy": {k: round(v, 4) for k, v in self.layer_energy.items()},
        }


@torch.no_grad()
def factorize(model: nn.Module, config: FactorizeConfig = FactorizeConfig()) -> FactorizeResult:
    """Factorise ``model``'s Linear (and Conv2d) layers in place by truncated SVD.

    Returns the model with ranks and parameter counts; records a ``factorize`` edit (on the
    model's spec, or kept for ``save(factory=...)`` when it has none), so ``slimforge.save``/``load`` keep the structure.
    """
    # Which layers, and their singular values.
    adopt_spec(model)  # a transformers model built outside slimforge: described by its config, before it changes
    candidates = _candidates(model, config)
    if not candidates:
        names = [t.__name__ for t in _kinds(config)]
        kinds = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise FactorizeError(f"{type(model).__name__} has no {kinds} layer to factorise (layers={list(config.layers)}, exclude={list(config.exclude)}).")
    spectra = {name: torch.linalg.svdvals(_matrix(layer).double()) for name, layer in candidates.items()}
    params_before = _count(model)

    # Ranks: per-layer energy, or the shared energy that meets the target size.
    energy = config.energy if config.target_ratio is None else _energy_for_target(model, candidates, spectra, config)
    ranks = _ranks_for_energy(candidates, spectra, energy, config.min_rank, config.rank_multiple)
    if not ranks:
        raise FactorizeError(f"No layer saves parameters at energy={energy:.4g}; lower the energy or the target ratio.")

    # Replace the layers and record the edit.
    for name, rank in ranks.items():
        _set_module(model, name, low_rank(candidates[name], rank))
    record_edit(model, {"kind": EDIT_KIND, "layers": {n: {"rank": r} for n, r in ranks.items()}})  # kept on a model without a spec too
    kept = {n: float((spectra[n][:r] ** 2).sum() / (spectra[n] ** 2).sum()) for n, r in ranks.items()}
    return FactorizeResult(model, ranks, params_before, _count(model), energy, kept)


@torch.no_grad()
def low_rank(layer: nn.Module, rank: int) -> nn.Sequential:
    """The rank-``rank`` SVD factorisation of a Linear, Conv2d or Embedding ``layer`` (weights set)."""
    first, second = _empty_factors(layer, rank)
    u, s, vh = torch.linalg.svd(_matrix(layer).double(), full_matrices=False)
    root = s[:rank].sqrt()
    if isinstance(layer, nn.Embedding):  # table (rows, d) = [u sqrt(s)] (rows, r) @ [sqrt(s) vh] (r, d)
        first.weight.copy_((u[:, :rank] * root[None, :]).to(first.weight.dtype))
        second.weight.copy_((root[:, None] * vh[:rank]).T.to(second.weight.dtype))
        return nn.Sequential(first, second)
    # Split sqrt(s) between the factors so both have comparable scale for fine-tuning.
    first.weight.copy_((root[:, None] * vh[:rank]).reshape(first.weight.shape).to(first.weight.dtype))
    second.weight.copy_((u[:, :rank] * root[None, :]).reshape(second.weight.shape).to(second.weight.dtype))
    if layer.bias is not None:
        second.bias.copy_(layer.bias)
    return nn.Sequential(first, second)


@register_edit(EDIT_KIND)
def replay_factorize(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Rebuild the recorded low-rank layers (shapes only; the weights are loaded afterwards)."""
    modules = dict(model.named_modules())
    layers = edit.get("layers", {})
    if not isinstance(layers, dict):
        raise ArtifactError(f"Factorize edit: 'layers' must be an object of layer name -> {{'rank': N}}, not {layers!r}; model.json is corrupt.")
    for name, info in layers.items():
        rank = info.get("rank") if isinstance(info, dict) else None
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise ArtifactError(f"Factorize edit layers[{name!r}] must be {{'rank': N}} with an integer N, not {info!r}; model.json is corrupt.")
        layer = modules.get(name)
        if not isinstance(layer, (nn.Linear, nn.Conv2d, nn.Embedding)):
            found = type(layer).__name__ if layer is not None else "nothing"
            raise FactorizeError(f"model.json factorises {name!r} (rank {rank}), but the model has {found} there.")
        full = min(_matrix(layer).shape)
        if not 1 <= rank <= full:
            raise FactorizeError(f"model.json factorises {name!r} to rank {rank}; its weight allows ranks 1 to {full}.")
        first, second = _empty_factors(layer, rank)
        _set_module(model, name, nn.Sequential(first, second))
    return model


# ---------------------------------------------------------------- helpers


def _kinds(config: FactorizeConfig) -> tuple[type, ...]:
    return (nn.Linear, *((nn.Conv2d,) if config.include_conv else ()), *((nn.Embedding,) if config.include_embeddings else ()))


def _candidates(model: nn.Module, config: FactorizeConfig) -> dict[str, nn.Module]:
    kinds = _kinds(config)
    modules = dict(model.named_modules())
    unknown = [n for n in (*config.layers, *config.exclude) if n not in modules]
    if unknown:
        raise ConfigError(f"FactorizeConfig names layers the model does not have: {unknown}. Known: {[n for n, m in modules.items() if isinstance(m, kinds)]}.")
    weighted = [n for n, m in modules.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
    last = weighted[-1] if config.keep_last and weighted else None
    chosen = {}
    for name, layer in modules.items():
        if name == last and name not in config.layers:
            continue
        if config.layers and name not in config.layers or name in config.exclude:
            continue
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            continue  # a grouped/depthwise conv has no single matrix to factorise
        if isinstance(layer, kinds) and min(_matrix(layer).shape) > 1:
            chosen[name] = layer
    return chosen


def _matrix(layer: nn.Module) -> torch.Tensor:
    """Linear: (out, in); Conv2d: (cout, cin * kh * kw); Embedding: (rows, d)."""
    return layer.weight.detach().reshape(layer.weight.shape[0], -1)


def _empty_factors(layer: nn.Module, rank: int) -> tuple[nn.Module, nn.Module]:
    kw = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    if isinstance(layer, nn.Linear):
        return nn.Linear(layer.in_features, rank, bias=False, **kw), nn.Linear(rank, layer.out_features, bias=layer.bias is not None, **kw)
    if isinstance(layer, nn.Conv2d):
        first = nn.Conv2d(
            layer.in_channels, rank, layer.kernel_size, stride=layer.stride, padding=layer.padding,
            dilation=layer.dilation, padding_mode=layer.padding_mode, bias=False, **kw,
        )
        return first, nn.Conv2d(rank, layer.out_channels, 1, bias=layer.bias is not None, **kw)
    if isinstance(layer, nn.Embedding):
        first = nn.Embedding(layer.num_embeddings, rank, padding_idx=layer.padding_idx, sparse=layer.sparse, **kw)
        return first, nn.Linear(rank, layer.embedding_dim, bias=False, **kw)
    raise FactorizeError(f"cannot factorise a {type(layer).__name__}; only Linear, Conv2d and Embedding.")


def _factor_params(layer: nn.Module, rank: int) -> int:
    out_dim, in_dim = _matrix(layer).shape
    return rank * (in_dim + out_dim)


def _rank_for_energy(s: torch.Tensor, energy: float, min_rank: int, multiple: int = 1) -> int:
    power = s**2
    cumulative = torch.cumsum(power, 0) / power.sum().clamp_min(1e-300)
    rank = int(torch.searchsorted(cumulative, torch.tensor(energy, dtype=cumulative.dtype) - 1e-12).item()) + 1
    rank = -(-max(min_rank, rank) // multiple) * multiple
    return min(rank, len(s))


def _ranks_for_energy(candidates: dict[str, nn.Module], spectra: dict[str, torch.Tensor], energy: float, min_rank: int,
                      multiple: int = 1) -> dict[str, int]:
    ranks = {}
    for name, layer in candidates.items():
        rank = _rank_for_energy(spectra[name], energy, min_rank, multiple)
        if _factor_params(layer, rank) < layer.weight.numel():
            ranks[name] = rank
    return ranks


def _energy_for_target(model: nn.Module, candidates: dict[str, nn.Module], spectra: dict[str, torch.Tensor], config: FactorizeConfig) -> float:
    total = _count(model)
    target = config.target_ratio * total

    def size(energy: float) -> int:
        ranks = _ranks_for_energy(candidates, spectra, energy, config.min_rank, config.rank_multiple)
        return total - sum(candidates[n].weight.numel() - _factor_params(candidates[n], r) for n, r in ranks.items())

    low, high = 0.0, 1.0  # size(low) is smallest; find the largest energy that still fits
    if size(1e-9) > target:
        smallest = size(1e-9) / total
        raise FactorizeError(
            f"target_ratio={config.target_ratio} is out of reach: factorising every candidate layer to rank "
            f"{config.min_rank} keeps {smallest:.3f} of the parameters (the rest are in layers not factorised)."
        )
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if size(mid) <= target else (low, mid)
    return low


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


__all__ = ["FactorizeConfig", "FactorizeError", "FactorizeResult", "factorize", "low_rank", "replay_factorize"]

make_callable(__name__, factorize)  # slimforge.factorize(...)
