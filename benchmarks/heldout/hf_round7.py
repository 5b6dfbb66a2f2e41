"""Issue 20, seventh held-out Hugging Face pass (architectures in no other list, 2026-12-05): the sweep with its list replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round7.py [--models gemma3,jamba]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_hf_sweep as S
T, D, V, Q = S.TEXT, S.DECODER, S.VISION, S.SEQ2SEQ
MOE = dict(D, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, head_dim=16)
HYBRID = dict(D, num_experts=4, num_experts_per_tok=2)
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    # decoders
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(D, head_dim=16, sliding_window=8), "ids"),
    "apertus": ("ApertusConfig", "ApertusForCausalLM", D, "ids"),
    "bitnet": ("BitNetConfig", "BitNetForCausalLM", D, "ids"),
    "cohere2-moe": ("Cohere2MoeConfig", "Cohere2MoeForCausalLM", dict(MOE, num_local_experts=4), "ids"),
    "dots1": ("Dots1Config", "Dots1ForCausalLM", dict(MOE, n_routed_experts=4, first_k_dense_replace=1, n_group=1, topk_group=1, n_shared_experts=1), "ids"),
    "flex-olmo": ("FlexOlmoConfig", "FlexOlmoForCausalLM", MOE, "ids"),
    "hunyuan-moe": ("HunYuanMoEV1Config", "HunYuanMoEV1ForCausalLM", dict(D, num_experts=4, moe_topk=2, head_dim=16), "ids"),
    "jais2": ("Jais2Config", "Jais2ForCausalLM", D, "ids"),
    "lfm2": ("Lfm2Config", "Lfm2ForCausalLM", dict(D, layer_types=["conv", "full_attention"]), "ids"),
    "lfm2-moe": ("Lfm2MoeConfig", "Lfm2MoeForCausalLM", dict(MOE, layer_types=["conv", "full_attention"], num_dense_layers=1), "ids"),
    "llama4": ("Llama4TextConfig", "Llama4ForCausalLM", dict(D, num_local_experts=4, intermediate_size_mlp=128, head_dim=16), "ids"),
    "ministral": ("MinistralConfig", "MinistralForCausalLM", dict(D, head_dim=16), "ids"),
    "minimax": ("MiniMaxConfig", "MiniMaxForCausalLM", dict(D, num_local_experts=4, num_experts_per_tok=2, head_dim=16, layer_types=["linear_attention", "full_attention"]), "ids"),
    "qwen3-next": ("Qwen3NextConfig", "Qwen3NextForCausalLM", dict(MOE, layer_types=["linear_attention", "full_attention"], linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=16, linear_value_head_dim=16, shared_expert_intermediate_size=64), "ids"),
    "qwen3.5": ("Qwen3_5TextConfig", "Qwen3_5ForCausalLM", dict(D, num_attention_heads=8, num_key_value_heads=4, head_dim=16, layer_types=["linear_attention", "full_attention"], linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=16, linear_value_head_dim=16), "ids"),
    "exaone-moe": ("ExaoneMoeConfig", "ExaoneMoeForCausalLM", dict(MOE, first_k_dense_replace=1), "ids"),
    "glm4-moe-lite": ("Glm4MoeLiteConfig", "Glm4MoeLiteForCausalLM", dict(MOE, n_routed_experts=4, first_k_dense_replace=1, n_group=1, topk_group=1, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16), "ids"),
    "granite-moe-shared": ("GraniteMoeSharedConfig", "GraniteMoeSharedForCausalLM", dict(D, num_local_experts=4, num_experts_per_tok=2, shared_intermediate_size=64), "ids"),
    "granite-moe-hybrid": ("GraniteMoeHybridConfig", "GraniteMoeHybridForCausalLM", dict(D, num_local_experts=4, num_experts_per_tok=2, shared_intermediate_size=64, layer_types=["mamba", "attention"], mamba_d_state=16, mamba_n_heads=8, mamba_d_head=16), "ids"),
    "jamba": ("JambaConfig", "JambaForCausalLM", dict(D, num_experts=4, num_experts_per_tok=2, attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2, expert_layer_offset=1, use_mamba_kernels=False), "ids"),
    "bamba": ("BambaConfig", "BambaForCausalLM", dict(D, attn_layer_indices=[1], mamba_d_state=16, mamba_n_heads=8, mamba_d_head=16), "ids"),
    "falcon-h1": ("FalconH1Config", "FalconH1ForCausalLM", dict(D, mamba_d_state=16, mamba_n_heads=8, mamba_d_head=16, mamba_d_ssm=128, head_dim=16), "ids"),
    "zamba2": ("Zamba2Config", "Zamba2ForCausalLM", dict(D, mamba_d_state=16, n_mamba_heads=8, mamba_headdim=16, layers_block_type=["mamba", "hybrid"], num_mem_blocks=1), "ids"),
    "nemotron-h": ("NemotronHConfig", "NemotronHForCausalLM", dict(D, hybrid_override_pattern="M*", mamba_num_heads=8, mamba_head_dim=16, ssm_state_size=16, head_dim=16), "ids"),
    "recurrent-gemma": ("RecurrentGemmaConfig", "RecurrentGemmaForCausalLM", dict(D, lru_width=64, attention_window_size=8, block_types=["recurrent", "attention"]), "ids"),
    "modernbert-decoder": ("ModernBertDecoderConfig", "ModernBertDecoderForCausalLM", dict(T, pad_token_id=0), "ids"),
    "deepseek-v2": ("DeepseekV2Config", "DeepseekV2ForCausalLM", dict(MOE, n_routed_experts=4, first_k_dense_replace=1, n_group=1, topk_group=1, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16), "ids"),
    "xmod": ("XmodConfig", "XmodForSequenceClassification", dict(T, pad_token_id=1, languages=["en_XX"], default_language="en_XX"), "ids"),
    "t5gemma": ("T5GemmaConfig", "T5GemmaForConditionalGeneration", dict(vocab_size=128, encoder=dict(D, head_dim=16), decoder=dict(D, head_dim=16)), "seq2seq"),
    # encoders
    "canine": ("CanineConfig", "CanineForSequenceClassification", dict(T, downsampling_rate=2, num_hash_buckets=64, local_transformer_stride=8), "ids"),
    "layoutlm": ("LayoutLMConfig", "LayoutLMForSequenceClassification", T, "ids"),
    "markuplm": ("MarkupLMConfig", "MarkupLMForSequenceClassification", dict(T, pad_token_id=1), "ids"),
    "lilt": ("LiltConfig", "LiltForSequenceClassification", dict(T, hidden_size=48, pad_token_id=1, channel_shrink_ratio=4), "ids"),  # six box embeddings of hidden / 6
    "nomic-bert": ("NomicBertConfig", "NomicBertForSequenceClassification", T, "ids"),
    "gte": ("GteConfig", "GteForSequenceClassification", T, "ids"),
    "tapas": ("TapasConfig", "TapasForSequenceClassification", T, "ids"),
    # encoder-decoders
    "bigbird-pegasus": ("BigBirdPegasusConfig", "BigBirdPegasusForConditionalGeneration", dict(Q, attention_type="original_full"), "seq2seq"),
    "nllb-moe": ("NllbMoeConfig", "NllbMoeForConditionalGeneration", dict(Q, num_experts=4, expert_capacity=8, encoder_sparse_step=2, decoder_sparse_step=2), "seq2seq"),
    # vision
    "imagegpt": ("ImageGPTConfig", "ImageGPTForImageClassification", dict(vocab_size=128, n_positions=64, n_embd=64, n_layer=2, n_head=4, num_labels=5), "ids"),
    "bit": ("BitConfig", "BitForImageClassification", dict(num_labels=5, embedding_size=32, hidden_sizes=[64, 128, 256, 512], depths=[1, 1, 1, 1], num_groups=8), "pixels"),
    "textnet": ("TextNetConfig", "TextNetForImageClassification", dict(num_labels=5), "pixels"),
    "pp-lcnet": ("PPLCNetConfig", "PPLCNetForImageClassification", dict(num_labels=5), "pixels"),
    "hiera": ("HieraConfig", "HieraForImageClassification", dict(num_labels=5, image_size=[64, 64], embed_dim=32, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8]), "pixels64"),
})
S.main()
