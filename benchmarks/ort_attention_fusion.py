"""Would fusing attention lift ONNX Runtime's dynamic int8 MiniLM over its own fp32? (issue 6)

    python benchmarks/ort_attention_fusion.py [--threads 1] [--reps 30]

MiniLM-L6 (the packaged model, a seeded random 2-class head: latency does not depend on the
weights' values) on token ids, batch 32 x 48 (texts padded from 20 to 47 tokens). Each graph runs
fp32 and dynamic int8 (per-channel weights, reduce_range as slimforge's onnxruntime backend on a
CPU without VNNI), all sessions timed call by call in rotating order, medians:

- ``slimforge``: the dynamo export with ONNX Runtime's bias+GELU / skip-LayerNorm fusions
  (``fuse_transformer``), which the onnxruntime backend quantizes today;
- ``ortopt``: onnxscript's ``optimize_for_ort`` (attention fused, Q/K/V packed into one weight);
- ``mha``: the same fusions up to MultiHeadAttention, Q/K/V left as three MatMuls (private
  onnxscript helpers: a measurement, not something slimforge ships);
- ``torchscript``: the deprecated TorchScript exporter with eager attention, then ONNX Runtime's
  BERT optimizer (EmbedLayerNorm + Attention, which int8 turns into QAttention).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from slimforge.export import OnnxSession, export_onnx_file  # noqa: E402
from slimforge.models import create_model  # noqa: E402
from slimforge.quantize.backend_onnxruntime import fuse_transformer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantize_speed import interleaved_medians  # noqa: E402


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="attn-fusion-"))
    torch.manual_seed(0)
    model = create_model("hf-text-classifier", num_classes=2).eval()
    x = torch.randint(1000, 5000, (32, 48), generator=torch.Generator().manual_seed(0))
    for i in range(32):
        x[i, 20 + i % 28 :] = 0  # pad id 0
    plain = export_onnx_file(model, x, work / "plain.onnx")
    graphs = {
        "slimforge": fuse_transformer(plain, work / "slimforge.onnx", x),
        "ortopt": _optimize_for_ort(plain, work / "ortopt.onnx"),
        "mha": _mha_only(plain, work / "mha.onnx"),
        "torchscript": _torchscript_bert(model, x, work / "torchscript.onnx"),
    }
    sessions, quantized_ops = {}, {}
    for name, path in graphs.items():
        int8 = _quantize(path, work / f"{name}.int8.onnx")
        sessions[f"{name} fp32"] = OnnxSession(path, threads=args.threads)
        sessions[f"{name} int8"] = OnnxSession(int8, threads=args.threads)
        quantized_ops[name] = _op_counts(int8)
    medians = interleaved_medians(sessions, x, args.reps, warmup=2)
    print(f"# batch 32 x 48, {args.threads} thread(s), {args.reps} interleaved calls, medians")
    print("| graph | fp32 ms | int8 ms | int8 / own fp32 | attention ops in the int8 graph |")
    print("|---|---:|---:|---:|---|")
    for name in graphs:
        fp32, int8 = medians[f"{name} fp32"] * 1e3, medians[f"{name} int8"] * 1e3
        print(f"| {name} | {fp32:.1f} | {int8:.1f} | {fp32 / int8:.2f}x | {quantized_ops[name]} |")


def _quantize(path: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                     extra_options={"DefaultTensorType": 1})  # fused com.microsoft ops have no inferred output type
    return out


def _op_counts(path: Path) -> str:
    import collections

    import onnx

    counts = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    found = {op: counts[op] for op in ("Attention", "QAttention", "MultiHeadAttention", "MatMulInteger") if counts[op]}
    return ", ".join(f"{op} {n}" for op, n in found.items())


def _optimize_for_ort(plain: Path, out: Path) -> Path:
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    model, _ = optimize_for_ort(ir.load(str(plain)))
    ir.save(model, str(out))
    return out


def _mha_only(plain: Path, out: Path) -> Path:
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import _core as core

    model = ir.load(str(plain))
    core.rewrite(model, [core._gemm_to_matmul_add.gemm_to_matmul_add_rule])
    model = core._pre_optimize(model)
    for fuse, options in ((core.fuse_erfgelu, {}), (core.fuse_skip_layer_normalization, {}), (core.fuse_sdpa, {"apply_shape_inference": True}),
                          (core.fuse_mha1, {}), (core.fuse_mha2, {}), (core.fuse_mha_scale, {}), (core.fuse_mha_bias, {}),
                          (core.fuse_gelu, {}), (core.fuse_bias_gelu, {})):  # fuse_xformers without fuse_attention (Q/K/V packing)
        fuse(model, **options)
    core.optimize(model)
    core.rewrite(model, core.ORT_PATTERN_REWRITE_RULES)
    for step in (core.common_passes.LiftConstantsToInitializersPass(lift_all_constants=False, size_limit=1),
                 core.common_passes.RemoveInitializersFromInputsPass(), core.common_passes.ShapeInferencePass()):
        step(model)
    ir.save(model, str(out))
    return out


def _torchscript_bert(model: torch.nn.Module, x: torch.Tensor, out: Path) -> Path:
    import warnings

    from onnxruntime.transformers.optimizer import optimize_model

    model.hf.set_attn_implementation("eager")  # the attention pattern ONNX Runtime's BERT fusion knows
    raw = out.with_suffix(".raw.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(raw), dynamo=False, opset_version=17, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch", 1: "length"}, "logits": {0: "batch"}})
    model.hf.set_attn_implementation("sdpa")
    config = model.hf.config
    optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
                   opt_level=0).save_model_to_file(str(out))
    return out


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=30)
    return p.parse_args()


if __name__ == "__main__":
    main()
