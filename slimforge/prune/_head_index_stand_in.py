"""The machinery of stand-in forwards that read a tensor built for *every* head of the model (an ALiBi bias, a relative
position bias the first layer builds and hands on) through a buffer of head indices.

The buffer (non-persistent, ``arange(heads)``) is a head source for the tracer, so pruning slices it with the heads and
each head left keeps its original index; the stand-in forward picks its heads' rows of the shared tensor with it. The
buffer is not saved: loading replays the pruning plan, whose ``remember`` step installs the stand-in again. Where no
head went, pruning gives the module its own class back. Used by :mod:`slimforge.prune._hf_alibi_attention` (MPT,
BLOOM) and :mod:`slimforge.prune._hf_gated_bias_attention` (WavLM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn


def transformers_class(module: nn.Module, name: str, home: str) -> bool:
    """transformers' own class ``name`` (or its stand-in, made in the module ``home``): a user's class of the same name
    (an attention copied into a project) has its own forward, which the stand-in's would not fit."""
    cls = type(module)
    return (cls.__name__ == name and cls.__module__.startswith("transformers.")) or (
        cls.__name__ == f"Prunable{name}" and cls.__module__ == home)


@dataclass
class HeadIndexStandIn:
    """Stand-ins whose forward reads the buffer ``buffer``; ``home`` is the ``__name__`` of the module defining them.
    The head count the shared tensor is laid out for is kept on the module as ``_slimforge_full_heads``."""

    buffer: str
    home: str
    classes: dict[type, type] = field(default_factory=dict)

    def install(self, module: nn.Module, forward: Callable, heads: int, device: torch.device) -> None:
        own = type(module)
        if own not in self.classes:
            self.classes[own] = type(f"Prunable{own.__name__}", (own,), {"forward": forward, "__module__": self.home})
        module.register_buffer(self.buffer, torch.arange(heads, device=device), persistent=False)
        module._slimforge_full_heads = heads
        module.__class__ = self.classes[own]

    def installed(self, module: nn.Module) -> bool:
        return isinstance(getattr(module, self.buffer, None), torch.Tensor)

    def source(self, module: nn.Module) -> list[tuple[str, int]]:
        """The buffer as a head source for the tracer (``AttentionForm.sources``), once installed."""
        return [(self.buffer, 0)] if self.installed(module) else []

    def uninstall(self, module: nn.Module, cls: type) -> None:
        module.__class__ = cls
        if self.buffer in module._buffers:
            del module._buffers[self.buffer]

    def heads_pruned(self, module: nn.Module) -> bool:
        return self.installed(module) and len(getattr(module, self.buffer)) < module._slimforge_full_heads
