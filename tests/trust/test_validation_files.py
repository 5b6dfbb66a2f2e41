"""Files an artifact folder holds (quantized.json, vocab.json, labels.json, metrics.json, model.json
edits) are checked where they are read: one error naming the file and the key, no file read from
outside the folder, no traceback. Also the mismatches a user can make at eval/train/export time."""

from __future__ import annotations

import json
import os

import pytest
import torch

from slimforge import artifacts, loading
from slimforge.models import build_model
from slimforge.errors import ArtifactError, ConfigError, DataError
from slimforge.experiment import DataConfig, check_model_fits_data, evaluate_run
from slimforge.factorize import FactorizeError
from slimforge.prune.errors import PruningError
from slimforge.quantize import load_quantized
from slimforge.text.predict import predict
from slimforge.text.tokenizers import load_tokenizer
from tests.trust.conftest import canary_pickle, copy_run, write_json

# ---------------------------------------------------------------- quantized.json

INFO = {"format": 1, "backend": "onnxruntime", "mode": "dynamic", "runtime_file": "model.onnx", "fp32_layers": [],
        "input_shape": [1, 8, 8], "inputs": "tensor", "config": {"per_channel": True}}


@pytest.mark.parametrize("changes, expected", [
    pytest.param({"runtime_file": "../outside.onnx"}, "'runtime_file' is '../outside.onnx', which leads out of", id="dotdot"),
    pytest.param({"runtime_file": "ABSOLUTE"}, "'runtime_file' is the absolute path", id="absolute"),
    pytest.param({"runtime_file": "link.onnx"}, "'runtime_file' ('link.onnx') resolves to", id="symlink-out"),
    pytest.param({"runtime_file": "."}, "names it ('runtime_file') as a file", id="folder"),
    pytest.param({"runtime_file": "gone.onnx"}, "gone.onnx is missing", id="missing"),
    pytest.param({"runtime_file": 5}, "'runtime_file' must be a file name, not 5", id="runtime-file-type"),
    pytest.param({"backend": 5}, "'backend' must be a backend name, not 5", id="backend-type"),
    pytest.param({"backend": "tpu"}, "unknown backend 'tpu'", id="backend-unknown"),
    pytest.param({"format": "x"}, "'format' must be an integer, not 'x'", id="format-type"),
    pytest.param({"format": 99}, "format 99 is newer than this slimforge reads", id="format-newer"),
    pytest.param({"fp32_layers": "net.1"}, "'fp32_layers' must be a list of layer names, not 'net.1'", id="fp32-layers-string"),
    pytest.param({"fp32_layers": [1]}, "'fp32_layers' must list layer names (strings)", id="fp32-layers-ints"),
    pytest.param({"input_shape": "x"}, "'input_shape' must be a list of sizes, not 'x'", id="input-shape-type"),
    pytest.param({"input_shape": [1, -8, 8]}, "'input_shape' must list positive sizes", id="input-shape-negative"),
    pytest.param({"config": [1]}, "'config' must be an object, not [1]", id="config-type"),
    pytest.param({"config": {"per_channel": "yes"}}, "'config.per_channel' must be true or false, not 'yes'", id="config-flag-type"),
])
def test_bad_quantized_json_names_the_key(changes, expected, tmp_path):
    folder = tmp_path / "int8"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not read before the manifest passes")
    (tmp_path / "outside.onnx").write_bytes(b"a file the folder's author never shipped")
    os.symlink(tmp_path / "outside.onnx", folder / "link.onnx")
    info = {**INFO, **changes}
    if info["runtime_file"] == "ABSOLUTE":
        info["runtime_file"] = str(tmp_path / "outside.onnx")
    write_json(folder / "quantized.json", info)
    with pytest.raises(ArtifactError) as error:
        load_quantized(folder)
    assert "quantized.json" in str(error.value) and expected in str(error.value), str(error.value)


@pytest.mark.parametrize("runtime_file", ["../evil.pt2", "evil.pt2"], ids=["dotdot", "symlink"])
def test_runtime_file_outside_the_folder_is_never_opened(runtime_file, tmp_path, canary):
    """The torch backend would load the .pt2 it names; one outside the folder is refused unread."""
    folder = tmp_path / "int8"
    folder.mkdir()
    (tmp_path / "evil.pt2").write_bytes(canary_pickle(canary))
    os.symlink(tmp_path / "evil.pt2", folder / "evil.pt2")
    write_json(folder / "quantized.json", {**INFO, "backend": "torch", "runtime_file": runtime_file})
    with pytest.raises(ArtifactError, match="'runtime_file'.*(leads out of|resolves to)"):
        loading.load(folder)
    assert not canary.exists()


