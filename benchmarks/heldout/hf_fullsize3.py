"""Issue 20, a third list of Hugging Face models at published widths (2026-12-07, session 36), written after session 36's
changes and run blind: decoders whose widths are those of Qwen2.5-1.5B (2 key/value heads of 12), Llama 3.2 1B,
Phi-3-mini (fused qkv), Phi-2, StableLM 2 1.6B, OLMo 1B, SantaCoder (multi-query GPT-BigCode) and Falcon-RW-1B (ALiBi),
each cut to 4 layers to fit this box; encoders RoBERTa-large (6 of its 24 layers), ELECTRA-base, DeBERTa-v3-base,
Longformer-base and BigBird-RoBERTa-base; seq2seq Marian (opus-mt), M2M100-418M (3 + 3 layers) and mBART-large (3 + 3);
speech HuBERT-base and data2vec-audio-base; vision ViT-L/16 (6 of 24 layers), Swin-B, ConvNeXt-S, DeiT-S distilled,
MobileViT v2 and FocalNet-T. Random init; each config is the published model's but for the depth noted.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_fullsize3.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
px = lambda c, ids: {"pixel_values": torch.randn(2, 3, 224, 224)}
words = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16))}
seq2seq = lambda c, ids: {"input_ids": torch.randint(3, 1000, (2, 16)), "decoder_input_ids": torch.randint(3, 1000, (2, 8))}
wave = lambda c, ids: {"input_values": torch.randn(2, 16000)}
S.MODELS.clear()
S.HELD_OUT.clear()
S.MODELS.update({
    "qwen2.5-1.5b-l4": ("Qwen2Config", "Qwen2ForCausalLM", dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=4,
                                                                num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True), words),
    "llama3.2-1b-l4": ("LlamaConfig", "LlamaForCausalLM", dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=4,
                                                               num_attention_heads=32, num_key_value_heads=8, head_dim=64, tie_word_embeddings=True,
                                                               rope_theta=500000.0), words),
    "phi3-mini-l4": ("Phi3Config", "Phi3ForCausalLM", dict(vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=4,
                                                           num_attention_heads=32, num_key_value_heads=32), words),
    "phi2-l4": ("PhiConfig", "PhiForCausalLM", dict(vocab_size=51200, hidden_size=2560, intermediate_size=10240, num_hidden_layers=4,
                                                    num_attention_heads=32, partial_rotary_factor=0.4), words),
    "stablelm2-1.6b-l4": ("StableLmConfig", "StableLmForCausalLM", dict(vocab_size=100352, hidden_size=2048, intermediate_size=5632,
                                                                        num_hidden_layers=4, num_attention_heads=32, num_key_value_heads=32,
                                                                        partial_rotary_factor=0.25), words),
    "olmo-1b-l4": ("OlmoConfig", "OlmoForCausalLM", dict(vocab_size=50304, hidden_size=2048, intermediate_size=8192, num_hidden_layers=4,
                                                         num_attention_heads=16, tie_word_embeddings=True), words),
    "santacoder-l4": ("GPTBigCodeConfig", "GPTBigCodeForCausalLM", dict(vocab_size=49280, n_embd=2048, n_layer=4, n_head=16, multi_query=True, bos_token_id=49152, eos_token_id=49152,
                                                                        n_positions=2048), words),
    "falcon-rw-1b-l4": ("FalconConfig", "FalconForCausalLM", dict(vocab_size=50304, hidden_size=2048, num_hidden_layers=4, num_attention_heads=32,
                                                                  alibi=True, new_decoder_architecture=False, multi_query=False,
                                                                  parallel_attn=False, bias=True), words),
    "roberta-large-l6": ("RobertaConfig", "RobertaForSequenceClassification", dict(vocab_size=50265, hidden_size=1024, num_hidden_layers=6,
                                                                                   num_attention_heads=16, intermediate_size=4096,
                                                                                   max_position_embeddings=514, type_vocab_size=1), words),
    "electra-base": ("ElectraConfig", "ElectraForSequenceClassification", dict(embedding_size=768, hidden_size=768, num_hidden_layers=12,
                                                                               num_attention_heads=12, intermediate_size=3072), words),
    "deberta-v3-base": ("DebertaV2Config", "DebertaV2ForSequenceClassification", dict(vocab_size=128100, hidden_size=768, num_hidden_layers=12,
                        num_attention_heads=12, intermediate_size=3072, relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm",
                        share_att_key=True, pos_att_type=["p2c", "c2p"], max_relative_positions=-1, position_biased_input=False), words),
    "longformer-base": ("LongformerConfig", "LongformerForSequenceClassification", dict(attention_window=[512] * 12, max_position_embeddings=4098), words),
    "bigbird-roberta-base": ("BigBirdConfig", "BigBirdForSequenceClassification", dict(attention_type="block_sparse"), words),
    "marian-opus-mt": ("MarianConfig", "MarianMTModel", dict(vocab_size=58101, d_model=512, encoder_layers=6, decoder_layers=6,
                                                             encoder_attention_heads=8, decoder_attention_heads=8, encoder_ffn_dim=2048,
                                                             decoder_ffn_dim=2048, decoder_start_token_id=58100, pad_token_id=58100), seq2seq),
    "m2m100-418m-l3": ("M2M100Config", "M2M100ForConditionalGeneration", dict(vocab_size=128112, d_model=1024, encoder_layers=3, decoder_layers=3,
                                                                              encoder_attention_heads=16, decoder_attention_heads=16,
                                                                              encoder_ffn_dim=4096, decoder_ffn_dim=4096), seq2seq),
    "mbart-large-l3": ("MBartConfig", "MBartForConditionalGeneration", dict(vocab_size=250027, d_model=1024, encoder_layers=3, decoder_layers=3,
                                                                            encoder_attention_heads=16, decoder_attention_heads=16,
                                                                            encoder_ffn_dim=4096, decoder_ffn_dim=4096, scale_embedding=True), seq2seq),
    "hubert-base": ("HubertConfig", "HubertForSequenceClassification", {}, wave),
    "data2vec-audio-base": ("Data2VecAudioConfig", "Data2VecAudioForSequenceClassification", {}, wave),
    "vit-large-l6": ("ViTConfig", "ViTForImageClassification", dict(hidden_size=1024, num_hidden_layers=6, num_attention_heads=16,
                                                                    intermediate_size=4096, num_labels=10), px),
    "swin-base": ("SwinConfig", "SwinForImageClassification", dict(embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]), px),
    "convnext-small": ("ConvNextConfig", "ConvNextForImageClassification", dict(depths=[3, 3, 27, 3], hidden_sizes=[96, 192, 384, 768]), px),
    "deit-small-distilled": ("DeiTConfig", "DeiTForImageClassificationWithTeacher", dict(hidden_size=384, num_attention_heads=6,
                                                                                         intermediate_size=1536, num_labels=10), px),
    "mobilevitv2-1.0": ("MobileViTV2Config", "MobileViTV2ForImageClassification", dict(width_multiplier=1.0), px),
    "focalnet-tiny": ("FocalNetConfig", "FocalNetForImageClassification", dict(embed_dim=96, depths=[2, 2, 6, 2]), px),
})


if __name__ == "__main__":
    S.main()
