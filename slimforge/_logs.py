"""Quieting a logger for the length of a call."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def silenced(logger: str = "", level: int = logging.ERROR) -> Iterator[None]:
    """Log records of ``logger`` ("" is the root logger) below ``level`` are dropped inside the block."""
    target = logging.getLogger(logger)
    previous = target.level
    target.setLevel(level)
    try:
        yield
    finally:
        target.setLevel(previous)
