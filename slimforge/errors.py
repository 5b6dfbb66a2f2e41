"""Errors a user can act on.

Every error raised for bad input derives from :class:`SlimforgeError`, so the CLI can print
its message as one paragraph instead of a traceback.
"""

from __future__ import annotations

import difflib


class SlimforgeError(Exception):
    """Bad input or a state slimforge cannot continue from; the message says what to do."""


class ConfigError(SlimforgeError, ValueError):
    """A config key, value or recipe entry is wrong."""


class ArtifactError(SlimforgeError):
    """A run folder, weights file or checkpoint is missing, corrupt or does not match."""


class DataError(SlimforgeError):
    """A dataset is missing, unreadable or of the wrong shape."""


class UnknownNameError(SlimforgeError, KeyError):
    """A name was looked up in a registry that does not hold it."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: str, choices: list[str]) -> str:
    """A ' Did you mean X?' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