# ---------------------------------------------------------------- vocab.json


VOCAB = {"kind": "vocab", "lowercase": True, "max_length": 16, "tokens": ["[PAD]", "[UNK]", "good", "bad"]}


@pytest.mark.parametrize("changes, raw, expected", [
    pytest.param({"tokens": "abc"}, None, "'tokens' must be a list of non-empty strings (the token of each id); found 'abc'", id="tokens-string"),
    pytest.param({"tokens": ["[PAD]", "[UNK]", 3]}, None, "found 3", id="token-int"),
    pytest.param({"tokens": ["[PAD]", "[UNK]", ""]}, None, "found ''", id="token-empty"),
    pytest.param({"tokens": ["[PAD]", "[UNK]", "good", "good"]}, None, "token 'good' has two ids (2 and 3)", id="duplicate-id"),
    pytest.param({"tokens": ["good", "bad"]}, None, "must start with the special tokens '[PAD]' (id 0), '[UNK]' (id 1)", id="no-specials"),
    pytest.param({"max_length": "x"}, None, "'max_length' must be a positive integer, not 'x'", id="max-length-type"),
    pytest.param({"max_length": 0}, None, "'max_length' must be a positive integer, not 0", id="max-length-zero"),
    pytest.param({"lowercase": "no"}, None, "'lowercase' must be true or false, not 'no'", id="lowercase-type"),
    pytest.param({"kind": "huggingface"}, None, "'kind' is 'huggingface'", id="kind"),
    pytest.param({}, b'{"tokens": ["[PAD]", "[UNK]", "caf\xe9"]}', "is not UTF-8 text (byte 34", id="not-utf8"),
    pytest.param({}, b"[1, 2]", "must hold a JSON object, not list", id="not-object"),
    pytest.param({}, b'{"tokens": [', "is not valid JSON", id="truncated"),
])
def test_corrupt_vocab_json_names_file_and_key(changes, raw, expected, tmp_path):
    path = tmp_path / "tokenizer" / "vocab.json"
    write_json(path, {**VOCAB, **changes})
    if raw is not None:
        path.write_bytes(raw)
    with pytest.raises(ArtifactError) as error:
        load_tokenizer(tmp_path)
    assert str(path) in str(error.value) and expected in str(error.value)


@pytest.mark.parametrize("files, error, expected", [
    pytest.param({"tokenizer.json": '{"version": "1.0", garbage'}, DataError, "Cannot load a Hugging Face tokenizer from", id="corrupt"),
    pytest.param({"tokenizer.json": "{}", "slimforge_tokenizer.json": '{"max_length": "x"}'}, ArtifactError,
                 "slimforge_tokenizer.json: 'max_length' must be a positive integer, not 'x'", id="meta-type"),
    pytest.param({"tokenizer.json": "{}", "slimforge_tokenizer.json": "\u00e9"}, ArtifactError, "slimforge_tokenizer.json is not valid JSON",
                 id="meta-not-json"),
])
def test_corrupt_hugging_face_tokenizer_folder_is_named(files, error, expected, tmp_path):
    for name, text in {"tokenizer_config.json": '{"tokenizer_class": "BertTokenizerFast"}', **files}.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(error) as raised:
        load_tokenizer(tmp_path)
    assert str(tmp_path) in str(raised.value) and expected in str(raised.value)


def test_tokenizer_with_ids_the_model_cannot_embed_is_refused(tiny_text_run, tmp_path):
    """More tokens than the model's embedding rows: ids past the table (an IndexError before)."""
    run = copy_run(tiny_text_run, tmp_path / "run")
    path = run / "tokenizer" / "vocab.json"
    vocab = json.loads(path.read_text())
    vocab["tokens"] += [f"w{i}" for i in range(50)]
    path.write_text(json.dumps(vocab))
    with pytest.raises(ArtifactError, match=r"has 57 tokens \(pad id 0\), but the model in .* embeds only 7 ids"):
        predict(run, ["w30 w40"])


