"""This process's place in a job: torchrun's environment, the process group, threads, collectives.

slimforge never starts worker processes itself: ``torchrun`` (``torch.distributed.run``) does,
and this module reads its environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
MASTER_ADDR/PORT, TORCHELASTIC_RESTART_COUNT). The process group is initialised only when
nothing else has (so jobs launched by Accelerate, Lightning or Ray work too). With no such
environment everything degrades to one process on one device.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from slimforge.distributed.errors import DistributedError, PortInUseError, RankTimeoutError
from slimforge.errors import SlimforgeError

log = logging.getLogger("slimforge.distributed")

TIMEOUT_SETTING = "train.dist_timeout_s"  # named in timeout errors: the setting to raise
_JOIN_POLL_S = 0.05


@dataclass(frozen=True)
class DistContext:
    """rank / world_size over all processes; local_rank / local_world_size on this machine;
    threads: torch's CPU threads in this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")
    threads: int = 1

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all processes (in place) and return it."""
        if self.is_distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if not self.is_distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_reduce_gradients(self, params: list[tuple[str, nn.Parameter]]) -> None:
        """Average the gradients of ``params`` that the wrapper leaves alone (:func:`outside_parameters`:
        sparse tables under DDP, scalars under FSDP2) over the processes, one after the other, after ``backward()``.

        torch 2.14's DDP returned wrong gradients on gloo for a model with more than one table
        with sparse gradients (measured: a dot-product model with three sparse ``nn.Embedding``
        tables got gradients off by up to their own size on two processes; one table alone was
        right, and so were the same tables all-reduced here in turn), so ``wrap`` leaves them out of DDP.
        """
        if not self.is_distributed:
            return
        for _, p in params:
            if p.grad is not None:
                grad = p.grad.coalesce() if p.grad.is_sparse else p.grad
                dist.all_reduce(grad)
                p.grad = grad / self.world_size


def sparse_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, weight) of the ``nn.Embedding``/``nn.EmbeddingBag`` tables built with ``sparse=True``."""
    return [(f"{name}.weight" if name else "weight", m.weight) for name, m in model.named_modules()
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse]


def scalar_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of the 0-dimensional parameters (a global bias, a learned temperature): FSDP2
    shards along the first dimension and refuses them, so they stay whole on every rank."""
    return [(name, p) for name, p in model.named_parameters() if p.dim() == 0]


def outside_parameters(model: nn.Module, strategy: str) -> list[tuple[str, nn.Parameter]]:
    """The parameters ``slimforge.distributed.wrap`` leaves out of DDP or FSDP2, whose gradients the
    training step averages itself (:meth:`DistContext.all_reduce_gradients`)."""
    return sparse_parameters(model) if strategy == "ddp" else scalar_parameters(model)


def torchrun_env() -> dict[str, int] | None:
    """torchrun's variables, or None when this process was not launched by a distributed launcher."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return {
        "rank": int(os.environ["RANK"]),
        "world_size": int(os.environ["WORLD_SIZE"]),
        "local_rank": int(os.environ.get("LOCAL_RANK", 0)),
        "local_world_size": int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
    }


