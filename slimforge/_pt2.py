"""Check a .pt2 archive the way ``torch.export.load`` (torch 2.14) reads it, before it reads it.

What in a .pt2 can run code when loaded, and what this module refuses for each:

* **Pickles.** ``torch.export.load`` unpickles payloads marked ``use_pickle`` (weights and tensor
  constants), ``custom_obj_*`` / ``opaque_obj_*`` constants, legacy ``<model>.pt`` weights and
  constants, the sample inputs (``torch.load(weights_only=True)`` *falling back to*
  ``weights_only=False``), AOTInductor packages, and the pre-2.7 zip layout
  (``serialized_*.pt``). Only an allow-list of entry names passes (:data:`_ENTRIES`), every
  payload config must name raw ``weight_N`` / ``tensor_N`` files with ``use_pickle`` false, and
  the sample inputs must be empty (:func:`slimforge.export.save_pt2` writes none).
* **sympy.** Symbolic shapes are stored as text and parsed with ``sympy.sympify``, which calls
  ``eval``: ``Symbol.__new__.__globals__[...]`` in an ``expr_str`` runs any code. Each
  ``expr_str`` must be a ``sympy.srepr`` expression built only from known function names,
  numbers and plain strings (:func:`_check_expression`).
* **Operators.** A node's ``target`` (and an ``as_operator`` argument) is resolved by ``getattr``
  from ``torch``, ``_operator`` or ``math``, and a callable it finds is called when the model
  runs, ``torch.os.system`` included. Targets must resolve to a torch operator
  (``OpOverload``, ``HigherOrderOperator``) or be one of the symbolic-size helpers torch itself
  emits (:data:`_PYTHON_OPS`).
* **Guards.** ``guards_code`` strings are Python source that ``ExportedProgram.module()``
  ``exec``-s (when sample inputs are present, which are refused above). The exports slimforge
  writes carry none, so any is refused.

The zip itself is read the way torch's reader (miniz) reads it: every entry of the central
directory, duplicates included. miniz finds entries by name *case-insensitively* and may return
any of several matches, so two entries whose names differ only in case count as duplicates. The
entry list and every JSON file the checks read are compared with what
``torch._C.PyTorchFileReader`` returns for the same bytes, so the checks see exactly what
torch will load. Callers load the checked bytes, not the file again.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch

from slimforge.errors import ArtifactError

_MODEL = r"(?P<model>[A-Za-z0-9_]+)"
# Every name torch.export.save (2.14) writes, relative to the archive's root folder, and nothing else.
_ENTRIES = {
    "fixed": re.compile(r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"),
    "model": re.compile(rf"models/{_MODEL}\.json"),
    "weights_config": re.compile(rf"data/weights/{_MODEL}_weights_config\.json"),
    "constants_config": re.compile(rf"data/constants/{_MODEL}_constants_config\.json"),
    "weight": re.compile(r"data/weights/weight_[0-9]+"),
    "tensor_constant": re.compile(r"data/constants/tensor_[0-9]+"),
    "sample_inputs": re.compile(rf"data/sample_inputs/{_MODEL}\.pt"),
    "extra": re.compile(r"extra/[A-Za-z0-9_.\-]+"),  # read by torch as text, never executed
}
_PAYLOADS = {"weights_config": ("data/weights/", "weight_"), "constants_config": ("data/constants/", "tensor_")}
_ROOT = re.compile(r"[A-Za-z0-9_.\-]+")

# Python callables torch's serializer writes for symbolic sizes (torch/_export/serde/serialize.py's
# _SYM_OPS): arithmetic and comparisons, nothing with side effects.
_PYTHON_OPS = frozenset(
    {f"_operator.{n}" for n in ("eq", "ne", "le", "ge", "lt", "gt", "neg", "pos", "mul", "add", "sub", "floordiv",
                                "mod", "pow", "truediv", "and_", "or_", "lshift", "rshift")}
    | {"math.trunc"}
    | {f"torch.{n}" for n in ("sym_not", "sym_int", "sym_float", "sym_ite", "sym_max", "sym_min", "sym_sqrt")}
)

# sympy.srepr of a shape expression: calls of these names on numbers, plain strings and each other.
_SYMPY_NAMES = frozenset({
    "Symbol", "Dummy", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs", "floor", "ceiling",
    "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Equality", "Unequality", "StrictLessThan", "LessThan", "StrictGreaterThan",
    "GreaterThan", "And", "Or", "Not", "Xor", "Piecewise", "ExprCondPair", "ITE", "Tuple", "true", "false", "BooleanTrue",
    "BooleanFalse", "oo", "zoo", "nan", "Infinity", "NegativeInfinity", "NaN", "ComplexInfinity", "One", "Zero",
    "NegativeOne", "Half", "True", "False", "None",
    # assumptions and Float's precision, as keyword names
    "integer", "positive", "negative", "nonnegative", "nonpositive", "nonzero", "zero", "real", "finite", "infinite",
    "rational", "irrational", "even", "odd", "prime", "composite", "commutative", "complex", "imaginary", "hermitian",
    "antihermitian", "algebraic", "transcendental", "noninteger", "polar", "extended_real", "extended_positive",
    "extended_negative", "extended_nonnegative", "extended_nonpositive", "extended_nonzero", "precision",
})
_EXPR_TOKEN = re.compile(
    r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"
    r"|(?P<string>'[^'\\]*')|(?P<op>[(),=\-]))"
)
_PLAIN_STRING = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
MAX_EXPRESSION = 10_000  # characters; torch writes a few dozen


def check_pt2_bytes(data: bytes, source: str) -> None:
    """Raise :class:`ArtifactError` (naming ``source`` and the entry) unless ``data`` is a .pt2
    archive that ``torch.export.load`` reads without unpickling, eval-ing or calling anything
    but torch operators."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ArtifactError(f"{source} is not a .pt2 archive (not a zip file); it is corrupt or of another format.") from None
    with archive:
        infos = archive.infolist()
        root, inner = _check_names(infos, source)
        kinds = {name: _kind(name, source) for name in inner}
        contents = {name: _read(archive, info, source) for name, info in zip(inner, infos) if kinds[name] != "weight" and kinds[name] != "tensor_constant"}
    _compare_with_torch_reader(data, inner, contents, source)
    for name, kind in kinds.items():
        if kind == "sample_inputs" and contents[name]:
            raise ArtifactError(
                f"{source} holds sample inputs ({name}), which torch.export.load may unpickle; "
                "slimforge writes .pt2 files without them and does not load this one."
            )
        if kind in _PAYLOADS:
            _check_payload_config(_json(contents[name], name, source), kind, name, set(inner), source)
    register_graph_ops(b"".join(contents[n] for n, k in kinds.items() if k == "model"))
    for name, kind in kinds.items():
        if kind == "model":
            _check_graph(_json(contents[name], name, source), name, source)


