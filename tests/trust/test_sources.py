"""The timm: and hf: sources load without trust_code, so nothing a file says through them may run
code or unpickle: remote-code configs, path-like names, keywords pointing at files, pickled weights."""

from __future__ import annotations

import json

import pytest
import torch

import slimforge
from slimforge.errors import SlimforgeError
from slimforge.models import create_model

from .conftest import canary_pickle, write_json

transformers = pytest.importorskip("transformers")
pytest.importorskip("timm")

REMOTE_CODE = """
open({canary!r}, "w").write("imported")
from transformers import BertModel as EvilModel
"""


def _bert_config(**extra) -> dict:
    config = transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                     vocab_size=50, max_position_embeddings=16).to_dict()
    config.update({"architectures": ["BertModel"], **extra})
    return config


def _run_folder(tmp_path, name: str, kwargs: dict):
    """A run folder whose model.json names ``name`` with ``kwargs`` (weights never reached)."""
    run = tmp_path / "run"
    run.mkdir()
    write_json(run / "model.json", {"format": 1, "name": name, "kwargs": kwargs, "edits": []})
    (run / "model.safetensors").write_bytes(b"")
    return run


@pytest.mark.parametrize("key,value", [
    ("auto_map", {"AutoModel": "modeling_evil.EvilModel", "AutoConfig": "modeling_evil.EvilConfig"}),
    ("trust_remote_code", True),
    ("custom_pipelines", {"evil": {"impl": "modeling_evil.Pipe"}}),
])
def test_hf_folder_asking_for_remote_code_is_refused(tmp_path, canary, key, value):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "modeling_evil.py").write_text(REMOTE_CODE.format(canary=str(canary)))
    write_json(folder / "config.json", _bert_config(**{key: value}))
    transformers.BertModel(transformers.BertConfig(**_bert_config())).save_pretrained(str(tmp_path / "weights"))
    (folder / "model.safetensors").write_bytes((tmp_path / "weights" / "model.safetensors").read_bytes())
    with pytest.raises(SlimforgeError, match=f"sets '{key}'.*trust_remote_code"):
        create_model(f"hf:{folder}")
    with pytest.raises(SlimforgeError, match=f"sets '{key}'"):
        slimforge.load(_run_folder(tmp_path, "hf:", {"config": _bert_config(**{key: value})}))
    assert not canary.exists()


def test_hf_folder_with_pickled_weights_is_refused(tmp_path, canary):
    folder = tmp_path / "hf"
    folder.mkdir()
    write_json(folder / "config.json", _bert_config())
    (folder / "pytorch_model.bin").write_bytes(canary_pickle(canary))
    with pytest.raises(SlimforgeError, match=r"pytorch_model.bin, a pickle.*never unpickles.*save_pretrained"):
        create_model(f"hf:{folder}")
    assert not canary.exists()


def test_hf_folder_without_weights_points_at_its_config(tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    write_json(folder / "config.json", _bert_config())
    with pytest.raises(SlimforgeError, match=r"no model.safetensors.*config.json for random weights"):
        create_model(f"hf:{folder}")


@pytest.mark.parametrize("config,match", [
    ({"model_type": "no-such-type"}, r"'model_type' 'no-such-type' is not a transformers model type"),
    ("bert", r"must be an object"),
    (_bert_config(architectures=["pipeline"]), r"architecture 'pipeline' is not a transformers class for model type 'bert'"),
    (_bert_config(architectures=["GPT2Model"]), r"architecture 'GPT2Model' is not a transformers class for model type 'bert'"),
])
def test_hf_config_in_a_run_folder_is_checked(tmp_path, config, match):
    with pytest.raises(SlimforgeError, match=match):
        slimforge.load(_run_folder(tmp_path, "hf:", {"config": config}))


def test_hf_name_must_be_a_local_model(tmp_path):
    with pytest.raises(SlimforgeError, match=r"not a Hugging Face model folder or a config .json file \(it does not exist\)"):
        slimforge.load(_run_folder(tmp_path, f"hf:{tmp_path / 'nowhere'}", {}))
    (tmp_path / "weights.bin").write_bytes(b"\x80\x04")
    with pytest.raises(SlimforgeError, match=r"not a Hugging Face model folder or a config .json file"):
        create_model(f"hf:{tmp_path / 'weights.bin'}")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/tmp/resnet18", "resnet18/../x", "resnet18.a1_in1k/x", "resnet18:x", ""])
def test_timm_names_with_path_characters_are_refused(tmp_path, name):
    with pytest.raises(SlimforgeError, match=r"Unknown timm model .*never a path|Unknown timm model ''"):
        slimforge.load(_run_folder(tmp_path, f"timm:{name}", {}))


@pytest.mark.parametrize("key", ["pretrained_cfg_overlay", "pretrained_cfg", "checkpoint_path", "cache_dir"])
def test_timm_keywords_pointing_at_files_are_refused(tmp_path, canary, key):
    weights = tmp_path / "evil.pth"
    weights.write_bytes(canary_pickle(canary))
    value = {"file": str(weights), "source": ""} if key.startswith("pretrained_cfg") else str(weights)
    with pytest.raises(SlimforgeError, match=f"keyword '{key}' is not accepted"):
        slimforge.load(_run_folder(tmp_path, "timm:resnet18", {"pretrained": True, key: value}))
    assert not canary.exists()


def test_timm_unknown_model_suggests_a_name(tmp_path):
    with pytest.raises(SlimforgeError, match=r"Unknown timm model 'resnet19'.*resnet18"):
        create_model("timm:resnet19")


def test_sources_load_with_trust_off_and_nothing_trusted(tmp_path, monkeypatch):
    """A saved timm: model and a saved hf: model load in a process that trusts nothing."""
    from slimforge import models

    monkeypatch.setattr(models, "_TRUSTED_FACTORIES", set())
    torch.manual_seed(0)
    timm_model = create_model("timm:resnet18", num_classes=3).eval()
    slimforge.save(timm_model, tmp_path / "timm")
    hf_model = slimforge.models.hf.build_from_config(_bert_config()).eval()
    slimforge.artifacts.attach_spec(hf_model, slimforge.artifacts.ModelSpec("hf:", {"config": _bert_config()}))
    slimforge.save(hf_model, tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "model.json").read_text())["name"] == "hf:"
    x, ids = torch.randn(2, 3, 32, 32), torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        assert torch.equal(slimforge.load(tmp_path / "timm")(x), timm_model(x))
        assert torch.equal(slimforge.load(tmp_path / "hf")(ids).last_hidden_state, hf_model(ids).last_hidden_state)
