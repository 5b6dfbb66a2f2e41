"""The ``slimforge`` command line: argument parsing only; the work is in the library.

Each command module registers its commands on ``app``. Errors slimforge raises for bad input
print as one paragraph (exit code 2); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

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
    except ValidationError as exc:  # a config a command built from its options (each command names its flags where it can)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})" for e in exc.errors())
        print(f"error: invalid {exc.title}: {problems}", file=sys.stderr)
        return 2
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except Exception as exc:  # usage errors (an unknown option or command, a missing argument)
        # typer >= 0.29 raises its own vendored click's exceptions (subclasses of TyperException);
        # older typer raises click's, and click itself may not be installed.
        try:
            from click import ClickException
        except ImportError:
            ClickException = typer.TyperException  # noqa: N806
        if isinstance(exc, (ClickException, typer.TyperException)) and hasattr(exc, "show"):
            exc.show()
            return int(getattr(exc, "exit_code", 2))
        raise
    return 0
