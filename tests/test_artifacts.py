"""Artifacts: round trip without pickle, and clear errors for every kind of bad file."""

from __future__ import annotations

import pickle

import pytest
import torch

import slimforge
from slimforge.artifacts import ModelSpec, attach_spec
from slimforge.errors import ArtifactError, UnknownNameError
from slimforge.models import create_model


@pytest.fixture
def saved(tmp_path):
    model = create_model("resnet8", num_classes=10, in_channels=1).eval()
    slimforge.save(model, tmp_path / "run", metrics={"test_accuracy": 0.5}, config={"train": {"lr": 0.1}})
    return model, tmp_path / "run"


def test_round_trip_identical_outputs(saved):
    model, run = saved
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(slimforge.load(run)(x), model(x))
    assert (run / "model.json").read_text().count('"resnet8"') == 1
    assert (run / "config.yaml").is_file() and (run / "metrics.json").is_file()


def test_truncated_weights_name_the_file(saved):
    _, run = saved
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match=r"model\.safetensors.*corrupt or truncated"):
        slimforge.load(run)


def test_corrupt_structure_file(saved):
    _, run = saved
    (run / "model.json").write_text('{"name": "resnet8", ')
    with pytest.raises(ArtifactError, match=r"model\.json is not valid JSON"):
        slimforge.load(run)


def test_pickle_file_as_weights_is_refused_without_unpickling(saved, tmp_path):
    _, run = saved
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (run / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ArtifactError, match="pickle"):
        slimforge.load(run)
    assert not marker.exists()
    torch.save({"w": torch.zeros(1)}, run / "model.safetensors")  # torch.save's zip format
    with pytest.raises(ArtifactError, match="never unpickles"):
        slimforge.load(run)


