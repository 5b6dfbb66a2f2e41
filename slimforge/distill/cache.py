"""Teacher outputs computed once per training set, memory-mapped from disk on every epoch.

Valid only when each epoch feeds the student exactly the inputs the cache was computed from
(fixed preprocessing, no random augmentation); the objective checks the first batch and falls
back to the live teacher when they differ.

A cache is two files in its folder, named after the teacher's weights hash::

    teacher-<hash16>.npy    (N, *output_shape) float32 or float16, opened with numpy.memmap
    teacher-<hash16>.json   {"format", "teacher_hash", "n", "shape", "dtype", "data_fingerprint", ...}

The JSON is written last, so a folder holding a ``.npy`` without it is an interrupted build
and is recomputed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimforge.artifacts import read_json, write_json
from slimforge.distill.teachers import run_teacher, weights_hash
from slimforge.errors import ArtifactError, ConfigError

FORMAT_VERSION = 1
CACHE_DTYPES = ("float32", "float16")


class TeacherCache:
    """Read-only view of one teacher's cached outputs: ``lookup(indices)`` -> (batch, *shape)."""

    def __init__(self, path: Path, meta: dict[str, Any], reused: bool) -> None:
        self.path = Path(path)
        self.meta = meta
        self.reused = reused  # True when an existing cache matched; False when it was computed now
        self._outputs = np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return self._outputs.shape[0]

    @classmethod
    def build(
        cls,
        teacher: nn.Module,
        inputs: Sequence[Any] | torch.Tensor,
        folder: str | Path,
        *,
        dtype: str = "float32",
        batch_size: int = 256,
    ) -> TeacherCache:
        """Reuse the cache in ``folder`` if it matches this teacher and these inputs, else compute it.

        teacher: frozen module (see ``prepare_teachers``), run on its own device and dtype.
        inputs: a (N, ...) tensor, or an indexable of N input tensors or (input, target, ...) tuples,
            in the fixed order that the training split's ``indices`` refer to.
        """
        if dtype not in CACHE_DTYPES:
            raise ConfigError(f"cache_dtype={dtype!r} is not supported; use one of {list(CACHE_DTYPES)}.")
        folder = Path(folder)
        teacher_hash = weights_hash(teacher)
        stem = folder / f"teacher-{teacher_hash[:16]}"
        npy, meta_path = stem.with_suffix(".npy"), stem.with_suffix(".json")
        param = next(teacher.parameters(), None)
        expected = {
            "format": FORMAT_VERSION,
            "teacher_hash": teacher_hash,
            "teacher_dtype": str(param.dtype).removeprefix("torch.") if param is not None else "float32",
            "n": len(inputs),
            "dtype": dtype,
            "data_fingerprint": data_fingerprint(inputs),
        }
        reused = True  # other ranks use whatever rank 0 leaves in the folder
        if _is_main():
            existing = read_json(meta_path) if meta_path.is_file() and npy.is_file() else None
            if existing is None or any(existing.get(k) != v for k, v in expected.items()):
                _compute(teacher, inputs, npy, expected, batch_size)
                reused = False
        _barrier()
        meta = read_json(meta_path)
        cache = cls(npy, meta, reused)
        if cache._outputs.shape != (expected["n"], *meta["shape"]):
            raise ArtifactError(f"{npy} holds shape {cache._outputs.shape}, but {meta_path} says {(expected['n'], *meta['shape'])}; delete both.")
        return cache

    def lookup(self, indices: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """Cached outputs of samples ``indices`` (batch,) as float32 (batch, *shape) on ``device``."""
        idx = indices.detach().cpu().long().numpy()
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ConfigError(
                f"Sample index {int(idx.max()) if idx.max() >= len(self) else int(idx.min())} is outside the teacher "
                f"cache of {len(self)} samples ({self.path}); the cache was built from a different training split."
            )
        return torch.from_numpy(np.asarray(self._outputs[idx], dtype=np.float32)).to(device)


def data_fingerprint(inputs: Sequence[Any] | torch.Tensor, samples: int = 16) -> str:
    """sha256 of N and of up to ``samples`` evenly spaced inputs: tells one training split from another cheaply."""
    n = len(inputs)
    digest = hashlib.sha256(str(n).encode())
    for i in sorted({round(k * (n - 1) / max(samples - 1, 1)) for k in range(min(samples, n))}):
        item = _input_at(inputs, i)
        for x in ([item[k] for k in sorted(item)] if isinstance(item, dict) else [item]):  # dict: text inputs
            x = x.detach().cpu().contiguous()
            digest.update(f"{x.dtype}|{tuple(x.shape)}|".encode())
            digest.update(x.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _compute(teacher: nn.Module, inputs: Sequence[Any] | torch.Tensor, npy: Path, meta: dict[str, Any], batch_size: int) -> None:
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_name(f".{npy.stem}.{os.getpid()}.tmp.npy")
    n, out = meta["n"], None
    try:
        for start in range(0, n, batch_size):
            logits = run_teacher(teacher, _batch(inputs, start, min(start + batch_size, n))).cpu().numpy()
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=meta["dtype"], shape=(n, *logits.shape[1:]))
            out[start : start + len(logits)] = logits
        if out is None:
            raise ConfigError("Cannot cache teacher outputs for an empty training split.")
        out.flush()
        shape = list(out.shape[1:])
        del out
        os.replace(tmp, npy)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    write_json(npy.with_suffix(".json"), {**meta, "shape": shape})


def _input_at(inputs: Sequence[Any] | torch.Tensor, i: int) -> torch.Tensor:
    item = inputs[i]
    return item[0] if isinstance(item, (tuple, list)) else item


def _batch(inputs: Sequence[Any] | torch.Tensor, start: int, stop: int) -> torch.Tensor:
    if isinstance(inputs, torch.Tensor):
        return inputs[start:stop]
    if hasattr(inputs, "__getitems__"):  # batch-fetching datasets return (inputs, targets, ...) at once
        batch = inputs.__getitems__(list(range(start, stop)))
        return batch[0] if isinstance(batch, (tuple, list)) and isinstance(batch[0], (torch.Tensor, dict)) else torch.stack(
            [torch.as_tensor(item[0] if isinstance(item, (tuple, list)) else item) for item in batch]
        )
    return torch.stack([torch.as_tensor(_input_at(inputs, i)) for i in range(start, stop)])


def _is_main() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or torch.distributed.get_rank() == 0


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
