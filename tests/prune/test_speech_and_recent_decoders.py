"""Issue 20's ninth held-out pass: wav2vec 2.0's family of speech encoders (weight-normalised positional convolution,
a mask embedding only training reads, Conformer attention and GLU convolution modules) and recent decoders whose
attention or experts differ from Llama's (MiMo-V2's wider value heads, MiniCPM5's gated query, Ergo's fused
projection and per-expert norm, Inkling's router over routed and shared experts); from the eleventh, Inkling 2's
attention of no registered form and T5Gemma 2's classifier; from the fifteenth, EmbeddingGemma 2's heterogeneous config
(its full-attention layers have their own key/value heads, which the config refuses to give for the whole model); from
the sixteenth, WavLM's relative position bias gated per head from the block's input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import slimforge
import slimforge.prune as sp

HERE = Path(__file__).parent
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def helpers_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _helper(name: str):
    import prune_helpers

    return getattr(prune_helpers, name)().eval()


def test_wav2vec2_prunes_trains_with_masking_and_loads_in_plain_transformers(tmp_path, caplog):
    from transformers import AutoModelForAudioClassification

    model = _helper("tiny_wav2vec2")
    wave = torch.randn(2, 1600, generator=torch.Generator().manual_seed(0))
    heads = sum(m.num_heads for m in model.modules() if hasattr(m, "k_proj") and hasattr(m, "num_heads"))
    sp.prune(model, example_kwargs={"input_values": wave}, ratio=0.3)  # _weight_norm had no rule: it failed before
    hidden = model.wav2vec2.feature_projection.projection.out_features
    assert hidden < 64 and sum(m.num_heads for m in model.modules() if hasattr(m, "k_proj") and hasattr(m, "num_heads")) < heads
    assert model.wav2vec2.masked_spec_embed.shape == (hidden,)  # read only in training: it kept 64 and training failed
    assert "never reach" not in caplog.text  # it follows the feature projection: no warning that it was left as it is
    model.train()
    model(input_values=wave, labels=torch.tensor([0, 1])).loss.backward()  # masks frames with masked_spec_embed
    model.eval()
    with torch.no_grad():
        logits = model(input_values=wave).logits
        slimforge.save_pretrained(model, tmp_path / "hf")
        plain = AutoModelForAudioClassification.from_pretrained(tmp_path / "hf").eval()  # conv_dim, a tuple, now fits
        assert torch.equal(plain(input_values=wave).logits, logits)


def test_conformer_attention_and_glu_modules_lose_heads_and_channels(tmp_path):
    model = _helper("tiny_wav2vec2_bert")
    features = torch.randn(2, 40, 160, generator=torch.Generator().manual_seed(0))
    sp.prune(model, example_kwargs={"input_features": features}, ratio=0.3)  # glu had no rule: it failed before
    layer = model.wav2vec2_bert.encoder.layers[0]
    assert layer.self_attn.num_heads < 4 and layer.self_attn.linear_q.out_features == layer.self_attn.num_heads * layer.self_attn.head_size
    conv = layer.conv_module
    assert conv.pointwise_conv1.out_channels == 2 * conv.depthwise_conv.in_channels
    with torch.no_grad():
        logits = model(input_features=features).logits
        slimforge.save(model, tmp_path / "run")
        assert torch.equal(slimforge.load(tmp_path / "run").eval()(input_features=features).logits, logits)


@pytest.mark.parametrize("factory", ["tiny_mimo_v2", "tiny_minicpm5_moe", "tiny_ergo", "tiny_inkling"])
def test_recent_decoders_lose_heads_and_reload_identically(factory, tmp_path):
    from slimforge.prune.attention import find_attention_form

    model = _helper(factory)
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    attention = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    assert attention and all(find_attention_form(m) is not None for m in attention)  # no form before: heads stayed
    widths = {id(m): m.o_proj.in_features for m in attention}
    params = sum(p.numel() for p in model.parameters())
    sp.prune(model, example_kwargs={"input_ids": ids}, ratio=0.3)
    assert all(m.o_proj.in_features < widths[id(m)] for m in attention)
    assert sum(p.numel() for p in model.parameters()) < 0.65 * params  # the residual width went too
    with torch.no_grad():
        logits = model(ids, use_cache=False).logits
        slimforge.save(model, tmp_path / "run")
        assert torch.equal(slimforge.load(tmp_path / "run").eval()(ids, use_cache=False).logits, logits)
        model.generate(ids, max_new_tokens=3, do_sample=False)


def test_inkling2_attention_with_sinks_and_gathered_position_bias_loses_heads(tmp_path):
    """Its relative position bias gathers per-head logits with (q, k) distances expanded to (batch, heads, q, k): the
    heads the expand adds follow the logits (they had pinned every head); its block states start as an empty
    new_zeros of the residual width, which the pruned-graph check had taken for a fixed size."""
    model = _helper("tiny_inkling2")
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    attention = [m for m in model.modules() if type(m).__name__.endswith("SlidingAttention")]
    sp.prune(model, example_kwargs={"input_ids": ids}, ratio=0.3)
    assert attention and all(m.num_heads < 4 and m.sink_proj.out_features == m.num_heads for m in attention)
    assert all(m.relative_position_bias.num_heads == m.num_heads for m in attention)
    with torch.no_grad():
        logits = model(ids, use_cache=False).logits
        slimforge.save(model, tmp_path / "run")
        assert torch.equal(slimforge.load(tmp_path / "run").eval()(ids, use_cache=False).logits, logits)


def test_a_classifier_that_sets_use_cache_itself_is_captured_without_it(tmp_path):
    model = _helper("tiny_t5gemma2_classifier")
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    params = sum(p.numel() for p in model.parameters())
    sp.prune(model, example_kwargs={"input_ids": ids}, ratio=0.3)  # use_cache given twice failed the capture
    assert sum(p.numel() for p in model.parameters()) < 0.8 * params
    with torch.no_grad():
        slimforge.save(model, tmp_path / "run")
        assert torch.equal(slimforge.load(tmp_path / "run").eval()(input_ids=ids).logits, model(input_ids=ids).logits)


def test_experts_looped_over_the_data_are_captured_densely_and_prune(tmp_path):
    from slimforge.prune._hf_moe_capture import _privacy_filter_experts

    model = _helper("tiny_privacy_filter")
    experts = next(m for m in model.modules() if type(m).__name__ == "OpenAIPrivacyFilterExperts")
    h = torch.randn(10, 64, generator=torch.Generator().manual_seed(1))
    idx, w = torch.randint(0, experts.num_experts, (10, 2)), torch.rand(10, 2)
    torch.testing.assert_close(_privacy_filter_experts(experts, h, idx, w), experts(h, idx, w), rtol=1e-5, atol=1e-5)

    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    width = experts.gate_up_proj.shape[1]
    sp.prune(model, example_kwargs={"input_ids": ids}, ratio=0.3)  # torch.export could not capture the loop before
    assert experts.gate_up_proj.shape[1] < width
    with torch.no_grad():
        logits = model(ids).logits
        slimforge.save(model, tmp_path / "run")
        assert torch.equal(slimforge.load(tmp_path / "run").eval()(ids).logits, logits)


@pytest.mark.parametrize("factory", ["tiny_minicpm3", "tiny_deepseek_v2"])
def test_per_head_sizes_of_latent_attention_are_not_taken_for_prunable_splits(factory):
    """Latent attention splits each head into ``qk_nope_head_dim`` + ``qk_rope_head_dim`` (and keys / values into
    ``qk_nope_head_dim`` + ``v_head_dim``), sizes it keeps as attributes: only its form decides what goes (whole heads).
    Splits sized by a module's attributes are read as prunable pieces elsewhere (CSP, FasterNet); taken here, they
    narrowed the heads from inside and DeepSeek-V2 kept all its heads."""
    model = _helper(factory)
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    attention = [m for m in model.modules() if hasattr(m, "qk_nope_head_dim")]
    sizes = {id(m): (m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim) for m in attention}
    sp.prune(model, example_kwargs={"input_ids": ids}, ratio=0.5)
    for m in attention:
        assert (m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim) == sizes[id(m)]
        heads = m.o_proj.in_features // m.v_head_dim
        assert heads < 4 and m.o_proj.in_features == heads * m.v_head_dim


def test_a_heterogeneous_config_that_refuses_per_layer_attributes_globally_prunes_and_reloads(tmp_path):
    from transformers import EmbeddingGemma2TextConfig, EmbeddingGemma2TextModel

    torch.manual_seed(0)
    config = EmbeddingGemma2TextConfig(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                       max_position_embeddings=64, num_key_value_heads=2, pad_token_id=0, head_dim=16,
                                       hidden_size_per_layer_input=16, embedding_dim=48, sliding_window=16)
    model = EmbeddingGemma2TextModel(config).eval()
    ids = {"input_ids": torch.randint(1, 128, (2, 12), generator=torch.Generator().manual_seed(0))}
    heads = [layer.self_attn.q_proj.out_features for layer in model.layers]
    sp.prune(model, example_kwargs=ids, ratio=0.3)  # reading config.num_key_value_heads raised: it failed
    assert all(layer.self_attn.q_proj.out_features <= h for layer, h in zip(model.layers, heads))
    assert sum(layer.self_attn.q_proj.out_features for layer in model.layers) < sum(heads)
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run").eval()
    with torch.no_grad():
        assert torch.equal(loaded(**ids).last_hidden_state, model(**ids).last_hidden_state)


def _tiny_wavlm():
    from transformers import WavLMConfig, WavLMForSequenceClassification

    config = WavLMConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32),
                         conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                         num_buckets=32, max_bucket_distance=64, num_labels=2)
    torch.manual_seed(0)
    return WavLMForSequenceClassification(config).eval()


@torch.no_grad()
def test_wavlm_loses_heads_and_residual_width_through_its_gated_position_bias(tmp_path):
    """WavLM gates a relative position bias, built by its first layer for every head, with each head's slice of the
    block's input, and runs ``F.multi_head_attention_forward``: its heads and its residual width stayed (14.9% of the
    parameters went at ratio 0.3). The stand-in forward picks each layer's heads of the bias and of the input."""
    model = _tiny_wavlm()
    wave = {"input_values": torch.randn(2, 1600, generator=torch.Generator().manual_seed(0))}
    before = sum(p.numel() for p in model.parameters())
    sp.prune(model, example_kwargs=wave, ratio=0.3)
    attention = [m for m in model.modules() if hasattr(m, "gru_rel_pos_linear")]
    assert all(m.num_heads < 4 and m.gru_rel_pos_const.shape[1] == m.num_heads for m in attention)
    assert attention[0].rel_attn_embed.weight.shape[1] == 4  # the shared bias keeps every head's row for the later layers
    assert sum(p.numel() for p in model.parameters()) < 0.65 * before
    masked = dict(wave, attention_mask=torch.ones(2, 1600, dtype=torch.long))
    masked["attention_mask"][1, 1200:] = 0
    expected, expected_masked = model(**wave).logits, model(**masked).logits
    slimforge.save(model, tmp_path / "run")
    loaded = slimforge.load(tmp_path / "run").eval()
    assert torch.equal(loaded(**wave).logits, expected) and torch.equal(loaded(**masked).logits, expected_masked)
    with pytest.raises(Exception, match="Hugging Face folder"):  # plain transformers would gate other slices
        slimforge.save_pretrained(model, tmp_path / "hf")


