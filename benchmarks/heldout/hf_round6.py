"""Issue 20, sixth held-out Hugging Face pass (architectures in no other list, 2026-12-05): the sweep with its list replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round6.py [--models esm,ibert]
"""
import warnings
import torch
warnings.filterwarnings("ignore")
import prune_hf_sweep as S
T, D, V, Q = S.TEXT, S.DECODER, S.VISION, S.SEQ2SEQ
T5 = dict(vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, decoder_start_token_id=0)
MOE = dict(D, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, head_dim=16)
# SigLIP 2 takes its image as patches of 3 x 8 x 8 values (4 x 4 of them) with their mask and grid, not as pixels
SIGLIP2_PATCHES = lambda c, ids: {"pixel_values": torch.randn(2, 16, 192), "pixel_attention_mask": torch.ones(2, 16, dtype=torch.long),
                                  "spatial_shapes": torch.tensor([[4, 4], [4, 4]])}
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    # encoders
    "esm": ("EsmConfig", "EsmForSequenceClassification", dict(T, pad_token_id=1, position_embedding_type="rotary"), "ids"),
    "ibert": ("IBertConfig", "IBertForSequenceClassification", dict(T, pad_token_id=1), "ids"),
    "flaubert": ("FlaubertConfig", "FlaubertForSequenceClassification", dict(vocab_size=128, emb_dim=64, n_layers=2, n_heads=4, max_position_embeddings=64), "ids"),
    "luke": ("LukeConfig", "LukeForSequenceClassification", dict(T, entity_vocab_size=16, entity_emb_size=32), "ids"),
    "rembert": ("RemBertConfig", "RemBertForSequenceClassification", dict(T, input_embedding_size=32, output_embedding_size=32), "ids"),
    "roc-bert": ("RoCBertConfig", "RoCBertForSequenceClassification", dict(T, pronunciation_vocab_size=16, shape_vocab_size=16, pronunciation_embed_dim=16, shape_embed_dim=16), "ids"),
    "xlm-roberta-xl": ("XLMRobertaXLConfig", "XLMRobertaXLForSequenceClassification", dict(T, pad_token_id=1), "ids"),
    "mra": ("MraConfig", "MraForSequenceClassification", dict(T, max_position_embeddings=64, block_per_row=2, approx_mode="full"), "ids"),
    "yoso": ("YosoConfig", "YosoForSequenceClassification", T, "ids"),
    "eurobert": ("EuroBertConfig", "EuroBertForSequenceClassification", dict(D, head_dim=16), "ids"),
    "bert-generation": ("BertGenerationConfig", "BertGenerationEncoder", T, "ids"),
    # decoders
    "cohere2": ("Cohere2Config", "Cohere2ForCausalLM", dict(D, head_dim=16, layer_types=["sliding_attention", "full_attention"], sliding_window=8), "ids"),
    "exaone": ("ExaoneConfig", "ExaoneForCausalLM", dict(vocab_size=128, hidden_size=64, num_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, max_position_embeddings=64, pad_token_id=0), "ids"),
    "ernie4_5": ("Ernie4_5Config", "Ernie4_5ForCausalLM", dict(D, head_dim=16), "ids"),
    "ernie4_5-moe": ("Ernie4_5_MoeConfig", "Ernie4_5_MoeForCausalLM", dict(MOE, moe_num_experts=4, moe_k=2), "ids"),
    "diffllama": ("DiffLlamaConfig", "DiffLlamaForCausalLM", D, "ids"),
    "doge": ("DogeConfig", "DogeForCausalLM", dict(D, keep_window_size=8), "ids"),
    "glm": ("GlmConfig", "GlmForCausalLM", dict(D, head_dim=16), "ids"),
    "glm4-moe": ("Glm4MoeConfig", "Glm4MoeForCausalLM", dict(MOE, n_routed_experts=4, first_k_dense_replace=1, n_group=1, topk_group=1), "ids"),
    "granite-moe": ("GraniteMoeConfig", "GraniteMoeForCausalLM", dict(D, num_local_experts=4, num_experts_per_tok=2), "ids"),
    "hunyuan-dense": ("HunYuanDenseV1Config", "HunYuanDenseV1ForCausalLM", dict(D, head_dim=16), "ids"),
    "jetmoe": ("JetMoeConfig", "JetMoeForCausalLM", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_key_value_heads=2, kv_channels=16, intermediate_size=128, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=64), "ids"),
    "minicpm3": ("MiniCPM3Config", "MiniCPM3ForCausalLM", dict(D, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16), "ids"),
    "olmo3": ("Olmo3Config", "Olmo3ForCausalLM", dict(D, layer_types=["sliding_attention", "full_attention"], sliding_window=8), "ids"),
    "phimoe": ("PhimoeConfig", "PhimoeForCausalLM", dict(D, num_local_experts=4, num_experts_per_tok=2), "ids"),
    "seed-oss": ("SeedOssConfig", "SeedOssForCausalLM", dict(D, head_dim=16), "ids"),
    "vaultgemma": ("VaultGemmaConfig", "VaultGemmaForCausalLM", dict(D, head_dim=16), "ids"),
    "arcee": ("ArceeConfig", "ArceeForCausalLM", D, "ids"),
    "dbrx": ("DbrxConfig", "DbrxForCausalLM", dict(vocab_size=128, d_model=64, n_heads=4, n_layers=2, max_seq_len=64, attn_config=dict(kv_n_heads=2), ffn_config=dict(ffn_hidden_size=128, moe_num_experts=4, moe_top_k=2)), "ids"),
    "gpt-neox-japanese": ("GPTNeoXJapaneseConfig", "GPTNeoXJapaneseForCausalLM", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_multiple_size=2, max_position_embeddings=64), "ids"),
    # encoder-decoders
    "fsmt": ("FSMTConfig", "FSMTForConditionalGeneration", dict(Q, src_vocab_size=128, tgt_vocab_size=128, langs=["en", "de"]), "seq2seq"),
    "mvp": ("MvpConfig", "MvpForConditionalGeneration", Q, "seq2seq"),
    "umt5": ("UMT5Config", "UMT5ForConditionalGeneration", T5, "seq2seq"),
    "switch-transformers": ("SwitchTransformersConfig", "SwitchTransformersForConditionalGeneration", dict(T5, num_experts=4, num_sparse_encoder_layers=1, num_sparse_decoder_layers=1), "seq2seq"),
    "prophetnet": ("ProphetNetConfig", "ProphetNetForConditionalGeneration", dict(vocab_size=128, hidden_size=64, encoder_ffn_dim=128, decoder_ffn_dim=128, num_encoder_layers=2, num_decoder_layers=2, num_encoder_attention_heads=4, num_decoder_attention_heads=4, max_position_embeddings=64, ngram=2), "seq2seq"),
    # vision
    "dinov3-vit": ("DINOv3ViTConfig", "DINOv3ViTModel", dict(V, num_register_tokens=2), "pixels"),
    "hgnet-v2": ("HGNetV2Config", "HGNetV2ForImageClassification", dict(num_labels=5), "pixels"),
    "mobilenet-v1": ("MobileNetV1Config", "MobileNetV1ForImageClassification", dict(image_size=32, depth_multiplier=0.25, num_labels=5), "pixels"),
    "siglip2-vision": ("Siglip2Config", "Siglip2ForImageClassification", dict(vision_config=dict(V, num_patches=16), text_config=dict(T), num_labels=5), SIGLIP2_PATCHES),
    "aimv2-vision": ("Aimv2VisionConfig", "Aimv2VisionModel", dict(V, num_channels=3), "pixels"),
})
S.main()
