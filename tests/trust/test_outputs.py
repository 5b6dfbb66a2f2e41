"""Outputs are replaced in one step, by one writer at a time, and bad output paths are one clear line."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slimforge import files
from slimforge.errors import ArtifactError, ConfigError


def _fill(folder: Path, **contents: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in contents.items():
        (folder / name).write_text(text)


def _read(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


# ---------------------------------------------------------------- the swap


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_success_replaces_the_whole_folder_and_leaves_nothing_beside_it(exchange, tmp_path, monkeypatch):
    if not exchange:
        monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    _fill(out, **{"model.json": "old", "stale.txt": "old only"})
    with files.staged_output(out) as work:
        assert work != out and not (work / "model.json").exists()
        (work / "model.json").write_text("new")
        assert _read(out) == {"model.json": "old", "stale.txt": "old only"}  # untouched until the end
    assert _read(out) == {"model.json": "new"}  # no file of the old result survives beside the new one
    assert _siblings(out) == []  # no partial folder, no lock file, no .old


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, SystemExit])
def test_a_failure_leaves_the_old_folder_exactly_as_it_was(error, tmp_path):
    out = tmp_path / "out"
    _fill(out, **{"model.json": "old"})
    with pytest.raises(error):
        with files.staged_output(out) as work:
            (work / "model.json").write_text("half")
            raise error()
    assert _read(out) == {"model.json": "old"} and _siblings(out) == []


def test_training_keeps_its_partial_folder_for_resume(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with files.staged_output(out, keep_on_error=True) as work:
            (work / "checkpoint").write_text("epoch 3")
            raise KeyboardInterrupt
    assert not out.exists() and (files.partial_folder(out) / "checkpoint").read_text() == "epoch 3"
    with files.staged_output(out, reuse_partial=True) as work:
        assert (work / "checkpoint").read_text() == "epoch 3"
        (work / "checkpoint").write_text("epoch 4")
    assert _read(out) == {"checkpoint": "epoch 4"} and _siblings(out) == []


def test_a_new_run_clears_a_partial_folder_a_killed_run_left(tmp_path):
    out = tmp_path / "out"
    _fill(files.partial_folder(out), **{"junk": "from a killed run"})
    with files.staged_output(out) as work:
        assert list(work.iterdir()) == []
        (work / "x").write_text("1")
    assert _read(out) == {"x": "1"} and _siblings(out) == []


def test_resume_from_a_finished_folder_starts_from_a_copy(tmp_path):
    out = tmp_path / "out"
    _fill(out, **{"checkpoint.safetensors": "epoch 5", "model.json": "m"})
    with files.staged_output(out, reuse_partial=True, copy_previous=True) as work:
        assert _read(work) == {"checkpoint.safetensors": "epoch 5", "model.json": "m"}
        (work / "checkpoint.safetensors").write_text("epoch 6")
    assert _read(out) == {"checkpoint.safetensors": "epoch 6", "model.json": "m"}


def test_a_swap_cut_between_its_two_renames_is_undone_on_the_next_start(tmp_path):
    out = tmp_path / "out"
    _fill(out.with_name(".out.old"), **{"model.json": "old"})  # what a kill between the renames leaves
    with files.staged_output(out) as work:
        assert _read(out) == {"model.json": "old"}  # put back before anything else
        (work / "model.json").write_text("new")
    assert _read(out) == {"model.json": "new"} and _siblings(out) == []


def test_publish_if_swaps_in_what_a_stopped_search_finished(tmp_path):
    out = tmp_path / "out"
    _fill(out, **{"optimize.json": "previous search"})
    with pytest.raises(KeyboardInterrupt):
        with files.staged_output(out, publish_if=lambda w: (w / "optimize.json").is_file()) as work:
            (work / "optimize.json").write_text("2 candidates")
            raise KeyboardInterrupt
    assert _read(out) == {"optimize.json": "2 candidates"}


def test_nested_staging_is_one_transaction(tmp_path):
    out = tmp_path / "out"
    with files.staged_output(out) as work:
        with files.staged_output(work) as inner:
            assert inner == work and files.final_folder(inner) == out.absolute()
            (inner / "a").write_text("1")
        assert not out.exists()  # the inner block swapped nothing in
    assert _read(out) == {"a": "1"}


def test_paths_inside_the_staging_folder_are_relocated(tmp_path):
    work, final = tmp_path / ".x.partial", tmp_path / "x"
    value = {"html": f"{work}/report.html", "other": f"{work}-not-inside/y", "list": [str(work)], "n": 3}
    assert files.relocated(value, work, final) == {"html": f"{final}/report.html", "other": f"{work}-not-inside/y", "list": [str(final)], "n": 3}


# ---------------------------------------------------------------- one writer


_HOLDER = """
import sys, time
from slimforge import files
with files.staged_output(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _hold(out: Path, env) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, cli_env):
    out = tmp_path / "out"
    holder = _hold(out, cli_env)
    try:
        with pytest.raises(ConfigError, match=rf"being written by another slimforge process \(PID {holder.pid}"):
            with files.staged_output(out):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lock_is_taken_over(tmp_path, cli_env):
    out = tmp_path / "out"
    holder = _hold(out, cli_env)
    holder.kill()  # kill -9: no clean-up ran; the lock file and partial folder stay behind
    holder.wait()
    assert out.with_name(".out.lock").exists() and files.partial_folder(out).exists()
    with files.staged_output(out) as work:
        (work / "a").write_text("1")
    assert _read(out) == {"a": "1"} and _siblings(out) == []


