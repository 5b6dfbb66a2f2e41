"""SmoothQuant: exact in fp32, closer to fp32 in int8, saved and reloaded with the artifact."""

from __future__ import annotations

import copy
import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from slimforge.errors import ArtifactError, ConfigError
from slimforge.models import create_model
from slimforge.quantize import QuantizationError, QuantizeConfig, load_quantized, quantize, save_quantized
from slimforge.quantize.smooth import ScaleInput, apply_smoothing, smoothing_record, smoothing_scales

OUTLIERS = torch.tensor([40.0, 25.0] + [1.0] * 14)  # two input channels far larger than the rest, as after a LayerNorm


def outlier_model_and_batches() -> tuple[torch.nn.Module, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = create_model("mlp", num_classes=3, in_channels=1, input_size=(16,), hidden=(32,)).eval()
    gen = torch.Generator().manual_seed(1)
    return model, [torch.randn(64, 1, 16, generator=gen) * OUTLIERS for _ in range(4)]


def test_smoothing_keeps_fp32_outputs_and_evens_out_the_input_channels():
    model, batches = outlier_model_and_batches()
    scales = smoothing_scales(model, batches, alpha=0.8, min_gain=None)  # every layer, whatever it gains
    assert set(scales) == {"net.1", "net.3"}
    smoothed = apply_smoothing(model, scales)
    seen = {}

    def record_input(module, args, out) -> None:
        seen["x"] = args[0]  # what the layer multiplies: after the smoothing pre-hook

    smoothed.net[1].register_forward_hook(record_input)
    with torch.no_grad():
        torch.testing.assert_close(smoothed(batches[0]), model(batches[0]), atol=1e-5, rtol=1e-5)
    original, recorded = smoothing_record(smoothed)
    assert original is model and set(recorded) == {"net.1", "net.3"} and smoothing_record(model) is None
    assert not model.net[1]._forward_pre_hooks and not torch.equal(model.net[1].weight, smoothed.net[1].weight)
    before = batches[0].reshape(64, 16).abs().amax(0)
    after = seen["x"].reshape(64, 16).abs().amax(0)
    assert after.max() / after.min() < (before.max() / before.min()) / 5  # the outlier channels are tamed


def test_a_linear_with_a_tied_weight_is_not_smoothed():
    """Scaling a weight another module shares (an LM head tied to its embedding) would change that module too."""

    class Tied(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(16, 16)
            self.body = torch.nn.Linear(16, 16)
            self.head = torch.nn.Linear(16, 16, bias=False)
            self.head.weight = self.embed.weight

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(self.embed(ids)))

    model = Tied().eval()
    ids = [torch.randint(0, 16, (4, 5))]
    scales = smoothing_scales(model, ids, alpha=0.5)
    assert set(scales) == {"body"}
    with torch.no_grad():
        torch.testing.assert_close(apply_smoothing(model, scales)(ids[0]), model(ids[0]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["torch-dynamic", "onnxruntime"])
def test_smoothquant_brings_dynamic_int8_closer_to_fp32_and_survives_save_and_load(backend, tmp_path):
    model, batches = outlier_model_and_batches()
    x = batches[0]
    errors = {}
    for alpha in (None, 0.8):
        config = QuantizeConfig(backend=backend, mode="dynamic", calib_batches=4, smooth_alpha=alpha, fp32_layers=("net.3",))
        result = quantize(model, batches, config)
        assert result.info["smoothed_layers"] == ([] if alpha is None else ["net.1"])  # fp32 layers are left alone
        with torch.no_grad():
            errors[alpha] = (result.quantized(x) - model(x)).abs().mean().item()
        save_quantized(result, tmp_path / str(alpha))
        with torch.no_grad():
            torch.testing.assert_close(load_quantized(tmp_path / str(alpha))(x), result.quantized(x), atol=0.0, rtol=0.0)
        if backend == "torch-dynamic":  # its artifact's fp32 weights are the model's own, not the smoothed ones
            from slimforge import loading

            with torch.no_grad():
                torch.testing.assert_close(loading.load(tmp_path / str(alpha), quantized=False)(x), model(x))
    assert errors[0.8] < 0.8 * errors[None]


def test_smoothing_is_refused_out_of_range_and_by_the_pt2e_backend():
    model, batches = outlier_model_and_batches()
    with pytest.raises(ConfigError, match="smooth_alpha must be in"):
        QuantizeConfig(smooth_alpha=1.5)
    with pytest.raises(QuantizationError, match="does not support SmoothQuant.*torch-dynamic"):
        quantize(model, batches, QuantizeConfig(backend="torch", smooth_alpha=0.5))
    # Static QDQ would quantize the multiply's own input, outliers included: dynamic only.
    with pytest.raises(QuantizationError, match="'onnxruntime' does not support SmoothQuant.*in static mode"):
        quantize(model, batches, QuantizeConfig(backend="onnxruntime", mode="static", smooth_alpha=0.5))


def test_a_parametrized_weight_is_not_smoothed():
    """Weight norm recomputes the weight from other parameters: scaling it in place would not stick, the input scaling would."""
    from torch.nn.utils.parametrizations import weight_norm

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), weight_norm(torch.nn.Linear(8, 3))).eval()
    batches = [torch.randn(16, 8) * 10]
    scales = smoothing_scales(model, batches, alpha=0.8, min_gain=None)
    assert set(scales) == {"0"}
    with torch.no_grad():
        torch.testing.assert_close(apply_smoothing(model, scales)(batches[0]), model(batches[0]), atol=1e-5, rtol=1e-5)


