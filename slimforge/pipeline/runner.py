"""Running a recipe: stages in order, each in ``out/<stage name>/``, resumable.

A stage is done when its folder holds ``stage.json`` whose fingerprint matches the stage's
config, the recipe's data and its inputs' fingerprints. Running a recipe again skips done
stages; changing a stage changes its fingerprint and so those of the stages after it that
read it, and exactly those run again. The marker is written last, atomically, so an
interrupted stage is never taken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from slimforge.artifacts import write_json
from slimforge.errors import ArtifactError, SlimforgeError
from slimforge.files import folder_lock, partial_folder, staged_output
from slimforge.pipeline.markers import MARKER, STARTED, read_marker, started_fingerprint
from slimforge.pipeline.recipe import Recipe, StageConfig
from slimforge.pipeline.stages import PRODUCES, RESUMABLE_KINDS, RUNNERS, StageContext
from slimforge.train.checkpoint import CHECKPOINT_FILE


def run_recipe(recipe: Recipe, out: str | Path, *, quiet: bool = False, log=print) -> dict[str, dict[str, Any]]:
    """Run every stage of ``recipe`` under ``out``; returns {stage name: its marker}.

    One process at a time runs a recipe folder (a lock beside it). Each stage builds its folder
    beside ``out/<stage>`` and swaps it in whole, with its marker, when it finishes."""
    out = Path(out)
    with folder_lock(out):
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "recipe.json", recipe.model_dump(mode="json"))
        return _run_stages(recipe, out, StageContext(recipe.data, quiet=quiet), log)


def _run_stages(recipe: Recipe, out: Path, ctx: StageContext, log) -> dict[str, dict[str, Any]]:
    fingerprints: dict[str, str] = {}
    markers: dict[str, dict[str, Any]] = {}
    last_model: str | None = None
    for stage in recipe.stages:
        input_ref = stage.input or (last_model if stage.kind not in ("train", "report") else None)
        if stage.kind not in ("train", "report") and input_ref is None:
            raise SlimforgeError(f"stage {stage.name!r} (kind {stage.kind}) needs an input model: set its 'input' key or put a train stage before it.")
        input_dir = ctx.resolve(input_ref) if input_ref else None
        if input_dir is not None:
            _check_input(stage, input_dir)
        folder = out / stage.name
        fp = _fingerprint(stage, recipe, fingerprints, ctx)
        marker = read_marker(folder)
        if marker and marker.get("fingerprint") == fp:
            log(f"[{stage.name}] done earlier, skipped ({folder})")
        else:
            marker = _run_stage(stage, fp, input_dir, folder, ctx, log)
        fingerprints[stage.name] = fp
        markers[stage.name] = marker
        ctx.stage_dirs[stage.name] = folder
        if PRODUCES[stage.kind] == "model":
            last_model = stage.name
    return markers


def _run_stage(stage: StageConfig, fp: str, input_dir: Path | None, folder: Path, ctx: StageContext, log) -> dict[str, Any]:
    """Run one stage into ``folder`` (replaced whole, marker included, when it finishes)."""
    # A train/distill stage cut short with this very configuration continues from its checkpoint.
    partial = partial_folder(folder)
    resumable = stage.kind in RESUMABLE_KINDS
    ctx.resume = resumable and started_fingerprint(partial) == fp and (partial / CHECKPOINT_FILE).is_file()
    log(f"[{stage.name}] {'resuming from its checkpoint' if ctx.resume else 'running'} ({stage.kind})")
    try:
        with staged_output(folder, reuse_partial=ctx.resume, keep_on_error=resumable) as work:
            write_json(work / STARTED, {"fingerprint": fp})
            started = time.perf_counter()
            metrics = RUNNERS.get(stage.kind)(ctx, stage, input_dir, work)
            marker = {"kind": stage.kind, "name": stage.name, "fingerprint": fp, "input": str(input_dir) if input_dir else None,
                      "seconds": round(time.perf_counter() - started, 2), "metrics": metrics}
            write_json(work / MARKER, marker)
    finally:
        ctx.resume = False
    return marker


def _check_input(stage: StageConfig, folder: Path) -> None:
    if not (folder / "model.json").is_file():
        raise ArtifactError(
            f"stage {stage.name!r}: its input {str(folder)!r} has no model.json (key 'input'); "
            "the stage that writes it did not finish, or the path is not a run folder."
        )


def _fingerprint(stage: StageConfig, recipe: Recipe, earlier: dict[str, str], ctx: StageContext) -> str:
    refs = {}
    teachers = getattr(stage, "teachers", None) or []
    variants = getattr(stage, "variants", None) or []
    for ref in [stage.input, *teachers, *variants]:
        if ref:
            refs[ref] = earlier.get(ref) or _folder_digest(ctx.resolve(ref))
    if stage.kind == "report" and not getattr(stage, "variants", None):
        refs.update(earlier)  # the default report reads every earlier stage
    elif not stage.input and stage.kind != "train" and earlier:
        refs["<previous>"] = list(earlier.values())[-1]
    dumped = stage.model_dump(mode="json", exclude=set(stage.runtime_only) | {"trust_code"})  # trust changes no result
    blob = json.dumps({"stage": dumped, "data": recipe.data.model_dump(mode="json"), "inputs": refs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _folder_digest(folder: Path) -> str:
    """A cheap identity of an external run folder: names, sizes and modification times."""
    h = hashlib.sha256()
    for f in sorted(Path(folder).glob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]