@torch.no_grad()
def test_wavlm_at_its_published_width_loses_heads_in_its_first_layer_and_residual_width(tmp_path):
    """wavlm-base's widths (768 wide, 12 heads of 64, a 512-channel feature extractor): the first layer's gate view
    of its input was split into heads, not offsets within each head's slice, which pinned that layer's heads and the
    whole residual (29.5% of wavlm-base's parameters went at ratio 0.3, heads [12, 8, 8, ...])."""
    from transformers import WavLMConfig, WavLMForSequenceClassification

    torch.manual_seed(0)
    model = WavLMForSequenceClassification(WavLMConfig(num_hidden_layers=2, intermediate_size=256, num_labels=2)).eval()
    wave = {"input_values": torch.randn(2, 6400, generator=torch.Generator().manual_seed(0))}
    before = sum(p.numel() for p in model.parameters())
    sp.prune(model, example_kwargs=wave, ratio=0.3)
    attention = [m for m in model.modules() if hasattr(m, "gru_rel_pos_linear")]
    assert [m.num_heads for m in attention] == [8, 8]
    assert attention[0].q_proj.in_features < 768 and attention[0].gru_rel_pos_linear.in_features < 64  # offsets in every slice
    assert sum(p.numel() for p in model.parameters()) < 0.55 * before
    expected = model(**wave).logits
    slimforge.save(model, tmp_path / "run")
    assert torch.equal(slimforge.load(tmp_path / "run").eval()(**wave).logits, expected)


