"""Split blocks: a module that splits its input's channels into pieces of the sizes in its ``splits`` attribute and
runs one convolution per piece (timm's ``MixedConv2d`` in MixNet, MDConv: kernels of several sizes over channel groups).

Its split sizes come from an attribute, not from the tensor, so the capture records them as constants; left alone,
they would pin every channel that enters the block (MixNet kept its inverted-residual expansions whole). Recognised
here, each piece passes its channels on (keeping at least one, so no convolution is left without input), and after
slicing :func:`sync_split_block` sets ``splits`` (and ``in_channels`` / ``out_channels``) from the convolutions.

A module may also say, with a class attribute ``slimforge_split_follows`` (one bool per piece), that its forward
reads the sizes of some pieces of its split from its children's weights (a stand-in forward: FocalNet's modulation):
those pieces shrink on their own, the others stay whole (:func:`split_follows`).

timm is imported nowhere here: the block is recognised by its attributes and children.
"""

from __future__ import annotations

from torch import nn


def _splits(module: nn.Module) -> list[int] | None:
    splits = getattr(module, "splits", None)
    if isinstance(splits, (list, tuple)) and len(splits) > 1 and all(type(s) is int for s in splits):
        return list(splits)
    return None


def _convolutions(module: nn.Module) -> list[nn.Module] | None:
    """The block's convolution children, one per split, or None when ``module`` is no split block."""
    splits = _splits(module)
    children = list(module.children())
    if splits is None or len(children) != len(splits):
        return None
    return children if all(isinstance(c, nn.modules.conv._ConvNd) and not c.transposed for c in children) else None


def is_split_block(module: nn.Module) -> bool:
    """``module`` keeps ``splits`` (two or more ints) and has exactly one convolution child per split, in order,
    each taking its piece's channels."""
    children = _convolutions(module)
    return children is not None and [c.in_channels for c in children] == module.splits


def sync_split_block(module: nn.Module) -> bool:
    """After slicing a split block (its convolutions narrower than its ``splits`` now): the split sizes, and the
    block's own channel counts where it keeps them, from its convolutions. False: ``module`` is no split block."""
    children = _convolutions(module)
    if children is None:
        return False
    module.splits = type(module.splits)(c.in_channels for c in children)
    if type(getattr(module, "in_channels", None)) is int:
        module.in_channels = sum(module.splits)
    if type(getattr(module, "out_channels", None)) is int:
        module.out_channels = sum(c.out_channels for c in children)
    return True


def split_follows(module: nn.Module, pieces: int) -> tuple[bool, ...] | None:
    """Which pieces of a split into ``pieces`` made directly in ``module``'s forward take their sizes from its
    children's weights (True: the piece may shrink) and which are fixed (False: kept whole), as its class says in
    ``slimforge_split_follows``; None where it says nothing for that many pieces."""
    follows = getattr(type(module), "slimforge_split_follows", None)
    if isinstance(follows, tuple) and len(follows) == pieces and all(type(f) is bool for f in follows):
        return follows
    return None