def register_graph_ops(graph: bytes) -> None:
    """Import the libraries that define the quantized operators a graph calls.

    Graphs converted by torchao's PT2E flow call quantized_decomposed / torchao ops, which exist
    only once their libraries are imported (torchao takes seconds, so only when used).
    """
    import contextlib

    if b"quantized_decomposed" not in graph and b"torchao" not in graph and b"onednn" not in graph:
        return
    with contextlib.suppress(ImportError):
        import torch.ao.quantization.fx._decomposed  # noqa: F401
    with contextlib.suppress(ImportError):
        import torchao.quantization.pt2e  # noqa: F401


# ---------------------------------------------------------------- the zip


def _check_names(infos: list[zipfile.ZipInfo], source: str) -> tuple[str, list[str]]:
    """The archive's root folder and every entry's name inside it, after refusing entries that
    lie outside the root, duplicates (case-insensitive, as torch looks names up), encrypted or
    compressed entries."""
    if not infos:
        raise ArtifactError(f"{source} is an empty zip file, not a .pt2 archive.")
    root = infos[0].filename.split("/", 1)[0]
    if "/" not in infos[0].filename or not _ROOT.fullmatch(root) or root in (".", ".."):
        raise ArtifactError(f"{source}: entry {infos[0].filename!r} is not inside an archive root folder; this is not a .pt2 archive.")
    inner = []
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if (name.startswith("/") or "\\" in name or "\x00" in name or ":" in parts[0] or ".." in parts or "" in parts
                or parts[0] != root or len(parts) < 2):
            raise ArtifactError(
                f"{source}: entry {name!r} lies outside the archive root {root + '/'!r} (absolute path, '..', another "
                "folder or an odd character); slimforge does not load this archive."
            )
        if info.flag_bits & 0x1:
            raise ArtifactError(f"{source}: entry {name!r} is encrypted; a .pt2 archive holds none.")
        if info.compress_type != zipfile.ZIP_STORED:
            raise ArtifactError(f"{source}: entry {name!r} is compressed; torch.export.save stores every entry uncompressed.")
        inner.append(name[len(root) + 1 :])
    twice = [n for n, count in Counter(n.lower() for n in inner).items() if count > 1]
    if twice:
        raise ArtifactError(
            f"{source}: entry {root}/{twice[0]} appears more than once (names compared ignoring case, as torch's reader "
            "looks them up); which copy a reader returns is undefined, so slimforge does not load this archive."
        )
    return root, inner


