"""``keep_outputs="project"`` (the default for a bare backbone): the residual narrows like any group and the features
the model returns go back to their width through a layer that puts the kept features in their places and the unpruned
model's mean in the removed ones (a dense layer by default; ``"fill"``: the kept features unchanged and a constant plus a
learned mix of them in each removed place), so whatever reads them still fits."""
from __future__ import annotations

import json

import pytest
import torch

import slimforge
from slimforge.errors import ArtifactError
from slimforge.prune import prune

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _bert(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, max_position_embeddings=32)
    return transformers.BertModel(config).eval()


IDS = torch.randint(0, 200, (2, 12), generator=torch.Generator().manual_seed(1))


def test_a_bare_backbone_narrows_inside_and_returns_features_as_wide_as_before():
    whole, projected, narrow, kept = _bert(), _bert(), _bert(), _bert()
    with torch.no_grad():
        before = whole(IDS).last_hidden_state
    n0 = _parameters(whole)
    prune(projected, IDS, ratio=0.3)  # "auto": a transformers output with last_hidden_state and no logits
    prune(narrow, IDS, ratio=0.3, keep_outputs=False)
    prune(kept, IDS, ratio=0.3, keep_outputs=True)
    with torch.no_grad():
        out, small = projected(IDS), narrow(IDS)
    assert out.last_hidden_state.shape == before.shape and out.pooler_output.shape == (2, 64)
    assert projected.config.hidden_size == small.last_hidden_state.shape[-1] < 64  # the residual narrowed
    # the kept features sit in their old places, as the narrowed model computes them ...
    layer = projected.slimforge_outputs["last_hidden_state"]
    places = layer.weight.argmax(dim=0)
    assert torch.allclose(out.last_hidden_state[..., places], small.last_hidden_state, atol=1e-6)
    # ... and every removed one reads the unpruned model's mean there
    removed = sorted(set(range(64)) - set(places.tolist()))
    assert torch.allclose(out.last_hidden_state[..., removed], before.mean(dim=(0, 1))[removed].expand(2, 12, -1), atol=1e-6)
    # BERT's pooler output reaches only the pooler's own dense (1% of the model at 0.3): kept whole, not filled
    assert list(projected.slimforge_outputs) == ["last_hidden_state"] and projected.pooler.dense.out_features == 64
    reduction = {name: 1 - _parameters(m) / n0 for name, m in (("projected", projected), ("narrow", narrow), ("kept", kept))}
    assert reduction["projected"] > reduction["kept"] + 0.12 and reduction["projected"] > reduction["narrow"] - 0.06


def test_a_projected_backbone_reloads_prunes_again_and_runs_without_return_dict(tmp_path):
    model = _bert()
    prune(model, IDS, ratio=0.3)
    slimforge.save(model, tmp_path / "once")
    prune(model, IDS, ratio=0.3)  # the projection's input narrows with the residual; its output stays 64
    assert model.slimforge_outputs["last_hidden_state"].weight.shape[1] == model.config.hidden_size
    slimforge.save(model, tmp_path / "twice")
    with torch.no_grad():
        out = model(IDS)
        for folder in ("once", "twice"):
            again = slimforge.load(tmp_path / folder).eval()
            assert again(IDS).last_hidden_state.shape[-1] == 64
        assert torch.equal(again(IDS).last_hidden_state, out.last_hidden_state)
        assert model(IDS, return_dict=False)[0].shape[-1] == 64  # a tuple output: by position
        exported = torch.export.export(model, (IDS,)).module()(IDS)
    assert torch.allclose(exported["last_hidden_state"], out.last_hidden_state, atol=1e-5)


