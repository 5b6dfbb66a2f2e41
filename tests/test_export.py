"""Exporters: every registered format round-trips and matches PyTorch; .pt2 never unpickles."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
import torch

from slimforge.errors import ArtifactError, UnknownNameError
from slimforge.export import (
    LOADERS,
    ExportConfig,
    ExportMismatchError,
    check_pt2_is_pickle_free,
    export,
    list_exporters,
    max_abs_difference,
)
from slimforge.models import create_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return create_model("resnet8", num_classes=10, in_channels=1).eval()


@pytest.fixture(scope="module")
def exported(resnet, tmp_path_factory):
    """One export per registered format (exporting takes seconds), shared by the tests below."""
    results = {}
    for fmt in list_exporters():
        out = tmp_path_factory.mktemp(fmt)
        results[fmt] = export(resnet, torch.randn(4, 1, 28, 28), out, ExportConfig(format=fmt))
    return results


@pytest.mark.parametrize("fmt", list_exporters())
def test_every_exporter_matches_pytorch_within_1e_4(fmt, resnet, exported):
    result = exported[fmt]
    assert result.path.is_file()
    assert result.max_abs_diff <= 1e-4
    # The reloaded file gives PyTorch's answer on a batch size it was not exported with.
    x = torch.randn(3, 1, 28, 28)
    runner = LOADERS[fmt](result.path)
    with torch.no_grad():
        torch.testing.assert_close(runner(x), resnet(x), atol=1e-4, rtol=0)
    info = json.loads((result.path.parent / "export.json").read_text())
    assert info["format"] == fmt and info["max_abs_diff"] == result.max_abs_diff


def test_onnx_states_exporter_and_opset(exported):
    import onnx

    result = exported["onnx"]
    assert result.opset == 18 and "dynamo=True" in result.exporter
    model = onnx.load(str(result.path))
    assert {o.domain: o.version for o in model.opset_import}[""] == 18


def test_difference_above_tolerance_raises(resnet):
    inputs = [torch.randn(2, 1, 28, 28)]
    off_by = 1e-3
    assert max_abs_difference(resnet, lambda x: resnet(x) + off_by, inputs) == pytest.approx(off_by, rel=1e-3)
    with pytest.raises(ExportMismatchError, match="shape"):
        max_abs_difference(resnet, lambda x: resnet(x)[:, :5], inputs)


def test_a_rejected_export_replaces_nothing(resnet, tmp_path):
    x = torch.randn(2, 1, 28, 28)
    good = export(resnet, x, tmp_path, ExportConfig(format="onnx"))
    before = {name: (tmp_path / name).read_bytes() for name in ("model.onnx", "export.json")}
    with pytest.raises(ExportMismatchError, match="nothing in .* was replaced"):
        export(resnet, x, tmp_path, ExportConfig(format="onnx", atol=0.0 if good.max_abs_diff > 0 else -1.0))
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert (tmp_path / "rejected" / "model.onnx").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]


def test_unknown_format_names_the_choices(resnet, tmp_path):
    with pytest.raises(UnknownNameError, match="onnx"):
        export(resnet, torch.randn(1, 1, 28, 28), tmp_path, ExportConfig(format="onx"))


def test_pt2_with_pickled_payload_is_refused(exported, tmp_path):
    path = exported["pt2"].path
    check_pt2_is_pickle_free(path)  # the genuine archive passes
    # Rewrite the weights config so one entry claims a pickled payload, as a malicious file would.
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"]))
                config["config"][first]["use_pickle"] = True
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.raises(ArtifactError, match="pickle"):
        LOADERS["pt2"](bad)


def test_pt2_with_sample_inputs_is_refused(exported, tmp_path):
    path = exported["pt2"].path
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(item, b"PK-not-really-a-pickle" if "sample_inputs" in item.filename else data)
    with pytest.raises(ArtifactError, match="sample inputs"):
        LOADERS["pt2"](bad)


def test_pt2_loads_in_a_fresh_process(resnet, exported):
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        expected = resnet(x)
    code = (
        "import sys, json, torch; from slimforge.export import load_pt2;"
        "m = load_pt2(sys.argv[1]); x = torch.tensor(json.loads(sys.argv[2]));"
        "print(json.dumps(m(x).tolist()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(exported["pt2"].path), json.dumps(x.tolist())],
        capture_output=True, text=True, check=True,
    )
    got = torch.tensor(json.loads(out.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_the_opset_asked_for_is_the_opset_written(tmp_path):
    """Planted bug E1 (the opset asked for ignored: every file is written at the default 18)."""
    import onnx

    from slimforge.export import DEFAULT_OPSET, onnx_opsets

    asked = DEFAULT_OPSET + 2
    if asked not in onnx_opsets():
        pytest.skip(f"the installed onnx defines opsets up to {onnx_opsets().stop - 1}")
    torch.manual_seed(0)
    model = create_model("mlp", hidden=[8], input_size=[4, 4], num_classes=3).eval()
    result = export(model, torch.randn(2, 16), tmp_path / "out", ExportConfig(format="onnx", opset=asked))
    assert result.opset == asked
    assert {o.domain: o.version for o in onnx.load(str(result.path)).opset_import}[""] == asked
