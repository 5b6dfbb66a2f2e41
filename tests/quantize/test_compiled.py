"""The torch backend as users run it: compiled by inductor into int8 kernels (slow: compiles)."""

from __future__ import annotations

import pytest
import torch

from slimforge.quantize import QuantizeConfig, agreement, load_quantized, quantize, save_quantized

pytest.importorskip("torchao")


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["trained_cnn", "trained_mlp"])
def test_compiled_int8_matches_the_reference_graph_and_reloads(model_name, request, calibration, test_batches, tmp_path):
    model = request.getfixturevalue(model_name)
    result = quantize(model, calibration, QuantizeConfig(backend="torch", calib_batches=4, compile=True))
    x = test_batches[0][0]
    compiled = result.quantized(x)
    result.quantized.compile = False
    reference = result.quantized(x)
    result.quantized.compile = True
    # oneDNN's int8 kernels and the reference quantize/dequantize graph round alike, up to
    # off-by-one requantization steps. (Without reduce_range on a CPU lacking VNNI they did not:
    # int16 saturation moved logits by up to 10% of their range.)
    assert (compiled - reference).abs().max() <= 0.02 * reference.abs().max()
    assert agreement(model, result.quantized, test_batches) >= 0.97

    save_quantized(result, tmp_path)
    loaded = load_quantized(tmp_path)
    torch.testing.assert_close(loaded(x), compiled, atol=1e-4, rtol=0)
