"""Row-wise quantized embedding tables: the ``fbgemm-int8``, ``fbgemm-int4`` and ``fbgemm-int2``
quantization backends.

In a recommender the embedding tables hold almost every byte. These backends store each
``nn.Embedding`` row as ``bits``-bit integers with its own fp16 scale and offset (FBGEMM's fused
row-wise format, 4 bytes per row on top of the packed values: a 32-wide fp32 row of 128 bytes
becomes 36 / 20 / 12 bytes), quantized by FBGEMM's own quantizer. The rows stay packed in memory
and are read by torch kernels (:mod:`slimforge.recsys._rowwise`): dequantized rows on lookup, or,
on MF's and NeuMF's grouped scoring path, dot products and projections of the packed codes with
the scales applied to the results. FBGEMM's CPU lookup kernel (``IntNBitTableBatchedEmbeddingBagsCodegen``,
what TorchRec serves with) gives the same rows bit for bit but costs about 0.35 us a row here
against 0.03 us; it is kept as :class:`FbgemmLookup`, the reference of the tests and benchmarks.
Tables too narrow to gain from it (per-item biases, width 1) are stored in fp16.
Everything else (MLP towers, ``nn.EmbeddingBag`` side features) stays fp32; ``fp32_layers``
keeps named tables in fp32 too, so :func:`~slimforge.quantize.quantize_with_fallback` chooses
per table under a metric budget.

The artifact holds ``model.json`` (the fp32 architecture) and ``quantized.safetensors``: the
packed rows and scales of each quantized table, and the fp32 tensors of the rest. No pickle.

FBGEMM is an optional extra, needed to quantize (loading and scoring a quantized folder do not
need it): ``pip install fbgemm-gpu-cpu==1.9.0`` (the build for torch 2.14,
``pip install 'slimforge[recsys]'``). Without it the backends say so when used.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge import artifacts
from slimforge.recsys import _rowwise
from slimforge.errors import ArtifactError
from slimforge.models import build_model
from slimforge.quantize.core import QuantizationError, QuantizeConfig, register_backend

RUNTIME_FILE = "quantized.safetensors"
BITS = {"fbgemm-int8": 8, "fbgemm-int4": 4, "fbgemm-int2": 2}
INSTALL = "pip install fbgemm-gpu-cpu==1.9.0 (the build for torch 2.14; or pip install 'slimforge[recsys]')"


def _fbgemm() -> dict[str, Any]:
    """FBGEMM's inference op and enums; a clear error when the package is absent."""
    try:
        import fbgemm_gpu  # noqa: F401  (registers torch.ops.fbgemm)
        from fbgemm_gpu.split_embedding_configs import SparseType
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode
        from fbgemm_gpu.split_table_batched_embeddings_ops_inference import IntNBitTableBatchedEmbeddingBagsCodegen
    except (ImportError, OSError) as exc:
        raise QuantizationError(f"The fbgemm-int* embedding backends need FBGEMM's CPU kernels, which are not installed ({exc}). {INSTALL}.") from None
    return {"op": IntNBitTableBatchedEmbeddingBagsCodegen, "SparseType": SparseType, "Location": EmbeddingLocation, "Pooling": PoolingMode}


def precision_for(dim: int, bits: int) -> str:
    """"int8"/"int4"/"int2" for a row of ``dim`` values, or "fp16" where that is smaller or the
    row cannot be packed (FBGEMM's quantizer needs whole fp16 words of values, and every integer
    row carries 4 bytes of scale and offset: a width-1 bias row is 2 bytes in fp16, 5 in int8)."""
    packs = dim * bits % 16 == 0
    return f"int{bits}" if packs and dim * bits // 8 + 4 < 2 * dim else "fp16"


