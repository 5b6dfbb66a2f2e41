"""The ``slimforge`` command line: argument parsing only; the work is in the library.

Each command module registers its commands on ``app``. Errors slimforge raises for bad input
print as one paragraph (exit code 2); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys

import typer
from pydantic import ValidationError

from slimforge.errors import SlimforgeError

def _show_flags_as_flags() -> None:
    """typer 0.29's rich help prints a type after every option, flags too (``--quiet <bool>``,
    ``--help <bool>``); a flag takes no value, so it shows none."""
    try:
        from typer.core import TyperOption
    except ImportError:
        return
    original = getattr(TyperOption, "display_type_rich", None)  # older typer renders flags itself
    if original is None or getattr(original, "_slimforge", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else original(self, ctx)

    display_type_rich._slimforge = True
    TyperOption.display_type_rich = display_type_rich


_show_flags_as_flags()

app = typer.Typer(
    name="slimforge",
    help="Make PyTorch models faster and smaller: train, prune, distill, quantize, export, measure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TRUST_HELP = ("trust the model factories named by the run folders this command loads (a 'package.module:function' "
              "name imports and runs that code); only for folders from a source you trust")


def loads_folders(command):
    """Give a command ``--trust-code``: inside it, loading run folders may import the
    ``package.module:function`` factories they name (refused otherwise; see docs/trust.md)."""
    import functools
    import inspect
    from typing import Annotated

    from slimforge.models import trusting_code

    @functools.wraps(command)
    def run(*args, trust_code: bool = False, **kwargs):
        with trusting_code(trust_code):
            return command(*args, **kwargs)

    option = Annotated[bool, typer.Option("--trust-code", help=TRUST_HELP)]
    signature = inspect.signature(command, eval_str=True)
    parameter = inspect.Parameter("trust_code", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=option)
    run.__signature__ = signature.replace(parameters=[*signature.parameters.values(), parameter])
    run.__annotations__ = {**command.__annotations__, "trust_code": option}
    return run


from slimforge.cli import compress, distill, info, measure, optimize, pipeline, predict, training  # noqa: E402,F401  (register commands)


# What the file system says about a path the user chose (too long, not allowed, read-only, full):
# the user's to fix, one line, not a traceback.
FILESYSTEM_ERRORS = frozenset({errno.ENAMETOOLONG, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                               errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EXDEV})


def run() -> None:
    """The ``slimforge`` script and ``python -m slimforge``: :func:`main`, then exit with its code (a torchrun worker
    without the interpreter's finalisation, :func:`slimforge.distributed.process.leave`)."""
    from slimforge.distributed.process import leave

    sys.exit(leave(main()))


def main(argv: list[str] | None = None) -> int:
    from slimforge.plugins import load_plugins

    try:
        load_plugins()  # $SLIMFORGE_PLUGINS and installed entry points register their names first
        code = app(args=argv, prog_name="slimforge", standalone_mode=False)
    except KeyboardInterrupt:
        code = 130
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
    except OSError as exc:
        if exc.errno not in FILESYSTEM_ERRORS:
            print(f"error: an unexpected {type(exc).__name__} (a slimforge bug; please report it with the traceback below)", file=sys.stderr)
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where[:300]}. Nothing was replaced; choose another place (--out) or free the space.",
              file=sys.stderr)
        return 2
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
        print(f"error: an unexpected {type(exc).__name__} (a slimforge bug; please report it with the traceback below)", file=sys.stderr)
        raise
    # Non-standalone typer returns an exit code instead of exiting (130 for Ctrl-C): pass it on.
    if code == 130:
        print("interrupted (Ctrl-C): the output folder keeps its previous content; a training run can continue with --resume",
              file=sys.stderr)
    return code if isinstance(code, int) else 0