def test_a_projected_backbone_is_refused_as_a_plain_transformers_folder(tmp_path):
    model = _bert()
    prune(model, IDS, ratio=0.3)
    with pytest.raises(ArtifactError, match="keep_outputs=False"):
        slimforge.save_pretrained(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_a_corrupt_projection_record_is_refused_by_name(tmp_path):
    model = _bert()
    prune(model, IDS, ratio=0.3)
    slimforge.save(model, tmp_path / "run")
    path = tmp_path / "run" / "model.json"
    record = json.loads(path.read_text())
    good = json.dumps(record)
    for field, value in (("kept", [[0, 999]]), ("key", "training"), ("width", 10**12), ("form", "linear")):
        record = json.loads(good)
        next(e for e in record["edits"] if e.get("kind") == "prune")["outputs"][0][field] = value
        path.write_text(json.dumps(record))
        with pytest.raises(ArtifactError, match="outputs"):
            slimforge.load(tmp_path / "run")


def test_a_timm_feature_extractor_projects_its_pooled_features_until_it_gets_a_classifier(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=32, depth=2).eval()
    kept = timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=32, depth=2).eval()
    kept.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    n0 = _parameters(model)
    prune(model, x, ratio=0.3)
    prune(kept, x, ratio=0.3, keep_outputs=True)
    assert model(x).shape == (2, 192) and model.num_features < 192
    assert 1 - _parameters(model) / n0 > 1 - _parameters(kept) / n0 + 0.12
    slimforge.save(model, tmp_path / "run")
    with torch.no_grad():
        assert torch.equal(slimforge.load(tmp_path / "run")(x), model(x))
    model.reset_classifier(model.num_features)  # a head as wide as the narrowed features: its scores pass unprojected
    assert model(x).shape == (2, model.num_features)


def test_a_users_own_module_keeps_its_outputs_unless_told_to_project():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16))
    x = torch.randn(4, 8)
    prune(net, x, ratio=0.5)
    assert net[2].out_features == 16 and not hasattr(net, "slimforge_outputs")
    with pytest.raises(slimforge.prune.PruneConfigError, match="Sequential"):  # it would run the fill as a step
        prune(net, x, ratio=0.5, keep_outputs="project")

    class Net(torch.nn.Module):
        def __init__(self, layers: torch.nn.Module) -> None:
            super().__init__()
            self.layers = layers

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x)

    wrapped = Net(net)
    prune(wrapped, x, ratio=0.5, keep_outputs="project")  # one layer's 16 x 16 outputs: a dense layer back costs more
    assert net[2].out_features == 16 and not hasattr(wrapped, "slimforge_outputs")
    wide = Net(torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 16)))
    prune(wide, x, ratio=0.5, keep_outputs="fill")  # the fill costs less: the last layer's rows go, the output keeps 16
    assert wide.layers[2].out_features == 8 and wide(x).shape == (4, 16)


def test_keep_outputs_takes_only_its_five_values():
    with pytest.raises(slimforge.prune.PruneConfigError, match="keep_outputs"):
        prune(_bert(), IDS, ratio=0.3, keep_outputs="narrow")


def test_a_bare_cnn_projects_its_feature_map_channels_and_its_pooled_features_through_one_layer(tmp_path):
    """Hugging Face's ResNetModel returns the last stage's map (B, C, H, W) and its average (B, C, 1, 1): the channels
    are dimension 1 of both, the same units, so one projection serves the two."""
    torch.manual_seed(0)
    config = transformers.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], layer_type="basic")
    model, x = transformers.ResNetModel(config).eval(), torch.randn(2, 3, 64, 64)
    prune(model, x, ratio=0.3)
    (layer,) = model.slimforge_outputs.values()
    assert sorted(layer.targets) == [("last_hidden_state", 0, 1, None), ("pooler_output", 1, 1, None)] and layer.kept < 128
    with torch.no_grad():
        out = model(x)
        assert out.last_hidden_state.shape == (2, 128, 2, 2) and out.pooler_output.shape == (2, 128, 1, 1)
        assert torch.allclose(out.pooler_output, out.last_hidden_state.mean(dim=(2, 3), keepdim=True), atol=1e-5)
        slimforge.save(model, tmp_path / "run")
        assert torch.equal(slimforge.load(tmp_path / "run")(x).last_hidden_state, out.last_hidden_state)


