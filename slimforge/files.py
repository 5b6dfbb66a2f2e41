"""File IO every artifact goes through: atomic files, atomic folders, one writer per folder.

The ground floor of the package (it imports nothing of slimforge but its errors):

* :func:`atomic_write_bytes` / :func:`write_json` / :func:`write_yaml`: a reader never sees half a
  file (temporary file in the same folder, fsync, rename).
* :func:`read_json`: a JSON document with limits on size and nesting, errors naming the file.
* :func:`staged_output`: a command writes its whole result into ``.<name>.partial`` beside
  ``out`` and swaps it in for ``out`` in one step (``renameat2(RENAME_EXCHANGE)`` on Linux), so a
  kill at any moment leaves either the old complete folder or the new one, never a mixture.
  It holds an advisory lock (``fcntl.flock`` on ``.<name>.lock``) for as long as it runs, so two
  processes never write one folder; a dead holder's lock is released by the kernel.
* :func:`check_name` / :func:`inside`: names that become file names, and files a manifest
  refers to, cannot leave their folder.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from slimforge.errors import ArtifactError, ConfigError

MAX_JSON_BYTES = 256 * 2**20  # a pruning plan of a very large model is a few MB; 256 MB is no metadata file
MAX_JSON_DEPTH = 64  # slimforge writes at most ~6 levels; deeper is a crafted file (and recursion in json)
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

# ---------------------------------------------------------------- files


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    path = Path(path)
    _make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; an artifact gets the mode any new file would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _output_error(path, exc) from None
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; restored at once
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def write_yaml(path: Path, data: Any) -> None:
    atomic_write_bytes(Path(path), yaml.safe_dump(plain(data), sort_keys=False).encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def plain(value: Any) -> Any:
    """JSON-able copy (tuples to lists, paths to strings) for YAML's safe dumper."""
    return json.loads(json.dumps(value, default=_json_default))


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; a missing, huge, corrupt or absurdly nested file is an
    :class:`ArtifactError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist.")
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ArtifactError(f"{path} is {size / 2**20:.0f} MB, too large for a slimforge metadata file (limit {MAX_JSON_BYTES >> 20} MB).")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}); it is corrupt.") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); the file is corrupt or truncated.") from None
    except OSError as exc:
        raise ArtifactError(f"{path} cannot be read ({exc.strerror or exc}).") from None
    except RecursionError:
        raise ArtifactError(f"{path} is nested too deeply to be a slimforge file; it is corrupt or crafted.") from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise ArtifactError(f"{path} is nested deeper than {MAX_JSON_DEPTH} levels; it is corrupt or crafted.")
    return data


def read_json_quiet(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or {} when the file is missing, unreadable or not an object (optional metadata)."""
    try:
        data = read_json(path)
    except ArtifactError:
        return {}
    return data if isinstance(data, dict) else {}


def json_depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return deepest


# ---------------------------------------------------------------- names and paths


def check_name(name: str, what: str) -> str:
    """``name`` if it is safe as one file name: letters, digits, ``_ . -``, not starting with a dot
    (hidden and staging names are slimforge's), no path separators, no ``..``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name or len(name) > 128:
        raise ConfigError(
            f"{what} {name!r} cannot be used as a folder name: use letters, digits, '_', '.' and '-' only "
            "(not starting with '.', no '/' or '..', at most 128 characters)."
        )
    return name


def inside(folder: Path, relative: str, what: str) -> Path:
    """``folder / relative`` when it lies inside ``folder`` (symbolic links resolved); else an
    :class:`ArtifactError` naming ``what`` (the manifest entry that refers to it)."""
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute():
        raise ArtifactError(f"{what}: {relative!r} must be a file name relative to {folder}.")
    root = Path(folder).resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise ArtifactError(f"{what}: {relative!r} points outside {folder}; a slimforge folder only refers to its own files.")
    return target


# ---------------------------------------------------------------- folders: one writer, one swap

_ACTIVE: dict[Path, Path] = {}  # staging folder -> the folder it will replace, for this process


def partial_folder(out: Path) -> Path:
    """Where a command writing ``out`` builds its result (kept after a kill for --resume)."""
    out = Path(out)
    return out.with_name(f".{out.name}{PARTIAL_SUFFIX}")


def final_folder(path: Path) -> Path:
    """The folder ``path`` will become: ``out`` for an active staging folder, else ``path``."""
    return _ACTIVE.get(Path(path).absolute(), Path(path))


def relocated(value: Any, work: Path, final: Path) -> Any:
    """``value`` (JSON-like) with path strings inside the staging folder ``work`` rewritten to ``final``."""
    if isinstance(value, dict):
        return {k: relocated(v, work, final) for k, v in value.items()}
    if isinstance(value, list):
        return [relocated(v, work, final) for v in value]
    if isinstance(value, str) and (value == str(work) or value.startswith(str(work) + os.sep)):
        return str(final) + value[len(str(work)):]
    return value


def is_staging(path: Path) -> bool:
    return Path(path).absolute() in _ACTIVE


@contextlib.contextmanager
def staged_output(out: str | Path, *, reuse_partial: bool = False, copy_previous: bool = False, keep_on_error: bool = False,
                  publish_if: Callable[[Path], bool] | None = None, main: bool = True) -> Iterator[Path]:
    """Yield a folder to write ``out``'s complete new content into; on success it replaces ``out`` in one step.

    reuse_partial: continue in the staging folder a killed run left, instead of starting empty;
    copy_previous: when there is none, start from a copy of ``out`` (resuming a finished run).
    keep_on_error: on an exception leave the staging folder for a later resume (training);
    otherwise it is removed. Either way ``out`` is untouched, unless ``publish_if(staging)`` says
    the staging folder is complete enough to replace it even so (a search stopped half-way).
    main=False (other ranks of a distributed job): the same staging path, no lock, no swap.
    Inside an active staging folder (a stage runner calling ``train``), ``out`` is used as it is.
    """
    out = Path(out)
    if is_staging(out):
        yield out
        return
    out = out.absolute()
    if not main:
        yield partial_folder(out)
        return
    _check_output_path(out)
    work = partial_folder(out)
    with folder_lock(out):
        _recover_interrupted_swap(out)
        if not (reuse_partial and work.is_dir()):
            _remove(work)
            if copy_previous and out.is_dir():
                shutil.copytree(out, work, symlinks=True)
        _make_folder(work)
        _ACTIVE[work] = out
        try:
            yield work
        except BaseException:
            _ACTIVE.pop(work, None)
            if publish_if is not None and work.is_dir() and publish_if(work):
                swap_in(work, out)
            elif not keep_on_error:
                _remove(work)
            raise
        finally:
            _ACTIVE.pop(work, None)
        swap_in(work, out)


def swap_in(work: Path, out: Path) -> None:
    """Make ``work`` the folder at ``out`` in one step; the previous ``out`` (if any) is deleted."""
    _fsync_dir(work)
    if out.is_dir() and not out.is_symlink():
        if _exchange(work, out):
            _remove(work)  # now the previous content
            _fsync_dir(out.parent)
            return
        old = out.with_name(f".{out.name}.old")  # no atomic exchange here: two renames, undone on the next start
        _remove(old)
        os.rename(out, old)
        os.rename(work, out)
        _remove(old)
    else:
        if out.exists() or out.is_symlink():
            raise ConfigError(f"The output {out} is not a folder; choose another --out.")
        os.rename(work, out)
    _fsync_dir(out.parent)


def _recover_interrupted_swap(out: Path) -> None:
    """The two-rename fallback was cut between its renames: put the previous folder back."""
    old = out.with_name(f".{out.name}.old")
    if old.is_dir():
        if out.exists():
            _remove(old)
        else:
            os.rename(old, out)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False  # filesystem or kernel without the exchange
    raise _output_error(b, OSError(err, os.strerror(err)))


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold the advisory lock of folder ``out`` (``.<name>.lock`` beside it) or fail naming its holder."""
    lock = Path(out).with_name(f".{Path(out).name}{LOCK_SUFFIX}")
    _make_folder(lock.parent)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _output_error(out, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"{out} is being written by another slimforge process (PID {holder}; lock {lock}). "
                "Wait for it to finish, stop it, or choose another --out."
            ) from None
        # The previous holder may have unlinked the file between our open and flock: then retry on the new one.
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still held: a waiter that opened it retries on a fresh file
        os.close(fd)


# What marks a folder as slimforge's own output (replacing it loses nothing of the user's).
OUTPUT_MARKERS = frozenset({
    "model.json", "quantized.json", "export.json", "stage.json", "measurements.json", "optimize.json", "recipe.json",
    "checkpoint.safetensors", "metrics.json", "metrics.jsonl",
})
_OUTPUT_EXTRAS = frozenset({"rejected", "tensorboard", ".slimforge-job"})  # may stand alone in an output folder


def _check_replaceable(out: Path) -> None:
    """Refuse to replace a folder slimforge did not write: --out is replaced whole, so a typo
    (--out ., --out ~/project, the data folder) would otherwise delete the user's files."""
    if not out.is_dir():
        return
    names = {p.name for p in out.iterdir()}
    if not names or names & OUTPUT_MARKERS or names <= _OUTPUT_EXTRAS:
        return
    shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
    raise ConfigError(
        f"The output folder {out} holds files slimforge did not write ({shown}). An output folder is replaced as a whole, "
        "so those files would be deleted: choose a new or empty folder (--out), or move them away first."
    )


def check_not_input(out: str | Path, inputs: list[str | Path]) -> None:
    """Refuse an output folder that is one of the command's inputs or holds one (it is replaced whole)."""
    target = Path(out).absolute().resolve()
    for source in inputs:
        src = Path(source).absolute().resolve()
        if target == src or target in src.parents:
            raise ConfigError(f"The output folder {out} {'is' if target == src else 'holds'} the input {source}; "
                              "the output replaces its folder as a whole. Write the result to another folder (--out).")


def _check_output_path(out: Path) -> None:
    """One clear error for an --out that cannot be a folder: below a file, too long, not writable,
    a folder of the user's own."""
    if not out.name or out == Path(out.anchor):
        raise ConfigError(f"The output {out} is not a folder slimforge can replace; choose a new folder (--out).")
    if len(os.fsencode(out.name)) + len(PARTIAL_SUFFIX) + 2 > 255 or len(os.fsencode(str(out))) > 4000:
        raise ConfigError(f"The output path {str(out)[:60]}... is too long; choose a shorter --out.")
    try:
        exists = out.exists()
    except OSError as exc:
        raise _output_error(out, exc) from None
    if exists and not out.is_dir():
        raise ConfigError(f"The output {out} is a file; choose a folder (--out).")
    if Path.cwd().resolve() == out.resolve() or out.resolve() in Path.cwd().resolve().parents:
        raise ConfigError(f"The output folder {out} is (or holds) the current folder; choose a new folder (--out).")
    _check_replaceable(out)
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"The output {out} lies below {parent}, which is a file; choose another --out.")
            break
    _make_folder(out.parent)
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"The output {out} cannot be written: no write permission in {out.parent}; choose another --out.")


def _make_folder(path: Path) -> None:
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(path, exc) from None


def _output_error(path: Path, exc: OSError) -> ConfigError | ArtifactError:
    """A clear one-line error for an OSError while writing ``path`` (nothing complete is lost)."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return ArtifactError(f"No space left on the device while writing {path}; free space and run again (earlier results are untouched).")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ConfigError(f"Cannot write {path}: {exc.strerror}; choose another --out.")
    if exc.errno == errno.ENAMETOOLONG:
        return ConfigError(f"Cannot write {path}: the path is too long; choose a shorter --out.")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return ConfigError(f"Cannot write {path}: a part of the path is a file, not a folder; choose another --out.")
    return ArtifactError(f"Cannot write {path}: {exc.strerror or exc}.")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
