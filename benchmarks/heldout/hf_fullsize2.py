"""Issue 20, a second list of Hugging Face models at published sizes (2026-12-07, session 35), written after the first
list's fixes and run blind: decoders with rotary, ALiBi, local attention and a projected embedding (Pythia-160M,
BLOOM-560M, OPT-350M, GPT-Neo-125M, Qwen3-0.6B, SmolLM2-360M), encoders (all-MiniLM-L6-v2 as a bare sentence encoder,
DeBERTa-v3-small), FLAN-T5-small (gated-GELU, untied head), vision (DINOv2-S with a classifier, Swin v2-T, ConvNeXt
V2-T, SigLIP-B/16), speech (Whisper-base, WavLM-base) and a document model (LayoutLMv3-base: text, boxes and the page
image). Random init; each config is the published model's.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_fullsize2.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
px = lambda c, ids: {"pixel_values": torch.randn(2, 3, 224, 224)}
words = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16))}
seq2seq = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16)), "decoder_input_ids": torch.randint(3, 1000, (2, 8))}
text_px = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16)), "pixel_values": torch.randn(2, 3, 224, 224)}
page = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16)), "bbox": torch.randint(0, 500, (2, 16, 4)).sort(-1).values[..., [0, 1, 2, 3]],
                       "pixel_values": torch.randn(2, 3, 224, 224)}
S.MODELS.clear()
S.HELD_OUT.clear()
S.MODELS.update({
    "pythia-160m": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(vocab_size=50304, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                                                intermediate_size=3072, rotary_pct=0.25, use_parallel_residual=True), words),
    "bloom-560m": ("BloomConfig", "BloomForCausalLM", dict(vocab_size=250880, hidden_size=1024, n_layer=24, n_head=16), words),
    "opt-350m": ("OPTConfig", "OPTForCausalLM", dict(hidden_size=1024, ffn_dim=4096, num_hidden_layers=24, num_attention_heads=16,
                                                     word_embed_proj_dim=512, do_layer_norm_before=False), words),
    "gpt-neo-125m": ("GPTNeoConfig", "GPTNeoForCausalLM", dict(hidden_size=768, num_layers=12, num_heads=12, attention_types=[[["global", "local"], 6]],
                                                               window_size=256, max_position_embeddings=2048), words),
    "qwen3-0.6b": ("Qwen3Config", "Qwen3ForCausalLM", dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                                                           num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                                                           max_position_embeddings=40960), words),
    "smollm2-360m": ("LlamaConfig", "LlamaForCausalLM", dict(vocab_size=49152, hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                                                             num_attention_heads=15, num_key_value_heads=5, tie_word_embeddings=True,
                                                             max_position_embeddings=8192), words),
    "minilm-l6-encoder": ("BertConfig", "BertModel", dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536), words),
    "deberta-v3-small": ("DebertaV2Config", "DebertaV2ForSequenceClassification", dict(vocab_size=128100, hidden_size=768, num_hidden_layers=6,
                         num_attention_heads=12, intermediate_size=3072, relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm",
                         share_att_key=True, pos_att_type=["p2c", "c2p"], max_relative_positions=-1, position_biased_input=False), words),
    "flan-t5-small": ("T5Config", "T5ForConditionalGeneration", dict(vocab_size=32128, d_model=512, d_ff=1024, d_kv=64, num_heads=6, num_layers=8,
                                                                     num_decoder_layers=8, feed_forward_proj="gated-gelu", tie_word_embeddings=False), seq2seq),
    "dinov2-small-cls": ("Dinov2Config", "Dinov2ForImageClassification", dict(hidden_size=384, num_attention_heads=6, num_labels=10), px),
    "swinv2-tiny": ("Swinv2Config", "Swinv2ForImageClassification", dict(image_size=224, window_size=8), lambda c, ids: {"pixel_values": torch.randn(2, 3, 256, 256)}),
    "convnextv2-tiny": ("ConvNextV2Config", "ConvNextV2ForImageClassification", dict(depths=[3, 3, 9, 3], hidden_sizes=[96, 192, 384, 768]), px),
    "siglip-b16": ("SiglipConfig", "SiglipModel", {}, text_px),
    "whisper-base": ("WhisperConfig", "WhisperForConditionalGeneration", dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                                                                              decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048),
                     lambda c, ids: {"input_features": torch.randn(2, 80, 3000), "decoder_input_ids": torch.randint(3, 1000, (2, 8))}),
    "wavlm-base": ("WavLMConfig", "WavLMForSequenceClassification", {}, lambda c, ids: {"input_values": torch.randn(2, 16000)}),
    "layoutlmv3-base": ("LayoutLMv3Config", "LayoutLMv3ForSequenceClassification", {}, page),
})


if __name__ == "__main__":
    S.main()
