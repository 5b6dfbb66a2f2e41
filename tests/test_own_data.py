"""Bring your own data (arrays, Dataset, .npz, CSV) and preprocessing that travels with the model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import slimforge
from slimforge import artifacts
from slimforge.cli import main
from slimforge.data import from_arrays, from_dataset, load_dataset
from slimforge.errors import ArtifactError, DataError
from slimforge.preprocess import Preprocess, PreprocessSpec


def _pixels(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def _labels(n: int, classes: int, seed: int = 1) -> np.ndarray:
    y = np.random.default_rng(seed).integers(0, classes, n)
    y[:classes] = np.arange(classes)  # every class present
    return y


# ---------------------------------------------------------------- from_arrays: happy paths


@pytest.mark.parametrize(
    "shape, input_shape, expected",
    [
        ((784,), "1,28,28", (1, 28, 28)),  # flat MNIST rows
        ((784,), None, (1, 28, 28)),  # a square row count is one grey square image
        ((28, 28), None, (1, 28, 28)),
        ((1, 28, 28), None, (1, 28, 28)),
        ((12, 12, 3), None, (3, 12, 12)),  # channel-last colour
        ((10,), None, (10, 1, 1)),  # features, for an mlp
    ],
)
def test_from_arrays_takes_flat_and_shaped_inputs(shape, input_shape, expected):
    x, y = _pixels(200, shape), _labels(200, 10)
    x_test, y_test = _pixels(30, shape, seed=5), _labels(30, 10, seed=6)
    splits = from_arrays(x, y, input_shape=input_shape, test=(x_test, y_test))
    assert splits.info.input_shape == expected and splits.info.num_classes == 10
    assert (len(splits.train), len(splits.val), len(splits.test)) == (180, 20, 30)
    inputs, targets, _ = splits.test.__getitems__(list(range(30)))
    assert inputs.shape == (30, *expected) and inputs.dtype == torch.float32
    assert torch.equal(targets, torch.from_numpy(y_test))
    # the recorded preprocessing turns the raw arrays into exactly what the model trains on
    pre = Preprocess(splits.preprocess)
    assert splits.preprocess.raw_shape == shape and splits.preprocess.scale == 255.0
    torch.testing.assert_close(pre(x_test), inputs, atol=1e-4, rtol=1e-5)
    train_inputs = splits.train.__getitems__(list(range(len(splits.train))))[0]
    assert abs(float(train_inputs.mean())) < 0.05  # normalised on train: mean 0 (within float error of the fit)


@pytest.mark.parametrize("classes", [3, 17])
def test_any_number_of_classes_is_inferred_from_the_labels(classes):
    splits = from_arrays(_pixels(300, (8, 8)), _labels(300, classes))
    assert splits.info.num_classes == classes
    assert set(splits.test.labels.tolist()) <= set(range(classes))


def test_text_labels_become_classes_in_sorted_order():
    y = np.array(["owl", "cat", "dog"] * 40)
    splits = from_arrays(_pixels(120, (6, 6)), y, test_fraction=0.25)
    assert splits.info.classes == ("cat", "dog", "owl")
    assert len(splits.test) == 30 and len(splits.train) + len(splits.val) == 90


def test_float_pixels_are_not_rescaled_and_digits_shape_trains():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    splits = from_arrays(bunch.data, bunch.target)  # float64 0..16, flat 64
    assert splits.preprocess.scale == 1.0 and splits.info.input_shape == (1, 8, 8)
    assert splits.preprocess.input_dtype == "float64"


def test_from_dataset_reads_a_torch_dataset():
    x = torch.rand(60, 1, 5, 5)
    y = torch.arange(60) % 4
    splits = from_dataset(torch.utils.data.TensorDataset(x, y), test=torch.utils.data.TensorDataset(x[:10], y[:10]))
    assert splits.info.num_classes == 4 and splits.info.input_shape == (1, 5, 5) and len(splits.test) == 10
    assert splits.info.name == "dataset"


# ---------------------------------------------------------------- from_arrays: errors


@pytest.mark.parametrize(
    "x, y, options, expected",
    [
        (_pixels(50, (784,)), _labels(49, 3), {}, "y has shape [49] but there are 50 samples"),
        (_pixels(50, (784,)), _labels(50, 3), {"input_shape": "1,27,27"}, "x samples have shape [784] (784 values), which does not fit input_shape [1, 27, 27]"),
        (_pixels(50, (784,)), _labels(50, 3), {"input_shape": "one,two"}, "input_shape 'one,two' is not C,H,W"),
        (_pixels(50, (5, 7, 9)), _labels(50, 3), {}, "neither (C, H, W) nor (H, W, C)"),
        (_pixels(50, (16,)), _labels(50, 3) + 0.5, {}, "y must hold class indices (whole numbers); found 0.5"),
        (np.where(np.arange(800).reshape(50, 16) == 70, np.nan, 1.0), _labels(50, 3), {}, "x holds NaN or infinite values (first in sample 4)"),
        (_pixels(50, (16,)), -_labels(50, 3), {}, "class indices start at 0"),
        (np.array(["a"] * 50).reshape(50, 1), _labels(50, 3), {}, "x is <U1; expected numbers"),
        (_pixels(50, ()), _labels(50, 3), {}, "x has shape [50]; expected (N, features)"),
        (_pixels(50, (16,)), _labels(50, 3), {"classes": ["a", "b"]}, "holds the label 2, but classes names only 2 classes"),
        (_pixels(50, (16,)), _labels(50, 3), {"test": (_pixels(5, (25,)), _labels(5, 3))}, "x_test samples have shape [25] (25 values), which does not fit"),
    ],
)
def test_data_that_does_not_fit_is_one_clear_error(x, y, options, expected):
    with pytest.raises(DataError) as err:
        from_arrays(x, y, **options)
    assert expected in str(err.value)


# ---------------------------------------------------------------- .npz and CSV routes


def test_npz_route_records_the_file_absolute(tmp_path, monkeypatch):
    np.savez(tmp_path / "mine.npz", x_train=_pixels(80, (28, 28)), y_train=_labels(80, 3), x_test=_pixels(20, (28, 28)), y_test=_labels(20, 3))
    monkeypatch.chdir(tmp_path)
    splits = load_dataset("arrays:mine.npz")
    assert splits.source["root"] == str(tmp_path / "mine.npz") and splits.info.num_classes == 3 and len(splits.test) == 20
    from slimforge.experiment import DataConfig

    cfg = DataConfig(name="arrays:mine.npz")  # what --data arrays:mine.npz makes; recorded in config.yaml
    assert (cfg.name, cfg.root) == ("arrays", str(tmp_path / "mine.npz"))
    assert DataConfig(name="arrays", root="mine.npz").root == str(tmp_path / "mine.npz")  # --data-root typed relative


@pytest.mark.parametrize(
    "arrays, expected",
    [
        ({"images": _pixels(10, (4, 4)), "y": _labels(10, 2)}, "needs 'x' and 'y', or 'x_train' and 'y_train'"),
        ({"x": _pixels(10, (4, 4)), "y": _labels(10, 2), "x_test": _pixels(3, (4, 4))}, "has x_test without y_test"),
        ({"x": np.array([{"a": 1}] * 10, dtype=object), "y": _labels(10, 2)}, "object arrays are refused"),
    ],
)
def test_bad_npz_is_named(arrays, expected, tmp_path):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as err:
        load_dataset("arrays", root=str(tmp_path / "bad.npz"))
    assert expected in str(err.value) and "bad.npz" in str(err.value)


def test_image_folder_route_and_predict_on_png(tmp_path, capsys):
    from PIL import Image

    for label, value in (("dark", 30), ("light", 220)):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(np.full((10, 10, 3), value + i, np.uint8)).save(tmp_path / "photos" / label / f"{i}.png")
    splits = load_dataset(f"image-folder:{tmp_path / 'photos'}", image_size=8, augment=False)
    assert splits.info.classes == ("dark", "light") and splits.info.input_shape == (3, 8, 8)
    assert splits.preprocess.input_dtype == "uint8" and splits.preprocess.scale == 255.0
    model = slimforge.create_model("mlp", **splits.info.model_kwargs())
    slimforge.train(model, splits, slimforge.TrainConfig(epochs=3, quiet=True, batch_size=8), out=tmp_path / "run")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "photos" / "dark" / "0.png"), str(tmp_path / "photos" / "light" / "0.png")]) == 0
    labels = [line.split("\t")[0] for line in capsys.readouterr().out.strip().splitlines()]
    assert labels == ["dark", "light"]  # class names from labels.json; two flat colours a 3-epoch MLP tells apart


def test_csv_table_standardises_features_per_column(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [f"{rng.normal(100, 10):.3f},{rng.normal(0, 0.01):.5f},{['x', 'y', 'z'][i % 3]}" for i in range(90)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    splits = load_dataset("table", root=str(tmp_path / "t.csv"))
    assert splits.info.input_shape == (2, 1, 1) and splits.info.classes == ("x", "y", "z")
    inputs = splits.train.__getitems__(list(range(len(splits.train))))[0]
    assert inputs.mean(dim=0).abs().max() < 1e-3 and (inputs.std(dim=0) - 1).abs().max() < 0.05  # both columns on one scale
    with pytest.raises(DataError, match="no augmentation"):
        load_dataset("table", root=str(tmp_path / "t.csv"), augment=True)
    (tmp_path / "bad.csv").write_text("a,b,label\n1,2,x\n1,oops,y\n")
    with pytest.raises(DataError, match=r"line 3: column 'b' is 'oops', not a number"):
        load_dataset("table", root=str(tmp_path / "bad.csv"))


# ---------------------------------------------------------------- the artifact records its preprocessing


def test_preprocess_survives_pruning_save_and_load(tmp_path):
    splits = from_arrays(_pixels(64, (8, 8)), _labels(64, 3))
    model = slimforge.create_model("cnn", **splits.info.model_kwargs())
    artifacts.record_preprocess(model, splits.preprocess)
    slimforge.prune(model, torch.zeros(2, 1, 8, 8), ratio=0.25)
    slimforge.save(model, tmp_path / "m")
    loaded = slimforge.load(tmp_path / "m")
    assert artifacts.read_spec(tmp_path / "m").preprocess == splits.preprocess.to_json()
    assert artifacts.read_spec(tmp_path / "m").edits  # the pruning edit is there too
    raw = _pixels(4, (8, 8), seed=9)
    with torch.no_grad():
        expected = loaded(Preprocess(splits.preprocess)(raw))
        torch.testing.assert_close(loaded(raw), expected)  # numpy pixels are raw
        torch.testing.assert_close(loaded(torch.from_numpy(raw)), expected)  # so are integer tensors


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"mean": [0.1, 0.2]}, "2 means and 1 stds for 1 channels"),
        ({"std": [0.0]}, "must be positive"),
        ({"raw_shape": [63]}, "raw_shape [63] holds 63 values"),
        ({"kind": "exec"}, "kind 'normalize'"),
        ({"extra": 1}, "unknown keys ['extra']"),
        ({"input_shape": "1,8,8"}, "'preprocess.input_shape' must be a list"),
    ],
)
def test_corrupt_preprocess_in_model_json_is_named(change, expected, tmp_path):
    model = slimforge.create_model("cnn", num_classes=3, in_channels=1)
    spec = PreprocessSpec((1, 8, 8), (0.5,), (0.25,), 255.0, (64,), "uint8")
    artifacts.record_preprocess(model, spec)
    slimforge.save(model, tmp_path / "m")
    data = json.loads((tmp_path / "m" / "model.json").read_text())
    data["preprocess"].update(change)
    (tmp_path / "m" / "model.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError) as err:
        slimforge.load(tmp_path / "m")
    assert expected in str(err.value) and "model.json" in str(err.value)


def test_wrong_raw_input_shape_is_named():
    pre = Preprocess(PreprocessSpec((1, 8, 8), (0.5,), (0.25,), 255.0, (64,), "uint8"))
    assert pre(np.zeros((8, 8), np.uint8)).shape == (1, 1, 8, 8)  # one sample
    with pytest.raises(DataError, match=r"takes inputs of shape .* got \[3, 9, 9\]"):
        pre(np.zeros((3, 9, 9), np.uint8))


# ---------------------------------------------------------------- end to end: arrays in, raw inputs out


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """sklearn's digits as the user's own uint8 arrays (flat rows), trained 2 epochs from the CLI."""
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("own")
    bunch = load_digits()
    np.savez(folder / "digits.npz", x=bunch.data.astype(np.uint8), y=bunch.target)
    cwd = os.getcwd()
    os.chdir(folder)  # relative paths, as a user types them
    try:
        code = main(["train", "--data", "arrays:digits.npz", "--model", "cnn", "--epochs", "2", "--batch-size", "64",
                     "--out", "run", "--quiet", "data.options.input_shape=1,8,8"])
    finally:
        os.chdir(cwd)
    assert code == 0
    return folder


def test_cli_run_from_arrays_records_absolute_data_and_its_preprocessing(digits_run):
    from slimforge.config import read_yaml

    data = read_yaml(digits_run / "run" / "config.yaml")["data"]
    assert data["name"] == "arrays" and data["root"] == str(digits_run / "digits.npz")
    spec = json.loads((digits_run / "run" / "model.json").read_text())["preprocess"]
    assert spec["raw_shape"] == [64] and spec["input_shape"] == [1, 8, 8] and spec["scale"] == 255.0
    metrics = json.loads((digits_run / "run" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.8  # 2 epochs reach about 0.9 on these 1,797 digits (measured 0.91)


def test_onnx_export_takes_raw_pixels_in_plain_onnxruntime(digits_run, tmp_path):
    import onnxruntime as ort

    assert main(["export", str(digits_run / "run"), "--out", str(tmp_path / "onnx")]) == 0
    assert json.loads((tmp_path / "onnx" / "export.json").read_text())["inputs"] == "raw"
    z = np.load(digits_run / "digits.npz")
    raw = z["x"][:300]
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [64]
    onnx_pred = session.run(None, {session.get_inputs()[0].name: raw.astype(np.float32)})[0].argmax(1)
    splits = load_dataset("arrays", root=str(digits_run / "digits.npz"), input_shape="1,8,8")
    model = slimforge.load(digits_run / "run")
    with torch.no_grad():
        normalised = (torch.from_numpy(raw).float().view(-1, 1, 8, 8) / 255 - splits.preprocess.mean[0]) / splits.preprocess.std[0]
        torch_pred = model(normalised).argmax(1).numpy()
    assert (onnx_pred == torch_pred).all()
    assert (onnx_pred == z["y"][:300]).mean() > 0.8  # right answers on raw pixels, not one class for all
    # loaded back as an export folder, it follows load()'s rule: numpy is raw, a float tensor the network's input
    exported = slimforge.load(tmp_path / "onnx")
    assert (exported(raw).argmax(1).numpy() == onnx_pred).all()
    with torch.no_grad():
        torch.testing.assert_close(exported(normalised.float()), model(normalised), atol=1e-4, rtol=1e-4)
    assert main(["export", str(digits_run / "run"), "--no-preprocess", "--out", str(tmp_path / "bare")]) == 0
    bare = ort.InferenceSession(str(tmp_path / "bare" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert bare.get_inputs()[0].shape[1:] == [1, 8, 8]


def test_int8_model_takes_numpy_and_predict_reads_arrays(digits_run, tmp_path, capsys):
    assert main(["quantize", str(digits_run / "run"), "--backend", "onnxruntime", "--out", str(tmp_path / "int8")]) == 0
    int8 = slimforge.load(tmp_path / "int8")
    z = np.load(digits_run / "digits.npz")
    logits = int8(z["x"][:200])  # uint8 numpy, flat rows, as stored
    fp32 = slimforge.load(digits_run / "run")(z["x"][:200])
    assert logits.shape == (200, 10)
    assert (logits.argmax(1) == fp32.argmax(1)).float().mean() > 0.95  # int8 agrees with fp32 (measured 0.99+)
    np.save(tmp_path / "three.npy", z["x"][:3])
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "int8"), str(tmp_path / "three.npy")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(int(i)) for i in logits[:3].argmax(1)]
    assert main(["predict", str(digits_run / "run"), "a text"]) == 2
    # exported, the int8 graph takes the raw pixels in plain ONNX Runtime
    import onnxruntime as ort

    assert main(["export", str(tmp_path / "int8"), "--out", str(tmp_path / "int8-onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "int8-onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    deployed = session.run(None, {"x": z["x"][:200].astype(np.float32)})[0]
    np.testing.assert_allclose(deployed, logits.numpy(), atol=1e-5)
    info = json.loads((tmp_path / "int8" / "quantized.json").read_text())
    info["source_model"]["preprocess"]["std"] = [-1.0]
    (tmp_path / "int8" / "quantized.json").write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match=r"quantized.json.*must be positive"):
        slimforge.load(tmp_path / "int8")


def test_pt2_export_takes_raw_pixels(digits_run, tmp_path):
    from slimforge.export import load_pt2

    assert main(["export", str(digits_run / "run"), "--format", "pt2", "--out", str(tmp_path / "pt2")]) == 0
    raw = np.load(digits_run / "digits.npz")["x"][:50]
    program = load_pt2(tmp_path / "pt2" / "model.pt2")
    with torch.no_grad():
        exported = program(torch.from_numpy(raw).float())
        eager = slimforge.load(digits_run / "run")(raw)
    torch.testing.assert_close(exported, eager, atol=1e-4, rtol=1e-4)
