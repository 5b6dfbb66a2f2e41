"""Domains (text, recommendation) plug into the shared registries from above through lazy
built-ins tables: no lower package imports them, so an entry a domain registers but the table
does not name would vanish from `slimforge models`/`datasets` until something imported it."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from slimforge.data import BUILTIN_DATASETS, DATASETS
from slimforge.models import BUILTIN_MODELS, MODELS
from slimforge.optimize.size import BUILTIN_SIZE_GENERATORS, SIZE_GENERATORS
from slimforge.quantize.core import BACKENDS, BUILTIN_BACKENDS

TABLES = [("models", MODELS, BUILTIN_MODELS), ("datasets", DATASETS, BUILTIN_DATASETS), ("backends", BACKENDS, BUILTIN_BACKENDS),
          ("size generators", SIZE_GENERATORS, BUILTIN_SIZE_GENERATORS)]


def _module_of(entry: object) -> str:
    return getattr(entry, "__module__", None) or type(entry).__module__


@pytest.mark.parametrize(("kind", "registry", "builtins"), TABLES, ids=[t[0] for t in TABLES])
def test_every_entry_of_a_domain_module_is_in_its_builtins_table(kind, registry, builtins):
    for module in sorted(set(builtins.values())):
        importlib.import_module(module)
    domain_modules = set(builtins.values())
    registered = {name for name, entry in registry._entries.items() if _module_of(entry) in domain_modules}
    assert registered, f"no {kind} registered by {sorted(domain_modules)}"
    assert registered <= set(builtins), f"{kind} registered by a domain but not in its builtins table: {sorted(registered - set(builtins))}"
    for name in builtins:  # each table entry is registered by the module it names
        assert _module_of(registry.get(name)) == builtins[name], name


def test_lower_packages_import_no_domain():
    """Importing the shared registries (models, data, quantize, optimize) loads neither text nor recsys."""
    code = ("import sys, slimforge.models, slimforge.data, slimforge.quantize, slimforge.artifacts, slimforge.optimize.size\n"
            "print(sorted(m for m in sys.modules if m.startswith(('slimforge.text', 'slimforge.recsys'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
