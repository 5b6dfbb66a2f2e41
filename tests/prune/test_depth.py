"""Latency-aware pruning in depth: which blocks can go, how they are judged, how many are chosen, and the folder that
replays it. Timings are injected where a choice is checked, so it is deterministic."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import slimforge
from slimforge.errors import ArtifactError
from slimforge.prune import PruneConfigError, prune
from slimforge.prune.depth import SkippedBlock, block_scores, choose_depth, find_blocks, reference_outputs, skip_blocks
from slimforge.prune.latency import LatencySettings


def resnet20() -> nn.Module:
    torch.manual_seed(0)
    return slimforge.create_model("resnet20", num_classes=10, in_channels=1, width=1).eval()


class Residual(nn.Module):
    def __init__(self, width: int, scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.body(x)


class Tower(nn.Module):
    """Residual blocks of different strength in a ModuleList, a widening layer, and a head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Linear(6, 8)
        self.blocks = nn.ModuleList([Residual(8, 1.0), Residual(8, 0.01), Residual(8, 0.3)])
        self.widen = nn.Sequential(nn.Linear(8, 12), nn.ReLU())  # changes the shape: not a block
        self.head = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for b in self.blocks:
            x = b(x)
        return self.head(self.widen(x))


def test_the_blocks_are_the_shape_keeping_children_of_containers_outermost_first_in_run_order():
    model = resnet20()
    names = find_blocks(model, (torch.randn(2, 1, 16, 16),), {})
    # the first block of stages 2 and 3 strides and projects its shortcut: it changes the shape and stays
    assert names == ["layer1.0", "layer1.1", "layer1.2", "layer2.1", "layer2.2", "layer3.1", "layer3.2"]
    assert find_blocks(Tower(), (torch.randn(4, 6),), {}) == ["blocks.0", "blocks.1", "blocks.2"]  # not body.*, not widen


def test_a_shape_keeping_stage_offers_its_blocks_and_a_block_hides_its_shape_keeping_parts():
    """ConvNeXt's first stage keeps its input's shape and holds two blocks: the blocks are offered, not the stage.
    A block whose inside holds one shape-keeping part (MobileNetV2's depthwise convolution) is offered whole."""
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(8, 16), nn.Sequential(nn.Linear(16, 16), nn.ReLU()), nn.Linear(16, 8))
    model = nn.Sequential(nn.Sequential(Residual(8), Residual(8)), inner, nn.Linear(8, 3))
    assert find_blocks(model, (torch.randn(4, 8),), {}) == ["0.0", "0.1", "1"]