# ---------------------------------------------------------------- labels.json


@pytest.mark.parametrize("raw, expected", [
    pytest.param(b'["neg", "pos"]', "'classes' must be a non-empty list of class names (strings); found None", id="list"),
    pytest.param(b'{"classes": [1, 2]}', "found [1, 2]", id="ints"),
    pytest.param(b'{"classes": "np"}', "found 'np'", id="string"),
    pytest.param(b'{"classes": ["neg", "neg"]}', "class 'neg' is listed twice", id="duplicate"),
    pytest.param(b'{"classes": ["neg"]}', "names 1 classes, but the model in", id="too-few"),
    pytest.param(b'{"classes": ["neg", "pos", "meh"]}', "names 3 classes, but the model in", id="too-many"),
    pytest.param(b'{"classes": ["\xe9", "b"]}', "is not UTF-8 text (byte 14", id="not-utf8"),
    pytest.param(b'{"classes": [', "is not valid JSON", id="truncated"),
])
def test_bad_labels_json_names_the_file(raw, expected, tiny_text_run, tmp_path):
    run = copy_run(tiny_text_run, tmp_path / "run")
    (run / "labels.json").write_bytes(raw)
    with pytest.raises(ArtifactError) as error:
        predict(run, ["good fun film"])
    assert "labels.json" in str(error.value) and expected in str(error.value)


def test_genuine_text_run_predicts(tiny_text_run):
    (p,) = predict(tiny_text_run, ["good fun film"])
    assert p.label in ("neg", "pos") and abs(sum(p.probabilities.values()) - 1) < 1e-5


# ---------------------------------------------------------------- metrics.json, eval and train mismatches


@pytest.mark.parametrize("metrics, expected", [
    pytest.param({"data": [1]}, "expected an object whose 'data' is an object", id="data-list"),
    pytest.param({"data": {"input_shape": "x"}}, "'data.input_shape' must be a list of sizes, not 'x'", id="input-shape-type"),
    pytest.param([1], "expected an object whose 'data' is an object", id="not-object"),
])
def test_bad_metrics_json_names_the_key(metrics, expected, tiny_text_run, text_corpus, tmp_path):
    run = copy_run(tiny_text_run, tmp_path / "run")
    write_json(run / "metrics.json", metrics)
    with pytest.raises(ArtifactError) as error:
        evaluate_run(run, DataConfig(name="text-csv", options={"path": str(text_corpus)}))
    assert "metrics.json" in str(error.value) and expected in str(error.value)


def test_text_run_evaluated_on_images_is_a_clear_error(tiny_text_run):
    with pytest.raises(DataError, match=r"holds a text model, but dataset 'digits' gives images"):
        evaluate_run(tiny_text_run, DataConfig(name="digits"))


def test_image_run_evaluated_on_texts_is_a_clear_error(tiny_image_run, text_corpus):
    data = DataConfig(name="text-csv", options={"path": str(text_corpus), "tokenizer": "vocab"})
    with pytest.raises(DataError, match=r"holds an image model, but dataset 'text-csv' gives texts"):
        evaluate_run(tiny_image_run, data)


def test_genuine_runs_evaluate(tiny_text_run, tiny_image_run, text_corpus):
    assert evaluate_run(tiny_text_run, DataConfig(name="text-csv", options={"path": str(text_corpus)}))["count"] == 8
    assert evaluate_run(tiny_image_run, DataConfig(name="digits"))["count"] == 359


@pytest.fixture(scope="module")
def digits():
    from slimforge.data import load_dataset

    return load_dataset("digits")


@pytest.mark.parametrize("kwargs, expected", [
    pytest.param({"num_classes": -3}, "model.kwargs.num_classes=-3, but dataset 'digits' needs 10", id="negative-classes"),
    pytest.param({"num_classes": 0}, "model.kwargs.num_classes=0", id="zero-classes"),
    pytest.param({"num_classes": 12}, "model.kwargs.num_classes=12", id="more-classes"),
    pytest.param({"num_classes": "10"}, "model.kwargs.num_classes='10'", id="classes-string"),
    pytest.param({"in_channels": 3}, "model.kwargs.in_channels=3, but dataset 'digits' needs 1", id="channels"),
    pytest.param({"input_size": [28, 28]}, "model.kwargs.input_size=[28, 28], but dataset 'digits' needs [8, 8]", id="input-size"),
])
def test_model_kwargs_that_contradict_the_data_are_refused(kwargs, expected, digits):
    with pytest.raises(ConfigError) as error:
        check_model_fits_data(kwargs, digits)
    assert expected in str(error.value)


