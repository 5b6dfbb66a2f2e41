"""kill -9 in the middle of a command writing an existing --out leaves the old result whole.

One kill per command here, landed while the command is writing (after its partial folder
appears, so the kill never falls before the work starts); ``benchmarks/kill_check.py`` kills
each command 20 times at random moments (BENCHMARKS.md).
"""

from __future__ import annotations

import pytest

from tests.trust.killing import command_args, kill_once, snapshot, verify_complete


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import os

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    from slimforge.cli import main

    run = tmp_path_factory.mktemp("kill") / "teacher"
    assert main(["train", "--data", "digits", "--model", "cnn", "model.kwargs.width=4", "--epochs", "2", "--quiet", "--threads", "1",
                 "--out", str(run)]) == 0
    return run, env


@pytest.mark.parametrize(("command", "delay_s"), [("quantize", 0.3), ("export", 0.2), ("prune", 0.5), ("distill", 0.5), ("train", 0.5)])
def test_a_killed_command_leaves_the_previous_result(command, delay_s, trained, tmp_path):
    from slimforge.cli import main

    run, env = trained
    out = tmp_path / "out"
    assert main(command_args(command, run, out, 0)) == 0  # the previous result, written in this process
    assert verify_complete(out) is None
    old = snapshot(out)
    result = kill_once(command, run, out, env, variant=1, delay_s=delay_s, wait_for_partial=True, old=old)
    assert result.outcome in ("old", "new"), result.outcome
    assert result.finished or result.outcome == "old"  # killed mid-write: the old folder, byte for byte
    # The next run replaces it whole and leaves nothing of the killed one beside it.
    assert main(command_args(command, run, out, 2)) == 0
    assert verify_complete(out) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
