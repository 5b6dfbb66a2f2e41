"""Distribution-agnostic helpers over ``torch.distributed``: one code path for one process or many.

* :mod:`~slimforge.distributed.process`: torchrun's environment, :func:`setup` / :func:`teardown`,
  :class:`DistContext`, ``is_main()``, barriers and all-reduces;
* :mod:`~slimforge.distributed.launch`: ``slimforge train --nproc-per-node N`` hands off to torchrun;
* :mod:`~slimforge.distributed.fsdp`: FSDP2 sharding, distributed checkpoints and their
  conversion to a normal artifact (imported on use: it pulls in torch.distributed.checkpoint).
"""

from slimforge.distributed.errors import DistributedError, LaunchError, NotEnoughDevicesError, PortInUseError, RankTimeoutError
from slimforge.distributed.process import (
    DistContext,
    all_reduce_mean,
    all_reduce_sum,
    barrier,
    cpu_cores,
    is_main,
    pick_device,
    restart_count,
    setup,
    teardown,
    torchrun_env,
)

__all__ = [
    "DistContext",
    "DistributedError",
    "LaunchError",
    "NotEnoughDevicesError",
    "PortInUseError",
    "RankTimeoutError",
    "all_reduce_mean",
    "all_reduce_sum",
    "barrier",
    "cpu_cores",
    "is_main",
    "pick_device",
    "restart_count",
    "setup",
    "teardown",
    "torchrun_env",
]