def test_blocks_of_a_sequential_with_named_children_are_skipped_by_name():
    """torchvision's ViT holds its layers in an nn.Sequential built from names (``encoder_layer_0``)."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2, hidden_dim=16,
                                                 mlp_dim=32, num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    names = find_blocks(model, (x,), {})
    assert names == ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1"]
    skipped = skip_blocks(model, names[1:])
    assert isinstance(skipped.encoder.layers.encoder_layer_1, SkippedBlock) and skipped(x).shape == (2, 3)


def test_a_skipped_block_returns_its_input_and_the_weakest_block_scores_lowest():
    model, x = Tower().eval(), torch.randn(64, 6)
    skipped = skip_blocks(Tower().eval(), ["blocks.1"])
    assert isinstance(skipped.blocks[1], SkippedBlock) and skipped.blocks[1](x, "mask", k=1) is x
    reference = reference_outputs(model, [x])
    scores = block_scores(model, ["blocks.0", "blocks.1", "blocks.2"], [x], reference)
    assert min(scores, key=scores.get) == "blocks.1" and max(scores, key=scores.get) == "blocks.0"
    assert scores["blocks.1"] < scores["blocks.2"] < scores["blocks.0"]


def fraction_by_parameters(original: nn.Module, candidate: nn.Module) -> float:
    return sum(p.numel() for p in candidate.parameters()) / sum(p.numel() for p in original.parameters())


def test_the_weakest_blocks_go_in_the_models_order_and_the_rest_is_narrowed_to_what_the_target_leaves():
    model, x = Tower().eval(), torch.randn(32, 6)
    narrowed = []

    def narrow(m: nn.Module, fraction: float) -> nn.Module:
        narrowed.append(fraction)
        return m

    choice = choose_depth(model, (x,), {}, 0.3, 2, [(x, None)], fraction_by_parameters, narrow)
    assert choice.blocks == ["blocks.1", "blocks.2"] and sorted(choice.scores) == ["blocks.0", "blocks.1", "blocks.2"]
    assert choice.depth_fraction == pytest.approx(fraction_by_parameters(model, choice.model))
    assert narrowed == [pytest.approx(0.3 / choice.depth_fraction)]
    assert isinstance(choice.model.blocks[1], SkippedBlock) and not isinstance(model.blocks[1], SkippedBlock)  # a copy
    kept = choose_depth(model, (x,), {}, 0.3, 2, [(x, None)], fraction_by_parameters, narrow, kept=lambda n: n == "blocks.1")
    assert kept.blocks == ["blocks.0", "blocks.2"] and "blocks.1" not in kept.scores  # a skip pattern keeps its block


def test_blocks_need_calibration_a_count_the_model_has_and_latency_left_to_narrow():
    model, x = Tower().eval(), torch.randn(8, 6)
    with pytest.raises(PruneConfigError, match="calibration"):
        choose_depth(model, (x,), {}, 0.3, 1, None, fraction_by_parameters, lambda m, f: m)
    with pytest.raises(PruneConfigError, match="has 3 block"):
        choose_depth(model, (x,), {}, 0.3, 4, [(x, None)], fraction_by_parameters, lambda m, f: m)
    with pytest.raises(PruneConfigError, match="already at or under the target 0.9; remove fewer"):
        choose_depth(model, (x,), {}, 0.9, 2, [(x, None)], fraction_by_parameters, lambda m, f: m)
    for bad in (-1, "auto", True, 1.5):
        with pytest.raises(PruneConfigError, match="latency.blocks"):
            LatencySettings(blocks=bad).validate()


def test_prune_in_depth_records_both_edits_and_the_folder_replays_them(tmp_path):
    """End to end with real timings on a small ResNet-20: one block removed, the rest narrowed; the plan says what
    was measured overall; save and load give the same outputs; the folder's edit is checked before it is applied."""
    model = resnet20()
    x = torch.randn(2, 1, 16, 16)
    calibration = [(torch.randn(16, 1, 16, 16), torch.randint(0, 10, (16,))) for _ in range(2)]
    settings = LatencySettings(batch_size=8, cache_dir=str(tmp_path / "cache"), repeats=3, max_rounds=1, blocks=1)
    prune(model, x, target_latency=0.6, latency=settings, calibration=calibration)
    edits = slimforge.artifacts.get_spec(model).edits
    assert [e["kind"] for e in edits] == ["skip_blocks", "prune"] and len(edits[0]["blocks"]) == 1
    skipped = edits[0]["blocks"][0]
    assert isinstance(model.get_submodule(skipped), SkippedBlock)
    lat = edits[1]["latency"]
    assert lat["target"] == 0.6 and lat["blocks"] == [skipped] and lat["blocks_fraction"] > 0
    assert lat["measured"] > 0  # timings of a tiny model on a busy box: no bound
    model.eval()
    slimforge.save(model, tmp_path / "run")
    again = slimforge.load(tmp_path / "run").eval()
    torch.testing.assert_close(again(x), model(x))

    structure = json.loads((tmp_path / "run" / "model.json").read_text())
    for bad, why in ((["conv1"], "not a block"), (["layer9.0"], "not a block"), ([1], "distinct module names"),
                     (["layer1.0", "layer1.0"], "distinct module names")):
        structure["edits"][0]["blocks"] = bad
        (tmp_path / "run" / "model.json").write_text(json.dumps(structure))
        with pytest.raises(ArtifactError, match=why):
            slimforge.load(tmp_path / "run")


def test_a_transformers_encoder_loses_a_layer_reloads_and_is_refused_as_a_plain_transformers_folder(tmp_path):
    """BERT's layers sit in a ModuleList and are called with the attention mask: a layer can go; slimforge's folder
    reloads it identically, and save_pretrained refuses (a config numbers its layers without gaps)."""
    transformers = pytest.importorskip("transformers")
    from slimforge.models.hf import save_pretrained

    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                     intermediate_size=64, num_labels=3)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    x = torch.randint(0, 100, (2, 12))
    assert find_blocks(model, (x,), {}) == ["bert.encoder.layer.0", "bert.encoder.layer.1", "bert.encoder.layer.2"]
    calibration = [(torch.randint(0, 100, (8, 12)), None) for _ in range(2)]
    settings = LatencySettings(batch_size=8, cache_dir=str(tmp_path / "cache"), repeats=3, max_rounds=1, blocks=1)
    prune(model.train(), x, target_latency=0.6, latency=settings, calibration=calibration)
    model.eval()
    assert sum(isinstance(layer, SkippedBlock) for layer in model.bert.encoder.layer) == 1
    slimforge.save(model, tmp_path / "run")
    torch.testing.assert_close(slimforge.load(tmp_path / "run").eval()(x).logits, model(x).logits)
    with pytest.raises(ArtifactError, match="removed whole blocks"):
        save_pretrained(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
