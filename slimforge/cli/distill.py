"""`slimforge distill`: teacher(s) to student through the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from slimforge.cli import app, loads_folders
from slimforge.cli.training import print_result
from slimforge.distill.losses import LOSSES, default_soft_weight, loss_settings
from slimforge.train.config import TrainConfig


def _per_loss(describe) -> str:
    """'kd 4, dkd 4': a default that depends on the loss, for each registered loss."""
    return ", ".join(f"{name} {value:g}" for name in LOSSES.names() if (value := describe(name)) is not None)


def _train_default(key: str) -> Any:
    return TrainConfig.model_fields[key].default


SOFT_DEFAULT = f"per loss: {_per_loss(default_soft_weight)}"
TEMPERATURE_DEFAULT = f"per loss: {_per_loss(lambda n: loss_settings(n)['temperature'])}"


@app.command("distill")
@loads_folders
def distill_cmd(
    teacher: Annotated[list[Path], typer.Option(help="teacher run folder; repeat for an ensemble")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="config overrides key=value, e.g. train.lr=0.05 student.kwargs.width=0.5 data.augment=false")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML with data/student/train/distill sections")] = None,
    student: Annotated[Optional[str], typer.Option(help="student model name (slimforge models)")] = None,
    prune_teacher: Annotated[Optional[float], typer.Option(help="student = the teacher with this fraction of channels pruned")] = None,
    data: Annotated[Optional[str], typer.Option(help="dataset; data.KEY=VALUE changes one key of the data section", show_default="the first teacher's data section")] = None,
    data_root: Annotated[Optional[str], typer.Option(help="folder holding the dataset's files")] = None,
    loss: Annotated[Optional[str], typer.Option(help=", ".join(LOSSES.names()), show_default="kd")] = None,
    temperature: Annotated[Optional[float], typer.Option(help="softmax temperature (kd, dkd)", show_default=TEMPERATURE_DEFAULT)] = None,
    soft_weight: Annotated[Optional[float], typer.Option(help="weight of the distillation loss; hard weight = 1 - this", show_default=SOFT_DEFAULT)] = None,
    hard_weight: Annotated[Optional[float], typer.Option(help="weight of cross-entropy on the labels; soft weight = 1 - this", show_default="1 - soft weight")] = None,
    teacher_cache: Annotated[Optional[Path], typer.Option(help="folder of teacher-output caches, keyed by content, shareable", show_default="$SLIMFORGE_CACHE/teacher-outputs")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="maximum epochs", show_default=str(_train_default("epochs")))] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="batch size per process", show_default=str(_train_default("batch_size")))] = None,
    lr: Annotated[Optional[float], typer.Option(help="peak learning rate", show_default=str(_train_default("lr")))] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed", show_default=str(_train_default("seed")))] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:1 ...", show_default=str(_train_default("device")))] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads", show_default="cores / local processes")] = None,
    out: Annotated[Path, typer.Option(help="student run folder to write")] = Path("runs/distill"),
    resume: Annotated[bool, typer.Option("--resume", help="continue from the checkpoint in --out")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="start over in an --out that already holds a run (its files are replaced)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Distil one teacher (or an ensemble) into a student; writes a normal run folder.

    Loss = soft weight x the distillation loss (kd: T^2 x KL between the softened outputs, as in Hinton et al. 2015) + hard weight x cross-entropy on the labels; the two weights sum to 1. Settings the chosen loss does not use (--temperature with mse, distill.alpha with kd) are refused.
    """
    from slimforge.cli.training import refuse_existing_run, resume_base
    from slimforge.config import load_config, read_yaml
    from slimforge.models import refuse_code_in
    from slimforge.distill.api import DistillRunConfig, run_from_config
    from slimforge.errors import ConfigError

    flags = {
        "data.name": data, "data.root": data_root, "student.name": student, "prune_teacher_ratio": prune_teacher, "distill.loss": loss,
        "distill.temperature": temperature, "distill.soft_weight": soft_weight, "distill.hard_weight": hard_weight,
        "distill.cache_dir": teacher_cache, "train.epochs": epochs, "train.batch_size": batch_size, "train.lr": lr,
        "train.seed": seed, "train.device": device, "train.num_threads": threads, "train.quiet": True if quiet else None,
    }
    refuse_existing_run(out, resume, overwrite)
    if config is not None:
        refuse_code_in(read_yaml(config), str(config))
    if any(out.resolve() == Path(t).resolve() for t in teacher):
        raise ConfigError(f"--out {out} is a teacher's folder; write the student to another folder.")
    if student and prune_teacher is not None:
        raise ConfigError("Give --student or --prune-teacher, not both: --prune-teacher makes the student from the teacher.")
    # --resume continues with the run's own settings; options given now apply on top.
    base: dict[str, Any] = (resume_base(out, DistillRunConfig) or {}) if resume and config is None else {}
    base.setdefault("data", teacher_data_base(teacher[0], data, config))
    cfg = load_config(DistillRunConfig, config, [*(f"{k}={v}" for k, v in flags.items() if v is not None), *(overrides or [])], base=base)
    result = run_from_config(cfg, teacher, out, resume=resume)
    print_result(f"distill into {cfg.student.name if not cfg.prune_teacher_ratio else 'pruned teacher'}", result.metrics, out)



def teacher_data_base(teacher: Path, dataset: str | None, recipe: Path | None) -> dict[str, Any]:
    """The data section a distillation starts from: the teacher's (its config.yaml), so that a recipe's
    data keys, --data-root and data.KEY=VALUE change only the key they name; empty (that dataset's
    defaults) when --data or the recipe names another dataset than the teacher's."""
    from slimforge.config import read_yaml
    from slimforge.experiment import run_data_config

    section = run_data_config(teacher).model_dump()
    named = dataset or ((read_yaml(recipe).get("data") or {}).get("name") if recipe else None)
    return section if named in (None, section["name"]) else {}
