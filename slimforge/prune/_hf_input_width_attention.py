"""Hugging Face attention of the older BART layout whose forward merges the heads' output back to the *input's* width:
``bsz, tgt_len, embed_dim = hidden_states.size()`` ... ``attn_output.reshape(bsz, tgt_len, embed_dim)`` (Table
Transformer, GroupViT, TrOCR, LED's decoder, OneFormer, Mask2Former; ProphetNet's encoder and cross attention, with
``hidden_size``). That equals the heads' width only while no head is pruned, so the heads were tied to the residual
width: where that width cannot shrink (a bare encoder's output, a sine position embedding added to it), they stayed.

Such a class (found by its forward's source, which must hold exactly one such merge and no ``super()``) gets a stand-in
forward: its own source with that one merge written ``reshape(bsz, tgt_len, -1)``, compiled in its module's namespace
at its own file and lines (transformers' installed code, never a file of a run folder; :func:`edited_forward`, which
Longformer's stand-in uses too). The outputs are the same; the heads then go on their own. It is installed before the capture (as every stand-in is, :func:`slimforge.prune.attention.prepare_attention`), and
by the ``hf-out-proj-attention`` form's sync once heads went (so a plan replayed on load installs it too); pruning
gives the module its own class back where no head went.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from typing import Callable

from torch import nn

from slimforge.prune.attention import Swap, register_stand_in_for

_MERGE = re.compile(r"\.reshape\((bsz|batch_size), (tgt_len|target_len), (embed_dim|hidden_size)\)")
_WIDTH = re.compile(r"\b(bsz|batch_size), (tgt_len|target_len), (embed_dim|hidden_size) = hidden_states\.size\(\)")
_STAND_INS: dict[type, type | None] = {}


def _library_class(cls: type) -> bool:
    return cls.__module__.startswith("transformers.") and "forward" in vars(cls)


def edited_forward(cls: type, edit: Callable[[str], str | None]) -> Callable | None:
    """``cls.forward`` from its installed source (transformers' own, never a file of a run folder), dedented and changed
    by ``edit`` (None: not this class's code), compiled at the file and lines it has, in its module's namespace (an
    edit keeps the line count: ``torch.export.draft_export`` reads the frame's source there). None where the source
    cannot be read or calls ``super()``, which a function compiled outside its class cannot."""
    try:
        lines, first = inspect.getsourcelines(vars(cls)["forward"])
        path = inspect.getsourcefile(cls)
    except (OSError, TypeError, KeyError):
        return None
    source = textwrap.dedent("".join(lines))
    edited = None if path is None or "super()" in source else edit(source)
    if edited is None:
        return None
    namespace = dict(vars(sys.modules[cls.__module__]))
    exec(compile("\n" * (first - 1) + edited, path, "exec"), namespace)  # noqa: S102 - installed source, edited at fixed places
    return namespace["forward"]


def _merged_to_heads(source: str) -> str | None:
    """The one merge to the input's width written to the heads' width; None where the source has no such merge (or
    more than one, or another width name than the one it reads)."""
    merges, width = _MERGE.findall(source), _WIDTH.search(source)
    if len(merges) != 1 or not width or merges[0][2] != width.group(3):
        return None
    return _MERGE.sub(r".reshape(\1, \2, -1)", source)


def stand_in_class(cls: type) -> type | None:
    """The stand-in class for ``cls`` (a transformers attention class), or None where its forward needs none."""
    own = _own_class(cls)
    if own not in _STAND_INS:
        forward = edited_forward(own, _merged_to_heads) if _library_class(own) else None
        _STAND_INS[own] = None if forward is None else type(f"Prunable{own.__name__}", (own,), {"forward": forward, "__module__": __name__})
    return _STAND_INS[own]


def _own_class(cls: type) -> type:
    return cls.__mro__[1] if cls.__module__ == __name__ else cls


_HEAD_COUNTS = ("num_heads", "num_attn_heads", "num_attention_heads")  # BART's, ProphetNet's, ...
_QUERIES = ("q_proj", "query_proj", "query")


def _head_count(module: nn.Module) -> int | None:
    return next((v for a in _HEAD_COUNTS if type(v := getattr(module, a, None)) is int), None)


def use_stand_in(module: nn.Module) -> None:
    """Give ``module`` the stand-in forward if its class merges to its input's width (before capture or a replay)."""
    stand_in = stand_in_class(type(module))
    if stand_in is not None and type(module) is not stand_in:
        if not hasattr(module, "_slimforge_heads_before"):  # set before slicing (the form's remember) when replayed
            module._slimforge_heads_before = _head_count(module)
        module.__class__ = stand_in


def _heads_pruned(module: nn.Module) -> bool:
    """Fewer heads than before pruning; on a plan replayed onto a module no form remembered (ProphetNet's attention,
    traced as written by hand): the queries narrower than the input, which its own forward merges back to."""
    before, now = getattr(module, "_slimforge_heads_before", None), _head_count(module)
    if before is not None and now is not None:
        return now < before
    query = next((q for n in _QUERIES if isinstance(q := getattr(module, n, None), nn.Linear)), None)
    return query is not None and query.out_features != query.in_features


def _use_own_forward(module: nn.Module, cls: type) -> None:
    module.__class__ = cls


register_stand_in_for(lambda cls: _library_class(cls) and stand_in_class(cls) is not None,
                      Swap(lambda m: True, _heads_pruned, use_stand_in, _use_own_forward))
