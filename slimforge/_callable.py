"""Stage packages that are also their stage's function: ``slimforge.prune(model, x, ratio=0.5)``.

``import slimforge.prune`` binds the name ``slimforge.prune`` to the package, which would hide a
function of that name; each stage module (prune, distill, quantize, factorize, export) therefore
makes itself callable, forwarding to its main function, in the same way.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Calling module ``module_name`` calls ``function`` (its docstring shows in ``help()``)."""

    class _StageModule(types.ModuleType):
        __call__ = staticmethod(function)

    _StageModule.__doc__ = function.__doc__
    sys.modules[module_name].__class__ = _StageModule