def _kind(name: str, source: str) -> str:
    for kind, pattern in _ENTRIES.items():
        if pattern.fullmatch(name):
            return kind
    raise ArtifactError(
        f"{source}: unexpected entry {name!r}. slimforge loads only archives laid out as torch.export.save writes them "
        "(raw weights, JSON graphs, no pickles, AOTInductor or legacy .pt files)."
    )


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> bytes:
    try:
        return archive.read(info)  # by ZipInfo, not name: this copy, CRC and local header checked
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ArtifactError(f"{source}: entry {info.filename!r} cannot be read ({exc}); the archive is corrupt.") from None


def _compare_with_torch_reader(data: bytes, inner: list[str], contents: dict[str, bytes], source: str) -> None:
    """Check torch's own reader lists the same entries and returns the same bytes for those read here."""
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        records = list(reader.get_all_records())
        theirs = {name: bytes(reader.get_record(name)) for name in contents}
    except Exception as exc:  # torch's reader raises RuntimeError with its C++ message
        raise ArtifactError(f"{source}: torch's archive reader cannot read it ({str(exc).splitlines()[0]}).") from None
    if sorted(records) != sorted(inner) or any(theirs[n] != contents[n] for n in contents):
        raise ArtifactError(f"{source}: torch's archive reader sees different entries than the zip directory lists; the archive is corrupt or crafted.")


