"""Mixed-dimension embedding tables by popularity (Ginart et al., "Mixed Dimension Embeddings with
Application to Memory-Efficient Recommendation Systems", 2021).

A catalogue's items are not looked up equally: on MovieLens ml-latest-small the 10% most interacted
items hold most of the training interactions and half the items have two or fewer. A table that
spends as many values on a movie seen once as on the most popular one spends most of its bytes on
rows that barely enter a ranking. :class:`MixedDimEmbedding` keeps the rows in blocks by popularity,
block ``b`` stored at its own width ``w_b`` and projected to the table's width by a ``(w_b -> dim)``
matrix (none for a full-width block), so a table of 9,724 x 32 with blocks of 10% / 30% / 60% of the
rows at widths 32 / 8 / 4 holds about a quarter of the values.

:func:`mixed_dimensions` turns a trained model's tables into this form, each block initialised by the
SVD of its trained rows (the closest rank-``w_b`` rows, so the model scores almost as before and a
short fine-tune recovers the rest), and records a ``mixed_dim`` edit in ``model.json`` so
:func:`slimforge.load` rebuilds the blocks. The blocks' tables are ``nn.Embedding`` children, so row-wise
quantization (``fbgemm-int4``) and quantization-aware fine-tuning take them as they take any table.

Stored per table beyond the blocks: each row's position in the popularity order (int16 for up to 32,767
rows, else int32): the block and the slot in it follow from the position and the block sizes. A file
whose positions are not a permutation of the rows is refused on load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from slimforge.artifacts import record_edit, register_edit
from slimforge.errors import ArtifactError, ConfigError
from slimforge.models import adopt_spec

EDIT_KIND = "mixed_dim"


class MixedDimEmbedding(nn.Module):
    """``num_embeddings`` rows of width ``embedding_dim`` kept in ``blocks`` of (rows, stored width), in
    popularity order: row ``i`` is ``projections[b](tables[b](slot))`` for the block ``b`` and slot that
    its ``position[i]`` falls in."""

    def __init__(self, num_embeddings: int, embedding_dim: int, blocks: Sequence[Sequence[int]], sparse: bool = False) -> None:
        super().__init__()
        blocks = [(int(rows), int(width)) for rows, width in blocks]
        if sum(rows for rows, _ in blocks) != num_embeddings or any(rows < 1 or not 1 <= width <= embedding_dim for rows, width in blocks):
            raise ConfigError(f"MixedDimEmbedding: blocks {blocks} must hold {num_embeddings} rows in all, each block at least one row "
                              f"at a width from 1 to {embedding_dim}.")
        self.num_embeddings, self.embedding_dim, self.blocks = num_embeddings, embedding_dim, blocks
        self.tables = nn.ModuleList(nn.Embedding(rows, width, sparse=sparse) for rows, width in blocks)
        self.projections = nn.ModuleList(nn.Identity() if width == embedding_dim else nn.Linear(width, embedding_dim, bias=False)
                                         for _, width in blocks)
        dtype = torch.int16 if num_embeddings <= torch.iinfo(torch.int16).max else torch.int32
        self.register_buffer("position", torch.arange(num_embeddings, dtype=dtype))
        starts = torch.tensor([0] + [rows for rows, _ in blocks]).cumsum(0)
        self.register_buffer("starts", starts, persistent=False)  # block b holds positions starts[b] .. starts[b+1]-1
        self.register_buffer("row_block", torch.empty(0, dtype=torch.int8), persistent=False)  # derived from position: not stored
        self.register_buffer("row_slot", torch.empty(0, dtype=torch.int64), persistent=False)
        self.index_rows()
        self.register_load_state_dict_post_hook(_check_positions)

    def index_rows(self) -> None:
        """Each row's block and slot in it, from ``position`` (after it is set or loaded): one gather each per lookup."""
        position = self.position.long()
        self.row_block = (torch.bucketize(position, self.starts[1:-1], right=True).to(torch.int8) if len(self.blocks) < 128
                          else torch.bucketize(position, self.starts[1:-1], right=True))
        self.row_slot = position - self.starts.index_select(0, self.row_block.long())

    def _lookup(self, flat: torch.Tensor):
        """For ids (n,): per block that any of them is in, (block, where in ``flat``, slots in the block)."""
        block, slot = self.row_block.index_select(0, flat), self.row_slot.index_select(0, flat)
        for b in range(len(self.blocks)):
            where = (block == b).nonzero().squeeze(1)
            if where.numel():
                yield b, where, slot.index_select(0, where)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        out = None
        for b, where, slots in self._lookup(flat):
            rows = self.projections[b](self.tables[b](slots))
            if out is None:
                out = rows.new_zeros(flat.numel(), self.embedding_dim)
            out = out.index_copy(0, where, rows)  # out of place: gradients reach every block's rows
        if out is None:  # no ids
            return torch.zeros(*ids.shape, self.embedding_dim, device=self.position.device)
        return out.view(*ids.shape, self.embedding_dim)

    def grouped_dot(self, ids: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Each group's rows dotted with its vector (the recommenders' grouped scoring path): ids (R, L),
        vectors (R, dim) -> (R, L). A narrow block's projection is folded into the vectors,
        ``(A_i P^T) . v = A_i . (P^T v)``, so its rows enter at their own width and are never widened."""
        groups, width = ids.shape
        out = vectors.new_zeros(groups * width)
        for b, where, slots in self._lookup(ids.reshape(-1)):
            projection = self.projections[b]
            folded = vectors if isinstance(projection, nn.Identity) else vectors @ projection.weight  # (R, w_b)
            rows = self.tables[b](slots)
            out = out.index_copy(0, where, (rows * folded.index_select(0, where // width)).sum(1))
        return out.view(groups, width)

    @property
    def weight(self) -> torch.Tensor:
        """The whole table (num_embeddings, embedding_dim) in id order, as an ``nn.Embedding``'s weight reads
        (for code that scores the catalogue from ``table.weight``)."""
        return self(torch.arange(self.num_embeddings, device=self.position.device))

    def stored_values(self) -> int:
        """Numbers the blocks and projections hold (the position index aside)."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, blocks={self.blocks}"


