"""An int8 folder of the ``onnxruntime`` backend as one deployable ONNX file (``export_quantized``).

It lives in ``quantize``, above :mod:`slimforge.export` whose tools it uses: the export module
knows nothing of int8 folders.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from slimforge.artifacts import atomic_write_bytes, write_json
from slimforge.errors import ConfigError
from slimforge.export import (
    DEFAULT_OPSET, EXPORT_INFO_FILE, ONNX_FILE, ExportConfig, ExportMismatchError, ExportResult, export_onnx_file, load_onnx,
    max_abs_difference, sample_inputs, written_opset,
)
from slimforge.files import final_folder, staged_output
from slimforge.preprocess import Preprocess, PreprocessSpec
from slimforge.quantize.core import QUANT_INFO_FILE, read_quantized_info


def export_quantized(folder: str | Path, out: str | Path, config: ExportConfig = ExportConfig()) -> ExportResult:
    """An int8 folder of the ``onnxruntime`` backend as a deployable ONNX file in ``out``: its int8
    graph with the recorded preprocessing in front (``config.preprocess``), so plain ONNX Runtime
    runs it on raw inputs (batch, *raw_shape) float32, as an fp32 export does.

    Checked on random raw batches against the preprocessing graph and the int8 graph run one
    after the other in ONNX Runtime (the same operators, so the difference is rounding only)."""
    import onnx

    folder = Path(folder)
    info = read_quantized_info(folder)
    if info["backend"] != "onnxruntime":
        raise ConfigError(f"{folder} is an int8 model of the {info['backend']!r} backend; only 'onnxruntime' int8 folders export (to onnx). "
                          "Export the fp32 model it was made from, or quantize with --backend onnxruntime.")
    if config.format != "onnx":
        raise ConfigError(f"{folder} is an int8 ONNX model; it exports to onnx only (--format onnx), not {config.format}.")
    recorded = (info.get("source_model") or {}).get("preprocess") if isinstance(info.get("source_model"), dict) else None
    int8_file = folder / info["runtime_file"]
    with staged_output(Path(out)) as work:
        final = final_folder(work)
        start = time.perf_counter()
        if recorded is None or not config.preprocess:  # nothing to put in front: the int8 graph as it is
            pre = None
            atomic_write_bytes(work / ONNX_FILE, int8_file.read_bytes())
            diff = 0.0
            example = torch.zeros(2, *(info.get("input_shape") or []))
        else:
            pre = Preprocess(PreprocessSpec.from_json(recorded, str(folder / QUANT_INFO_FILE)))
            example = pre.example(2)
            front = export_onnx_file(pre, example, work / ".preprocess.onnx", DEFAULT_OPSET, config.dynamic_batch)
            merged = _prepend(onnx.load(str(front)), onnx.load(str(int8_file)))
            atomic_write_bytes(work / ONNX_FILE, merged.SerializeToString())
            first, second, whole = load_onnx(front), load_onnx(int8_file), load_onnx(work / ONNX_FILE)
            diff = max_abs_difference(lambda x: second(first(x)), whole, sample_inputs(example, config))
            front.unlink()
            if not diff <= config.atol:
                raise ExportMismatchError(f"the int8 graph with its preprocessing differs from the two run apart by {diff:.3g}, more than atol={config.atol:g}.")
        result = ExportResult(path=final / ONNX_FILE, format="onnx", exporter=f"int8 graph of {folder.resolve()} (onnxruntime)" + (" with its preprocessing in front" if pre else ""),
                              opset=written_opset(work / ONNX_FILE), max_abs_diff=diff, input_shape=tuple(example.shape),
                              seconds=round(time.perf_counter() - start, 3))
        inputs = {"inputs": "raw" if pre is not None else "network", "preprocess": pre.spec.to_json() if pre is not None else None}
        write_json(work / EXPORT_INFO_FILE, {**result.to_json(), **inputs, "config": asdict(config), "machine": platform.machine()})
    return result


def _prepend(front: Any, graph: Any) -> Any:
    """One ONNX model: ``front``'s output feeds ``graph``'s input; the input is named ``x``, the output ``logits``."""
    import onnx

    front = onnx.compose.add_prefix(front, "pre_")  # the two graphs' names never collide
    graph = onnx.compose.add_prefix(graph, "int8_")
    merged = onnx.compose.merge_models(front, graph, io_map=[(front.graph.output[0].name, graph.graph.input[0].name)])
    for old, new in ((merged.graph.input[0].name, "x"), (merged.graph.output[0].name, "logits")):
        for node in merged.graph.node:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]
    for value in merged.graph.value_info:
        value.name = {merged.graph.input[0].name: "x", merged.graph.output[0].name: "logits"}.get(value.name, value.name)
    merged.graph.input[0].name, merged.graph.output[0].name = "x", "logits"
    return merged
