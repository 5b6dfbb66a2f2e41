"""Errors raised by slimforge.prune; all are :class:`slimforge.errors.SlimforgeError`."""

from __future__ import annotations

from slimforge.errors import ConfigError, SlimforgeError


class PruningError(SlimforgeError):
    """The model cannot be pruned as asked; the message says which layer and what to do."""


class NothingToPruneError(PruningError):
    """Every group of units is kept whole (or rounding keeps every unit): pruning would change nothing."""


class UnsupportedOpError(PruningError):
    """An op whose channel coupling slimforge does not know touches prunable channels."""


class PruneConfigError(ConfigError):
    """A pruning option (ratio, target, importance, pattern) is out of range or unknown."""
