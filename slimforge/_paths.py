"""Paths named inside artifacts and data files: they must stay inside the folder that names them.

A manifest (``quantized.json``'s ``runtime_file``, ...) is data anyone can edit; a name in it that
is absolute, climbs out with ``..`` or goes through a symlink leading elsewhere would make
slimforge read a file the folder's author never shipped. :func:`file_inside` resolves such a
name and refuses everything but a plain file under the folder.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from slimforge.errors import ArtifactError


def file_inside(folder: str | Path, name: object, source: str, key: str) -> Path:
    """``folder / name`` when it is an existing regular file that resolves inside ``folder``.

    source: the manifest naming the file (for messages); key: the manifest key holding ``name``.
    Raises :class:`ArtifactError` naming both when ``name`` is not a relative path that stays
    in ``folder`` (symlinks followed) or the file is missing.
    """
    folder = Path(folder)
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ArtifactError(f"{source}: {key!r} must be a file name inside {folder}, not {name!r}.")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        raise ArtifactError(f"{source}: {key!r} is the absolute path {name!r}; it must name a file inside {folder}.")
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        raise ArtifactError(f"{source}: {key!r} is {name!r}, which leads out of {folder} ('..'); it must name a file inside it.")
    path = folder / name
    try:
        resolved, root = path.resolve(strict=False), folder.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ArtifactError(f"{source}: {key!r} ({name!r}) cannot be resolved ({exc}).") from None
    if not resolved.is_relative_to(root):
        raise ArtifactError(
            f"{source}: {key!r} ({name!r}) resolves to {resolved}, outside {folder} (through a symlink); "
            "slimforge reads only files inside the artifact folder."
        )
    if not resolved.is_file():
        what = "a folder" if resolved.is_dir() else "missing"
        raise ArtifactError(f"{path} is {what}; {source} names it ({key!r}) as a file.")
    return path


__all__ = ["file_inside"]