def test_a_model_that_returns_predictions_beside_its_last_hidden_state_is_no_bare_backbone():
    """Decision Transformer's output has a last_hidden_state and no logits, but its state/action/return predictions
    are predictions: "auto" leaves it as it was (every output's width kept); "project", asked for, projects only
    what is worth it and never narrows the predictions' three action units."""
    torch.manual_seed(0)
    config = transformers.DecisionTransformerConfig(state_dim=8, act_dim=3, hidden_size=64, n_layer=2, n_head=4,
                                                    max_ep_len=64, n_positions=64)
    inputs = dict(states=torch.randn(2, 12, 8), actions=torch.randn(2, 12, 3), rewards=torch.randn(2, 12, 1),
                  returns_to_go=torch.randn(2, 12, 1), timesteps=torch.randint(0, 64, (2, 12)),
                  attention_mask=torch.ones(2, 12, dtype=torch.long))
    model = transformers.DecisionTransformerModel(config).eval()
    prune(model, example_kwargs=inputs, ratio=0.3)
    assert not hasattr(model, "slimforge_outputs") and model.config.hidden_size == 64
    assert (model.predict_action[0].out_features, model.predict_state.out_features) == (3, 8)
    with torch.no_grad():
        out = model(**inputs)
    assert out.action_preds.shape == (2, 12, 3) and out.last_hidden_state.shape[-1] == 64


def test_a_failing_projection_is_taken_out_before_the_model_is_pruned_again_with_widths_kept(monkeypatch):
    """If the pruned model fails once its outputs are projected, the projection goes with the failed try and "auto"
    prunes again with the widths kept."""
    import slimforge.prune.structured as structured

    original, calls = structured._check_outputs, []

    def fail_once_projected(model, *args, **kwargs):
        calls.append(hasattr(model, "slimforge_outputs"))
        if hasattr(model, "slimforge_outputs") and calls.count(True) == 1:
            raise slimforge.prune.PruningError("a size the code takes from the config")
        return original(model, *args, **kwargs)

    monkeypatch.setattr(structured, "_check_outputs", fail_once_projected)
    model = _bert()
    prune(model, IDS, ratio=0.3)
    assert True in calls and not hasattr(model, "slimforge_outputs") and model.config.hidden_size == 64
    assert project_hooks(model) == 0 and model(IDS).last_hidden_state.shape[-1] == 64


def project_hooks(model: torch.nn.Module) -> int:
    from slimforge.prune._output_projection import project_outputs

    return sum(hook is project_outputs for hook in model._forward_hooks.values())


def test_per_layer_states_narrow_while_the_features_are_projected():
    """Asked for its per-layer hidden_states, a bare BERT still projects last_hidden_state; the tuple of states
    narrows with the residual, as it does beside a classifier's logits (Qwen3-VL's deepstack_features alike)."""
    model = _bert()
    prune(model, example_kwargs=dict(input_ids=IDS, output_hidden_states=True), ratio=0.3)
    assert "last_hidden_state" in model.slimforge_outputs
    with torch.no_grad():
        out = model(IDS, output_hidden_states=True)
    assert out.last_hidden_state.shape[-1] == 64 and out.hidden_states[-1].shape[-1] == model.config.hidden_size < 64


def test_xlnet_memory_narrows_with_the_model_and_feeds_the_next_segment():
    """XLNet returns mems (each layer's input, kept for the next segment) in eval mode only, so the captured graph
    never holds them: they are per-layer states like hidden_states, narrow with the residual, and fit the pruned
    layers when passed back. Keeping their widths pinned the whole residual (24.7% pruned instead of 37.7%)."""
    torch.manual_seed(0)
    config = transformers.XLNetConfig(vocab_size=128, d_model=64, n_layer=2, n_head=4, d_inner=128, mem_len=8)
    model = transformers.XLNetModel(config).eval()
    n0 = sum(p.numel() for p in model.parameters())
    prune(model, IDS % 128, ratio=0.3)
    assert "last_hidden_state" in model.slimforge_outputs and sum(p.numel() for p in model.parameters()) < 0.7 * n0
    with torch.no_grad():
        first = model(IDS % 128)
        second = model(IDS % 128, mems=first.mems)
    assert [m.shape[-1] for m in first.mems] == [model.config.d_model] * 2 and model.config.d_model < 64
    assert second.last_hidden_state.shape == (2, IDS.shape[1], 64)


def test_an_encoder_that_returns_only_its_pooled_embedding_is_a_bare_backbone_too():
    """DPR's question encoder returns pooler_output alone (no last_hidden_state): the embedding users index keeps its
    width through the projection while the encoder narrows."""
    torch.manual_seed(0)
    config = transformers.DPRConfig(vocab_size=200, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=128, max_position_embeddings=32)
    model = transformers.DPRQuestionEncoder(config).eval()
    prune(model, IDS, ratio=0.3)
    assert list(model.slimforge_outputs) == ["pooler_output"]
    with torch.no_grad():
        assert model(IDS).pooler_output.shape == (2, 64)


