"""Quantization-aware fine-tuning of embedding tables (row-wise int8 / int4 / int2, FBGEMM's format).

Post-training int2 rows cost NeuMF 5.7-8% NDCG@10 on MovieLens (BENCHMARKS.md): each row's 32
values fall on 4 levels between its min and max. Fine-tuning with the rounding in the forward
pass lets the other weights (and the rows themselves) adapt to it:

* :func:`fake_quantize_rows` gives, in torch, exactly the fp32 values that FBGEMM's row-wise
  quantizer (``FloatToFusedNBitRowwiseQuantizedSBHalf``) followed by the dequantization of
  :mod:`slimforge.recsys._rowwise` give back: the row's minimum rounded to fp16 is the offset,
  (max - min) / (2**bits - 1) rounded to fp16 the scale, codes rounded half to even and clipped;
  narrow tables that are stored in fp16 (:func:`~slimforge.recsys.quantize.precision_for`) are
  rounded to fp16;
* :class:`FakeQuantEmbedding` looks rows up and replaces them by those values in the forward pass,
  passing the gradient straight through to the fp32 rows (the straight-through estimator; the
  scale and offset follow the rows, they are not learned);
* :func:`quantization_aware_finetune` swaps every table of a model for one, trains the run's own
  objective on its own data for a few epochs, and swaps the plain tables back. Quantizing the
  result with :func:`~slimforge.recsys.quantize.quantize_embeddings` at the same widths then
  gives the model that was fine-tuned: the same rows, so the same scores.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from slimforge.recsys.quantize import BITS, precision_for


def fake_quantize_rows(rows: torch.Tensor, bits: int) -> torch.Tensor:
    """(n, dim) fp32 rows -> the (n, dim) fp32 values they read back as once stored row-wise at
    ``bits`` (or in fp16 where the table is too narrow to pack); no gradient."""
    rows = rows.detach().float()
    if precision_for(rows.shape[1], bits) == "fp16":
        return rows.half().float()
    levels = (1 << bits) - 1
    low = rows.amin(1).half().float()
    spread = rows.amax(1) - low
    scale = torch.where(spread == 0, torch.ones_like(spread), spread / levels).half().float()
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # a constant row: any scale, codes are 0
    inverse = 1.0 / scale
    finite = ~inverse.isinf()
    scale, inverse = torch.where(finite, scale, torch.ones_like(scale)), torch.where(finite, inverse, torch.ones_like(inverse))
    codes = ((rows - low.unsqueeze(1)) * inverse.unsqueeze(1)).round().clamp(0, levels)
    return codes * scale.unsqueeze(1) + low.unsqueeze(1)


class FakeQuantEmbedding(nn.Module):
    """An ``nn.Embedding`` during quantization-aware training: ids (any shape) -> (..., dim) rows as
    they will be stored at ``bits``, with the gradient passed straight through to ``weight`` (the
    table's own parameter, shared: the optimizer and state dict see the table unchanged)."""

    def __init__(self, table: nn.Embedding, bits: int) -> None:
        super().__init__()
        if bits not in BITS.values():
            raise ValueError(f"FakeQuantEmbedding: bits must be one of {sorted(set(BITS.values()))}, not {bits}.")
        self.weight = table.weight
        self.__dict__["table"] = table  # the plain table, put back by strip_fake_quantization (not a submodule: one state dict key)
        self.bits = bits
        self.precision = precision_for(table.embedding_dim, bits)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = self.table
        rows = F.embedding(ids, self.weight, t.padding_idx, t.max_norm, t.norm_type, t.scale_grad_by_freq, t.sparse)
        flat = rows.reshape(-1, rows.shape[-1])
        return (fake_quantize_rows(flat, self.bits) + (flat - flat.detach())).view(rows.shape)  # the stored values; gradient 1

    def extra_repr(self) -> str:
        return f"{self.table.num_embeddings}, {self.table.embedding_dim}, bits={self.bits}, stored as {self.precision}"


def fake_quantize_tables(model: nn.Module, bits: int, table_bits: Mapping[str, int] | None = None,
                         fp32_layers: frozenset[str] = frozenset()) -> nn.Module:
    """``model`` with every ``nn.Embedding`` not in ``fp32_layers`` replaced, in place, by a
    :class:`FakeQuantEmbedding` at ``table_bits.get(name, bits)`` (the widths quantize_embeddings takes)."""
    table_bits = dict(table_bits or {})
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Embedding) and name not in fp32_layers:
            _replace(model, name, FakeQuantEmbedding(module, table_bits.get(name, bits)))
    return model


def strip_fake_quantization(model: nn.Module) -> nn.Module:
    """``model`` with each :class:`FakeQuantEmbedding` replaced, in place, by its plain table (trained rows kept)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, FakeQuantEmbedding):
            _replace(model, name, module.table)
    return model


def quantization_aware_finetune(model: nn.Module, data: Any, bits: int, config: Any, table_bits: Mapping[str, int] | None = None,
                                fp32_layers: frozenset[str] = frozenset(), out: str | Path | None = None,
                                record: dict[str, Any] | None = None) -> nn.Module:
    """A copy of ``model`` fine-tuned on ``data`` (its training split and the data's objective) with
    its tables fake-quantized at ``bits`` / ``table_bits``, returned with plain fp32 tables: quantize
    it at the same widths. ``config``: a :class:`~slimforge.train.TrainConfig` (a few epochs at a
    small learning rate); ``out``: also write the fine-tuned fp32 run folder there (then the best
    epoch on validation is kept, as ``keep_best`` says; without it, the last)."""
    from slimforge.train import train

    tuned = fake_quantize_tables(copy.deepcopy(model), bits, table_bits, fp32_layers)
    result = train(tuned, data, config, out=out, record=record)
    return strip_fake_quantization(result.model).eval()


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)
