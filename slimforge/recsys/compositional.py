"""Compositional (quotient-remainder) embedding tables (Shi et al., "Compositional Embeddings Using
Complementary Partitions for Memory-Efficient Recommendation Systems", KDD 2020).

Row ``i`` of a table of ``n`` rows is the element-wise product of a row of two small tables,
``Q[i // m] * R[i % m]`` for ``m`` buckets: ``ceil(n / m) + m`` rows hold all ``n`` (9,724 items with
``m = 1000``: 1,010 rows, 9.6x fewer). No two ids share both rows, so every id keeps an embedding of
its own, but ids that share a quotient or a remainder share a factor: the table is trained that way
from the start (a model's ``qr_buckets`` option), not converted from a trained one.

Both small tables are ``nn.Embedding``, so row-wise quantization and save/load take them as any table;
the model's ``qr_buckets`` kwarg in ``model.json`` rebuilds the structure.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from slimforge.errors import ConfigError


class QuotientRemainderEmbedding(nn.Module):
    """``num_embeddings`` rows of width ``embedding_dim`` as ``quotient(i // buckets) * remainder(i % buckets)``."""

    def __init__(self, num_embeddings: int, embedding_dim: int, buckets: int, sparse: bool = False, init_std: float = 0.01) -> None:
        super().__init__()
        if not 1 < buckets < num_embeddings:
            raise ConfigError(f"quotient-remainder table of {num_embeddings} rows: buckets must be from 2 to {num_embeddings - 1}, "
                              f"not {buckets} (about sqrt(rows) = {math.isqrt(num_embeddings)} uses the fewest rows).")
        self.num_embeddings, self.embedding_dim, self.buckets = num_embeddings, embedding_dim, buckets
        self.quotient = nn.Embedding(math.ceil(num_embeddings / buckets), embedding_dim, sparse=sparse)
        self.remainder = nn.Embedding(buckets, embedding_dim, sparse=sparse)
        # the product of two N(0, s) values has standard deviation s^2: each factor at sqrt(init_std)
        for table in (self.quotient, self.remainder):
            nn.init.normal_(table.weight, std=math.sqrt(init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.quotient(torch.div(ids, self.buckets, rounding_mode="floor")) * self.remainder(torch.remainder(ids, self.buckets))

    @property
    def weight(self) -> torch.Tensor:
        """The whole table (num_embeddings, embedding_dim), as an ``nn.Embedding``'s weight reads."""
        return self(torch.arange(self.num_embeddings, device=self.remainder.weight.device))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, buckets={self.buckets}"
