"""Hand a command to torchrun (``torch.distributed.run``): slimforge writes no launcher of its own.

``slimforge train --nproc-per-node 2 ...`` checks what it can before any process starts (GPUs
per node, the rendezvous port), then calls torchrun's ``main`` with the same flags torchrun
takes and ``-m slimforge <command> ...`` as the workers' command line.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from dataclasses import dataclass

import torch

from slimforge.distributed.errors import DistributedError, LaunchError, NotEnoughDevicesError, PortInUseError
from slimforge.distributed.process import cpu_cores, torchrun_env


@dataclass(frozen=True)
class LaunchConfig:
    """torchrun's flags of the same names; ``None`` leaves torchrun's default."""

    nproc_per_node: int
    nnodes: str = "1"  # "2" or elastic "1:4"
    node_rank: int | None = None
    rdzv_backend: str | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None
    max_restarts: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def single_node(self) -> bool:
        return self.nnodes == "1"

    def torchrun_args(self) -> list[str]:
        """torchrun's own arguments. One node without a given port or endpoint runs standalone:
        torchrun picks a free port, so concurrent jobs on one machine never collide."""
        args = ["--nproc-per-node", str(self.nproc_per_node), "--nnodes", self.nnodes, "--max-restarts", str(self.max_restarts)]
        optional = {
            "--node-rank": self.node_rank, "--rdzv-backend": self.rdzv_backend, "--rdzv-endpoint": self.rdzv_endpoint,
            "--rdzv-id": self.rdzv_id, "--master-addr": self.master_addr, "--master-port": self.master_port,
        }
        args += [str(a) for flag, value in optional.items() if value is not None for a in (flag, value)]
        if self.single_node and self.master_port is None and self.rdzv_endpoint is None:
            args.append("--standalone")
        return args


def check_launch(launch: LaunchConfig, device: str) -> None:
    """Refuse, before any process starts, what would fail later with a worse message."""
    if torchrun_env() is not None:
        raise DistributedError(
            "This process is already a worker of a distributed job (RANK/WORLD_SIZE are set), so it cannot launch "
            "another: drop --nproc-per-node when running under torchrun."
        )
    if launch.nproc_per_node < 1:
        raise DistributedError(f"--nproc-per-node must be at least 1, got {launch.nproc_per_node}.")
    check_devices(launch.nproc_per_node, device)
    if launch.single_node and launch.master_port is not None:
        check_port_free(launch.master_port)


def check_devices(nproc_per_node: int, device: str) -> None:
    """One GPU per local process: more processes than GPUs is an error (on the CPU any number runs)."""
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not wants_cuda:
        return
    available = torch.cuda.device_count()
    if nproc_per_node > available:
        raise NotEnoughDevicesError(
            f"--nproc-per-node {nproc_per_node} starts {nproc_per_node} processes on this node, one per GPU, but torch "
            f"sees {available} CUDA device(s) (device={device!r}). Use --nproc-per-node {available} or fewer, "
            "or train on the CPU with --device cpu."
        )


def check_port_free(port: int) -> None:
    """The rendezvous port must be free on this machine, where rank 0 will serve it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                f"--master-port {port} is in use by another process on this machine (another job?). "
                "Pick a free port, or leave --master-port out on a single node and torchrun picks one."
            ) from None


def launch(launch: LaunchConfig, worker_args: list[str], device: str = "auto") -> None:
    """Run ``python -m slimforge <worker_args>`` in ``nproc_per_node`` processes via torchrun."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    check_launch(launch, device)
    # torchrun would set OMP_NUM_THREADS=1 (with a warning); the workers set torch's threads to
    # cores / local processes themselves (slimforge.distributed.setup), so say that here too.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cpu_cores() // launch.nproc_per_node)))
    try:
        torchrun_main([*launch.torchrun_args(), "-m", "slimforge", *worker_args])
    except ChildFailedError as exc:
        failed = ", ".join(f"rank {rank} (exit code {f.exitcode})" for rank, f in sorted(exc.failures.items()))
        raise LaunchError(
            f"The distributed job failed: {failed}. Each worker's own message is printed above"
            + (f"; the job was restarted up to {launch.max_restarts} time(s) (--max-restarts)." if launch.max_restarts else ".")
        ) from None
    finally:
        sys.stdout.flush()
