"""Config sizes a forward reads for a value, not a shape.

After slicing, the config sync sets a transformers model's config to its pruned sizes (``hidden_size`` follows the
residual). A forward that reads one of them for a *value* computes something else from then on, and no shape check
sees it: Falcon with ALiBi divides its bias by ``sqrt(config.hidden_size // heads)``, the original head size, which
became 11 instead of 16 once the residual went from 128 to 88 channels. The pruned model is run on the example with
each changed size put back on its own, under the same seed; a size whose original value gives other outputs while every
op's shapes stay the same is kept at that value (as ``config_kept``, which the plan replays and ``save_pretrained``
refuses), so the pruned model computes what the original computed with the removed channels gone.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.utils._python_dispatch import TorchDispatchMode

from slimforge.prune.plan import config_values, keep_config_values

log = logging.getLogger("slimforge.prune.structured")


def config_read_for_values(model: nn.Module, args: tuple, kwargs: dict[str, Any],
                           before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The config sizes (path -> key -> original value) the pruned ``model``'s outputs on the example depend on, put
    back and remembered; {} where none. ``before``: :func:`config_values` of the unpruned model."""
    synced = config_values(model)
    changed = [(path, key, value) for path, values in before.items() for key, value in values.items()
               if key in synced.get(path, {}) and synced[path][key] != value]
    if not changed:
        return {}
    now = _run(model, args, kwargs)
    if now is None:
        return {}
    read: dict[str, dict[str, int]] = {}
    for path, key, value in changed:
        keep_config_values(model, {path: {key: value}}, remember=False)
        try:
            then = _run(model, args, kwargs)
        finally:
            keep_config_values(model, {path: {key: synced[path][key]}}, remember=False)
        if then is not None and _reads_for_a_value(now, then):
            read.setdefault(path, {})[key] = value
    if read:
        keep_config_values(model, read)
        log.warning("slimforge.prune: %s's forward reads its config's %s for a value (not a size), so they keep their "
                    "unpruned values; the config no longer describes the pruned shapes, so save_pretrained refuses it.",
                    type(model).__name__, ", ".join(sorted({k for values in read.values() for k in values})))
    return read


class _Shapes(TorchDispatchMode):
    """Records the shapes of every op's outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.shapes.append(tuple(tuple(t.shape) for t in tree_leaves(out) if isinstance(t, torch.Tensor)))
        return out


def _run(model: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[list[torch.Tensor], list[tuple]] | None:
    """The model's eval-mode output tensors on the example under a fixed seed, and the shapes of every op's outputs on
    the way; None where it does not run."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]), _Shapes() as record:
            torch.manual_seed(0)
            out = [t for t in tree_leaves(model(*args, **kwargs)) if isinstance(t, torch.Tensor)]
        return out, record.shapes
    except Exception:  # noqa: BLE001 - a forward that fails with a put-back size reads it for a shape
        return None
    finally:
        model.train(was_training)


def _reads_for_a_value(now: tuple[list[torch.Tensor], list[tuple]], then: tuple[list[torch.Tensor], list[tuple]]) -> bool:
    """Every op gave the same shapes and the outputs differ: the size is read for a value. A size that changes some
    op's shape is read for a shape (AyaVision's projector views its features to ``config.hidden_size``), which the
    pruned model must follow."""
    (a, shapes_a), (b, shapes_b) = now, then
    if shapes_a != shapes_b:
        return False
    return not all(torch.equal(x, y) for x, y in zip(a, b))