def test_a_smoothed_artifact_without_its_scales_is_a_clear_error(tmp_path):
    model, batches = outlier_model_and_batches()
    config = QuantizeConfig(backend="torch-dynamic", mode="dynamic", calib_batches=2, smooth_alpha=0.5, smooth_min_gain=None)
    save_quantized(quantize(model, batches, config), tmp_path)
    assert json.loads((tmp_path / "quantized.json").read_text())["smoothed_layers"] == ["net.1", "net.3"]
    scales = load_file(tmp_path / "smoothing.safetensors")
    for groups, error in (('[["net.1", "net.3"]]', "does not fit.*unequal scales"), ("[1]", "not a list of lists"), ("[[", "unreadable")):
        save_file(scales, tmp_path / "smoothing.safetensors", metadata={"groups": groups})
        with pytest.raises(ArtifactError, match=error):
            load_quantized(tmp_path)
    (tmp_path / "smoothing.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ArtifactError, match="smoothing.safetensors is not a readable"):
        load_quantized(tmp_path)
    (tmp_path / "smoothing.safetensors").unlink()
    with pytest.raises(ArtifactError, match="smoothing.safetensors is missing"):
        load_quantized(tmp_path)


def test_only_layers_that_gain_are_smoothed():
    """The hidden layer reads outlier channels and gains; the head reads ReLU outputs of even range and is left alone."""
    model, batches = outlier_model_and_batches()
    assert set(smoothing_scales(model, batches, alpha=0.8)) == {"net.1"}
    assert set(smoothing_scales(model, batches, alpha=0.8, min_gain=None)) == {"net.1", "net.3"}


class Attention(torch.nn.Module):
    """Three Linears reading one input, as a transformer's query, key and value do."""

    def __init__(self) -> None:
        super().__init__()
        self.query, self.key, self.value = (torch.nn.Linear(16, 8) for _ in range(3))
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = (self.query(x) @ self.key(x).transpose(-1, -2)).softmax(-1)
        return self.out(weights @ self.value(x))


def test_linears_reading_one_input_share_one_scale_and_one_multiply(monkeypatch):
    torch.manual_seed(0)
    model = Attention().eval()
    batches = [torch.randn(4, 5, 16) * OUTLIERS for _ in range(2)]
    scales = smoothing_scales(model, batches, alpha=0.8, min_gain=None)
    assert scales["query"] is scales["key"] is scales["value"] and scales["out"] is not scales["query"]
    w_max = torch.cat([model.query.weight, model.key.weight, model.value.weight]).abs().amax(0)
    x_max = torch.cat(batches).reshape(-1, 16).abs().amax(0)
    torch.testing.assert_close(scales["query"], x_max**0.8 / w_max**0.2)  # the group's weights together
    smoothed = apply_smoothing(model, scales)
    calls = []
    original = ScaleInput._scale
    monkeypatch.setattr(ScaleInput, "_scale", lambda self, x: calls.append(x.shape[-1]) or original(self, x))
    for copy_ in (smoothed, copy.deepcopy(smoothed)):  # a copy shares its hooks the same way
        calls.clear()
        with torch.no_grad():
            torch.testing.assert_close(copy_(batches[0]), model(batches[0]), atol=1e-5, rtol=1e-5)
        assert calls == [16, 8]  # once for query, key and value; once for out


def hook_of(module: torch.nn.Module) -> ScaleInput:
    (hook,) = module._forward_pre_hooks.values()
    return hook


def test_a_shared_product_is_not_reused_for_another_or_changed_input_or_with_autograd():
    torch.manual_seed(0)
    linears = torch.nn.ModuleList(torch.nn.Linear(16, 4) for _ in range(2)).eval()
    s = torch.rand(16) + 0.5
    smoothed = apply_smoothing(linears, {"0": s, "1": s})  # one scale tensor: one hook
    assert hook_of(smoothed[0]) is hook_of(smoothed[1])
    x, y = torch.randn(3, 16), torch.randn(3, 16)
    with torch.no_grad():
        smoothed[0](x)
        torch.testing.assert_close(smoothed[1](x), linears[1](x))  # the shared product
        assert hook_of(smoothed[0])._cache is None  # let go of by its last user
        smoothed[0](x)
        torch.testing.assert_close(smoothed[1](y), linears[1](y))  # another tensor
        smoothed[0](x)
        x.mul_(2)  # changed in place after the product was made
        torch.testing.assert_close(smoothed[1](x), linears[1](x))
        smoothed[0](x)  # leaves a product for the second user...
    x.requires_grad_(True)
    smoothed[1](x).sum().backward()  # ...which autograd must not take: it has no graph
    torch.testing.assert_close(x.grad, linears[1].weight.sum(0).expand(3, 16))
    assert hook_of(smoothed[0])._cache is None
    pickle.dumps(hook_of(smoothed[0]))  # a hook holds no weak references to pickle


def test_layers_reading_an_input_changed_in_between_are_not_grouped():
    class InPlace(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(16, 4), torch.nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            first = self.a(x)
            x.mul_(2)
            return first + self.b(x)

    torch.manual_seed(0)
    model = InPlace().eval()
    batches = [torch.randn(8, 16) * OUTLIERS]
    for context in (torch.no_grad, torch.inference_mode):  # calibrating inside inference mode too
        with context():
            batches = [torch.randn(8, 16) * OUTLIERS]
            scales = smoothing_scales(model, batches, alpha=0.8, min_gain=None)
            assert scales["a"] is not scales["b"]
            expected = model(batches[0].clone())
            torch.testing.assert_close(apply_smoothing(model, scales)(batches[0]), expected, atol=1e-4, rtol=1e-5)


def test_no_shared_product_outlives_a_call_of_the_whole_model():
    """Inference tensors count no changes in place: a product left by a partial call must not reach the next forward."""
    torch.manual_seed(0)
    model = Attention().eval()
    batches = [torch.randn(4, 5, 16) * OUTLIERS]
    smoothed = apply_smoothing(model, smoothing_scales(model, batches, alpha=0.8, min_gain=None))
    with torch.inference_mode():
        x = torch.randn(4, 5, 16) * OUTLIERS
        smoothed.query(x)  # one user of three: the product stays for the other two
        x.copy_(torch.randn(4, 5, 16) * OUTLIERS)
        torch.testing.assert_close(smoothed(x), model(x), atol=1e-4, rtol=1e-5)
        assert hook_of(copy.deepcopy(smoothed).query)._cache is None and hook_of(smoothed.query)._cache is None
