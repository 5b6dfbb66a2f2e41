"""Pruned encoders, decoders and encoder-decoders (BERT, ViT, GPT-2, Llama with grouped-query and
multi-query attention, Falcon, OLMo, Mixtral, BART, Whisper, T5) save as ``save_pretrained`` folders that plain
``transformers.AutoModelFor...from_pretrained`` loads with the same outputs, whatever the config calls
its sizes; where no config describes the pruned model, slimforge says why and keeps its own format."""

from __future__ import annotations

import pytest
import torch

import slimforge
from slimforge.errors import ArtifactError

transformers = pytest.importorskip("transformers")

TEXT = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=64)
SEQ2SEQ = dict(vocab_size=128, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, max_position_embeddings=64,
               pad_token_id=1, decoder_start_token_id=2)
T5 = dict(vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, decoder_start_token_id=0)
IDS = torch.randint(3, 120, (2, 12), generator=torch.Generator().manual_seed(0))

# name -> (config class, model class, config keywords, Auto class, example inputs)
FAMILIES = {
    "bert": ("BertConfig", "BertForSequenceClassification", TEXT, "AutoModelForSequenceClassification", {"input_ids": IDS}),
    "vit": ("ViTConfig", "ViTForImageClassification",
            dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
                 patch_size=8, num_labels=5), "AutoModelForImageClassification", {"pixel_values": torch.randn(2, 3, 32, 32)}),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_embd=64, n_layer=2, n_head=4, vocab_size=128, n_positions=64),
             "AutoModelForCausalLM", {"input_ids": IDS}),
    "llama-gqa": ("LlamaConfig", "LlamaForCausalLM", dict(TEXT, num_key_value_heads=2), "AutoModelForCausalLM", {"input_ids": IDS}),
    # OLMo's LayerNorm has no weights: its normalized_shape follows the residual width.
    "olmo": ("OlmoConfig", "OlmoForCausalLM", dict(TEXT, pad_token_id=0, eos_token_id=1, bos_token_id=None),
             "AutoModelForCausalLM", {"input_ids": IDS}),
    # mixture of experts: all experts' weights in one (experts, out, in) tensor each, grouped matmuls; a neuron goes
    # from every expert at once, the router follows the residual width
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(TEXT, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2),
                "AutoModelForCausalLM", {"input_ids": IDS}),
    "qwen2-mqa": ("Qwen2Config", "Qwen2ForCausalLM", dict(TEXT, num_key_value_heads=1), "AutoModelForCausalLM", {"input_ids": IDS}),
    "falcon": ("FalconConfig", "FalconForCausalLM", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                                        new_decoder_architecture=False, multi_query=False),
               "AutoModelForCausalLM", {"input_ids": IDS}),
    "bart": ("BartConfig", "BartForConditionalGeneration", SEQ2SEQ, "AutoModelForSeq2SeqLM",
             {"input_ids": IDS, "decoder_input_ids": IDS[:, :6]}),
    "whisper": ("WhisperConfig", "WhisperForConditionalGeneration",
                dict(SEQ2SEQ, num_mel_bins=16, max_source_positions=32, max_target_positions=64), "AutoModelForSpeechSeq2Seq",
                {"input_features": torch.randn(2, 16, 64), "decoder_input_ids": IDS[:, :6]}),
    # T5 scales its tied output by model_dim ** -0.5; with the residual pruned, the factor between the old and the new
    # width goes into the decoder's final norm. FLAN-T5 (gated-gelu, untied, no scaling) reads model_dim nowhere.
    "t5": ("T5Config", "T5ForConditionalGeneration", T5, "AutoModelForSeq2SeqLM", {"input_ids": IDS, "decoder_input_ids": IDS[:, :6]}),
    "flan-t5": ("T5Config", "T5ForConditionalGeneration", dict(T5, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                                                scale_decoder_outputs=False),
                "AutoModelForSeq2SeqLM", {"input_ids": IDS, "decoder_input_ids": IDS[:, :6]}),
}


def _build(name: str, **overrides):
    config_cls, model_cls, kwargs, _, inputs = FAMILIES[name]
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**{**kwargs, **overrides})
    return getattr(transformers, model_cls)(config).eval(), inputs


@torch.no_grad()
def _logits(model, inputs):
    out = model(**inputs, **({"use_cache": False} if getattr(model.config, "use_cache", False) else {}))
    return out.logits


def _heads(model) -> int:
    from slimforge.prune.attention import find_attention_form

    return sum(form.sync(m).get("num_attention_heads", 0) for m in model.modules()
               if (form := find_attention_form(m)) is not None and not form.part)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_pruned_model_loads_in_plain_transformers_with_the_same_outputs(tmp_path, name):
    model, inputs = _build(name)
    params, heads = sum(p.numel() for p in model.parameters()), _heads(model)
    slimforge.prune(model, example_kwargs=inputs, ratio=0.3)
    assert _heads(model) < heads
    assert sum(p.numel() for p in model.parameters()) < 0.62 * params  # 41.8-47.9% measured
    slimforge.save_pretrained(model, tmp_path / "hf")
    loaded = getattr(transformers, FAMILIES[name][3]).from_pretrained(str(tmp_path / "hf")).eval()
    assert type(loaded) is type(model)
    torch.testing.assert_close(_logits(loaded, inputs), _logits(model, inputs), rtol=0, atol=1e-6)


@torch.no_grad()
def test_t5_folds_its_output_scale_into_the_decoders_final_norm_when_the_residual_narrows():
    """T5 multiplies its tied output by model_dim ** -0.5, model_dim set from d_model when built: a config with the
    pruned d_model scales by the new width, so it was refused. The factor goes into the decoder's final norm and
    model_dim follows d_model; undoing that by hand gives the same logits."""
    model, inputs = _build("t5")
    slimforge.prune(model, example_kwargs=inputs, ratio=0.3)
    assert model.config.d_model == model.model_dim == 48 and model.config.scale_decoder_outputs
    folded = _logits(model, inputs)
    norm = model.decoder.final_layer_norm.weight
    norm.mul_((64 / 48) ** 0.5)
    model.model_dim = 64  # as the unpruned width scaled it
    torch.testing.assert_close(_logits(model, inputs), folded, rtol=1e-5, atol=1e-6)


def test_a_buffer_the_config_computes_is_checked_after_writing(tmp_path):
    """Gemma scales its embeddings by sqrt(hidden_size), a buffer computed from the config and not saved:
    the folder would load with other outputs, so it is refused after being read back, and not published."""
    torch.manual_seed(0)
    config = transformers.GemmaConfig(**TEXT, num_key_value_heads=2, head_dim=16)
    model = transformers.GemmaForCausalLM(config).eval()
    slimforge.prune(model, IDS, ratio=0.3)
    with pytest.raises(ArtifactError, match=r"loaded back with from_pretrained, model.embed_tokens.embed_scale differs"):
        slimforge.save_pretrained(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_per_layer_heads_of_an_encoder_decoder_are_refused_with_the_counts(tmp_path):
    model, inputs = _build("bart")
    slimforge.prune(model, example_kwargs=inputs, ratio={"*decoder.layers.0.self_attn*": 0.5})
    with pytest.raises(ArtifactError, match=r"different attention head counts: \[4, 4, 2, 4, 4, 4\]"):
        slimforge.save_pretrained(model, tmp_path / "hf")
    slimforge.save(model, tmp_path / "own")
    assert torch.equal(_logits(slimforge.load(tmp_path / "own").eval(), inputs), _logits(model, inputs))
