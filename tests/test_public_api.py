"""The public face: every name a package exports resolves, and each stage is callable alike."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import slimforge

PACKAGES = sorted(
    name for _, name, is_package in pkgutil.walk_packages(slimforge.__path__, "slimforge.")
    if is_package or not name.rsplit(".", 1)[-1].startswith("_")
)


@pytest.mark.parametrize("name", slimforge.__all__)
def test_every_top_level_public_name_resolves(name: str) -> None:
    assert getattr(slimforge, name) is not None
    assert name in dir(slimforge)


@pytest.mark.parametrize("module", [m for m in PACKAGES if not m.startswith("slimforge.cli")])
def test_every_name_in_a_module_s_all_resolves(module: str) -> None:
    """Lazy exports included (``slimforge.text.measure_latency`` once named a function that did not exist)."""
    mod = importlib.import_module(module)
    for name in getattr(mod, "__all__", []):
        assert getattr(mod, name, None) is not None, f"{module}.__all__ names {name!r}, which does not resolve"


@pytest.mark.parametrize("stage, function", [("prune", "prune"), ("distill", "run"), ("quantize", "quantize"),
                                             ("factorize", "factorize"), ("export", "export")])
def test_each_stage_is_callable_as_its_function(stage: str, function: str) -> None:
    module = getattr(slimforge, stage)
    assert callable(module) and type(module).__call__ is getattr(module, function)
    assert type(module).__doc__ == getattr(module, function).__doc__
