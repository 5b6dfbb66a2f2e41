"""`slimforge run RECIPE`: run a recipe's stages, skipping those already done."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from slimforge.cli import app, loads_folders


@app.command("run")
@loads_folders
def run_cmd(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML (see recipes/)")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="overrides data.<key>=value or <stage name>.<key>=value, e.g. prune.ratio=0.3 train.train.lr=0.05")] = None,
    out: Annotated[Optional[Path], typer.Option(help="folder for the stages' outputs (default runs/<recipe name>)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no per-epoch output")] = False,
) -> None:
    """Run a recipe (train -> prune -> distill -> quantize -> report ...). Finished stages are not redone;
    overrides are data.<key>=value or <stage name>.<key>=value."""
    from slimforge.pipeline import load_recipe, run_recipe

    parsed = load_recipe(recipe, overrides or [])
    from slimforge.files import check_name

    folder = out or Path("runs") / check_name(parsed.name, f"{recipe}: the recipe's name (its default folder runs/<name>)")
    markers = run_recipe(parsed, folder, quiet=quiet)
    print_summary(markers, folder)


def print_summary(markers: dict, folder: Path) -> None:
    """The report stage's table (when there is one), then where everything is."""
    reports = [m for m in markers.values() if m["kind"] == "report"]
    if reports:
        md = Path(reports[-1]["metrics"]["markdown"])
        print(md.read_text().split("\n\n![")[0])
        print(f"HTML report: {Path(reports[-1]['metrics']['html']).resolve()}")
    else:
        for name, m in markers.items():
            acc = m["metrics"].get("test_accuracy")
            print(f"{name:12s} {m['kind']:10s} " + (f"test accuracy {acc:.4f}" if acc is not None else ""))
    print(f"stages in: {folder.resolve()}")
