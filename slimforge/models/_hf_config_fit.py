"""Finding the transformers config that describes a pruned model, whatever its architecture names
its sizes (``hidden_size`` / ``d_model`` / ``n_embd``, ``intermediate_size`` / ``d_ff`` / ``ffn_dim`` /
``encoder_ffn_dim``, ``num_attention_heads`` / ``num_heads`` / ``decoder_attention_heads``, per-stage
lists such as Swin's ``num_heads``, sub-configs such as CLIP's ``vision_config`` ...).

A model built from a candidate config on the meta device (no memory, no arithmetic) is compared with
the pruned model: every tensor's shape and every module's numeric attributes (head counts, head
sizes, scales such as Gemma's embedding scale, which a config computes from its sizes). Each
difference says which value the config gives and which the model has; config entries holding the
first are tried with the second, one at a time, keeping the change that removes the most
differences, until none is left or no change helps. Attributes are compared as well as shapes
because shapes alone do not tell 4 heads of 12 channels from 3 of 16.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# A config value: the attribute path from the top config (sub-configs, list indices), e.g. ("vision_config", "hidden_size").
Path = tuple[Any, ...]
MAX_ROUNDS = 16
MAX_PAIRS = 120  # two-change moves tried in one round, at most
# Meta-device builds per fit, at most: MobileViT's many per-layer sizes took 2 minutes of pair moves unbounded.
MAX_BUILDS = 150


@dataclass(frozen=True)
class Difference:
    """Where a model built from the config differs from the model: ``built`` vs ``actual``.
    ``name``: the module attribute's name (None for a tensor's shape)."""

    where: str
    built: Any
    actual: Any
    name: str | None = None
    # False: an attribute no method reads (a size only ``__init__`` used, as Llama's ``mlp.hidden_size``):
    # it may stay stale, but it still hints at which config value to change (BART's ``num_heads``).
    matters: bool = True

    def __str__(self) -> str:
        if self.actual == "":  # no comparison: the config itself
            return f"{self.where} {self.built}"
        return f"{self.where}: model {self.actual} vs config {self.built}"


PER_LAYER = object()


def config_value(config: Any, name: str, per_layer: Any = None) -> Any:
    """``config.name``, None where it has none, ``per_layer`` where the config sets it per layer: transformers'
    heterogeneous configs (Gemma 4's head_dim, 256 in sliding-window layers and 512 in global ones) refuse to give
    one value for the model (``AmbiguousGlobalPerLayerAttributeError``, a RuntimeError)."""
    try:
        return getattr(config, name, None)
    except RuntimeError:
        return per_layer


def has_global(config: Any, name: str) -> bool:
    """``config`` has ``name`` for the whole model: not a per-layer attribute of a heterogeneous config (see
    :func:`config_value`), which a caller setting one value for every layer must leave as it is."""
    try:
        return hasattr(config, name)
    except RuntimeError:
        return False


def numeric_attributes(module: nn.Module) -> dict[str, int | float]:
    return {k: v for k, v in vars(module).items()
            if not k.startswith("_") and isinstance(v, (int, float)) and not isinstance(v, bool)}


def differences(hf: nn.Module, config: Any) -> list[Difference] | None:
    """How ``type(hf)(config)`` (built on the meta device) differs from ``hf``: tensor shapes, missing
    or extra tensors, and module attributes (see ``Difference.matters``). None: the config does not build."""
    try:
        with torch.device("meta"):
            fresh = type(hf)(_as_saved(config))
    except Exception:  # noqa: BLE001 - any failure to build from the config is the answer
        return None
    out = _shape_differences(fresh, hf)
    built_modules = dict(fresh.named_modules())
    for path, module in hf.named_modules():
        twin = built_modules.get(path)
        if twin is None or type(twin) is not type(module):
            continue
        built = numeric_attributes(twin)
        for name, value in numeric_attributes(module).items():
            if name in built and built[name] != value:
                out.append(Difference(f"{path or type(hf).__name__}.{name}", built[name], value, name,
                                      read_by_methods(type(module), name)))
    return out


def _as_saved(config: Any) -> Any:
    """``config`` as ``from_pretrained`` will read it back from ``config.json``: a composite config's ``__init__`` may
    overwrite a sub-config's value with its own (PaliGemma sets ``vision_config.projection_dim`` from its
    ``projection_dim``). A copy where the round trip itself fails."""
    try:
        return type(config).from_dict(config.to_dict())
    except Exception:  # noqa: BLE001 - a config class that cannot read its own dict: as it is
        return copy.deepcopy(config)


@functools.lru_cache(maxsize=None)
def read_by_methods(cls: type, name: str) -> bool:
    """Some method of ``cls`` (or of a base class up to nn.Module), other than ``__init__``, reads ``self.<name>``.
    Undecidable source (a builtin, a lambda) counts as read."""
    pattern = re.compile(rf"\bself\.{re.escape(name)}\b")
    for klass in cls.__mro__:
        if klass in (nn.Module, object):
            break
        for attr, fn in vars(klass).items():
            if attr == "__init__" or not inspect.isfunction(fn):
                continue
            try:
                source = inspect.getsource(fn)
            except (OSError, TypeError):
                return True
            if pattern.search(source):
                return True
    return False


def _shape_differences(fresh: nn.Module, hf: nn.Module) -> list[Difference]:
    expected = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    actual = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    out = [Difference(k, "absent", "present") for k in actual if k not in expected]
    for key, shape in actual.items():
        want = expected.get(key)
        if want is None:
            continue
        if len(want) != len(shape):
            out.append(Difference(key, want, shape))
            continue
        out.extend(Difference(f"{key} dim {d}", a, b) for d, (a, b) in enumerate(zip(want, shape)) if a != b)
    return out


def fit_config(hf: nn.Module) -> tuple[list[tuple[Path, Any]], list[Difference]]:
    """The config changes that make ``type(hf)(config)`` match ``hf`` (found on a copy; apply them with
    :func:`apply_changes`), and the differences left (empty: the config describes the model). One change
    at a time; two together where none alone helps (a width and the head count that must divide it)."""
    config = copy.deepcopy(hf.config)
    found = differences(hf, config)
    if found is None:
        return [], [Difference("the config", "does not build", "")]
    changes: list[tuple[Path, Any]] = []
    budget = [MAX_BUILDS]
    for _ in range(MAX_ROUNDS):
        if not _mattering(found):
            break
        candidates = _candidates(config, found)
        best = _best_move(hf, config, [[c] for c in candidates] + _same_value_moves(config, found), len(_mattering(found)), budget)
        if best is None:
            pairs = [[a, b] for i, a in enumerate(candidates) for b in candidates[i + 1:] if a[0] != b[0]]
            best = _best_move(hf, config, pairs[:MAX_PAIRS], len(_mattering(found)), budget)
        if best is None:
            break
        move, found = best
        for path, value in move:
            set_value(config, path, value)
        changes.extend(move)
    return changes, _mattering(found)


def _mattering(found: list[Difference]) -> list[Difference]:
    return [d for d in found if d.matters]


def _best_move(hf: nn.Module, config: Any, moves: list[list[tuple[Path, Any]]], current: int, budget: list[int]
               ) -> tuple[list[tuple[Path, Any]], list[Difference]] | None:
    """The move (config changes made together) leaving the fewest differences, if fewer than ``current``;
    each build tried takes one from ``budget[0]``, and none is tried once it is spent."""
    best = None
    for move in moves:
        if budget[0] <= 0:
            break
        budget[0] -= 1
        trial = copy.deepcopy(config)
        try:
            for path, value in move:
                set_value(trial, path, value)
        except Exception:  # noqa: BLE001 - a config class that validates its fields refuses the value
            continue
        found = differences(hf, trial)
        if found is not None and len(_mattering(found)) < current and (best is None or len(_mattering(found)) < len(_mattering(best[1]))):
            best = (move, found)
    return best


def _candidates(config: Any, found: list[Difference]) -> list[tuple[Path, Any]]:
    """(config value path, new value): every integer config value equal to what a difference says the
    config built, set to what the model has; a config key left None set to a width a shape has; and an
    attribute's own name as a config key (``head_dim``, which some configs read when set and otherwise
    derive as hidden_size / heads)."""
    pairs = {(d.built, d.actual) for d in found if _int(d.built) and _int(d.actual)}
    leaves = list(_int_leaves(config, ()))
    out = [(path, new) for old, new in sorted(pairs) for path, value in leaves if value == old]
    # A size the config derives while its key is None (GPT-J's n_inner: 4 * n_embd), from a shape.
    unset = [key for key, value in vars(config).items() if value is None and not key.startswith("_")]
    out += [((key,), new) for old, new in sorted(pairs) for key in unset if any(d.name is None and d.actual == new for d in found)]
    named = {(d.name, d.actual) for d in found if d.name and _int(d.actual)}
    out += [((name,), new) for name, new in sorted(named) if not _int(config_value(config, name, 0))]
    out += _factor_candidates(config, pairs, leaves)
    return list(dict.fromkeys(out))


def _same_value_moves(config: Any, found: list[Difference]) -> list[list[tuple[Path, Any]]]:
    """Every element of a sequence that held the value a difference says the config built, set together to what the
    model has (wav2vec 2.0's seven ``conv_dim`` entries, each pruned 512 -> 360: one move, not seven rounds)."""
    pairs = {(d.built, d.actual) for d in found if _int(d.built) and _int(d.actual)}
    leaves = [(path, value) for path, value in _int_leaves(config, ()) if isinstance(path[-1], int)]
    moves = []
    for old, new in sorted(pairs):
        by_key: dict[Path, list[tuple[Path, Any]]] = {}
        for path, value in leaves:
            if value == old:
                by_key.setdefault(path[:-1], []).append((path, new))
        moves += [move for move in by_key.values() if len(move) > 1]
    return moves


MAX_FACTOR = 16


def _factor_candidates(config: Any, pairs: set[tuple[int, int]], leaves: list[tuple[Path, int]]) -> list[tuple[Path, Any]]:
    """A width the config derives as a factor times another of its sizes (Mamba's ``intermediate_size = int(expand *
    hidden_size)``): once heads and the residual are pruned apart, the factor is what must change, to a value that
    is not an integer where the new width is no multiple of the size (``expand`` = 96 / 40 = 2.4)."""
    sizes = {value for _, value in leaves if value > MAX_FACTOR}
    out = []
    for key, factor in vars(config).items():
        if key.startswith("_") or isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= MAX_FACTOR:
            continue
        for built, actual in sorted(pairs):
            for base in sorted(sizes):
                if int(factor * base) != built or built == base:
                    continue
                new = actual // base if actual % base == 0 else round(actual / base, 6)
                if int(new * base) != actual:  # 1072 / 272 = 3.941176: int(3.941176 * 272) is 1071; aim mid-step
                    new = round((actual + 0.5) / base, 9)
                if int(new * base) == actual and new != factor:
                    out.append(((key,), new))
    return out


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_leaves(config: Any, prefix: Path):
    """(path, value) of every integer value of ``config`` and of its sub-configs, list elements included."""
    for key, value in vars(config).items():
        if key.startswith("_"):
            continue
        if _int(value):
            yield (*prefix, key), value
        elif isinstance(value, (list, tuple)) and value and all(_int(v) for v in value):  # wav2vec 2.0's conv_dim: a tuple
            yield from (((*prefix, key, i), v) for i, v in enumerate(value))
        elif hasattr(value, "to_dict") and hasattr(value, "model_type"):  # a sub-config (CLIP's vision_config)
            yield from _int_leaves(value, (*prefix, key))


def set_value(config: Any, path: Path, value: Any) -> None:
    if isinstance(path[-1], int):  # an element of a list or tuple attribute: a new sequence of the same type
        parent = _walk(config, path[:-2])
        seq = list(getattr(parent, path[-2]))
        seq[path[-1]] = value
        setattr(parent, path[-2], type(getattr(parent, path[-2]))(seq))
    else:
        setattr(_walk(config, path[:-1]), path[-1], value)


def _walk(config: Any, path: Path) -> Any:
    target = config
    for key in path:
        target = target[key] if isinstance(key, int) else getattr(target, key)
    return target


def apply_changes(config: Any, changes: list[tuple[Path, Any]]) -> None:
    """Apply ``changes`` (a sequence changed element by element is replaced, so one shared with another config does
    not change under it)."""
    for path, value in changes:
        set_value(config, path, value)