def test_matching_model_kwargs_pass(digits):
    check_model_fits_data({"num_classes": 10, "in_channels": 1, "width": 2}, digits)


def test_cli_reports_bad_input_in_one_line(tiny_text_run, tmp_path, capsys):
    from slimforge.cli import main

    assert main(["eval", str(tiny_text_run), "--data", "digits"]) != 0
    assert main(["train", "--data", "digits", "data.options.foo=1", "--out", str(tmp_path / "x"), "-q"]) != 0
    errors = capsys.readouterr().err.strip().splitlines()  # one line each: no traceback
    assert errors == [
        f"error: {tiny_text_run} holds a text model, but dataset 'digits' gives images; evaluate it on a text dataset (--data).",
        "error: Unknown option 'foo' for dataset 'digits'. It takes: val_fraction, split_seed, augment, test_fraction.",
    ]


# ---------------------------------------------------------------- model.json edits


def build(edit: dict) -> torch.nn.Module:
    spec = artifacts.ModelSpec.from_json({"name": "mlp", "kwargs": {"num_classes": 10, "in_channels": 1, "input_size": [8, 8]}, "edits": [edit]})
    return build_model(spec, init=False)


W = "net.1.weight"


@pytest.mark.parametrize("edit, error, expected", [
    pytest.param({"tensors": [1]}, ArtifactError, "'tensors' must be an object of tensor name -> kept indices, not [1]", id="tensors-list"),
    pytest.param({"tensors": {W: [1]}}, ArtifactError, f"tensors['{W}'] must be an object of dimension -> kept runs", id="dims-list"),
    pytest.param({"tensors": {W: {"a": [[0, 1]]}}}, ArtifactError, "dimension 'a' is not a non-negative integer", id="dim-name"),
    pytest.param({"tensors": {W: {"-1": [[0, 1]]}}}, ArtifactError, "dimension '-1' is not a non-negative integer", id="dim-negative"),
    pytest.param({"tensors": {W: {"0": 5}}}, ArtifactError, "['0'] must be a non-empty list of [start, stop) runs, not 5", id="runs-int"),
    pytest.param({"tensors": {W: {"0": []}}}, ArtifactError, "['0'] must be a non-empty list", id="runs-empty"),
    pytest.param({"tensors": {W: {"0": [[0, 1, 2]]}}}, ArtifactError, "run 0 is [0, 1, 2]", id="run-triple"),
    pytest.param({"tensors": {W: {"0": [["a", "b"]]}}}, ArtifactError, "run 0 is ['a', 'b']", id="run-strings"),
    pytest.param({"tensors": {W: {"0": [[-5, 3]]}}}, ArtifactError, "run 0 is [-5, 3]", id="run-negative"),
    pytest.param({"tensors": {W: {"0": [[0.5, 3]]}}}, ArtifactError, "run 0 is [0.5, 3]", id="run-float"),
    pytest.param({"tensors": {W: {"0": [[5, 3]]}}}, ArtifactError, "run 0 is [5, 3]", id="run-reversed"),
    pytest.param({"tensors": {W: {"0": [[0, 5], [3, 8]]}}}, ArtifactError, "run 1 is [3, 8]", id="runs-overlap"),
    pytest.param({"version": "x", "tensors": {}}, ArtifactError, "'version' must be an integer, not 'x'", id="version-type"),
    pytest.param({"tensors": {W: {"0": [[0, 10**8]]}}}, PruningError, "keeps indices up to 99999999", id="run-past-the-tensor"),
    pytest.param({"tensors": {W: {"5": [[0, 1]]}}}, PruningError, "slices dimension 5 of 'net.1.weight'", id="dim-past-the-tensor"),
    pytest.param({"tensors": {}, "config_kept": [1]}, ArtifactError, "'config_kept' must be an object of model path", id="config-kept-list"),
    pytest.param({"tensors": {}, "config_kept": {"": {"hidden_size": 8}}}, PruningError, "'config_kept' names '', which holds no transformers config",
                 id="config-kept-no-config"),
])
def test_malformed_prune_edit_is_named(edit, error, expected):
    with pytest.raises(error) as raised:
        build({"kind": "prune", **edit})
    assert expected in str(raised.value)


