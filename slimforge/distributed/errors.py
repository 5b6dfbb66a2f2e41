"""Errors of distributed jobs; the CLI prints each as one paragraph."""

from __future__ import annotations

from slimforge.errors import SlimforgeError


class DistributedError(SlimforgeError):
    """A distributed job cannot start or continue."""


class PortInUseError(DistributedError):
    """The rendezvous port is taken by another process."""


class RankTimeoutError(DistributedError):
    """A rank did not join (or answer) within the timeout."""


class NotEnoughDevicesError(DistributedError):
    """More processes per node were asked for than the node has GPUs."""


class LaunchError(DistributedError):
    """torchrun's workers failed; their own messages are printed above."""