def test_a_backbones_feature_maps_keep_their_widths():
    """transformers' *Backbone classes return feature_maps, a tuple of what a detection neck reads: unlike the
    per-layer hidden_states they keep their shapes (the pruned model failed its output check before)."""
    torch.manual_seed(0)
    model = transformers.ResNetBackbone(transformers.ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], layer_type="basic", out_features=["stage3", "stage4"])).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = [t.shape for t in model(x).feature_maps]
    prune(model, x, ratio=0.3)
    with torch.no_grad():
        assert [t.shape for t in model(x).feature_maps] == before


def _dinov2_backbone() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.Dinov2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                       image_size=32, patch_size=8, out_features=["stage1", "stage2"])
    return transformers.Dinov2Backbone(config).eval()


def test_a_vit_backbones_feature_maps_narrow_inside_and_come_back_through_one_layer(tmp_path):
    """A ViT backbone's feature maps are its residual at several layers: kept whole, they pinned it (25% removed at
    ratio 0.3 where the model with a head loses 42%); now each map is projected back, one layer for maps of the same
    units, and the plan names each map by its place in the field."""
    model, kept, x = _dinov2_backbone(), _dinov2_backbone(), torch.randn(2, 3, 32, 32)
    n0 = _parameters(model)
    with torch.no_grad():
        before = [t.shape for t in model(x).feature_maps]
    prune(model, x, ratio=0.3)
    prune(kept, x, ratio=0.3, keep_outputs=True)
    (layer,) = model.slimforge_outputs.values()
    assert sorted(layer.targets) == [("feature_maps", 0, 1, 0), ("feature_maps", 1, 1, 1)] and layer.kept < 64
    assert 1 - _parameters(model) / n0 > 1 - _parameters(kept) / n0 + 0.10
    with torch.no_grad():
        out = model(x).feature_maps
        assert [t.shape for t in out] == before
        slimforge.save(model, tmp_path / "run")
        again = slimforge.load(tmp_path / "run")(x).feature_maps
    assert all(torch.equal(a, b) for a, b in zip(again, out))
    record = json.loads((tmp_path / "run" / "model.json").read_text())
    (entry,) = next(e for e in record["edits"] if e.get("kind") == "prune")["outputs"]
    assert entry["targets"] == [["feature_maps", 0, 1, 0], ["feature_maps", 1, 1, 1]]
    entry["targets"] = [[None, 0, 1, 0]]  # a place in a field, without the field
    (tmp_path / "run" / "model.json").write_text(json.dumps(record))
    with pytest.raises(ArtifactError, match="targets"):
        slimforge.load(tmp_path / "run")


def test_an_output_whose_layer_would_cost_more_than_its_narrowing_saves_keeps_its_width():
    """Counted on the chosen cut, not estimated: a 64-wide bottleneck ResNet's stage maps (the trace's estimate said
    worth it) would cost more in projection than they save, so they keep their widths and the model is no larger
    than with keep_outputs=True."""
    def build():
        torch.manual_seed(0)
        return transformers.ResNetBackbone(transformers.ResNetConfig(
            embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
            out_features=["stage2", "stage3", "stage4"])).eval()
    model, kept, x = build(), build(), torch.randn(2, 3, 32, 32)
    prune(model, x, ratio=0.3)
    prune(kept, x, ratio=0.3, keep_outputs=True)
    assert not hasattr(model, "slimforge_outputs")
    assert _parameters(model) <= _parameters(kept) < _parameters(build())


def test_a_pruned_rwkv_runs_with_its_recurrent_state():
    """RWKV has no attention to read its hidden size from: config.hidden_size stayed at the unpruned width and the
    state RWKV builds from it (use_cache=True, the default) no longer fit the narrowed residual. It follows the token
    embedding's width now, for the language model and for its bare base model."""
    for cls in (transformers.RwkvForCausalLM, transformers.RwkvModel):
        torch.manual_seed(0)
        config = transformers.RwkvConfig(vocab_size=128, hidden_size=64, num_hidden_layers=2, attention_hidden_size=64,
                                         intermediate_size=128, context_length=64)
        model = cls(config).eval()
        prune(model, IDS % 128, ratio=0.3)
        assert model.config.hidden_size == model.get_input_embeddings().embedding_dim < 64
        with torch.no_grad():
            out = model(IDS % 128, use_cache=True)
        assert out.state is not None