@pytest.mark.parametrize("layers, error, expected", [
    pytest.param(["net.1"], ArtifactError, "'layers' must be an object of layer name -> {'rank': N}", id="layers-list"),
    pytest.param({"net.1": 5}, ArtifactError, "layers['net.1'] must be {'rank': N} with an integer N, not 5", id="entry-int"),
    pytest.param({"net.1": {}}, ArtifactError, "layers['net.1'] must be {'rank': N}", id="rank-missing"),
    pytest.param({"net.1": {"rank": "x"}}, ArtifactError, "with an integer N, not {'rank': 'x'}", id="rank-string"),
    pytest.param({"net.1": {"rank": 0}}, FactorizeError, "to rank 0; its weight allows ranks 1 to 64", id="rank-zero"),
    pytest.param({"net.1": {"rank": 10**6}}, FactorizeError, "to rank 1000000; its weight allows ranks 1 to 64", id="rank-huge"),
])
def test_malformed_factorize_edit_is_named(layers, error, expected):
    with pytest.raises(error) as raised:
        build({"kind": "factorize", "layers": layers})
    assert expected in str(raised.value)


# ---------------------------------------------------------------- export opset


@pytest.mark.parametrize("opset", [5, 13, 17])
def test_opset_below_the_exporters_is_refused(opset):
    from slimforge.export import ExportConfig

    with pytest.raises(ConfigError, match=rf"ONNX opset {opset} is not supported: the exporter writes opset 18 and newer"):
        ExportConfig(format="onnx", opset=opset)


def test_opset_above_what_onnx_defines_is_refused(tmp_path):
    import onnx

    from slimforge.export import export_onnx_file

    from slimforge.export import ExportConfig, export

    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(ConfigError, match=rf"ONNX opset {newest + 1} is not supported: the exporter writes opsets 18 to {newest}"):
        export_onnx_file(torch.nn.Linear(2, 2), torch.randn(1, 2), tmp_path / "m.onnx", opset=newest + 1)
    with pytest.raises(ConfigError, match=rf"ONNX opset {newest + 1} is not supported"):
        export(torch.nn.Linear(2, 2), torch.randn(1, 2), tmp_path / "out", ExportConfig(opset=newest + 1))
    assert not (tmp_path / "out").exists()  # refused before any folder is made


@pytest.mark.parametrize("bad, expected", [({"atol": -1.0}, "atol must be a finite number >= 0"), ({"atol": float("nan")}, "atol"),
                                           ({"opset": "18"}, "opset must be int"), ({"check_batches": -1}, "check_batches must be >= 0")])
def test_bad_export_config_is_named(bad, expected):
    from slimforge.export import ExportConfig

    with pytest.raises(ConfigError, match=expected):
        ExportConfig(**bad)


def test_export_records_the_opset_read_back_from_the_file(tmp_path, monkeypatch):
    """export.json says what the file declares; an exporter that writes another opset than asked
    (as torch's does below 18) is an error, not a wrong record."""
    pytest.importorskip("onnxscript")
    import slimforge.export as export_module
    from slimforge.export import ExportConfig, ExportError, export, written_opset

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    result = export(model, torch.randn(2, 4), tmp_path / "ok", ExportConfig(format="onnx", opset=20, check_batches=1))
    assert result.opset == written_opset(result.path) == 20
    assert json.loads((tmp_path / "ok" / "export.json").read_text())["opset"] == 20

    real = export_module.export_onnx_file
    monkeypatch.setattr(export_module, "export_onnx_file", lambda m, x, path, opset, dynamic: real(m, x, path, 18, dynamic))
    with pytest.raises(ExportError, match="Asked for ONNX opset 20, the exporter wrote opset 18"):
        export(model, torch.randn(2, 4), tmp_path / "bad", ExportConfig(format="onnx", opset=20, check_batches=1))
    assert not (tmp_path / "bad" / "export.json").exists()


