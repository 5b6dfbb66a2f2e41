"""Bad input for distributed jobs: clear SlimforgeErrors, printed by the CLI as one paragraph."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch

from slimforge.cli import main
from slimforge.distributed import NotEnoughDevicesError, PortInUseError, setup, teardown
from slimforge.distributed.launch import LaunchConfig, check_devices

from .conftest import free_port, job_env

TRAIN = ["train", "--data", "digits", "--model", "mlp", "--epochs", "1", "--quiet"]


@pytest.fixture
def busy_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        s.listen()
        yield s.getsockname()[1]


def _one_paragraph(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and err.strip().count("\n") == 0, err
    return err


def test_launch_refuses_a_master_port_in_use(busy_port, capsys):
    assert main([*TRAIN, "--nproc-per-node", "2", "--master-port", str(busy_port)]) == 2
    assert f"--master-port {busy_port} is in use" in _one_paragraph(capsys)


def test_worker_names_the_port_in_use(busy_port, monkeypatch):
    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(busy_port)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE", raising=False)
    with pytest.raises(PortInUseError, match=f"127.0.0.1:{busy_port}: the port is in use"):
        setup("cpu", timeout_s=5)


def test_a_rank_that_never_joins_is_named_with_the_setting_to_raise(tmp_path):
    env = job_env()
    env.update(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    proc = subprocess.run([sys.executable, "-m", "slimforge", *TRAIN, "--out", str(tmp_path / "run"), "train.dist_timeout_s=3"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "rank(s) 1 of 2 never joined" in proc.stderr and "raise train.dist_timeout_s (now 3)" in proc.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_more_processes_than_gpus_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(NotEnoughDevicesError, match="torch sees 1 CUDA device"):
        check_devices(2, "auto")
    check_devices(1, "cuda")
    check_devices(4, "cpu")  # CPU processes need no GPU each
    assert main([*TRAIN, "--nproc-per-node", "2"]) == 2
    assert "Use --nproc-per-node 1 or fewer" in _one_paragraph(capsys)


def test_launch_inside_a_torchrun_worker_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*TRAIN, "--nproc-per-node", "2"]) == 2
    assert "already a worker of a distributed job" in _one_paragraph(capsys)


def test_threads_are_cores_over_local_processes(monkeypatch):
    monkeypatch.setattr("slimforge.distributed.process.cpu_cores", lambda: 8)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    try:
        assert setup("cpu").threads == 2 and torch.get_num_threads() == 2
        assert setup("cpu", num_threads=3).threads == 3
    finally:
        torch.set_num_threads(1)
        teardown()


def test_one_node_without_a_port_runs_standalone():
    assert "--standalone" in LaunchConfig(2).torchrun_args()
    multi = LaunchConfig(1, nnodes="2", rdzv_backend="c10d", rdzv_endpoint="10.0.0.1:29400").torchrun_args()
    assert "--standalone" not in multi and multi[multi.index("--rdzv-endpoint") + 1] == "10.0.0.1:29400"


def test_a_process_that_ended_a_group_leaves_with_its_code_and_its_output_flushed(tmp_path):
    """leave(): after teardown() the process ends without the interpreter's finalisation (gloo's threads aborted one
    finished job in a hundred there), so atexit handlers do not run, yet buffered output and logs are written and
    the exit code is the command's. A process that never had a group exits normally."""
    script = tmp_path / "leaver.py"
    script.write_text(
        "import atexit, logging, os, sys\n"
        "from slimforge.distributed import teardown\n"
        "from slimforge.distributed.process import leave\n"
        "logging.basicConfig(filename=sys.argv[2], level=logging.INFO)\n"
        "atexit.register(lambda: print('finalised'))\n"
        "if sys.argv[1] == 'group':\n"
        "    import torch.distributed as dist\n"
        "    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{sys.argv[3]}', rank=0, world_size=1)\n"
        "    teardown()\n"
        "sys.stdout.write('result line without a newline')\n"
        "logging.getLogger('x').info('logged')\n"
        "sys.exit(leave(3))\n")
    for mode, finalised in (("group", False), ("alone", True)):
        log = tmp_path / f"{mode}.log"
        proc = subprocess.run([sys.executable, str(script), mode, str(log), str(free_port())], env=job_env(), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 3, proc.stderr[-2000:]
        assert proc.stdout.startswith("result line without a newline") and ("finalised" in proc.stdout) is finalised
        assert "logged" in log.read_text()
