"""Torch kernels for row-wise quantized tables in FBGEMM's fused layout, and the two table
operations the recommenders' grouped scoring path needs, for any table.

A table row of ``dim`` values at ``bits`` bits is ``dim * bits // 8`` bytes; value ``e`` lives in
byte ``e // per`` at bit ``bits * (e % per)`` (``per = 8 // bits`` values a byte, low bits
first), and each row has an fp16 scale and an fp16 offset: ``x = scale * code + offset``.

Why not FBGEMM's lookup kernel: on the CPU measured it costs about 0.35 us a row, against
0.03 us for ``index_select`` of the packed rows plus a dequantization in torch (25,600 rows,
1 thread; BENCHMARKS.md, issue 21). Scoring needs even less than dequantized rows: a row enters a
dot product or a linear layer, so the scale and offset are applied to that layer's (n, out)
result instead of the (n, dim) rows, and sub-byte codes are never unpacked (see
:func:`shifted_codes`).
"""

from __future__ import annotations

import torch
from torch import nn


def dequantize(fused: torch.Tensor, bits: int, ids: torch.Tensor) -> torch.Tensor:
    """Rows ``ids`` (n,) of a fused table (rows, width + 4), in fp32: (n, dim)."""
    packed, scale, shift = gather_fused(fused, ids)
    return unpack(packed, bits).mul_(scale.unsqueeze(1)).add_(shift.unsqueeze(1))


