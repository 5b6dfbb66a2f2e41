"""Training checkpoints without pickle: one safetensors file, its JSON structure in the header.

Nested state (model, optimizer, scheduler, RNG states, counters) is flattened: every tensor
goes into the safetensors body under a generated key, and everything else into JSON stored in
the file's metadata, with ``{"__tensor__": key}`` where a tensor stood. Tuples are kept as
``{"__tuple__": [...]}`` so RNG states round-trip exactly. The file is written atomically.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimforge.artifacts import atomic_write_bytes, read_metadata, read_tensors, state_dict_bytes
from slimforge.errors import ArtifactError

CHECKPOINT_FILE = "checkpoint.safetensors"
BEST_FILE = "best.safetensors"  # the best epoch's weights, while training keeps the best
HISTORY_FILE = "metrics.jsonl"  # one line of metrics per epoch


def flatten(state: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors in a nested structure by references into ``tensors``."""
    if isinstance(state, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = state
        return {"__tensor__": key}
    if isinstance(state, np.ndarray):
        return {"__ndarray__": flatten(torch.from_numpy(state.copy()), tensors), "dtype": str(state.dtype)}
    if isinstance(state, dict):
        if not all(isinstance(k, (str, int)) for k in state):
            raise TypeError(f"checkpoint dict keys must be str or int, got {[type(k).__name__ for k in state]}")
        return {"__dict__": [[k, flatten(v, tensors)] for k, v in state.items()]}
    if isinstance(state, tuple):
        return {"__tuple__": [flatten(v, tensors) for v in state]}
    if isinstance(state, list):
        return [flatten(v, tensors) for v in state]
    if isinstance(state, (np.integer, np.floating)):
        return state.item()
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    raise TypeError(f"cannot store {type(state).__name__} in a checkpoint")


def unflatten(node: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(node, list):
        return [unflatten(v, tensors) for v in node]
    if isinstance(node, dict):
        if "__tensor__" in node:
            return tensors[node["__tensor__"]]
        if "__ndarray__" in node:
            return unflatten(node["__ndarray__"], tensors).numpy().astype(node["dtype"])
        if "__tuple__" in node:
            return tuple(unflatten(v, tensors) for v in node["__tuple__"])
        if "__dict__" in node:
            return {k: unflatten(v, tensors) for k, v in node["__dict__"]}
    return node


def save_state(path: Path, state: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    structure = flatten(state, tensors)
    atomic_write_bytes(Path(path), state_dict_bytes(tensors, {"slimforge_checkpoint": json.dumps(structure)}))


def load_state(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    from safetensors import safe_open

    path = Path(path)
    tensors = read_tensors(path, device)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "slimforge_checkpoint" not in meta:
        raise ArtifactError(f"{path} is a safetensors file but not a slimforge checkpoint (no training state in its header).")
    try:
        state = unflatten(json.loads(meta["slimforge_checkpoint"]), tensors)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise ArtifactError(f"{path}: the checkpoint's state is corrupt ({type(exc).__name__}: {str(exc)[:200]}).") from None
    if not isinstance(state, dict):
        raise ArtifactError(f"{path}: the checkpoint's state is corrupt (not a mapping).")
    return state


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def checkpoint_record(folder: str | Path) -> dict[str, Any] | None:
    """The run config recorded in ``folder``'s checkpoint (what config.yaml will hold), read from
    the file's header only; None when there is no checkpoint or it records none."""
    path = Path(folder) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    try:
        top = json.loads(read_metadata(path).get("slimforge_checkpoint", "{}"))
        node = dict(top.get("__dict__", [])).get("record")
        record = unflatten(node, {}) if node is not None else None  # plain JSON: no tensor references
    except (ValueError, AttributeError, KeyError, TypeError, RecursionError, ArtifactError):
        return None
    return record if isinstance(record, dict) else None
