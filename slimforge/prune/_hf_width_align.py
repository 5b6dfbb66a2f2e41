"""A pruned transformers model its own config can describe: the residual width fitted to the heads kept.

BERT's, GPT-2's and OPT's configs hold no head size: their attention derives it as ``hidden_size /
num_attention_heads``. Pruned at one ratio, a BERT-base keeps 8 of its 12 heads of 64 and 536 of its 768 residual
channels (each rounded on its own), and no config describes 8 heads of 64 in a 536-wide model: ``save_pretrained``
had to refuse. Where every attention layer of such a model keeps the same head count k and the residual width lands
within one head of k x head size, the residual keeps exactly k x head size channels instead (its best-scored ones), so
the folder loads in plain transformers. A config that names its head size (Llama's ``head_dim``) may still require
``hidden_size % num_attention_heads == 0`` (38 config classes validate it: a SmolLM2-135M kept 400 channels with 6
heads and was refused); there the residual moves to the nearest multiple of the heads kept and of ``round_to``.

transformers is imported nowhere here: a model is recognised by its ``config`` (``hidden_size`` and
``num_attention_heads``) and the registered attention forms inside it; whether its config can name a head size is read
off its attention class's source and its config class.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch import nn

from slimforge.prune._graph import DependencyGraph, Group
from slimforge.prune.attention import find_attention_form

log = logging.getLogger(__name__)


def align_residual_to_heads(model: nn.Module, graph: DependencyGraph, scores: list[np.ndarray], pruned: set[int],
                            round_to: int, pools: Callable[[Group], list[np.ndarray]]) -> set[int]:
    """``pruned`` with the residual group of every transformers model in ``model`` re-chosen to a width its config can
    describe, where that is near what it keeps: (heads kept) x (head size) where the config derives the head size
    (within a head); a multiple of the heads kept (and of ``round_to``) where it names the head size but validates
    ``hidden_size % num_attention_heads == 0`` (Llama's and 37 other config classes; within one such step). ``pools``
    splits a group into the parts ranked apart (``structured._reach_pools``)."""
    names = _parameter_names(model)
    for path, hf, head_size, derived in _transformers_models(model):
        residual = _residual_group(graph, hf, names)
        heads = _kept_heads(graph, pruned, path, hf, head_size)
        if residual is None or heads is None:
            continue
        index, group = residual
        if len(group.units) * group.width != hf.config.hidden_size:  # LayoutLMv3's units pair channels of some slots only
            continue
        kept = sum(u.root not in pruned for u in group.units) * group.width  # wav2vec 2.0's go 16 at a time (grouped conv)
        if derived:
            target, step = heads * head_size, head_size
            if target % round_to:  # heads of 12 at round_to=8: the vector-friendly width wins, save_pretrained refuses
                continue
        else:
            if _config_accepts(hf.config, kept, heads):
                continue
            step = math.lcm(heads, round_to, group.width)
            target = max(step, (kept + step // 2) // step * step)  # the nearest multiple, up on a tie
        if target == kept or abs(target - kept) >= step or target % group.width or target > len(group.units) * group.width:
            continue
        for i in _hidden_sized(graph, pruned, path, index, kept):
            pruned = _keep_best(graph.groups[i], pools(graph.groups[i]), scores[i], target, pruned)
        why = ("%d heads of %d: its config derives the head size as hidden_size / num_attention_heads" % (heads, head_size) if derived
               else "a multiple of its %d heads, as its config requires" % heads)
        log.info("slimforge.prune: %s keeps %d residual channels, not %d (%s), so save_pretrained writes a folder plain "
                 "transformers loads.", type(hf).__name__, target, kept, why)
    return pruned


def _hidden_sized(graph: DependencyGraph, pruned: set[int], path: str, residual: int, kept: int) -> list[int]:
    """The residual group and the others of the model at ``path`` as wide as it and pruned to the same width: sizes the
    config ties to the hidden size too (BERT's pooler, whose output is a separate group)."""
    width = len(graph.groups[residual].units) * graph.groups[residual].width
    prefix = path + "." if path else ""
    return [i for i, g in enumerate(graph.groups)
            if i == residual or (g.module.startswith(prefix) and len(g.units) * g.width == width
                                 and sum(u.root not in pruned for u in g.units) * g.width == kept)]


def _keep_best(group: Group, pools: list[np.ndarray], scores: np.ndarray, channels: int, pruned: set[int]) -> set[int]:
    """``pruned`` with ``group`` keeping its best-scored ``channels``: in each of its ``pools`` (units of different reach
    are ranked apart) as many as before, give or take the difference, taken from or given to the largest pool."""
    keep = [sum(group.units[i].root not in pruned for i in pool.tolist()) for pool in pools]
    largest = max(range(len(pools)), key=lambda i: len(pools[i]))
    keep[largest] += channels // group.width - sum(keep)
    if not 0 < keep[largest] <= len(pools[largest]):
        return pruned
    dropped = set()
    for pool, k in zip(pools, keep):
        ranked = pool[np.argsort(scores[pool], kind="stable")]  # ascending: least important first
        dropped |= {group.units[i].root for i in ranked[: len(pool) - k].tolist()}
    return (pruned - {u.root for u in group.units}) | dropped


def _transformers_models(model: nn.Module) -> Iterator[tuple[str, nn.Module, int, bool]]:
    """(path, module, head size, whether the config derives it) of each outermost module carrying a transformers config
    with a hidden size and a head count (a dual encoder's towers each carry their own). The head size is derived where
    the config cannot name it: BERT's attention reads none from its config; BLOOM's config holds a ``head_dim`` its
    attention never reads; DINOv2's attention reads one where set, but its config class keeps no such key. Qwen2's and
    Llama's do both."""
    seen: set[int] = set()
    for path, module in model.named_modules():
        config = getattr(module, "config", None)
        if config is None or id(config) in seen or not hasattr(config, "to_dict"):
            continue
        seen.add(id(config))
        hidden, heads, named = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None), vars(config).get("head_dim")
        if not (isinstance(hidden, int) and isinstance(heads, int) and heads > 0):
            continue
        named = named if isinstance(named, int) and named > 0 else None
        attention = next((type(m) for m in module.modules() if find_attention_form(m) is not None), None)
        if attention is None or (named is None and hidden % heads):
            continue
        head_size = named or hidden // heads
        nameable = (_reads_head_dim(attention) and (named is not None or _config_keeps(config, "head_dim", head_size))
                    or head_size in _head_sizes_read(attention, config))
        yield path, module, head_size, not nameable


HEAD_DIM_READ = re.compile(r"config\.head_dim\b|getattr\(\s*config\s*,\s*[\"']head_dim[\"']")
CONFIG_READ = re.compile(r"config\.(\w*(?:head|kv)\w*)")  # T5's d_kv


def _reads_head_dim(cls: type) -> bool:
    """Does the attention class ``cls`` build itself with a head size read from its config (Qwen2's ``getattr(config,
    "head_dim", ...)``), rather than derive it (BERT's; ModernBERT's, whose rotary embedding alone reads one)?"""
    return bool(HEAD_DIM_READ.search(_source(cls)))


def _head_sizes_read(cls: type, config: Any) -> set[int]:
    """Values of the config keys the attention class ``cls`` reads that name a head's size (T5's ``d_kv``), not a count."""
    return {getattr(config, n) for n in set(CONFIG_READ.findall(_source(cls)))
            if "num" not in n and not n.startswith("n_") and not n.endswith("heads") and type(getattr(config, n, None)) is int}


def _source(cls: type) -> str:
    """The source of ``cls`` and its bases up to nn.Module: the classes', not their ``__init__``'s (transformers wraps
    some, ``use_kernelized_func``); a class made at run time (a stand-in while pruning) is skipped, its base tells."""
    texts = []
    for klass in cls.__mro__:
        if klass in (nn.Module, object):
            break
        try:
            texts.append(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
    return "\n".join(texts)


def _config_keeps(config: Any, key: str, value: int) -> bool:
    """Does ``config``'s class keep ``key`` when built with it (a strict config class drops or refuses a key it lacks)?"""
    rebuilt = _rebuilt(config, **{key: value})
    return rebuilt is not None and getattr(rebuilt, key, None) == value


def _config_accepts(config: Any, hidden: int, heads: int) -> bool:
    """Does ``config``'s class take ``hidden_size`` and ``num_attention_heads`` as they are (38 classes, Llama's among
    them, validate ``hidden_size % num_attention_heads == 0``)?"""
    return _rebuilt(config, hidden_size=hidden, num_attention_heads=heads) is not None


def _rebuilt(config: Any, **values: int) -> Any:
    """``config``'s class built from its values with ``values`` changed, or None where the class refuses them."""
    try:
        return type(config).from_dict({**config.to_dict(), **values})
    except Exception:  # noqa: BLE001 - whatever the class's validation raises
        return None


def _parameter_names(model: nn.Module) -> dict[int, list[str]]:
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return names


def _residual_group(graph: DependencyGraph, hf: nn.Module, names: dict[int, list[str]]) -> tuple[int, Group] | None:
    """The group of the residual stream: the input embedding's output channels, or for a
    model without one as wide (Wav2Vec2, ALBERT), the input channels of its first attention's first linear layer."""
    found = _residual_slot(hf)
    if found is None:
        return None
    weight, dim = found
    slot_names = set(names.get(id(weight), ()))
    roots = {r for slot, rs in zip(graph.slots, graph.roots) if slot.name in slot_names and slot.dim == dim for r in rs.tolist()}
    for index, group in enumerate(graph.groups):
        if group.units and group.units[0].root in roots:
            return index, group
    return None


def _residual_slot(hf: nn.Module) -> tuple[nn.Parameter, int] | None:
    try:
        embedding = hf.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        embedding = None
    hidden = hf.config.hidden_size
    if isinstance(embedding, nn.Embedding) and embedding.embedding_dim == hidden:
        return embedding.weight, 1
    layer = next((m for m in embedding.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None) if isinstance(embedding, nn.Module) else None
    if layer is not None and layer.weight.shape[0] == hidden:
        return layer.weight, 0
    # ALBERT's and ELECTRA's embeddings are narrower than the residual (embedding_size), and projected to it
    attention = next((m for m in hf.modules() if find_attention_form(m) is not None), None)
    layer = next((m for m in attention.modules() if isinstance(m, nn.Linear) and m.in_features == hidden), None) if attention else None
    return (layer.weight, 1) if layer is not None else None


HEAD_COUNTS = ("num_heads", "num_attention_heads", "n_heads", "n_head")  # the module's own, where it keeps one (not yet synced)


def _kept_heads(graph: DependencyGraph, pruned: set[int], path: str, hf: nn.Module, head_size: int) -> int | None:
    """The head count every attention layer of ``hf`` keeps, or None where they differ (or some layer's heads are not
    among the groups). A layer's head groups are the groups of its parameters' slots whose unit is a multiple of the
    head size (GPT-2's unit is a head's q, k and v rows, 3 x 64); its units stand for its heads (its own count, else the
    config's) evenly. (Found by slot: a head group's anchor may lie outside the attention, at LayoutLMv3's shared
    relative position bias.)"""
    group_of = {u.root: i for i, g in enumerate(graph.groups) for u in g.units}
    counts = set()
    for sub, module in hf.named_modules():
        form = find_attention_form(module)
        if form is None or form.part or form.head_dim(module) % head_size:  # GPT-NeoX's counts a head's q, k and v rows
            continue
        heads = next((getattr(module, a) for a in HEAD_COUNTS if type(getattr(module, a, None)) is int), hf.config.num_attention_heads)
        prefix = ".".join(p for p in (path, sub) if p) + "."
        groups = {group_of[r] for slot, rs in zip(graph.slots, graph.roots) if slot.name.startswith(prefix)
                  for r in np.unique(rs).tolist() if r in group_of}
        units = [u for i in sorted(groups) if graph.groups[i].width % head_size == 0 for u in graph.groups[i].units]
        kept = sum(u.root not in pruned for u in units)
        if not units or heads * kept % len(units):
            return None  # its heads are kept whole, or coupled in a way not counted here
        counts.add(heads * kept // len(units))
    return counts.pop() if len(counts) == 1 else None
