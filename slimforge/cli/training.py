"""`slimforge train`, `slimforge eval` and `slimforge demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from slimforge.cli import app, loads_folders

Overrides = Annotated[Optional[list[str]], typer.Argument(help="config overrides key=value, e.g. train.lr=0.05 model.kwargs.width=2")]
LAUNCH = "Launch (torchrun's flags, passed on to torch.distributed.run)"


@app.command("train")
@loads_folders
def train_cmd(
    overrides: Overrides = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML recipe with data/model/train sections")] = None,
    data: Annotated[Optional[str], typer.Option(help="dataset name (slimforge datasets), or your own: arrays:FILE.npz, table:FILE.csv, image-folder:DIR (docs/own-data.md)")] = None,
    data_root: Annotated[Optional[str], typer.Option(help="folder holding the dataset's files")] = None,
    model: Annotated[Optional[str], typer.Option(help="model name (slimforge models)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="maximum epochs")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="batch size per process")] = None,
    lr: Annotated[Optional[float], typer.Option(help="peak learning rate")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="sgd or adamw")] = None,
    patience: Annotated[Optional[int], typer.Option(help="early stopping patience in epochs")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="bitwise-reproducible kernels")] = False,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads per process")] = None,
    out: Annotated[Path, typer.Option(help="run folder to write")] = Path("runs/train"),
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out from its last checkpoint")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="start over in an --out that already holds a run (its files are replaced)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress output")] = False,
    nproc_per_node: Annotated[Optional[int], typer.Option(help="start this many processes on this node via torchrun (one per GPU on CUDA)", rich_help_panel=LAUNCH)] = None,
    nnodes: Annotated[str, typer.Option(help="number of nodes, or MIN:MAX for elastic jobs", rich_help_panel=LAUNCH)] = "1",
    node_rank: Annotated[Optional[int], typer.Option(help="this node's rank (static rendezvous)", rich_help_panel=LAUNCH)] = None,
    rdzv_backend: Annotated[Optional[str], typer.Option(help="rendezvous backend, e.g. c10d", rich_help_panel=LAUNCH)] = None,
    rdzv_endpoint: Annotated[Optional[str], typer.Option(help="host:port of the rendezvous (multi-node)", rich_help_panel=LAUNCH)] = None,
    rdzv_id: Annotated[Optional[str], typer.Option(help="job id shared by all nodes", rich_help_panel=LAUNCH)] = None,
    max_restarts: Annotated[int, typer.Option(help="restart failed workers this often; they resume from the last checkpoint", rich_help_panel=LAUNCH)] = 0,
    master_addr: Annotated[Optional[str], typer.Option(help="rank 0's address (static rendezvous)", rich_help_panel=LAUNCH)] = None,
    master_port: Annotated[Optional[int], typer.Option(help="rank 0's port (default on one node: a free one)", rich_help_panel=LAUNCH)] = None,
) -> None:
    """Train a model and write a run folder (model.safetensors, model.json, config.yaml, metrics).

    With --nproc-per-node the same command runs in that many processes, started by torchrun;
    `torchrun ... -m slimforge train ...` works the same. --batch-size is per process.
    """
    flags = {
        "data.name": data, "data.root": data_root, "model.name": model, "train.epochs": epochs,
        "train.batch_size": batch_size, "train.lr": lr, "train.optimizer": optimizer, "train.patience": patience,
        "train.seed": seed, "train.device": device, "train.num_threads": threads,
        "train.deterministic": True if deterministic else None, "train.quiet": True if quiet else None,
    }
    flag_overrides = [f"{k}={v}" for k, v in flags.items() if v is not None]
    refuse_existing_run(out, resume, overwrite)
    cfg = _run_config(config, [*flag_overrides, *(overrides or [])], out, resume)
    if nproc_per_node is not None:  # this process only launches; the workers run this command without launch flags
        from slimforge.distributed.launch import LaunchConfig, launch
        from slimforge.models import code_trusted

        launch_cfg = LaunchConfig(nproc_per_node, nnodes, node_rank, rdzv_backend, rdzv_endpoint, rdzv_id, max_restarts, master_addr, master_port)
        worker = ["train", *(["--config", str(config)] if config else []), *flag_overrides, *(overrides or []),
                  "--out", str(out), *(["--resume"] if resume else []), *(["--overwrite"] if overwrite else []),
                  *(["--trust-code"] if code_trusted() else [])]
        launch(launch_cfg, worker, cfg.train.device)
        return
    _train_here(cfg, out, resume)


def _run_config(config: Path | None, overrides: list[str], out: Path, resume: bool):
    """The run's config: --resume's recorded settings, then the config file (checked: not a recipe, no code
    named unless trusted), then the flags and overrides."""
    from slimforge.config import load_config, read_yaml
    from slimforge.experiment import RunConfig
    from slimforge.models import refuse_code_in

    if config is not None and "stages" in read_yaml(config):
        from slimforge.errors import ConfigError

        raise ConfigError(f"{config} is a pipeline recipe (it has 'stages'); run it with: slimforge run {config}")
    if config is not None:
        refuse_code_in(read_yaml(config), str(config))
    # --resume continues with the run's own settings (recorded in its checkpoint); options given now apply on top.
    base = resume_base(out, RunConfig) if resume and config is None else None
    return load_config(RunConfig, config, overrides, base=base)


def _train_here(cfg, out: Path, resume: bool) -> None:
    """Train in this process (one of torchrun's workers, or alone) and print the result on rank 0."""
    from slimforge.distributed import is_main, teardown
    from slimforge.experiment import run_training

    try:
        metrics = run_training(cfg, out, resume=resume).metrics  # the model goes before the group (teardown)
        main = is_main()
    except BaseException:
        teardown(wait=False)  # the other ranks may never reach a barrier
        raise
    teardown()
    if main:
        print_result("train", metrics, out)


def resume_base(out: Path, cls) -> dict | None:
    """The config a run in ``out`` was started with (its checkpoint's record, else its config.yaml),
    restricted to ``cls``'s sections: what a bare --resume continues with."""
    from slimforge.artifacts import CONFIG_FILE
    from slimforge.config import read_yaml
    from slimforge.files import partial_folder
    from slimforge.train.checkpoint import checkpoint_record

    record, source = checkpoint_record(partial_folder(out)), partial_folder(out)
    if record is None:
        record, source = checkpoint_record(out), out
    if record is None and (out / CONFIG_FILE).is_file():
        record, source = read_yaml(out / CONFIG_FILE), out / CONFIG_FILE
    if not record:
        return None
    _check_recorded_model(record, source)
    return {k: v for k, v in record.items() if k in cls.model_fields}


def _check_recorded_model(record: dict, source: Path) -> None:
    """A run's recorded model name is the file's choice: a ``package.module:function`` one is
    built on --resume only with --trust-code (or when this process trusts it)."""
    from slimforge.models import is_code_reference, resolve_factory

    for section in ("model", "student"):
        name = (record.get(section) or {}).get("name") if isinstance(record.get(section), dict) else None
        if isinstance(name, str) and is_code_reference(name):
            resolve_factory(name, trust_code=False, source=f"the run recorded in {source}")


def refuse_existing_run(out: Path, resume: bool, overwrite: bool) -> None:
    """A training command pointed at a folder that holds a run must say what to do with it:
    continue it (--resume) or replace it (--overwrite); never mix a new run into an old one.

    Under torchrun only rank 0 checks. A job that passed the check marks the folder with its run
    id, so its elastic restarts (which find its checkpoint) resume, while a restart of a refused
    job is refused again rather than silently resuming the old run.
    """
    import os

    from slimforge.artifacts import STRUCTURE_FILE
    from slimforge.distributed import restart_count
    from slimforge.errors import ConfigError
    from slimforge.files import partial_folder
    from slimforge.train.checkpoint import CHECKPOINT_FILE

    if os.environ.get("RANK", "0") != "0":
        return
    job, marker = os.environ.get("TORCHELASTIC_RUN_ID"), out / ".slimforge-job"
    if restart_count() > 0 and job and marker.is_file() and marker.read_text().strip() == job:
        return  # this job's own restart: it resumes its own checkpoint
    if not (resume or overwrite) and ((out / STRUCTURE_FILE).is_file() or (out / CHECKPOINT_FILE).is_file()):
        raise ConfigError(f"{out} already holds a run. Pass --resume to continue it, --overwrite to start over in it "
                          "(its model, checkpoint and metrics are replaced), or choose another --out.")
    if not (resume or overwrite) and (partial_folder(out) / CHECKPOINT_FILE).is_file():
        raise ConfigError(f"{out} has an interrupted run (its checkpoint is in {partial_folder(out)}). Pass --resume to continue "
                          "it, --overwrite to start over, or choose another --out.")
    if job and restart_count() == 0:
        out.mkdir(parents=True, exist_ok=True)
        marker.write_text(job + "\n")


@app.command("eval")
@loads_folders
def eval_cmd(
    run: Annotated[Path, typer.Argument(help="run folder")],
    data: Annotated[Optional[str], typer.Option(help="dataset (default: the run's own)")] = None,
    data_root: Annotated[Optional[str], typer.Option(help="folder holding the dataset's files")] = None,
    split: Annotated[str, typer.Option(help="test, val or train")] = "test",
) -> None:
    """Evaluate a run folder's model on a dataset split."""
    from slimforge.experiment import DataConfig, evaluate_run, run_data_config

    data_cfg = run_data_config(run)
    if data and data != data_cfg.name:  # another dataset: the run's root and options (a file's path, ...) are its own dataset's
        data_cfg = DataConfig(name=data, val_fraction=data_cfg.val_fraction, split_seed=data_cfg.split_seed)
    if data_root:
        data_cfg = DataConfig(**{**data_cfg.model_dump(), "root": data_root})
    result = evaluate_run(run, data_cfg, split)
    scores = {k: v for k, v in result.items() if k not in ("split", "dataset", "count", "loss")}  # accuracy, or ndcg@10 ...
    shown = ", ".join(f"{k} {int(v)}" if k == "errors" else f"{k} {v:.4f}" for k, v in {**scores, "loss": result["loss"]}.items())
    print(f"{run}: {result['dataset']} {split} {shown} ({result['count']} samples)")


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option(help="folder for the demo's stages")] = Path("runs/demo"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = True,
) -> None:
    """The whole workflow on the bundled digits data: train, prune, distill, quantize, report."""
    from slimforge.cli.pipeline import print_summary
    from slimforge.pipeline import load_recipe, run_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "digits.yaml")
    print_summary(run_recipe(recipe, out, quiet=quiet), out)


def print_result(title: str, metrics: dict, out: Path) -> None:
    # test accuracy (or a recommender's test hr@10, ndcg@10 ...) and the monitored best validation figure
    scores = [k for k, v in metrics.items() if k.startswith("test_") and k != "test_loss" and isinstance(v, (int, float)) and not isinstance(v, bool)]
    best = [k for k, v in metrics.items() if k.startswith("best_val_") and v is not None]
    columns = {k.replace("_", " "): ("-" if metrics.get(k) is None else str(metrics[k]) if isinstance(metrics[k], int) else f"{metrics[k]:.4f}")
               for k in scores + best}  # test_errors is a count
    columns.update({
        "epochs": str(metrics["epochs_run"]),
        "train time (s)": f"{metrics['train_seconds']:.1f}",
        "samples/s": f"{metrics['samples_per_s']:.0f}" if metrics.get("samples_per_s") else "-",
        "threads": str(metrics["num_threads"]),
    })
    table = Table(title=title, show_header=False)  # one row per figure: any number of metrics fits the terminal
    table.add_column("")
    table.add_column("", justify="right")
    for name, value in columns.items():
        table.add_row(name, value)
    console = Console()
    console.print(table)
    print(f"run folder: {out.resolve()}")