def _check_positions(module: MixedDimEmbedding, _incompatible: Any) -> None:
    """A loaded position index must be a permutation of the rows: anything else would read outside a block."""
    position = module.position.long()
    if not torch.equal(position.sort().values, torch.arange(module.num_embeddings, device=position.device)):
        raise ArtifactError(f"MixedDimEmbedding: the stored row positions are not a permutation of its {module.num_embeddings} rows; "
                            "the weight file is corrupt or does not belong to this model.")
    module.index_rows()


@torch.no_grad()
def mixed_dim_table(table: nn.Embedding, popularity: torch.Tensor, shares: Sequence[float], widths: Sequence[int]) -> MixedDimEmbedding:
    """``table`` as a :class:`MixedDimEmbedding`: its rows in order of ``popularity`` (most first; ties by id),
    cut into blocks of ``shares`` of the rows, block ``b`` the rank-``widths[b]`` SVD of its trained rows."""
    rows, dim = table.weight.shape
    if popularity.shape != (rows,):
        raise ConfigError(f"mixed_dimensions: the popularity has {tuple(popularity.shape)} entries for a table of {rows} rows.")
    order = torch.argsort(-popularity.double(), stable=True)
    sizes = _block_sizes(rows, shares)
    blocks = [(n, min(int(w), dim)) for n, w in zip(sizes, widths) if n]
    out = MixedDimEmbedding(rows, dim, blocks, sparse=table.sparse).to(table.weight.device)
    out.position[order] = torch.arange(rows, dtype=out.position.dtype, device=out.position.device)
    out.index_rows()
    start = 0
    for (n, width), block, projection in zip(blocks, out.tables, out.projections):
        trained = table.weight[order[start:start + n]].double()
        start += n
        if width == dim:
            block.weight.copy_(trained)
            continue
        u, s, vh = torch.linalg.svd(trained, full_matrices=False)
        k = min(width, s.numel())
        root = s[:k].sqrt()
        block.weight.zero_()
        block.weight[:, :k] = (u[:, :k] * root).to(block.weight.dtype)  # rows (n, w) @ projection (w, dim)
        projection.weight.zero_()
        projection.weight[:, :k] = (root[:, None] * vh[:k]).T.to(projection.weight.dtype)
    return out


