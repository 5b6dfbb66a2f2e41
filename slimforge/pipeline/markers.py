"""What a finished stage leaves in its folder: ``stage.json`` (kind, fingerprint, metrics) and,
while it runs, the fingerprint of the run that started there. Read by the runner (is this stage
done?) and by the stages (what kind of folder is this input?)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimforge.errors import ArtifactError
from slimforge.files import read_json, read_json_quiet

MARKER = "stage.json"
STARTED = ".stage-started.json"  # the fingerprint of the stage run that last started here


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The stage marker of ``folder``; None when there is none or it cannot be read (the stage is redone)."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ArtifactError:
        return None


def started_fingerprint(folder: Path) -> str | None:
    """The fingerprint of the stage run last started in ``folder`` (None when unknown)."""
    return read_json_quiet(Path(folder) / STARTED).get("fingerprint")