class QuantizedEmbedding(nn.Module):
    """An ``nn.Embedding`` replacement: ids (any shape) -> (..., dim) fp32 rows from a row-wise
    ``precision`` table: "int8", "int4" or "int2" rows (FBGEMM's fused layout, kept packed in
    memory) dequantized by torch on lookup, or "fp16" rows (narrow tables) gathered and widened.

    The recommenders' grouped scoring path calls :meth:`grouped_dot` and :meth:`project`, which
    apply the scales to the result instead of the rows (:mod:`slimforge.recsys._rowwise`).
    FBGEMM's own lookup kernel is kept as :class:`FbgemmLookup`, the reference these are tested
    against: it costs about 0.35 us a row on the CPU measured, torch's gather about 0.03 us.
    """

    def __init__(self, rows: int, dim: int, precision: str) -> None:
        super().__init__()
        self.rows, self.dim, self.precision = rows, dim, precision
        self.bits = 16 if precision == "fp16" else int(precision.removeprefix("int"))
        self.width = dim * self.bits // 8  # bytes of packed values a row
        # [values | fp16 scale | fp16 offset] a row, FBGEMM's fused layout (fp16 rows: values only)
        self.register_buffer("fused", torch.zeros(rows, self.width + (0 if precision == "fp16" else 4), dtype=torch.uint8))

    @classmethod
    def from_float(cls, weight: torch.Tensor, bits: int) -> QuantizedEmbedding:
        """Quantize an fp32 table (rows, dim) row-wise with FBGEMM's own quantizer (or to fp16 when narrow)."""
        weight = weight.detach().float().contiguous().cpu()
        table = cls(weight.shape[0], weight.shape[1], precision_for(weight.shape[1], bits))
        if table.precision == "fp16":
            table.load_packed(weight.half().view(torch.uint8).view(weight.shape[0], -1), None)
        else:
            _fbgemm()
            fused = torch.ops.fbgemm.FloatToFusedNBitRowwiseQuantizedSBHalf(weight, bits)  # [values | fp16 scale | fp16 bias]
            width = weight.shape[1] * bits // 8
            table.load_packed(fused[:, :width], fused[:, width:])
        return table

    def packed(self) -> dict[str, torch.Tensor]:
        """The stored bytes: ``qweight`` (rows, packed width) uint8 and, for integer tables, ``scale_shift`` (rows, 4)."""
        out = {"qweight": self.fused[:, :self.width].clone()}
        if self.precision != "fp16":
            out["scale_shift"] = self.fused[:, self.width:].clone()
        return out

    def load_packed(self, qweight: torch.Tensor, scale_shift: torch.Tensor | None) -> None:
        values, shift = self.fused[:, :self.width], (None if self.precision == "fp16" else self.fused[:, self.width:])
        if qweight.shape != values.shape or (shift is not None and (scale_shift is None or scale_shift.shape != shift.shape)):
            raise ArtifactError(f"A {self.precision} table of {self.rows} x {self.dim} needs packed rows {tuple(values.shape)} "
                                f"and scales {None if shift is None else tuple(shift.shape)}; got {tuple(qweight.shape)} and "
                                f"{None if scale_shift is None else tuple(scale_shift.shape)}.")
        values.copy_(qweight)
        if shift is not None:
            shift.copy_(scale_shift)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory, the same as the artifact stores: packed values plus 4 bytes a row of scale and offset."""
        return self.fused.numel()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        if self.precision == "fp16":
            return _rowwise.gather_rows(self.fused, flat).view(torch.float16).float().view(*ids.shape, self.dim)
        if flat.numel() < 2 or flat[0] != flat[1]:  # not a run of one user's candidates (the grouped path's distinct users)
            return self._rows(flat).view(*ids.shape, self.dim)
        runs, where = torch.unique_consecutive(flat, return_inverse=True)
        if 2 * len(runs) > len(flat):  # few repeats: dequantizing every id is cheaper than gathering afterwards
            return self._rows(flat).view(*ids.shape, self.dim)
        return self._rows(runs)[where].view(*ids.shape, self.dim)

    def _rows(self, ids: torch.Tensor) -> torch.Tensor:
        return _rowwise.dequantize(self.fused, self.bits, ids)

    def grouped_dot(self, ids: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (R, L) dotted with their group's vector (R, dim): (R, L), without dequantizing the rows."""
        if self.precision == "fp16":
            return _rowwise.dense_grouped_dot(self(ids), vectors)
        return _rowwise.quantized_grouped_dot(self.fused, self.bits, ids, vectors)

    def project(self, ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``self(ids) @ weight.T`` for ids (n,) and weight (out, dim), without dequantizing the rows: (n, out)."""
        if self.precision == "fp16":
            return self(ids) @ weight.T
        return _rowwise.quantized_project(self.fused, self.bits, ids, weight)

    def extra_repr(self) -> str:
        return f"{self.rows}, {self.dim}, precision={self.precision}"


class FbgemmLookup(nn.Module):
    """FBGEMM's CPU lookup kernel (``IntNBitTableBatchedEmbeddingBagsCodegen``) over a
    :class:`QuantizedEmbedding`'s packed rows: the reference its torch kernels are tested against,
    and the 'before' of the latency benchmark. A run of equal ids is looked up once."""

    def __init__(self, table: QuantizedEmbedding) -> None:
        super().__init__()
        fb = _fbgemm()
        self.dim = table.dim
        self.op = fb["op"](
            embedding_specs=[("table", table.rows, table.dim, getattr(fb["SparseType"], table.precision.upper()), fb["Location"].HOST)],
            pooling_mode=fb["Pooling"].NONE, device="cpu", output_dtype=fb["SparseType"].FP32,
        )
        self.op.fill_random_weights()  # allocates the rows, overwritten next
        weights, scale_shift = self.op.split_embedding_weights(split_scale_shifts=True)[0]
        weights.copy_(table.fused[:, :table.width])
        scale_shift.copy_(table.fused[:, table.width:])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1)
        runs, where = torch.unique_consecutive(flat, return_inverse=True)
        if 2 * len(runs) > len(flat):
            return self._lookup(flat).view(*ids.shape, self.dim)
        return self._lookup(runs)[where].view(*ids.shape, self.dim)

    def _lookup(self, ids: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(ids.numel() + 1, dtype=torch.int32)  # one row per id
        return self.op(ids.to(torch.int32), offsets)


def with_fbgemm_lookups(model: nn.Module) -> nn.Module:
    """A copy of a quantized model whose integer tables are looked up by FBGEMM's kernel (:class:`FbgemmLookup`)."""
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, QuantizedEmbedding) and module.precision != "fp16":
            _replace(model, name, FbgemmLookup(module))
    return model