def restart_count() -> int:
    """How often torchrun's elastic agent has restarted this job's workers (0 on the first try)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """'auto' -> this local rank's CUDA device when there is one, else the CPU."""
    if requested == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise SlimforgeError(f"device={requested!r} is not a device: use auto, cpu, cuda or cuda:N.") from None
    if device.type not in ("cpu", "cuda"):
        raise SlimforgeError(f"device={requested!r}: slimforge trains on cpu or cuda (auto picks); {device.type!r} is not supported.")
    if device.type == "cpu":
        return torch.device("cpu")  # 'cpu:0' is the same device; some readers (safetensors) accept only 'cpu'
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SlimforgeError(f"device={requested!r} asked for CUDA, but torch sees no CUDA device; use device=cpu or auto.")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)  # one device per local rank
    return device


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def setup(device: str = "auto", timeout_s: float = 600.0, num_threads: int | None = None) -> DistContext:
    """Join the job torchrun started (if any): process group, device, CPU threads.

    The group is initialised only when nothing has been (gloo on the CPU, nccl on CUDA), each
    local rank gets its own CUDA device, and torch's threads default to cores / local processes
    so processes on one machine do not oversubscribe it. ``timeout_s`` bounds the wait for the
    other ranks to join, and every collective afterwards.
    """
    env = torchrun_env()
    local_world = env["local_world_size"] if env else 1
    threads = num_threads or max(1, cpu_cores() // local_world)
    torch.set_num_threads(threads)
    if env is None or env["world_size"] == 1:
        ctx = DistContext(device=pick_device(device), threads=threads)
        log.info("one process on %s, %d thread(s)", ctx.device, threads)
        return ctx
    dev = pick_device(device, env["local_rank"])
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        _init_process_group(backend, env["rank"], env["world_size"], timeout_s)
    ctx = DistContext(dist.get_rank(), dist.get_world_size(), env["local_rank"], local_world, dev, threads)
    log.info("rank %d of %d (local %d of %d) on %s, %d thread(s)", ctx.rank, ctx.world_size, ctx.local_rank, local_world, dev, threads)
    return ctx


def teardown(wait: bool = True) -> None:
    """Destroy the process group if one exists; with ``wait``, after a barrier, so that rank 0
    (which may serve the rendezvous store) leaves last. After an error, pass ``wait=False``.

    Garbage is collected before and after: a DDP or FSDP wrapper left in a reference cycle holds the
    group and gloo's pending work, and freed only at interpreter exit it aborted the process
    ("terminate called without an active exception", SIGABRT) after a finished run, about once in
    a hundred two-process jobs here (see pytorch/pytorch#179291)."""
    global _GROUP_DESTROYED
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        try:
            if wait:
                dist.barrier()
        finally:
            dist.destroy_process_group()
            _GROUP_DESTROYED = True
            gc.collect()


_GROUP_DESTROYED = False  # teardown() ended a process group in this process


def leave(code: int) -> int:
    """The exit code of a command-line process; one that ended a process group (a torchrun worker) is ended here
    instead, after its output is flushed, without the interpreter's finalisation: gloo's threads, freed by C++ static
    destructors at exit, aborted about one finished two-process job in a hundred ("terminate called without an
    active exception", SIGABRT, after the run had finished and saved; pytorch/pytorch#179291), which torchrun then
    reports as a failed job. Only for a process's last line (``python -m slimforge``, the ``slimforge`` script): it
    skips ``atexit`` handlers."""
    if not _GROUP_DESTROYED:
        return code
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# ---------------------------------------------------------------- without a context


def is_main() -> bool:
    """True on global rank 0, and in a process that is not part of a job."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place (a no-op in one process) and return it."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over all processes in place and return it."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


# ---------------------------------------------------------------- joining


def _init_process_group(backend: str, rank: int, world_size: int, timeout_s: float) -> None:
    """Connect to the rendezvous store, wait (bounded) until every rank has checked in, then
    build the group on that store. Checking in ourselves lets a timeout name the missing ranks."""
    timeout = datetime.timedelta(seconds=timeout_s)
    store = _connect_store(rank, world_size, timeout)
    prefix = f"slimforge/join/{os.environ.get('TORCHELASTIC_RUN_ID', 'none')}/{restart_count()}"
    store.set(f"{prefix}/{rank}", "1")
    deadline = time.monotonic() + timeout_s
    while True:
        missing = [r for r in range(world_size) if not store.check([f"{prefix}/{r}"])]
        if not missing:
            break
        if time.monotonic() > deadline:
            raise RankTimeoutError(
                f"Rank {rank} waited {timeout_s:g} s for the other processes of this job, but rank(s) "
                f"{', '.join(map(str, missing))} of {world_size} never joined (rendezvous at "
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}). Check that every node was started "
                f"with the same --nnodes / --rdzv-endpoint and can reach that address; if they are just slow to start, "
                f"raise {TIMEOUT_SETTING} (now {timeout_s:g})."
            )
        time.sleep(_JOIN_POLL_S)
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


def _connect_store(rank: int, world_size: int, timeout: datetime.timedelta) -> dist.Store:
    """torchrun's agent hosts a store (TORCHELASTIC_USE_AGENT_STORE); otherwise rank 0 serves one
    at MASTER_ADDR:MASTER_PORT and does not block waiting for clients (the check-in does)."""
    addr, port = os.environ.get("MASTER_ADDR", "127.0.0.1"), os.environ.get("MASTER_PORT")
    if port is None:
        raise DistributedError(
            f"RANK and WORLD_SIZE are set (rank {rank} of {world_size}) but MASTER_PORT is not: start the job "
            "with torchrun (or `slimforge train --nproc-per-node N`), which sets all of them."
        )
    try:
        if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
            store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world_size, timeout=timeout))
            return store
        return dist.TCPStore(addr, int(port), world_size, rank == 0, timeout=timeout, wait_for_workers=False)
    except (RuntimeError, OSError) as exc:  # DistNetworkError and DistStoreError derive from RuntimeError
        text = str(exc)
        if "EADDRINUSE" in text or "address already in use" in text.lower():
            raise PortInUseError(
                f"Rank 0 cannot serve the rendezvous at {addr}:{port}: the port is in use by another process "
                "(another job?). Pick a free one with --master-port (or leave it out and slimforge lets torchrun "
                "choose one on a single node)."
            ) from None
        if "timed out" in text.lower() or "timeout" in text.lower():
            raise RankTimeoutError(
                f"Rank {rank} could not reach the rendezvous store at {addr}:{port} within {timeout.total_seconds():g} s "
                f"(rank 0 never served it?). Check the address, or raise {TIMEOUT_SETTING}."
            ) from None
        raise
