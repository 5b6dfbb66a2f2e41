"""The ``slimforge`` command line: argument parsing only; the work is in the library.

Each command module registers its commands on ``app``. Errors slimforge raises for bad input
print as one paragraph (exit code 2); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from slimforge.errors import SlimforgeError

app = typer.Typer(
    name="slimforge",
    help="Make PyTorch models faster and smaller: train, prune, distill, quantize, export, measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from slimforge.cli import compress, distill, info, measure, optimize, pipeline, predict, training  # noqa: E402,F401  (register commands)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="slimforge", standalone_mode=False)
    except SlimforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0
