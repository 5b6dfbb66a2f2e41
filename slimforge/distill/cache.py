"""Teacher outputs computed once per teacher and training set, memory-mapped from disk on every epoch.

Valid only when each epoch feeds the student exactly the inputs the cache was computed from
(fixed preprocessing, no random augmentation); the objective checks the first batch and falls
back to the live teacher when they differ.

A cache entry is two files, named after its content key: the teacher's weights hash, the
fingerprint of the training inputs *as the student sees them* (the data and its transform:
normalisation, split), and the stored dtype::

    teacher-<key16>.npy    (N, *output_shape) float32 or float16, opened with numpy.memmap
    teacher-<key16>.json   {"format", "key", "teacher_hash", "n", "shape", "dtype", "data_fingerprint", ...}

So one folder holds the entries of many teachers and datasets side by side, and every run of
the same teacher on the same data finds its entry: by default the folder is shared by all runs
(:func:`default_cache_dir`); a path given instead may be shared on purpose. The JSON is written
last, so a ``.npy`` without it is an interrupted build and is recomputed.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimforge.artifacts import read_json, write_json
from slimforge.distill.teachers import run_teacher, weights_hash
from slimforge.errors import ArtifactError, ConfigError

FORMAT_VERSION = 2  # 2: entries named after the content key (1: after the teacher's weights alone)
CACHE_DTYPES = ("float32", "float16")
FINGERPRINT_SAMPLES = 64  # inputs hashed per training split (evenly spaced), beside its size


def default_cache_dir() -> Path:
    """Where teacher caches go unless a folder is given: ``$SLIMFORGE_CACHE/teacher-outputs``
    (``~/.cache/slimforge/teacher-outputs`` by default), shared by every run of this user."""
    from slimforge.data.vision import cache_dir

    return cache_dir() / "teacher-outputs"


class TeacherCache:
    """Read-only view of one teacher's cached outputs: ``lookup(indices)`` -> (batch, *shape)."""

    def __init__(self, path: Path, meta: dict[str, Any], reused: bool, seconds: float = 0.0) -> None:
        self.path = Path(path)
        self.meta = meta
        self.reused = reused  # True when an existing cache matched; False when it was computed now
        self.seconds = seconds  # spent computing it (0 when reused)
        self._outputs = np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return self._outputs.shape[0]

    @property
    def nbytes(self) -> int:
        return int(self._outputs.nbytes)

    def describe(self) -> dict[str, Any]:
        """What a run records about its cache (metrics.json) and prints."""
        return {"path": str(self.path.resolve()), "key": self.meta.get("key"), "teacher_hash": self.meta.get("teacher_hash"),
                "shape": [len(self), *self.meta["shape"]], "dtype": self.meta["dtype"], "bytes": self.nbytes,
                "reused": self.reused, "compute_seconds": round(self.seconds, 2)}

    def summary(self) -> str:
        """One line: where, how big, and whether it was reused."""
        shape = " x ".join(str(d) for d in (len(self), *self.meta["shape"]))
        how = "reused" if self.reused else f"computed in {self.seconds:.1f} s"
        return f"{self.path} ({_size(self.nbytes)}, {shape} {self.meta['dtype']}), {how}"

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
        param = next(teacher.parameters(), None)
        expected = {
            "format": FORMAT_VERSION,
            "teacher_hash": weights_hash(teacher),
            "teacher_dtype": str(param.dtype).removeprefix("torch.") if param is not None else "float32",
            "n": len(inputs),
            "dtype": dtype,
            "data_fingerprint": data_fingerprint(inputs),
        }
        expected["key"] = hashlib.sha256("|".join(str(expected[k]) for k in sorted(expected)).encode()).hexdigest()
        stem = folder / f"teacher-{expected['key'][:16]}"
        npy, meta_path = stem.with_suffix(".npy"), stem.with_suffix(".json")
        reused, seconds = True, 0.0  # other ranks use whatever rank 0 leaves in the folder
        if _is_main():
            existing = read_json(meta_path) if meta_path.is_file() and npy.is_file() else None
            if existing is None or any(existing.get(k) != v for k, v in expected.items()):
                started = time.perf_counter()
                _compute(teacher, inputs, npy, expected, batch_size)
                reused, seconds = False, time.perf_counter() - started
        _barrier()
        meta = read_json(meta_path)
        cache = cls(npy, meta, reused, seconds)
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


def data_fingerprint(inputs: Sequence[Any] | torch.Tensor, samples: int = FINGERPRINT_SAMPLES) -> str:
    """sha256 of N and of up to ``samples`` evenly spaced inputs, as the student receives them (after
    normalisation and any other transform): tells one training split, or one preprocessing, from another cheaply."""
    n = len(inputs)
    digest = hashlib.sha256(str(n).encode())
    for i in sorted({round(k * (n - 1) / max(samples - 1, 1)) for k in range(min(samples, n))}):
        item = _input_at(inputs, i)
        for x in ([item[k] for k in sorted(item)] if isinstance(item, dict) else [item]):  # dict: text inputs
            x = x.detach().cpu().contiguous()
            digest.update(f"{x.dtype}|{tuple(x.shape)}|".encode())
            digest.update(x.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.1f} KiB"


def _compute(teacher: nn.Module, inputs: Sequence[Any] | torch.Tensor, npy: Path, meta: dict[str, Any], batch_size: int) -> None:
    npy.parent.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_name(f".{npy.stem}.{os.getpid()}.tmp.npy")
    n, out = meta["n"], None
    progress = _Progress(n)
    try:
        for start in range(0, n, batch_size):
            logits = run_teacher(teacher, _batch(inputs, start, min(start + batch_size, n))).cpu().numpy()
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=meta["dtype"], shape=(n, *logits.shape[1:]))
            out[start : start + len(logits)] = logits
            progress.update(start + len(logits))
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


class _Progress:
    """A line to stderr every 10% of a teacher pass that has run for more than PROGRESS_AFTER_S
    (a transfer set of 300,000 texts takes minutes: it should not be silent)."""

    PROGRESS_AFTER_S = 10.0

    def __init__(self, total: int) -> None:
        self.total, self.started, self.next_share = total, time.monotonic(), 0.1

    def update(self, done: int) -> None:
        elapsed = time.monotonic() - self.started
        share = done / max(self.total, 1)
        if share < self.next_share or elapsed < self.PROGRESS_AFTER_S or not _is_main():
            return
        left = elapsed / share - elapsed
        print(f"teacher outputs: {done:,} of {self.total:,} inputs ({100 * share:.0f}%), {elapsed:.0f} s, about {left:.0f} s left",
              file=sys.stderr, flush=True)
        self.next_share = share + 0.1


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
