"""Seeds and deterministic kernels for a training run."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed torch, numpy and random; with ``deterministic`` also force deterministic kernels for
    the rest of the process (``train`` itself scopes them to the run: :func:`deterministic_kernels`)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def deterministic_kernels(on: bool) -> Iterator[None]:
    """Deterministic kernels inside the block (``TrainConfig.deterministic``), the process's own setting after it."""
    if not on:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