def test_weights_of_another_architecture(saved, tmp_path):
    other = create_model("resnet14", num_classes=10, in_channels=1)
    slimforge.save(other, tmp_path / "other")
    _, run = saved
    (run / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(ArtifactError, match=r"do not match the architecture \(resnet8\).*unexpected"):
        slimforge.load(run)


def test_model_without_spec_cannot_be_saved(tmp_path):
    with pytest.raises(ArtifactError, match=r"does not know how to rebuild.*factory='pkg.module:build'.*program=True"):
        slimforge.save(torch.nn.Linear(2, 2), tmp_path / "x")
    model = attach_spec(torch.nn.Linear(2, 2), ModelSpec("torch.nn:Linear", {"in_features": 2, "out_features": 2}))
    slimforge.save(model, tmp_path / "x")
    with pytest.raises(ArtifactError, match="names the factory 'torch.nn:Linear'.*trust_code=True"):
        slimforge.load(tmp_path / "x")  # a folder's factory name is not trusted by default
    assert torch.equal(slimforge.load(tmp_path / "x", trust_code=True).weight, model.weight)


def test_missing_run_folder(tmp_path):
    with pytest.raises(ArtifactError, match="not a run folder"):
        slimforge.load(tmp_path / "nope")


def test_safetensors_whose_header_length_starts_with_0x80_is_not_taken_for_pickle(tmp_path):
    """A header of 128 + 256k bytes begins with byte 0x80, like a pickle stream."""
    from safetensors.torch import save_file

    from slimforge.artifacts import is_pickle_file, read_tensors

    path = tmp_path / "w.safetensors"
    for pad in range(512):  # grow the header one byte at a time until its length's low byte is 0x80
        save_file({"w": torch.zeros(3)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert not is_pickle_file(path)
    assert torch.equal(read_tensors(path)["w"], torch.zeros(3))


def test_module_versions_survive_loading(tmp_path):
    """MNASNet checks its state-dict version on load; the metadata must reach it."""
    model = create_model("torchvision:mnasnet0_5", num_classes=10)
    slimforge.save(model, tmp_path / "m")
    assert sum(p.numel() for p in slimforge.load(tmp_path / "m").parameters()) == sum(p.numel() for p in model.parameters())


def test_load_skips_random_init_and_restores_torch_init_afterwards(saved, tmp_path):
    originals = {n: getattr(torch.nn.init, n) for n in ("normal_", "kaiming_uniform_", "trunc_normal_")}
    slimforge.load(saved[1])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text('{"name": "no-such-model"}')
    with pytest.raises(UnknownNameError):
        slimforge.load(tmp_path / "bad")
    assert all(getattr(torch.nn.init, n) is fn for n, fn in originals.items())
    assert torch.nn.init.normal_(torch.zeros(1000)).std() > 0.5  # random init works again


def test_skipping_random_init_still_fills_buffers():
    """Non-persistent buffers (Hugging Face's token_type_ids) are never loaded: their fillers must run."""
    from torch import nn

    from slimforge.models import _without_random_init

    param, buffer = nn.Parameter(torch.full((3,), 7.0)), torch.full((3,), 7.0)
    with _without_random_init():
        nn.init.zeros_(param)
        nn.init.zeros_(buffer)
    assert param.detach().eq(7).all() and buffer.eq(0).all()
    nn.init.zeros_(param)  # restored afterwards
    assert param.detach().eq(0).all()


def test_files_get_the_mode_the_umask_gives_new_files(saved):
    import os

    _, run = saved
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("model.safetensors", "model.json", "config.yaml", "metrics.json"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_output_folder_guard(saved, tmp_path):
    from slimforge.artifacts import artifact_kind, check_output_folder
    from slimforge.errors import ConfigError

    _, run = saved
    assert artifact_kind(run) == "model" and artifact_kind(tmp_path / "none") is None
    check_output_folder(tmp_path / "new", "quantized", run)  # a new folder: fine
    check_output_folder(run, "model")  # the same kind again (a re-run): fine
    with pytest.raises(ConfigError, match="is the input folder"):
        check_output_folder(run, "model", run)
    with pytest.raises(ConfigError, match="already holds a model run folder"):
        check_output_folder(run, "quantized")


def test_qat_trained_model_saves_as_its_plain_architecture(tmp_path):
    """Fake quantization is training-time only: the run folder loads into the model.json architecture."""
    from slimforge.quantize.qat import is_qat_prepared, prepare_qat, strip_qat

    model = create_model("mlp", num_classes=10, input_size=(8, 8), hidden=(16,))
    prepare_qat(model)
    model(torch.randn(8, 1, 8, 8))  # the activation ranges get state
    slimforge.save(model.eval(), tmp_path / "qat")
    loaded = slimforge.load(tmp_path / "qat")
    assert not is_qat_prepared(loaded)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(loaded(x), strip_qat(model)(x))


@pytest.mark.parametrize("change, message", [({"format": "1"}, "'format' must be an integer"), ({"kwargs": "x"}, "'kwargs' must be an object"),
                                             ({"name": 5}, "'name' must be a string"), ({"edits": [{"kind": "bogus"}]}, "Known structural edits: factorize, mixed_dim, prune")])
def test_model_json_with_wrong_field_types_is_a_clear_error(saved, change, message):
    import json

    _, run = saved
    spec = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**spec, **change}))
    with pytest.raises((ArtifactError, UnknownNameError), match=message):
        slimforge.load(run)


def test_loading_an_int8_only_folder_as_fp32_points_at_its_source(tmp_path):
    """quantized=False on an ONNX Runtime int8 folder (no fp32 model inside) names the folder it came from."""
    from slimforge.cli import main

    run, q = tmp_path / "run", tmp_path / "q"
    assert main(["train", "--epochs", "1", "--threads", "1", "--out", str(run), "-q"]) == 0
    assert main(["quantize", str(run), "--out", str(q), "--threads", "1"]) == 0
    with pytest.raises(ArtifactError, match=f"int8 model only.*quantized from {run}"):
        slimforge.load(q, quantized=False)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_model_loads_in_its_own_dtype(tmp_path, dtype):
    """The folder rebuilds in fp32 and loads the saved tensors into it: each takes its saved dtype back (a
    bfloat16 model's reload would otherwise refuse its own bfloat16 inputs)."""
    torch.manual_seed(0)
    model = create_model("cnn", num_classes=3, in_channels=1, input_size=[8, 8]).eval().to(dtype)
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run")
    assert {p.dtype for p in loaded.parameters()} == {dtype}
    x = torch.randn(2, 1, 8, 8, dtype=dtype)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
