"""Plug-ins from outside the package: modules that register models, datasets, distillation
losses, importance criteria, quantization backends or pruning op rules when imported.

In Python, import your module before you use its names. The command line imports, before it
runs a command, every module named in ``$SLIMFORGE_PLUGINS`` (comma-separated, found on
``sys.path`` or in the current folder) and every installed package's entry point in
the ``slimforge.plugins`` group. Naming a module there is trusting its code, as naming it in
``PYTHONPATH`` is; nothing read from a run folder or a recipe is ever imported this way.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib import metadata

from slimforge.errors import ConfigError

ENV = "SLIMFORGE_PLUGINS"
ENTRY_POINT_GROUP = "slimforge.plugins"


def plugin_modules(environ: dict[str, str] | None = None) -> list[str]:
    """The module names ``$SLIMFORGE_PLUGINS`` lists, in order, blanks dropped."""
    raw = (os.environ if environ is None else environ).get(ENV, "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def load_plugins(names: list[str] | None = None) -> list[str]:
    """Import ``names`` (default: ``$SLIMFORGE_PLUGINS``) and the ``slimforge.plugins`` entry points;
    returns what was loaded. A module that cannot be imported is a ConfigError naming it."""
    loaded = []
    names = plugin_modules() if names is None else names
    if names and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a plug-in module beside the user; appended, so it shadows nothing installed
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"${ENV} names {name!r}, which could not be imported ({type(exc).__name__}: {exc}). "
                              f"Give module names importable from here (the current folder or sys.path), comma-separated.") from None
        loaded.append(name)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as exc:  # an installed package's plug-in that does not import: name it, in one line
            raise ConfigError(f"The installed plug-in {entry.name!r} ({entry.value}, entry point group {ENTRY_POINT_GROUP!r}) "
                              f"failed to load: {type(exc).__name__}: {exc}. Fix or uninstall the package that provides it.") from None
        loaded.append(f"{entry.name} ({entry.value})")
    return loaded