def test_the_dense_layer_and_the_fill_compute_the_same_right_after_pruning():
    """A record without "form" is the dense layer (0/1 weight, bias); with "form": "fill" the kept features pass
    unchanged and the removed places read their constants (the mix starts at zero)."""
    from slimforge.prune import _output_projection as op

    entry = {"key": "last_hidden_state", "targets": [("last_hidden_state", 0, 2)], "width": 6, "kept": [0, 2, 5]}
    dense, fill = torch.nn.Module(), torch.nn.Module()
    op.install(dense, op.checked_entries([{**entry, "targets": [list(entry["targets"][0])], "kept": [[0, 1], [2, 3], [5, 6]]}], 6))
    op.install(fill, [{**entry, "form": op.FILL}])
    mean = torch.arange(6.0) + 10
    for model in (dense, fill):
        op.initialise(model, [{**entry, "form": op.FILL} if model is fill else entry], {0: [None, None, mean]})
    assert isinstance(dense.slimforge_outputs["last_hidden_state"], op.OutputProjection)
    x = torch.randn(2, 4, 3)
    out = {"last_hidden_state": x}
    a = op.project_outputs(dense, (), dict(out))["last_hidden_state"]
    b = op.project_outputs(fill, (), dict(out))["last_hidden_state"]
    assert torch.equal(a, b) and torch.equal(b[..., [0, 2, 5]], x) and torch.equal(b[0, 0, [1, 3, 4]], mean[[1, 3, 4]])


def test_fields_named_as_predictions_mark_a_model_with_a_head():
    """A transformers output with any of these fields is a model's prediction, never a bare backbone's features."""
    from slimforge.prune._capture import predicted_fields

    keys = ["last_hidden_state", "pooler_output", "router_logits", "heatmaps", "waveform", "spectrogram", "pred_boxes",
            "iou_scores", "mean_predictions", "logits", "hidden_states"]
    assert predicted_fields(keys) == ["heatmaps", "waveform", "spectrogram", "pred_boxes", "iou_scores", "mean_predictions", "logits"]


def test_the_fill_is_smaller_reloads_prunes_again_and_exports(tmp_path):
    """keep_outputs="fill": the kept features in their places unchanged, each removed place a constant plus a mix of
    the kept features (removed x kept parameters, zero at first); the places are in the plan, not the weights. A second
    pruning narrows its index and mix columns with the residual (index_copy's rows follow an index that is the
    model's own tensor)."""
    dense, model = _bert(), _bert()
    with torch.no_grad():
        before = model(IDS).last_hidden_state
    prune(dense, IDS, ratio=0.3)
    prune(model, IDS, ratio=0.3, keep_outputs="fill")
    fill = model.slimforge_outputs["last_hidden_state"]
    with torch.no_grad():
        out, reference = model(IDS).last_hidden_state, dense(IDS).last_hidden_state
    assert torch.allclose(out, reference, atol=1e-6)  # the same function right after pruning
    removed = fill.removed
    assert torch.allclose(out[..., removed], before.mean(dim=(0, 1))[removed].expand(2, 12, -1), atol=1e-6)
    assert _parameters(model.slimforge_outputs) == 64 + 16 * 48 < _parameters(dense.slimforge_outputs) == 64 * 48 + 64
    assert set(model.slimforge_outputs.state_dict()) == {"last_hidden_state.fill", "last_hidden_state.mix"}
    with torch.no_grad():
        fill.mix.normal_()  # as if trained: the removed places now depend on the kept features
        trained = model(IDS).last_hidden_state
    assert not torch.allclose(trained[..., removed], out[..., removed])
    prune(model, IDS, ratio=0.3, keep_outputs="fill")
    assert fill.kept == model.config.hidden_size < 48 and fill.mix.shape == (16, fill.kept)
    with torch.no_grad():
        again = model(IDS)
        slimforge.save(model, tmp_path)
        assert torch.equal(slimforge.load(tmp_path)(IDS).last_hidden_state, again.last_hidden_state)
        exported = torch.export.export(model, (IDS,)).module()(IDS)
    assert again.last_hidden_state.shape == (2, 12, 64)
    assert torch.allclose(exported["last_hidden_state"], again.last_hidden_state, atol=1e-5)