def mixed_dimensions(model: nn.Module, popularity: torch.Tensor, shares: Sequence[float] = (0.2, 0.8),
                     widths: Sequence[float] = (1.0, 0.25), layers: Sequence[str] | None = None) -> dict[str, list[tuple[int, int]]]:
    """Replace ``model``'s item tables (``layers``, default every ``nn.Embedding`` wider than 1 with as many rows as
    ``popularity`` has entries) by :class:`MixedDimEmbedding`: blocks of ``shares`` of the rows by popularity, at
    ``widths`` of the table's width (fractions, rounded, at least 1). Records the edit; returns each table's blocks.
    The default, the 20% most interacted items at full width and the rest at a quarter, measured on MovieLens MF
    (32 factors) with int4 rows: 8.8x smaller at -1.1% NDCG@10 (BENCHMARKS.md)."""
    if len(shares) != len(widths) or not shares or any(s <= 0 for s in shares) or abs(sum(shares) - 1) > 1e-6:
        raise ConfigError(f"mixed_dimensions: shares {list(shares)} must be positive fractions summing to 1, one per width {list(widths)}.")
    if any(not 0 < w <= 1 for w in widths):
        raise ConfigError(f"mixed_dimensions: widths are fractions of the table's width in (0, 1], not {list(widths)}.")
    adopt_spec(model)
    modules = dict(model.named_modules())
    names = list(layers) if layers is not None else [
        n for n, m in modules.items() if isinstance(m, nn.Embedding) and m.embedding_dim > 1 and m.num_embeddings == popularity.numel()]
    wrong = [n for n in names if not isinstance(modules.get(n), nn.Embedding) or modules[n].num_embeddings != popularity.numel()]
    if wrong or not names:
        tables = [n for n, m in modules.items() if isinstance(m, nn.Embedding)]
        raise ConfigError(f"mixed_dimensions: {wrong or 'no table'} is not an nn.Embedding with {popularity.numel()} rows "
                          f"(one per popularity entry); the model's tables: {tables}.")
    done = {}
    for name in names:
        table = modules[name]
        mixed = mixed_dim_table(table, popularity, shares, [max(1, round(w * table.embedding_dim)) for w in widths])
        model.set_submodule(name, mixed)
        done[name] = mixed.blocks
    record_edit(model, {"kind": EDIT_KIND, "layers": {n: {"blocks": [list(b) for b in blocks]} for n, blocks in done.items()}})
    return done


@register_edit(EDIT_KIND)
def replay_mixed_dim(model: nn.Module, edit: dict[str, Any]) -> nn.Module:
    """Rebuild the recorded blocks (shapes only; the weights and row positions are loaded afterwards)."""
    layers = edit.get("layers")
    if not isinstance(layers, dict):
        raise ArtifactError(f"mixed_dim edit: 'layers' must be an object of table name -> {{'blocks': [[rows, width], ...]}}, "
                            f"not {layers!r}; model.json is corrupt.")
    modules = dict(model.named_modules())
    for name, info in layers.items():
        blocks = info.get("blocks") if isinstance(info, dict) else None
        if not isinstance(blocks, list) or not all(isinstance(b, list) and len(b) == 2 and all(type(v) is int for v in b) for b in blocks):
            raise ArtifactError(f"mixed_dim edit layers[{name!r}] must be {{'blocks': [[rows, width], ...]}} of integers, not {info!r}; "
                                "model.json is corrupt.")
        table = modules.get(name)
        if not isinstance(table, nn.Embedding):
            found = type(table).__name__ if table is not None else "nothing"
            raise ArtifactError(f"model.json gives {name!r} mixed dimensions, but the model has {found} there.")
        try:
            mixed = MixedDimEmbedding(table.num_embeddings, table.embedding_dim, blocks, sparse=table.sparse)
        except ConfigError as exc:
            raise ArtifactError(f"model.json's mixed_dim edit of {name!r} does not fit its {table.num_embeddings} x "
                                f"{table.embedding_dim} table: {exc}") from None
        model.set_submodule(name, mixed)
    return model


def _block_sizes(rows: int, shares: Sequence[float]) -> list[int]:
    """Rows per block: ``shares`` of ``rows`` rounded, the last block taking what is left."""
    sizes, start = [], 0
    for k, share in enumerate(shares):
        end = rows if k == len(shares) - 1 else min(rows, start + round(share * rows))
        sizes.append(end - start)
        start = end
    return sizes

