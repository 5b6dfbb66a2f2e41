"""`slimforge distill`: teacher(s) to student through the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slimforge.cli import app, loads_folders
from slimforge.cli.training import print_result


@app.command("distill")
@loads_folders
def distill_cmd(
    teacher: Annotated[list[Path], typer.Option(help="teacher run folder; repeat for an ensemble")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="config overrides key=value, e.g. train.lr=0.05 student.kwargs.width=0.5 distill.temperature=2")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML with data/student/train/distill sections")] = None,
    student: Annotated[Optional[str], typer.Option(help="student model name (slimforge models)")] = None,
    prune_teacher: Annotated[Optional[float], typer.Option(help="student = the teacher with this fraction of channels pruned")] = None,
    data: Annotated[Optional[str], typer.Option(help="dataset (default: the first teacher's)")] = None,
    data_root: Annotated[Optional[str], typer.Option(help="folder holding the dataset's files")] = None,
    loss: Annotated[Optional[str], typer.Option(help="kd, dkd or mse")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="softmax temperature")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="maximum epochs")] = None,
    lr: Annotated[Optional[float], typer.Option(help="peak learning rate")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    out: Annotated[Path, typer.Option(help="student run folder to write")] = Path("runs/distill"),
    resume: Annotated[bool, typer.Option("--resume", help="continue from the checkpoint in --out")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="start over in an --out that already holds a run (its files are replaced)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Distil one teacher (or an ensemble) into a student; writes a normal run folder."""
    from slimforge.config import load_config
    from slimforge.distill.api import DistillRunConfig, run_from_config
    from slimforge.experiment import run_data_config

    flags = {
        "student.name": student, "prune_teacher_ratio": prune_teacher, "distill.loss": loss,
        "distill.temperature": temperature, "train.epochs": epochs, "train.lr": lr, "train.seed": seed,
        "train.quiet": True if quiet else None,
    }
    from slimforge.cli.training import refuse_existing_run, resume_base
    from slimforge.errors import ConfigError

    refuse_existing_run(out, resume, overwrite)
    if any(out.resolve() == Path(t).resolve() for t in teacher):
        raise ConfigError(f"--out {out} is a teacher's folder; write the student to another folder.")
    if student and prune_teacher is not None:
        raise ConfigError("Give --student or --prune-teacher, not both: --prune-teacher makes the student from the teacher.")
    base = {}
    if data or data_root:
        teacher_data = run_data_config(teacher[0]).model_dump()
        base["data"] = {**teacher_data, **({"name": data} if data else {}), **({"root": data_root} if data_root else {})}
    if resume and config is None:  # continue with the run's own settings; options given now apply on top
        base = {**(resume_base(out, DistillRunConfig) or {}), **base}
    cfg = load_config(DistillRunConfig, config, [*(f"{k}={v}" for k, v in flags.items() if v is not None), *(overrides or [])], base=base)
    result = run_from_config(cfg, teacher, out, resume=resume)
    print_result(f"distill into {cfg.student.name if not cfg.prune_teacher_ratio else 'pruned teacher'}", result.metrics, out)