def gather_fused(fused: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``ids`` (n,) of a fused table: packed codes (n, width) uint8, scales (n,) and offsets (n,) fp32.

    Codes and scales stay in one row in memory, as FBGEMM stores them, but are gathered into two
    contiguous tensors: gathering whole rows and converting their strided slices took 0.69 ms for
    25,600 int8 rows against 0.39 ms for this, conversion included (1 thread, timed in turns)."""
    width = fused.shape[1] - 4
    word = torch.int32 if width % 4 == 0 else torch.int16
    words = fused.view(word)
    split = width // (4 if word == torch.int32 else 2)
    codes = words[:, :split].index_select(0, ids).view(torch.uint8)
    pairs = words[:, split:].index_select(0, ids).view(torch.float16).float().view(-1, 2)
    return codes, pairs[:, 0], pairs[:, 1]


def unpack(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """(n, width) uint8 -> (n, width * 8 // bits) fp32 codes."""
    if bits == 8:
        return packed.float()
    mask = (1 << bits) - 1
    parts = [(packed >> shift) & mask if shift else packed & mask for shift in range(0, 8, bits)]
    return torch.stack(parts, -1).view(packed.shape[0], -1).float()


def shifted_codes(packed: torch.Tensor, bits: int) -> torch.Tensor:
    """(n, width) uint8 -> (n, per * width) fp32: ``packed >> (bits * k)`` for k = 0 .. per-1.

    With t_k = b >> (bits k) and M = 2**bits, the k-th code of a byte is c_k = t_k - M t_{k+1}, so a
    weighted sum of codes is a weighted sum of the t_k with weights from :func:`shifted_weights`:
    shifts and conversions instead of masking and interleaving (25,600 int4 rows: 0.62 ms to unpack
    against 0.41 ms for this, 1 thread, timed in turns on a loaded machine)."""
    n, width = packed.shape
    per = 8 // bits
    out = torch.empty(n, per, width)
    out[:, 0].copy_(packed)
    for k in range(1, per):
        out[:, k].copy_(packed >> (bits * k))
    return out.view(n, per * width)


def shifted_weights(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """(..., dim) weights of codes -> (..., dim) weights of :func:`shifted_codes`' columns."""
    per = 8 // bits
    if per == 1:
        return weight
    w = weight.reshape(*weight.shape[:-1], -1, per)  # (..., width, per): byte j, slot k
    out = w.clone()
    out[..., 1:] -= (1 << bits) * w[..., :-1]
    return out.transpose(-1, -2).reshape(weight.shape)  # slot-major, as shifted_codes lays them out


def quantized_grouped_dot(fused: torch.Tensor, bits: int, ids: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """sum_k row(ids[r, l])_k * vectors[r, k] for ids (R, L) and vectors (R, dim): (R, L)."""
    groups, size = ids.shape
    packed, scale, shift = gather_fused(fused, ids.reshape(-1))
    codes = shifted_codes(packed, bits).view(groups, size, -1)
    dots = torch.bmm(shifted_weights(vectors, bits).unsqueeze(1), codes.transpose(1, 2)).view(groups, size)
    return torch.addcmul(shift.view(groups, size) * vectors.sum(-1, keepdim=True), dots, scale.view(groups, size))


def quantized_project(fused: torch.Tensor, bits: int, ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """row(ids) @ weight.T for ids (n,) and weight (out, dim): (n, out)."""
    packed, scale, shift = gather_fused(fused, ids)
    out = shifted_codes(packed, bits) @ shifted_weights(weight, bits).T
    return out.mul_(scale.unsqueeze(1)).addr_(shift, weight.sum(1))  # in place: no (n, out) temporaries


# ---------------------------------------------------------------- any table


def grouped_dot(table: nn.Module, ids: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Each group's rows dotted with its vector: ids (R, L), vectors (R, dim) -> (R, L).

    A table that knows a faster way (``QuantizedEmbedding``) provides ``grouped_dot``; a factorised
    table (rows ``A_i B``, see :func:`factors`) folds ``B`` into the vectors, ``(A_i B) . v = A_i . (B v)``,
    so its rows enter at the rank's width; any other (``nn.Embedding``) is looked up and multiplied.
    ``bmm(vector, rows.T)`` is the fastest fp32 form measured (0.17 ms for 256 x 100 x 32, against
    0.28 for ``bmm(rows, vector)`` and 0.43 for multiply-and-sum)."""
    factored = factors(table)
    if factored is not None:
        rows, second = factored
        return grouped_dot(rows, ids, vectors @ second)
    method = getattr(table, "grouped_dot", None)
    if method is not None:
        return method(ids, vectors)
    return dense_grouped_dot(table(ids), vectors)


def dense_grouped_dot(rows: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """rows (R, L, dim), vectors (R, dim) -> (R, L)."""
    return torch.bmm(vectors.unsqueeze(1), rows.transpose(1, 2)).squeeze(1)


def project(table: nn.Module, ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``table(ids) @ weight.T``: ids (n,), weight (out, dim) -> (n, out). A factorised table folds its
    second factor into the weight, ``(A_i B) W^T = A_i (W B^T)^T``: its rows enter at the rank's width."""
    factored = factors(table)
    if factored is not None:
        rows, second = factored
        return project(rows, ids, weight @ second)
    method = getattr(table, "project", None)
    if method is not None:
        return method(ids, weight)
    return table(ids) @ weight.T


def factors(table: nn.Module) -> tuple[nn.Module, torch.Tensor] | None:
    """A factorised table (``slimforge.factorize``'s SVD of an embedding: ``Sequential(rows (n, r),
    Linear(r, dim, bias=False))``, the rows fp32 or quantized) as (the rows' table, the Linear's
    weight (dim, r)); None for any other module. Row ``i`` of the table is ``A_i @ weight.T``."""
    if not isinstance(table, nn.Sequential) or len(table) != 2:
        return None
    rows, second = table[0], table[1]
    if not isinstance(second, nn.Linear) or second.bias is not None:
        return None
    if not (isinstance(rows, nn.Embedding) or hasattr(rows, "grouped_dot")):  # an fp32 or a quantized table
        return None
    return rows, second.weight


def gather_rows(packed: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``packed.index_select(0, ids)`` for (rows, width) uint8, copying rows as the widest integers
    that tile them (32-byte rows as eight int32: 0.06 ms against 0.09 ms for 25,600 rows)."""
    for dtype, size in ((torch.int64, 8), (torch.int32, 4), (torch.int16, 2)):
        if packed.shape[1] == size:  # one integer a row: a 1-D gather (0.02 ms against 0.05 ms as (rows, 1))
            return packed.view(dtype).view(-1).index_select(0, ids).view(torch.uint8).view(-1, size)
        if packed.shape[1] % size == 0:
            return packed.view(dtype).index_select(0, ids).view(torch.uint8)
    return packed.index_select(0, ids)


def column(table: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """``table(ids).squeeze(-1)`` for a width-1 table (a per-item bias): ids (...) -> (...).
    Without autograd an fp32 ``nn.Embedding``'s column is gathered as a 1-D tensor (0.02 ms
    against 0.05 ms for 25,600 ids, 1 thread); with it, the module keeps its sparse gradients."""
    weight = getattr(table, "weight", None)
    if isinstance(table, nn.Embedding) and weight.shape[1] == 1 and not torch.is_grad_enabled():
        return weight.view(-1).index_select(0, ids.reshape(-1)).view(ids.shape)
    return table(ids).squeeze(-1)
