"""The ``timm:`` and ``hf:`` model sources: they build, prune, save and load back without
``trust_code`` and give identical outputs; pretrained weights come only from this machine."""

from __future__ import annotations

import json

import pytest
import torch

import slimforge
from slimforge import models
from slimforge.errors import SlimforgeError
from slimforge.models import create_model

timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _nothing_trusted(monkeypatch):
    """Sources must load with no factory trusted (a fresh process)."""
    monkeypatch.setattr(models, "_TRUSTED_FACTORIES", set())


TIMM_CASES = [
    ("timm:resnet18", {"num_classes": 10}),
    ("timm:vit_tiny_patch16_224", {"num_classes": 10, "img_size": 32, "patch_size": 8}),
]


@pytest.mark.parametrize("name,kwargs", TIMM_CASES)
def test_timm_source_saves_and_loads_without_trust(tmp_path, name, kwargs):
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    x = torch.randn(2, 3, 32, 32)
    slimforge.save(model, tmp_path / "run")
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    assert spec["name"] == name and spec["kwargs"]["pretrained"] is False  # the folder holds the weights
    loaded = slimforge.load(tmp_path / "run")
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_timm_source_pruned_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("timm:resnet18", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    before = sum(p.numel() for p in model.parameters())
    slimforge.prune(model, x, ratio=0.3)
    assert sum(p.numel() for p in model.parameters()) < 0.7 * before
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run")
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_timm_in_channels_maps_to_in_chans():
    model = create_model("timm:resnet18", num_classes=3, in_channels=1).eval()
    assert model.conv1.in_channels == 1
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def _fake_hub_cache(root, repo_id, tensors):
    """The Hugging Face hub cache layout try_to_load_from_cache reads: refs/main -> snapshots/<commit>/model.safetensors."""
    from safetensors.torch import save_file

    repo = root / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(repo / "snapshots" / commit / "model.safetensors"))


def test_timm_pretrained_loads_local_weights_only(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch-hub"))
    with pytest.raises(SlimforgeError, match=r"timm:resnet18: pretrained weights are not on this machine.*never downloads"):
        create_model("timm:resnet18", pretrained=True)
    # Weights in the local cache: they are the ones loaded, nothing is fetched.
    torch.manual_seed(1)
    reference = timm.create_model("resnet18", pretrained=False).state_dict()
    repo_id = timm.models.get_pretrained_cfg("resnet18").hf_hub_id
    _fake_hub_cache(tmp_path / "hub", repo_id, reference)
    model = create_model("timm:resnet18", pretrained=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in reference.items() if not k.endswith("num_batches_tracked"))
    assert slimforge.artifacts.get_spec(model).kwargs["pretrained"] is False


# ---------------------------------------------------------------- hf:


def _bert():
    config = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                     vocab_size=100, max_position_embeddings=32, num_labels=3)
    return transformers.BertForSequenceClassification(config), torch.randint(1, 100, (2, 8))


def _gpt2():
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=32)
    return transformers.GPT2LMHeadModel(config), torch.randint(0, 100, (2, 8))


def _vit():
    config = transformers.ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                    image_size=32, patch_size=8, num_labels=5)
    return transformers.ViTForImageClassification(config), torch.randn(2, 3, 32, 32)


HF_CASES = {"bert": _bert, "gpt2": _gpt2, "vit": _vit}


def hf_output(model, x):
    """logits of a transformers model (or of a slimforge model wrapping one) on ids or pixels."""
    with torch.no_grad():
        if x.is_floating_point():
            return model(pixel_values=x).logits
        return model(input_ids=x, use_cache=False).logits if hasattr(model.config, "n_inner") else model(input_ids=x).logits