def test_two_training_runs_into_one_out_cannot_mix(tmp_path, cli_env, python):
    out = tmp_path / "run"
    args = [python, "-m", "slimforge", "train", "--data", "digits", "--model", "mlp", "--epochs", "5000", "--quiet", "--out", str(out)]
    # Thousands of epochs, so the first run still holds the folder while the second starts on a loaded machine (40
    # epochs took about a second: with both cores busy, the first had finished before the second's imports did).
    first = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=cli_env)
    deadline = time.monotonic() + 60
    while not out.with_name(".run.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run([*args, "--overwrite", "train.seed=1"], capture_output=True, text=True, env=cli_env, timeout=120)
    first.kill()
    first.wait()
    assert second.returncode == 2 and f"PID {first.pid}" in second.stderr, second.stderr[-500:]


# ---------------------------------------------------------------- bad output paths


def test_output_below_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="lies below .*file, which is a file"):
        with files.staged_output(tmp_path / "file" / "out"):
            pass


def test_output_that_is_a_file_is_one_clear_error(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        with files.staged_output(tmp_path / "out"):
            pass
    assert (tmp_path / "out").read_text() == "x"


def test_an_output_name_too_long_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="too long"):
        with files.staged_output(tmp_path / ("x" * 250)):
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_is_one_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="cannot be written|Cannot write"):
        with files.staged_output(locked / "out"):
            pass


def test_a_full_disk_is_one_clear_error_and_loses_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _fill(out, **{"model.json": "old"})

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(ArtifactError, match="No space left"):
        with files.staged_output(out) as work:
            monkeypatch.setattr(os, "fsync", no_space)
            files.write_json(work / "model.json", {"new": True})
    monkeypatch.undo()
    assert _read(out) == {"model.json": "old"} and _siblings(out) == []


def test_atomic_write_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(ArtifactError, match="Cannot write"):
        files.atomic_write_bytes(tmp_path / "a.json", b"{}")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- folders that are not slimforge's (found by a red-team sweep)


def test_a_folder_of_the_users_own_files_is_never_replaced(tmp_path):
    docs = tmp_path / "docs"
    _fill(docs, **{"precious.txt": "thesis"})
    with pytest.raises(ConfigError, match="holds files slimforge did not write \\(precious.txt\\)"):
        with files.staged_output(docs):
            pass
    assert _read(docs) == {"precious.txt": "thesis"}


@pytest.mark.parametrize("marker", sorted(files.OUTPUT_MARKERS))
def test_a_slimforge_output_folder_is_replaceable(marker, tmp_path):
    out = tmp_path / "out"
    _fill(out, **{marker: "old", "notes.txt": "written beside it"})
    with files.staged_output(out) as work:
        (work / marker).write_text("new")
    assert _read(out) == {marker: "new"}


def test_the_current_folder_or_the_root_is_never_an_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in (Path("."), Path(""), tmp_path, Path("/")):
        with pytest.raises(ConfigError):
            with files.staged_output(out):
                pass


def test_an_output_that_is_or_holds_an_input_is_refused(tmp_path):
    run = tmp_path / "proj" / "run"
    run.mkdir(parents=True)
    for out in (run, tmp_path / "proj"):
        with pytest.raises(ConfigError, match="the input"):
            files.check_not_input(out, [run])
    files.check_not_input(tmp_path / "other", [run])


@pytest.mark.parametrize("args", [
    ["export", "{run}", "--out", "{tmp}/docs"],
    ["measure", "{run}", "--repeats", "3", "--batch-sizes", "1", "--out", "{run}"],
    ["factorize", "{run}", "--epochs", "0", "--out", "{tmp}"],
])
def test_commands_refuse_to_replace_user_or_input_folders(args, digits_run_copy, tmp_path, capsys):
    from slimforge.cli import main

    _fill(tmp_path / "docs", **{"precious.txt": "thesis"})
    before = sorted(p.name for p in digits_run_copy.iterdir())
    code = main([a.format(run=digits_run_copy, tmp=tmp_path) for a in args])
    assert code == 2, capsys.readouterr().err
    assert (tmp_path / "docs" / "precious.txt").read_text() == "thesis"
    assert sorted(p.name for p in digits_run_copy.iterdir()) == before


@pytest.fixture
def digits_run_copy(digits_run, tmp_path):
    import shutil

    return Path(shutil.copytree(digits_run, tmp_path / "run"))
