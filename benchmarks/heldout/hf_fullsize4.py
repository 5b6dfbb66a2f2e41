"""Issue 20, a fourth list of Hugging Face models at published widths (2026-12-08, session 37), written after session
37's Longformer and FocalNet changes and run blind: decoders whose widths are those of Gemma 2 2B (soft-capped
attention), Granite 3.0 2B (its embedding, residual, attention and logits multipliers), Qwen3-1.7B (query/key norms),
OPT-1.3B, StarCoder2-3B (2 key/value heads of 24), Helium-2B and SmolLM3-3B (layers without RoPE), each cut to 4
layers to fit this box, and CodeGen-350M-mono (6 of its 20 layers); encoders CamemBERT-base, MPNet-base, ConvBERT-base,
Funnel-small and CANINE-s; seq2seq LED-base (Longformer's encoder attention), Pegasus-large and ProphetNet-large
(3 + 3 layers), BlenderBot-small-90M and PLBART-base; speech UniSpeech-SAT-base, Speech2Text-small and wav2vec 2.0
Conformer (relative positions, 6 of 24 layers); vision CvT-13, PoolFormer-S12, YOLOS-small, data2vec-vision-base,
SegFormer-B2, PVT-v2-B2, Hiera-tiny and EfficientNet-B0; OWL-ViT B/32 and Chinese-CLIP (text and image towers).
Random init; each config is the published model's but for the depth noted.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_fullsize4.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
px = lambda c, ids: {"pixel_values": torch.randn(2, 3, 224, 224)}
words = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16))}
seq2seq = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16)), "decoder_input_ids": torch.randint(3, 1000, (2, 8))}
wave = lambda c, ids: {"input_values": torch.randn(2, 16000)}
features = lambda c, ids: {"input_features": torch.randn(2, 200, 80), "decoder_input_ids": torch.randint(3, 1000, (2, 8))}
text_and_image = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16)), "pixel_values": torch.randn(2, 3, 224, 224),
                                 "attention_mask": torch.ones(2, 16, dtype=torch.long)}
owl = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16)), "pixel_values": torch.randn(1, 3, 768, 768),
                      "attention_mask": torch.ones(2, 16, dtype=torch.long)}
S.MODELS.clear()
S.HELD_OUT.clear()
S.MODELS.update({
    "gemma2-2b-l4": ("Gemma2Config", "Gemma2ForCausalLM", dict(vocab_size=256000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=4,
                                                               num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                                                               attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=4096), words),
    "granite3-2b-l4": ("GraniteConfig", "GraniteForCausalLM", dict(vocab_size=49155, hidden_size=2048, intermediate_size=8192, num_hidden_layers=4,
                                                                   num_attention_heads=32, num_key_value_heads=8, embedding_multiplier=12.0,
                                                                   residual_multiplier=0.22, attention_multiplier=0.015625, logits_scaling=8.0,
                                                                   tie_word_embeddings=True), words),
    "qwen3-1.7b-l4": ("Qwen3Config", "Qwen3ForCausalLM", dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=4,
                                                              num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True), words),
    "opt-1.3b-l4": ("OPTConfig", "OPTForCausalLM", dict(vocab_size=50272, hidden_size=2048, ffn_dim=8192, num_hidden_layers=4,
                                                        num_attention_heads=32, word_embed_proj_dim=2048), words),
    "starcoder2-3b-l4": ("Starcoder2Config", "Starcoder2ForCausalLM", dict(vocab_size=49152, hidden_size=3072, intermediate_size=12288,
                                                                           num_hidden_layers=4, num_attention_heads=24, num_key_value_heads=2,
                                                                           sliding_window=4096), words),
    "helium-2b-l4": ("HeliumConfig", "HeliumForCausalLM", dict(vocab_size=48000, hidden_size=2560, intermediate_size=7040, num_hidden_layers=4,
                                                               num_attention_heads=20, num_key_value_heads=20, head_dim=128), words),
    "smollm3-3b-l4": ("SmolLM3Config", "SmolLM3ForCausalLM", dict(vocab_size=128256, hidden_size=2048, intermediate_size=11008, num_hidden_layers=4,
                                                                  num_attention_heads=16, num_key_value_heads=4, no_rope_layer_interval=4), words),
    "codegen-350m-l6": ("CodeGenConfig", "CodeGenForCausalLM", dict(vocab_size=51200, n_embd=1024, n_layer=6, n_head=16, rotary_dim=32,
                                                                    n_positions=2048, n_ctx=2048), words),
    "camembert-base": ("CamembertConfig", "CamembertForSequenceClassification", dict(vocab_size=32005, max_position_embeddings=514,
                                                                                     type_vocab_size=1), words),
    "mpnet-base": ("MPNetConfig", "MPNetForSequenceClassification", dict(vocab_size=30527), words),
    "convbert-base": ("ConvBertConfig", "ConvBertForSequenceClassification", dict(embedding_size=768, hidden_size=768, num_attention_heads=12,
                                                                                  intermediate_size=3072, head_ratio=2, conv_kernel_size=9), words),
    "funnel-small": ("FunnelConfig", "FunnelForSequenceClassification", dict(block_sizes=[4, 4, 4], d_model=768, n_head=12, d_head=64,
                                                                             d_inner=3072), words),
    "canine-s": ("CanineConfig", "CanineForSequenceClassification", {}, words),
    "led-base": ("LEDConfig", "LEDForConditionalGeneration", dict(vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6,
                                                                  encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072,
                                                                  decoder_ffn_dim=3072, attention_window=[1024] * 6,
                                                                  max_encoder_position_embeddings=16384, max_decoder_position_embeddings=1024), seq2seq),
    "pegasus-large-l3": ("PegasusConfig", "PegasusForConditionalGeneration", dict(vocab_size=96103, d_model=1024, encoder_layers=3, decoder_layers=3,
                                                                                  encoder_attention_heads=16, decoder_attention_heads=16,
                                                                                  encoder_ffn_dim=4096, decoder_ffn_dim=4096), seq2seq),
    "prophetnet-large-l3": ("ProphetNetConfig", "ProphetNetForConditionalGeneration", dict(vocab_size=30522, hidden_size=1024, num_encoder_layers=3,
                                                                                          num_decoder_layers=3, num_encoder_attention_heads=16,
                                                                                          num_decoder_attention_heads=16, encoder_ffn_dim=4096,
                                                                                          decoder_ffn_dim=4096, ngram=2), seq2seq),
    "blenderbot-small-90m": ("BlenderbotSmallConfig", "BlenderbotSmallForConditionalGeneration", dict(vocab_size=54944, d_model=512, encoder_layers=8,
                                                                                                      decoder_layers=8, encoder_attention_heads=16,
                                                                                                      decoder_attention_heads=16, encoder_ffn_dim=2048,
                                                                                                      decoder_ffn_dim=2048), seq2seq),
    "plbart-base": ("PLBartConfig", "PLBartForConditionalGeneration", dict(vocab_size=50005), seq2seq),
    "unispeech-sat-base": ("UniSpeechSatConfig", "UniSpeechSatForSequenceClassification", {}, wave),
    "speech2text-small": ("Speech2TextConfig", "Speech2TextForConditionalGeneration", dict(vocab_size=10000, d_model=256, encoder_layers=12,
                                                                                          decoder_layers=6, encoder_attention_heads=4,
                                                                                          decoder_attention_heads=4, encoder_ffn_dim=2048,
                                                                                          decoder_ffn_dim=2048), features),
    "w2v2-conformer-l6": ("Wav2Vec2ConformerConfig", "Wav2Vec2ConformerForSequenceClassification", dict(hidden_size=1024, num_hidden_layers=6,
                                                                                                        num_attention_heads=16, intermediate_size=4096,
                                                                                                        position_embeddings_type="relative",
                                                                                                        conv_dim=(512,) * 7), wave),
    "cvt-13": ("CvtConfig", "CvtForImageClassification", {}, px),
    "poolformer-s12": ("PoolFormerConfig", "PoolFormerForImageClassification", {}, px),
    "yolos-small": ("YolosConfig", "YolosForObjectDetection", dict(hidden_size=384, num_attention_heads=6, intermediate_size=1536,
                                                                   image_size=[224, 224]), px),
    "data2vec-vision-base": ("Data2VecVisionConfig", "Data2VecVisionForImageClassification", dict(use_relative_position_bias=True), px),
    "segformer-b2": ("SegformerConfig", "SegformerForSemanticSegmentation", dict(depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 320, 512],
                                                                                  decoder_hidden_size=768), px),
    "pvt-v2-b2": ("PvtV2Config", "PvtV2ForImageClassification", dict(depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 320, 512],
                                                                        num_attention_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4]), px),
    "hiera-tiny": ("HieraConfig", "HieraForImageClassification", dict(embed_dim=96, depths=[1, 2, 7, 2]), px),
    "efficientnet-b0": ("EfficientNetConfig", "EfficientNetForImageClassification", dict(width_coefficient=1.0, depth_coefficient=1.0,
                                                                                         image_size=224, dropout_rate=0.2, hidden_dim=1280), px),
    "owlvit-b32": ("OwlViTConfig", "OwlViTForObjectDetection", {}, owl),
    "chinese-clip-b16": ("ChineseCLIPConfig", "ChineseCLIPModel", dict(vision_config=dict(patch_size=16)), text_and_image),
})


if __name__ == "__main__":
    S.main()