def test_token_id_artifacts_record_no_input_shape(tmp_path):
    """Text int8 artifacts write "input_shape": null; that is valid, and only the torch backend needs one."""
    from slimforge.quantize.core import read_quantized_info

    folder = tmp_path / "int8"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"-")
    write_json(folder / "quantized.json", {**INFO, "input_shape": None, "inputs": "token_ids"})
    assert read_quantized_info(folder)["input_shape"] is None
    pytest.importorskip("torchao")
    write_json(folder / "quantized.json", {**INFO, "backend": "torch", "input_shape": None})
    with pytest.raises(ArtifactError, match="has no 'input_shape'; the torch backend needs it"):
        load_quantized(folder)


# ---------------------------------------------------------------- config files and overrides


def billion_laughs(levels: int) -> str:
    lines = ["data:", "  name: digits", "  options:", '    l0: &l0 ["x","x","x","x","x","x","x","x","x"]']
    for n in range(1, levels):
        lines.append(f"    l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("raw, overrides, expected", [
    pytest.param(b"data:\n  name: digits\n  options: {x: caf\xe9}\n", [], "is not UTF-8 text: line 3, byte offset 39", id="not-utf8"),
    pytest.param(billion_laughs(9).encode(), [], "values (through YAML aliases), more than 1000000; refused", id="billion-laughs"),
    pytest.param(b"data: " + b"[" * 5000 + b"]" * 5000 + b"\n", [], "is nested too deeply to be a config", id="deep-nesting"),
    pytest.param(b"{}", ["train.lr=.inf"], "train.lr: Input should be a finite number (got inf)", id="infinite-lr"),
    pytest.param(b"{}", ["train.momentum=.nan"], "train.momentum: Input should be a finite number (got nan)", id="nan-momentum"),
    pytest.param(b"{}", ["data.options.x=" + "[" * 5000], "Override 'data.options.x': the value is nested too deeply", id="deep-override"),
])
def test_bad_config_is_named(raw, overrides, expected, tmp_path):
    from slimforge.config import load_config
    from slimforge.experiment import RunConfig

    path = tmp_path / "run.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as error:
        load_config(RunConfig, path, overrides)
    assert expected in str(error.value)


def test_folder_given_as_config_is_named(tmp_path):
    from slimforge.config import read_yaml

    with pytest.raises(ConfigError, match=rf"Config file {tmp_path} is a folder, not a file"):
        read_yaml(tmp_path)


# ---------------------------------------------------------------- inputs to an exported model


@pytest.fixture(scope="module")
def onnx_session(tmp_path_factory):
    pytest.importorskip("onnxscript")
    from slimforge.export import export_onnx_file, load_onnx

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).eval()
    path = export_onnx_file(model, torch.randn(2, 1, 8, 8), tmp_path_factory.mktemp("onnx") / "model.onnx")
    return load_onnx(path)


@pytest.mark.parametrize("x, got", [
    pytest.param(torch.randn(2, 1, 9, 9), "got (2, 1, 9, 9) float32", id="wrong-size"),
    pytest.param(torch.randn(2, 8, 8), "got (2, 8, 8) float32", id="wrong-rank"),
    pytest.param(torch.randint(0, 5, (2, 1, 8, 8)), "got (2, 1, 8, 8) int64", id="integers-for-floats"),
    pytest.param("an image", "got str", id="not-a-tensor"),
])
def test_wrong_input_to_an_onnx_model_is_named(onnx_session, x, got):
    with pytest.raises(DataError) as error:
        onnx_session(x)
    assert f"model.onnx takes 'x' of shape ['batch', 1, 8, 8] (tensor(float)); {got}" in str(error.value)


def test_onnx_model_takes_other_batch_sizes_and_float64(onnx_session):
    assert onnx_session(torch.randn(5, 1, 8, 8, dtype=torch.float64)).shape == (5, 3)


def test_a_config_without_its_data_falls_back_to_what_metrics_recorded(digits_run, tmp_path):
    """Red-team B-configyaml-empty: eval of a folder whose config.yaml lost its data section used the
    default dataset; the data training recorded in metrics.json is the right one."""
    import json
    import shutil

    from slimforge.experiment import run_data_config

    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    (run / "config.yaml").write_text("")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "data": {"name": "digits", "val_fraction": 0.2, "split_seed": 3}}))
    with pytest.warns(UserWarning, match="metrics.json records"):
        section = run_data_config(run)
    assert (section.name, section.val_fraction, section.split_seed) == ("digits", 0.2, 3)