def _json(raw: bytes, name: str, source: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{source}: {name} is not valid JSON ({exc}).") from None


# ---------------------------------------------------------------- payload configs


def _check_payload_config(config: Any, kind: str, name: str, entries: set[str], source: str) -> None:
    """Every payload a weights/constants config names is a raw tensor file of the archive."""
    folder, prefix = _PAYLOADS[kind]
    payloads = config.get("config") if isinstance(config, dict) else None
    if not isinstance(payloads, dict):
        raise ArtifactError(f"{source}: {name} has no 'config' object; the archive is corrupt.")
    for key, meta in payloads.items():
        path_name = meta.get("path_name") if isinstance(meta, dict) else None
        if not isinstance(meta, dict) or meta.get("use_pickle", False) is not False:
            raise ArtifactError(f"{source}: {name} entry {key!r} ({path_name}) is a pickled payload; slimforge refuses to unpickle it.")
        if not isinstance(path_name, str) or not re.fullmatch(rf"{prefix}[0-9]+", path_name):
            raise ArtifactError(
                f"{source}: {name} entry {key!r} names payload {path_name!r}; only raw {prefix}N tensor files are loaded "
                "(custom and opaque objects are pickles)."
            )
        if f"{folder}{path_name}" not in entries:
            raise ArtifactError(f"{source}: {name} entry {key!r} names {folder}{path_name}, which the archive does not hold.")
        if not isinstance(meta.get("tensor_meta"), dict):
            raise ArtifactError(f"{source}: {name} entry {key!r} has no tensor_meta; the archive is corrupt.")


# ---------------------------------------------------------------- the graph


def _check_graph(program: Any, name: str, source: str) -> None:
    """Every operator a serialized graph calls is a torch operator; every symbolic expression is plain sympy."""
    if not isinstance(program, dict):
        raise ArtifactError(f"{source}: {name} is not a serialized exported program.")
    if program.get("guards_code"):
        raise ArtifactError(
            f"{source}: {name} carries guards_code (Python source torch.export executes); slimforge's exports carry none "
            "and it does not load this one."
        )
    for node in _dicts(program):
        if "expr_str" in node:
            _check_expression(node["expr_str"], name, source)
        if "as_operator" in node:
            _check_operator(node["as_operator"], name, source)
        if {"target", "inputs", "outputs"} <= node.keys():
            _check_operator(node["target"], name, source)


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    """Every dict inside a JSON value (iteratively: a deep document cannot exhaust the stack)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_operator(target: Any, name: str, source: str) -> None:
    if isinstance(target, str) and target in _PYTHON_OPS:
        return
    if isinstance(target, str) and target.startswith("torch.ops."):
        resolved: Any = torch
        try:
            for part in target.split(".")[1:]:
                resolved = getattr(resolved, part)
        except Exception:
            return  # no such operator: torch.export.load refuses the graph itself, calling nothing
        if isinstance(resolved, (torch._ops.OpOverload, torch._ops.HigherOrderOperator)):
            return
    raise ArtifactError(
        f"{source}: {name} calls {str(target)[:200]!r}, which is not a torch operator; slimforge does not load graphs "
        "that call arbitrary Python functions."
    )


def _check_expression(expr: Any, name: str, source: str) -> None:
    """``expr`` is what ``sympy.srepr`` writes for a shape: calls of known names on numbers and plain strings.

    ``sympy.sympify`` evaluates the text with ``eval``; without attribute access, subscripts,
    operators or unknown names, nothing in it can reach Python's builtins."""

    def refuse(why: str) -> ArtifactError:
        return ArtifactError(f"{source}: {name} holds the symbolic shape {str(expr)[:120]!r}, which {why}; "
                             "sympy would evaluate it as Python code, so slimforge does not load this archive.")

    if not isinstance(expr, str) or len(expr) > MAX_EXPRESSION:
        raise refuse("is not a short expression")
    position = 0
    while position < len(expr.rstrip()):
        token = _EXPR_TOKEN.match(expr, position)
        if token is None:
            raise refuse(f"has {expr[position:position + 20]!r} where a name, number or bracket belongs")
        if token["name"] and token["name"] not in _SYMPY_NAMES and token["name"] not in _torch_sympy_names():
            raise refuse(f"names {token['name']!r}, not a sympy function")
        if token["string"] and not _PLAIN_STRING.fullmatch(token["string"][1:-1]):
            raise refuse(f"holds the string {token['string']}, neither a symbol name nor a number")
        position = token.end()


def _torch_sympy_names() -> frozenset[str]:
    """The sympy functions torch defines for shapes (FloorDiv, ModularIndexing, ...)."""
    global _TORCH_SYMPY
    if _TORCH_SYMPY is None:
        import sympy
        from torch.utils._sympy import functions

        _TORCH_SYMPY = frozenset(
            n for n, v in vars(functions).items() if not n.startswith("_") and isinstance(v, type) and issubclass(v, sympy.Basic)
        )
    return _TORCH_SYMPY


_TORCH_SYMPY: frozenset[str] | None = None

__all__ = ["check_pt2_bytes", "register_graph_ops"]
