"""Sharded (FSDP) training checkpoints into normal run folders.

It lives in ``train``, above ``distributed``: turning shards into a model needs the model
(``models``), the run-folder format and the training checkpoint, none of which ``distributed``
may import.
"""

from __future__ import annotations

from pathlib import Path

from slimforge.artifacts import ModelSpec
from slimforge.distributed import _safe_dcp
from slimforge.distributed.fsdp import SHARDED_DIR
from slimforge.errors import ArtifactError
from slimforge.files import inside, staged_output
from slimforge.model_io import save_model
from slimforge.models import build_model
from slimforge.train.checkpoint import CHECKPOINT_FILE, load_state


def convert_checkpoint(run: str | Path, out: str | Path | None = None) -> Path:
    """Turn the distributed checkpoint in run folder ``run`` into model.safetensors + model.json
    (in ``out``, default ``run``), in one process; ``slimforge.load(out)`` then rebuilds the model."""
    run = Path(run)
    saved = load_state(run / CHECKPOINT_FILE)
    if not saved.get("spec"):
        raise ArtifactError(f"{run / CHECKPOINT_FILE} records no model structure, so its shards cannot be rebuilt into a model.")
    shards = inside(run, saved.get("sharded") or SHARDED_DIR, f"{run / CHECKPOINT_FILE}'s 'sharded' entry")
    if not (shards / ".metadata").is_file():
        raise ArtifactError(f"{run} holds no distributed checkpoint ({shards} is missing); was it trained with train.strategy=fsdp?")
    source = f"the model recorded in {run / CHECKPOINT_FILE}"
    model = build_model(ModelSpec.from_json(saved["spec"], source), trust_code=False, source=source)
    state = {"model": model.state_dict()}
    _safe_dcp.load(state, str(shards))
    model.load_state_dict(state["model"])
    target = Path(out) if out is not None else run
    with staged_output(target, copy_previous=True) as work:  # the run's other files stay; the folder changes in one step
        save_model(model, work)
    return target
