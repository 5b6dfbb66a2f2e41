"""What ``optimize`` minimises: a registry of searches, one per objective.

``latency`` (:mod:`slimforge.optimize.search`) looks for the fastest model within an accuracy
budget; ``size`` (:mod:`slimforge.optimize.size`) for the smallest weight file within a budget on
any metric the data reports. Each search registers itself; this table names them without
importing them, so ``OptimizeConfig`` can check a name before a search runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from slimforge._registry import Registry

# search(baseline_run, data, config, out, log, data_config) -> the summary optimize.json holds
Search = Callable[..., dict[str, Any]]

BUILTIN_OBJECTIVES = {"latency": "slimforge.optimize.search", "size": "slimforge.optimize.size"}
OBJECTIVES: Registry[Search] = Registry("optimize objective", builtins=BUILTIN_OBJECTIVES)


def register_objective(name: str, help: str = "") -> Callable[[Search], Search]:
    """Register the search that minimises objective ``name``."""
    return OBJECTIVES.register(name, help)


def list_objectives() -> list[str]:
    return OBJECTIVES.names()


def optimize(baseline_run: str | Path, data: Any, config: Any, out: str | Path, log: Callable[[str], None] = print,
             data_config: Any = None) -> dict[str, Any]:
    """Run the search of ``config.objective`` on the trained run ``baseline_run``; see
    :mod:`slimforge.optimize`. ``data_config`` (a DataConfig) is written into every candidate's
    config.yaml so each candidate folder is self-describing (``slimforge eval`` finds its data)."""
    return OBJECTIVES.get(config.objective)(baseline_run, data, config, out, log=log, data_config=data_config)