@pytest.mark.parametrize("family", sorted(HF_CASES))
def test_hf_folder_source_round_trips_without_trust(tmp_path, family):
    torch.manual_seed(0)
    original, x = HF_CASES[family]()
    original.eval().save_pretrained(str(tmp_path / "hf"))
    model = create_model(f"hf:{tmp_path / 'hf'}").eval()
    assert type(model) is type(original)
    assert torch.equal(hf_output(model, x), hf_output(original, x))  # the folder's weights, not random ones
    slimforge.save(model, tmp_path / "run")
    spec = json.loads((tmp_path / "run" / "model.json").read_text())
    assert spec["name"] == "hf:" and str(tmp_path) not in json.dumps(spec)  # the config, not the path
    (tmp_path / "hf" / "model.safetensors").unlink()  # the run folder alone is enough
    loaded = slimforge.load(tmp_path / "run")
    assert torch.equal(hf_output(loaded, x), hf_output(model, x))


def test_hf_config_json_builds_random_init(tmp_path):
    torch.manual_seed(0)
    original, x = _vit()
    original.config.to_json_file(str(tmp_path / "bare.json"))  # names no class: the bare AutoModel one
    assert type(create_model(f"hf:{tmp_path / 'bare.json'}")).__name__ == "ViTModel"
    original.config.architectures = ["ViTForImageClassification"]
    original.config.to_json_file(str(tmp_path / "config.json"))
    model = create_model(f"hf:{tmp_path / 'config.json'}").eval()
    assert type(model).__name__ == "ViTForImageClassification" and model.config.num_labels == 5
    assert hf_output(model, x).shape == (2, 5)


def test_hf_pruned_model_round_trips(tmp_path):
    torch.manual_seed(0)
    original, x = _bert()
    original.save_pretrained(str(tmp_path / "hf"))
    model = create_model(f"hf:{tmp_path / 'hf'}").eval()
    slimforge.prune(model, x, ratio=0.3)
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run")
    assert loaded.config.hidden_size == model.config.hidden_size < 64
    assert torch.equal(hf_output(loaded, x), hf_output(model, x))


def test_sources_are_listed(capsys):
    from typer.testing import CliRunner

    from slimforge.cli import app

    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0
    assert "timm:<name>" in result.output and "hf:<folder" in result.output


@pytest.mark.parametrize("family", sorted(HF_CASES))
def test_transformers_model_built_outside_slimforge_saves_as_hf(tmp_path, family):
    """No create_model, no factory: a transformers model is described by its config (as hf:),
    recorded before pruning changes it; the folder loads without trust_code."""
    torch.manual_seed(0)
    model, x = HF_CASES[family]()
    model.eval()
    if family != "gpt2":  # GPT-2's Conv1D does not prune yet (issue 20 item 1)
        slimforge.prune(model, x, ratio=0.3)
    slimforge.save(model, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "model.json").read_text())["name"] == "hf:"
    loaded = slimforge.load(tmp_path / "run")
    assert type(loaded) is type(model)
    assert torch.equal(hf_output(loaded, x), hf_output(model, x))


def test_a_complex_buffer_keeps_its_imaginary_part_when_rebuilt(tmp_path):
    """Llama 4's vision tower keeps its rotary table as a complex buffer (``freqs_ci``, not saved: rebuilt from the
    config). The hf: build cast the model to float32 whole, which made it real, so the reloaded tower differed."""
    torch.manual_seed(0)
    config = transformers.Llama4VisionConfig(hidden_size=64, num_hidden_layers=1, num_attention_heads=4, intermediate_size=256,
                                             image_size=32, patch_size=8, vision_output_dim=64, projector_input_dim=64,
                                             projector_output_dim=64, pixel_shuffle_ratio=0.5, rope_theta=10000)
    model, pixels = transformers.Llama4VisionModel(config).eval(), torch.randn(2, 3, 32, 32)
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run")
    table = dict(loaded.named_buffers())["rotary_embedding.freqs_ci"]
    assert table.is_complex() and table.imag.abs().max() > 0.5
    with torch.no_grad():
        assert torch.equal(loaded(pixel_values=pixels).last_hidden_state, model(pixel_values=pixels).last_hidden_state)