@torch.no_grad()
def test_wavlm_heads_that_contribute_nothing_go_without_changing_its_outputs():
    """Each kept head reads its own row of the shared bias and its own slice of the input for its gate: a head whose
    projections are zero removed from every layer leaves the outputs as they were (a mix-up of indices would not)."""
    model = _tiny_wavlm()
    for m in model.modules():
        if hasattr(m, "gru_rel_pos_linear"):
            for proj in (m.q_proj, m.k_proj, m.v_proj):
                proj.weight[16:32] = 0
                proj.bias[16:32] = 0
    wave = {"input_values": torch.randn(2, 1600, generator=torch.Generator().manual_seed(0))}
    expected = model(**wave).logits
    sp.prune(model, example_kwargs=wave, ratio={"wavlm.encoder.layers.*.attention.*": 0.25}, round_to=1)
    assert [m.num_heads for m in model.modules() if hasattr(m, "gru_rel_pos_linear")] == [3, 3]
    assert torch.allclose(model(**wave).logits, expected, atol=1e-5)


def test_a_composite_whose_decoder_caches_is_captured_without_its_cache():
    """MusicGen's config keeps ``use_cache`` in its ``decoder`` part (neither on itself nor in a text config): the
    capture returned an ``EncoderDecoderCache`` and failed."""
    import transformers

    from slimforge.prune.structured import capture_kwargs

    config = transformers.MusicgenConfig(text_encoder=dict(model_type="t5"), audio_encoder=dict(model_type="encodec"),
                                         decoder=dict(model_type="musicgen_decoder"))
    assert getattr(config, "use_cache", None) is None and config.decoder.use_cache is True

    class Composite(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config

        def forward(self, input_ids: torch.Tensor, use_cache: bool | None = None) -> torch.Tensor:
            return input_ids

    assert capture_kwargs(Composite(), {"input_ids": torch.ones(1, 2)})["use_cache"] is False
    config.decoder.use_cache = config.text_encoder.use_cache = False  # no part caches: nothing is added
    assert "use_cache" not in capture_kwargs(Composite(), {"input_ids": torch.ones(1, 2)})


def _sine_config_model():
    """A transformers model whose forward sizes a sine embedding from ``config.hidden_size`` (Grounding DINO's decoder:
    ``num_pos_feats=self.config.d_model // 2``) for a layer whose input that embedding is."""
    import transformers

    class SineConfig(transformers.PretrainedConfig):
        model_type = "slimforge_sine_test"

        def __init__(self, hidden_size: int = 32, **kwargs) -> None:
            self.hidden_size = hidden_size
            super().__init__(**kwargs)

    class SineModel(transformers.PreTrainedModel):
        config_class = SineConfig

        def __init__(self, config: SineConfig) -> None:
            super().__init__(config)
            self.embed = torch.nn.Embedding(20, config.hidden_size)
            self.up, self.down = torch.nn.Linear(config.hidden_size, 64), torch.nn.Linear(64, config.hidden_size)
            self.reference_head, self.out = torch.nn.Linear(config.hidden_size, 4), torch.nn.Linear(config.hidden_size, 4)

        def get_input_embeddings(self) -> torch.nn.Module:
            return self.embed

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            h = self.embed(input_ids)
            h = h + self.down(torch.relu(self.up(h)))
            feats = self.config.hidden_size // 2
            angles = torch.arange(input_ids.shape[1], dtype=torch.float32)[:, None] / 100 ** (torch.arange(feats) / feats)
            reference = self.reference_head(torch.cat([angles.sin(), angles.cos()], -1))
            return self.out(h) + reference

    torch.manual_seed(0)
    return SineModel(SineConfig()).eval()


def test_config_sizes_the_forward_reads_for_kept_widths_stay_and_the_plan_puts_them_back(tmp_path):
    """The config sync set hidden_size to the narrowed residual; the forward then made a narrower sine embedding than
    the layer reading it keeps, and Grounding DINO did not prune at all."""
    from slimforge.artifacts import recorded_edits

    model, ids = _sine_config_model(), torch.randint(0, 20, (2, 6))
    sp.prune(model, ids, ratio=0.5, round_to=8)
    assert model.embed.embedding_dim == 16 and model.reference_head.in_features == 32 and model.config.hidden_size == 32
    plan = recorded_edits(model)[-1]
    assert plan["config_kept"] == {"": {"hidden_size": 32}} and plan["version"] == 2
    fresh = sp.apply_plan(_sine_config_model(), plan)
    with torch.no_grad():
        assert fresh.config.hidden_size == 32 and torch.equal(fresh(ids), model(ids))
    from slimforge.errors import ArtifactError

    with pytest.raises(ArtifactError, match=r"reads config sizes for layers pruning kept whole or for a value such as a scale \(hidden_size=32\)"):
        slimforge.save_pretrained(model, tmp_path / "hf")
    assert model.config.hidden_size == 32 and model(ids).shape == (2, 6, 4)  # the refusal changed nothing
    assert not (tmp_path / "hf").exists()
    for bad in ({"": {"hidden_size": "32"}}, {"": {"no_such_size": 32}}):
        with pytest.raises(ArtifactError, match="must be an integer size its config holds"):
            sp.apply_plan(_sine_config_model(), {**plan, "config_kept": bad})
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    plain = recorded_edits(sp.prune(mlp, torch.randn(3, 4), ratio=0.5, round_to=8))[-1]
    assert plain["version"] == 1 and "config_kept" not in plain  # no config kept: written as before
