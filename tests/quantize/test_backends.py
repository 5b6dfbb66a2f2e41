"""Contract tests over every quantization backend, plus the checks users hit first."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from slimforge.errors import ArtifactError, ConfigError, DataError, UnknownNameError
from slimforge.quantize import (
    BACKENDS,
    QuantizationError,
    QuantizeConfig,
    accuracy,
    agreement,
    choose_mode,
    list_backends,
    load_quantized,
    quantizable_layers,
    quantize,
    save_quantized,
)

pytest.importorskip("onnxruntime")
pytest.importorskip("torchao")

# compile=False: the torch backend's converted graph runs eagerly here (same int8 rounding);
# compiling takes tens of seconds and is covered by the slow tests.
FAST = {"compile": False, "calib_batches": 4}
# Backends for Conv/Linear models; the embedding-table backends (fbgemm-int*) are tested in tests/recsys.
DENSE_BACKENDS = [b for b in list_backends() if set(getattr(BACKENDS.get(b), "layer_types", (nn.Linear,))) & {nn.Linear, nn.Conv2d}]


@pytest.mark.parametrize("backend", DENSE_BACKENDS)
@pytest.mark.parametrize("model_name", ["trained_cnn", "trained_mlp"])
def test_backend_contract(backend, model_name, request, calibration, test_batches, tmp_path):
    model = request.getfixturevalue(model_name)
    result = quantize(model, calibration, QuantizeConfig(backend=backend, **FAST))
    q = result.quantized
    static_ok = "static" in getattr(BACKENDS.get(backend), "modes", ("static", "dynamic"))
    assert result.info["mode"] == ("static" if model_name == "trained_cnn" and static_ok else "dynamic")

    # Shape kept, finite, and the same predictions as fp32 on confident (trained) inputs.
    x = test_batches[0][0]
    logits = q(x)
    assert logits.shape == (x.shape[0], 10) and torch.isfinite(logits).all()
    assert agreement(model, q, test_batches) >= 0.97
    assert accuracy(q, test_batches) >= accuracy(model, test_batches) - 0.03

    # Save/load round trip: same outputs, JSON description, no pickle anywhere.
    save_quantized(result, tmp_path)
    info = json.loads((tmp_path / "quantized.json").read_text())
    assert info["backend"] == backend and (tmp_path / info["runtime_file"]).is_file()
    loaded = load_quantized(tmp_path)
    torch.testing.assert_close(loaded(x), logits, atol=1e-5, rtol=0)


def test_onnxruntime_static_graph_is_qdq_and_dynamic_is_integer_matmul(trained_cnn, trained_mlp, calibration, tmp_path):
    import onnx

    def op_types(model, **kw):
        out = tmp_path / kw.get("mode", "auto")
        save_quantized(quantize(model, calibration, QuantizeConfig(backend="onnxruntime", **FAST, **kw)), out)
        return {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}

    static = op_types(trained_cnn)
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= static
    dynamic = op_types(trained_mlp, mode="dynamic")
    assert "DynamicQuantizeLinear" in dynamic and ("MatMulInteger" in dynamic or "DynamicQuantizeMatMul" in dynamic)


def test_first_and_last_layers_stay_fp32_in_the_onnx_graph(trained_cnn, calibration, tmp_path):
    import onnx
    from onnx import numpy_helper

    result = quantize(trained_cnn, calibration, QuantizeConfig(backend="onnxruntime", fp32_first_last=True, **FAST))
    assert result.info["fp32_layers"] == ["conv1", "fc"]
    save_quantized(result, tmp_path)
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    dtypes = {init.name: numpy_helper.to_array(init).dtype for init in graph.initializer}
    conv_inputs = {n.input[1] for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")}
    # conv1's weight feeds its Conv directly as float; layer1's weight goes through a DequantizeLinear.
    assert any(name.endswith("conv1.weight") and not name.startswith("layer") for name in conv_inputs)
    assert any("layer1.0.conv1.weight" in name and str(dtypes[name]) == "int8" for name in dtypes)


def test_torch_backend_keeps_named_layers_fp32(trained_mlp, calibration):
    full = quantize(trained_mlp, calibration, QuantizeConfig(backend="torch", mode="static", **FAST))
    kept = quantize(trained_mlp, calibration, QuantizeConfig(backend="torch", mode="static", fp32_layers=("net.1",), **FAST))

    def quantize_ops(q):
        return sum("quantize_per_tensor" in str(n.target) for n in q.quantized.graph.graph.nodes)

    assert quantize_ops(kept) < quantize_ops(full)
    assert kept.info["fp32_layers"] == ["net.1"]


def test_auto_mode_is_static_for_convolutions_and_dynamic_for_linear_models(trained_cnn, trained_mlp):
    assert choose_mode(trained_cnn) == "static"
    assert choose_mode(trained_mlp) == "dynamic"


def test_model_without_quantizable_layers_is_a_clear_error(calibration):
    model = nn.Sequential(nn.Flatten(), nn.ReLU())
    with pytest.raises(QuantizationError, match="no quantizable layer"):
        quantize(model, calibration, QuantizeConfig(**FAST))


@pytest.mark.parametrize("backend", DENSE_BACKENDS)
def test_calibration_of_the_wrong_shape_is_a_clear_error(backend, trained_cnn):
    wrong = [torch.randn(8, 3, 32, 32)]  # RGB 32x32 for a 1-channel model
    with pytest.raises(DataError, match=r"\(3, 32, 32\)"):
        quantize(trained_cnn, wrong, QuantizeConfig(backend=backend, **FAST))


def test_mixed_and_empty_calibration_are_clear_errors(trained_mlp):
    mixed = [torch.randn(4, 1, 28, 28), torch.randn(4, 1, 14, 14)]
    with pytest.raises(DataError, match="batch 1"):
        quantize(trained_mlp, mixed, QuantizeConfig(**FAST))
    with pytest.raises(DataError, match="empty"):
        quantize(trained_mlp, [], QuantizeConfig(**FAST))
    with pytest.raises(DataError, match="int64"):
        quantize(trained_mlp, [torch.zeros(4, 1, 28, 28, dtype=torch.long)], QuantizeConfig(**FAST))
    with pytest.raises(DataError, match="NaN or infinite"):
        quantize(trained_mlp, [torch.full((4, 1, 28, 28), float("nan"))], QuantizeConfig(**FAST))


def test_corrupt_onnx_artifact_fails_at_load_naming_the_file(trained_mlp, calibration, tmp_path):
    save_quantized(quantize(trained_mlp, calibration, QuantizeConfig(backend="onnxruntime", **FAST)), tmp_path)
    data = bytearray((tmp_path / "model.onnx").read_bytes())
    data[100:200] = b"\xff" * 100
    (tmp_path / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=str(tmp_path / "model.onnx")):
        load_quantized(tmp_path)


def test_torch_dynamic_on_a_cnn_counts_only_its_linear_layers(trained_cnn, calibration):
    result = quantize(trained_cnn, calibration, QuantizeConfig(backend="torch-dynamic", **FAST))
    linear = [n for n, m in trained_cnn.named_modules() if isinstance(m, nn.Linear)]
    assert result.info["quantizable_layers"] == linear


def test_bad_config_names_are_clear_errors(trained_mlp, calibration):
    with pytest.raises(UnknownNameError, match="onnxruntime"):
        quantize(trained_mlp, calibration, QuantizeConfig(backend="onnxrt"))
    with pytest.raises(ConfigError, match="net.9"):
        quantize(trained_mlp, calibration, QuantizeConfig(fp32_layers=("net.9",)))
    with pytest.raises(ConfigError, match="mode"):
        QuantizeConfig(mode="int4")


def test_every_layer_fp32_is_refused(trained_mlp, calibration):
    layers = tuple(quantizable_layers(trained_mlp))
    with pytest.raises(QuantizationError, match="nothing to quantize"):
        quantize(trained_mlp, calibration, QuantizeConfig(fp32_layers=layers, **FAST))


def test_load_of_a_folder_without_description_is_a_clear_error(tmp_path):
    from slimforge.errors import ArtifactError

    with pytest.raises(ArtifactError, match="quantized.json"):
        load_quantized(tmp_path)


@pytest.mark.slow
def test_torch_backend_serves_several_batch_sizes():
    """Compiled int8 graphs must not break when the batch size changes after calibration."""
    import torch

    import slimforge
    from slimforge.quantize import QuantizeConfig, quantize

    model = slimforge.create_model("cnn", num_classes=10, in_channels=1, width=8).eval()
    calibration = [(torch.randn(64, 1, 8, 8), torch.zeros(64, dtype=torch.long)) for _ in range(2)]
    q = quantize(model, calibration, QuantizeConfig(backend="torch", calib_batches=2)).quantized
    for bs in (64, 32, 256):
        x = torch.randn(bs, 1, 8, 8)
        assert q(x).shape == (bs, 10)
        assert (q(x).argmax(1) == model(x).argmax(1)).float().mean() > 0.5


def test_a_conversion_that_quantized_nothing_is_refused_not_labelled_int8():
    pytest.importorskip("torchao")
    from slimforge.quantize.backend_torch import check_quantized

    fp32_graph = torch.fx.symbolic_trace(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()))
    with pytest.raises(QuantizationError, match="quantized no layer"):
        check_quantized(fp32_graph)


def test_pt2e_capture_records_where_each_layer_came_from(trained_cnn, calibration):
    """X86InductorQuantizer matches layers through ``source_fn_stack``; torch 2.11's non-strict
    export leaves it out and nothing got quantized there, so the torch backend exports strictly."""
    from slimforge.quantize.backend_torch import capture

    x = calibration[0][0] if isinstance(calibration[0], (tuple, list)) else calibration[0]
    graph = capture(trained_cnn.eval(), x)
    layers = [n for n in graph.graph.nodes if n.op == "call_function" and n.target in (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)]
    assert len(layers) == len(quantizable_layers(trained_cnn))
    assert all("source_fn_stack" in n.meta for n in layers)


def test_pt2e_capture_falls_back_to_non_strict_export(trained_cnn, calibration, monkeypatch):
    from slimforge.quantize import backend_torch

    real = backend_torch.export_program

    def strict_fails(model, example, dynamic_batch=True, strict=False):
        if strict:
            raise RuntimeError("dynamo cannot trace this model")
        return real(model, example, dynamic_batch=dynamic_batch, strict=False)

    monkeypatch.setattr(backend_torch, "export_program", strict_fails)
    x = calibration[0][0] if isinstance(calibration[0], (tuple, list)) else calibration[0]
    graph = backend_torch.capture(trained_cnn.eval(), x)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), trained_cnn(x))


def test_onnxruntime_keeps_exactly_the_named_layers_in_fp32():
    """Layers are found by module scope, not by the op's own name (a layer called ``linear`` once took the
    first linear op), and a Gemm kept in fp32 stays float after dynamic quantization renames it."""
    import onnx

    from slimforge.quantize import QuantizeConfig, quantize

    class Named(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Linear(16, 32)
            self.linear = torch.nn.Linear(32, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(torch.relu(self.body(x)))

    torch.manual_seed(0)
    model = Named().eval()
    batches = [torch.randn(8, 16) for _ in range(2)]

    def float_layers(fp32_layers: tuple[str, ...]) -> list[str]:
        result = quantize(model, batches, QuantizeConfig(backend="onnxruntime", mode="dynamic", calib_batches=2, fp32_layers=fp32_layers))
        graph = onnx.load_from_string(result.quantized.model_bytes).graph
        weights = {init.name for init in graph.initializer}
        # A float Gemm/MatMul with a constant weight ('model.body.weight', or '..._Transposed' once ORT made it a MatMul).
        return sorted(i.split(".weight")[0] for node in graph.node if node.op_type in ("Gemm", "MatMul") for i in node.input if i in weights)

    assert float_layers(()) == []
    assert float_layers(("body",)) == ["model.body"]
    assert float_layers(("linear",)) == ["model.linear"]


def _matmul_graph(recorded_v_shape):
    """x (2, 4) @ W (4, 3) -> h, h @ V (3, 2) -> y; ``h`` recorded as (2, 3), the weight ``V`` with the given shape."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.ones((4, 3), np.float32), "W"), numpy_helper.from_array(np.ones((3, 2), np.float32), "V")]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("MatMul", ["h", "V"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        inits,
        value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, [2, 3]), helper.make_tensor_value_info("V", TensorProto.FLOAT, recorded_v_shape)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_recorded_weight_shapes_are_dropped_before_quantizing(tmp_path, trained_mlp, calibration):
    # onnxruntime 1.30's dynamic quantizer transposes a Gemm's weight in place and then fails its
    # own shape inference on the stale recorded shape; torch's exporter records one for every weight.
    import onnx
    from onnx.shape_inference import InferenceError, infer_shapes

    from slimforge.quantize.backend_onnxruntime import without_initializer_shapes

    stale = tmp_path / "stale.onnx"
    onnx.save(_matmul_graph([2, 3]), str(stale))  # V (3, 2) recorded as (2, 3), as after that transpose
    with pytest.raises(InferenceError, match="differ in dimension 0"):
        infer_shapes(onnx.load(str(stale)))
    clean = without_initializer_shapes(stale, tmp_path / "clean.onnx")
    assert clean == tmp_path / "clean.onnx"
    model = onnx.load(str(clean))
    assert [vi.name for vi in model.graph.value_info] == ["h"]  # activations keep theirs
    infer_shapes(model, strict_mode=True)
    assert without_initializer_shapes(clean, tmp_path / "again.onnx") == clean  # nothing to drop: no copy
    assert not (tmp_path / "again.onnx").exists()

    # The backend's own graph, the one onnxruntime's quantizer reads, records no weight shapes.
    prepared = BACKENDS.get("onnxruntime").prepare(trained_mlp, [x for x, _ in calibration[:2]], "dynamic", QuantizeConfig(**FAST))
    graph = onnx.load(str(prepared.fp32_path)).graph
    weights = {init.name for init in graph.initializer}
    assert weights and not weights & {vi.name for vi in graph.value_info}


def test_transformer_fusion_keeps_the_optimisers_prints_off_stdout(tmp_path, monkeypatch, capsys):
    # onnxruntime's transformer optimiser prints "failed in shape inference ..." on graphs it cannot fully infer.
    import shutil

    import onnx
    import onnxruntime.transformers.optimizer as optimizer

    from slimforge.quantize.backend_onnxruntime import fuse_transformer

    plain = tmp_path / "plain.onnx"
    onnx.save(_matmul_graph([3, 2]), str(plain))

    class Optimised:
        def save_model_to_file(self, out):
            shutil.copy(plain, out)

    def noisy_optimize_model(path, **kwargs):
        print("failed in shape inference <class 'AssertionError'>")
        return Optimised()

    monkeypatch.setattr(optimizer, "optimize_model", noisy_optimize_model)
    assert fuse_transformer(plain, tmp_path / "fused.onnx", torch.ones(2, 4)) == tmp_path / "fused.onnx"
    assert capsys.readouterr().out == ""