class EmbeddingQuantizedModel(nn.Module):
    """A model whose ``nn.Embedding`` tables were replaced by :class:`QuantizedEmbedding`; call it like the fp32 model."""

    mode = "weight-only"

    def __init__(self, model: nn.Module, source: nn.Module, backend: str, fp32_layers: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.backend, self.fp32_layers = backend, fp32_layers
        self.__dict__["source"] = source  # the fp32 model it was made from (its structure is written to model.json)
        for attribute in ("num_users", "num_items"):  # what ranking evaluation checks the catalogue with
            if hasattr(model, attribute):
                setattr(self, attribute, getattr(model, attribute))

    def train(self, mode: bool = True) -> EmbeddingQuantizedModel:
        """Inference only: stays in eval mode."""
        return super().train(False)

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.model(inputs)

    def tables(self) -> dict[str, str]:
        """Each embedding table's precision ("int4", "fp16", "fp32", ...)."""
        return {name: m.precision if isinstance(m, QuantizedEmbedding) else "fp32"
                for name, m in self.model.named_modules() if isinstance(m, (QuantizedEmbedding, nn.Embedding))}

    @property
    def nbytes(self) -> int:
        """Bytes of every stored tensor (packed tables, fp32 rest): the artifact's payload."""
        return sum(t.numel() * t.element_size() for t in _stored_tensors(self.model).values())

    def save(self, folder: Path) -> str:
        spec = artifacts.get_spec(self.source)
        if spec is None:
            raise ArtifactError("Cannot save the quantized model: its fp32 model has no recorded structure (build it with slimforge.create_model).")
        artifacts.write_json(Path(folder) / artifacts.STRUCTURE_FILE, spec.to_json())
        artifacts.atomic_write_bytes(Path(folder) / RUNTIME_FILE, self.runtime_bytes())
        return RUNTIME_FILE

    def runtime_bytes(self) -> bytes:
        """The weight file ``save`` writes (``quantized.safetensors``): packed tables, the fp32 rest, each table's precision."""
        tables = {name: {"rows": m.rows, "dim": m.dim, "precision": m.precision}
                  for name, m in self.model.named_modules() if isinstance(m, QuantizedEmbedding)}
        return artifacts.state_dict_bytes(_stored_tensors(self.model), {"tables": json.dumps(tables)})


def quantize_embeddings(model: nn.Module, bits: int, fp32_layers: frozenset[str] = frozenset(), backend: str = "",
                        table_bits: Mapping[str, int] | None = None) -> EmbeddingQuantizedModel:
    """A copy of ``model`` with every ``nn.Embedding`` not in ``fp32_layers`` stored at ``bits``, or at
    ``table_bits[name]`` for the tables it names (a per-table mix; fp16 where a table is too narrow to pack)."""
    table_bits = dict(table_bits or {})
    source = copy.deepcopy(model).eval()
    quantized = copy.deepcopy(source)
    tables = {name for name, m in quantized.named_modules() if isinstance(m, nn.Embedding)}
    unknown = sorted(set(table_bits) - tables)
    if unknown or any(b not in BITS.values() for b in table_bits.values()):
        raise QuantizationError(f"table_bits {table_bits} must name embedding tables of the model ({sorted(tables)}) "
                                f"with widths in {sorted(set(BITS.values()))}; unknown: {unknown}.")
    for name, module in list(quantized.named_modules()):
        if isinstance(module, nn.Embedding) and name not in fp32_layers:
            _replace(quantized, name, QuantizedEmbedding.from_float(module.weight, table_bits.get(name, bits)))
    return EmbeddingQuantizedModel(quantized, source, backend or f"fbgemm-int{bits}", tuple(sorted(fp32_layers))).eval()


class _Prepared:
    def __init__(self, model: nn.Module, bits: int, backend: str) -> None:
        self.model, self.bits, self.backend = model, bits, backend
        self.layers = [n for n, m in model.named_modules() if isinstance(m, nn.Embedding)]

    def quantize(self, fp32_layers: frozenset[str]) -> EmbeddingQuantizedModel:
        return quantize_embeddings(self.model, self.bits, fp32_layers, self.backend)


class FbgemmEmbeddingBackend:
    """Row-wise ``bits``-bit ``nn.Embedding`` tables in FBGEMM's format, read by torch kernels; the rest of the model as it is."""

    accepts_any_inputs = True  # the eager model runs: any input structure (a recommender's pair dicts)
    layer_types = (nn.Embedding,)
    modes = ("weight-only",)

    def __init__(self, name: str) -> None:
        self.name, self.bits = name, BITS[name]

    def prepare(self, model: nn.Module, calibration: list[Any], mode: str, config: QuantizeConfig) -> _Prepared:
        _fbgemm()
        if mode != "weight-only":
            raise QuantizationError(f"Backend {self.name!r} quantizes embedding rows only (mode='weight-only' or 'auto'), not {mode!r}.")
        return _Prepared(model, self.bits, self.name)

    def load(self, folder: Path, info: dict[str, Any], threads: int) -> EmbeddingQuantizedModel:
        if threads:
            torch.set_num_threads(threads)
        folder = Path(folder)
        # A file's model name runs no code unless trusted (slimforge.models.resolve_factory), as for fp32 folders.
        source = build_model(artifacts.read_spec(folder), init=False, trust_code=False,
                                       source=str(folder / artifacts.STRUCTURE_FILE))
        path = folder / info.get("runtime_file", RUNTIME_FILE)
        tensors = artifacts.read_tensors(path)
        try:
            tables = json.loads(artifacts.read_metadata(path).get("tables", "{}"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path} has unreadable 'tables' metadata ({exc}).") from None
        model = copy.deepcopy(source)
        for name, table in tables.items():
            module = _module(model, name, path)
            quantized = QuantizedEmbedding(int(table["rows"]), int(table["dim"]), str(table["precision"]))
            if f"{name}.qweight" not in tensors:
                raise ArtifactError(f"{path} has no packed rows for table {name!r} ({name}.qweight).")
            quantized.load_packed(tensors[f"{name}.qweight"], tensors.get(f"{name}.scale_shift"))
            if not isinstance(module, nn.Embedding) or module.weight.shape != (quantized.rows, quantized.dim):
                raise ArtifactError(f"{path}: table {name!r} ({quantized.rows} x {quantized.dim}) does not fit the model in model.json.")
            _replace(model, name, quantized)
        expected = _stored_tensors(model)
        missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        if missing or extra:
            raise ArtifactError(f"{path} does not fit the model in model.json (missing {missing[:3]}, unexpected {extra[:3]}).")
        model.load_state_dict({k: v for k, v in tensors.items() if k.rpartition(".")[0] not in tables}, strict=False)  # the fp32 rest
        fp32 = tuple(sorted(n for n, m in model.named_modules() if isinstance(m, nn.Embedding)))
        return EmbeddingQuantizedModel(model, source, info.get("backend", self.name), fp32).eval()


# ---------------------------------------------------------------- helpers


def _stored_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """What an artifact stores: the packed bytes of each QuantizedEmbedding and the state dict of the rest."""
    quantized = {name: m for name, m in model.named_modules() if isinstance(m, QuantizedEmbedding)}
    out = {k: v for k, v in model.state_dict().items() if not any(k.startswith(f"{name}.") for name in quantized)}
    for name, module in quantized.items():
        out.update({f"{name}.{k}": v for k, v in module.packed().items()})
    return out


def _module(model: nn.Module, name: str, source: Path) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ArtifactError(f"{source} names table {name!r}, which the model in model.json does not have.") from None


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


for _name, _bits in BITS.items():
    register_backend(_name, help=f"row-wise int{_bits} embedding tables in FBGEMM's format (recommenders); the rest stays fp32")(
        FbgemmEmbeddingBackend(_name)
    )
