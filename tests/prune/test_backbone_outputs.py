"""A bare backbone's outputs keep their width: by default its residual narrows and a linear layer puts the features
back to their width (``keep_outputs="auto"``/``"project"``); ``keep_outputs=True`` keeps the residual whole and
``False`` lets the outputs narrow. A pruned timm model's own record of its feature width follows its layers, so
``reset_classifier`` builds a head that fits."""
from __future__ import annotations

import copy

import pytest
import torch

import slimforge
from slimforge.prune import PruningError, prune

timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _bert() -> torch.nn.Module:
    config = transformers.BertConfig(vocab_size=200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, max_position_embeddings=32)
    return transformers.BertModel(config).eval()


def test_a_bare_backbone_keeps_its_output_width_whole_when_asked():
    model, ids = _bert(), torch.randint(0, 200, (2, 12))
    prune(model, ids, ratio=0.3, keep_outputs=True)
    assert model(ids).last_hidden_state.shape[-1] == 64 and model.config.hidden_size == 64
    assert not hasattr(model, "slimforge_outputs")


def test_a_bare_backbone_lets_its_outputs_narrow_when_asked(tmp_path):
    torch.manual_seed(0)
    kept, free, ids = _bert(), _bert(), torch.randint(0, 200, (2, 12))
    n0 = _parameters(kept)
    prune(kept, ids, ratio=0.3, keep_outputs=True)
    prune(free, ids, ratio=0.3, keep_outputs=False)
    out = free(ids)
    width = out.last_hidden_state.shape[-1]
    assert width < 64 and out.pooler_output.shape[-1] == width
    assert free.config.hidden_size == width  # the config follows, so plain transformers rebuilds it
    assert 1 - _parameters(free) / n0 > (1 - _parameters(kept) / n0) + 0.15
    slimforge.save(free, tmp_path / "run")
    with torch.no_grad():
        assert torch.equal(slimforge.load(tmp_path / "run")(ids).last_hidden_state, out.last_hidden_state)


def test_a_timm_feature_extractor_narrows_its_features_and_reloads(tmp_path):
    """``num_classes=0``: timm's pooled features; recognised as timm:<name> although 0 is no class count."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=32, depth=2).eval()
    x = torch.randn(2, 3, 32, 32)
    prune(model, x, ratio=0.3, keep_outputs=False)
    features = model(x)
    assert features.shape[-1] < 192 and model.num_features == features.shape[-1]
    slimforge.save(model, tmp_path / "run")
    with torch.no_grad():
        assert torch.equal(slimforge.load(tmp_path / "run")(x), features)


def test_narrowed_outputs_still_get_their_rank_checked():
    """With keep_outputs=False the output check compares ranks: a pruned model that drops a dimension still fails."""
    from slimforge.prune.structured import _check_outputs

    model = torch.nn.Flatten(0)
    with pytest.raises(PruningError, match="output shape"):
        _check_outputs(model, (torch.randn(2, 3),), {}, (2, 3), widths=False)


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3_small_100", "convnext_atto"])
def test_reset_classifier_fits_a_pruned_timm_model_and_its_reload(name, tmp_path):
    """timm keeps the width its classifier reads in attributes (num_features, head_hidden_size, the head's
    in_features) that no forward reads: they follow the pruned layers, also after a reload."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    prune(model, x, ratio=0.3)
    slimforge.save(model, tmp_path / "run")
    for m in (model, slimforge.load(tmp_path / "run")):
        m = copy.deepcopy(m)
        m.reset_classifier(5)
        assert m(x).shape == (2, 5)
