"""Issue 20, fifth held-out Hugging Face pass (architectures in no other list, 2026-12-05): the sweep with its list replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round5.py [--models mt5,olmoe]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_hf_sweep as S
T, D, V, Q = S.TEXT, S.DECODER, S.VISION, S.SEQ2SEQ
T5 = dict(vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, decoder_start_token_id=0)
STAGES = dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_labels=5)
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    # encoders
    "camembert": ("CamembertConfig", "CamembertForSequenceClassification", T, "ids"),
    "data2vec-text": ("Data2VecTextConfig", "Data2VecTextForSequenceClassification", T, "ids"),
    "megatron-bert": ("MegatronBertConfig", "MegatronBertForSequenceClassification", T, "ids"),
    "roberta-prelayernorm": ("RobertaPreLayerNormConfig", "RobertaPreLayerNormForSequenceClassification", T, "ids"),
    "xlm": ("XLMConfig", "XLMForSequenceClassification", dict(vocab_size=128, emb_dim=64, n_layers=2, n_heads=4, max_position_embeddings=64), "ids"),
    "big-bird": ("BigBirdConfig", "BigBirdForSequenceClassification", dict(T, attention_type="original_full"), "ids"),
    "modernbert": ("ModernBertConfig", "ModernBertForSequenceClassification", dict(T, pad_token_id=0), "ids"),
    "longformer": ("LongformerConfig", "LongformerForSequenceClassification", dict(T, attention_window=4), "ids"),
    "fnet": ("FNetConfig", "FNetForSequenceClassification", T, "ids"),
    # decoders
    "glm4": ("Glm4Config", "Glm4ForCausalLM", dict(D, head_dim=16), "ids"),
    "helium": ("HeliumConfig", "HeliumForCausalLM", dict(D, head_dim=16), "ids"),
    "smollm3": ("SmolLM3Config", "SmolLM3ForCausalLM", D, "ids"),
    "exaone4": ("Exaone4Config", "Exaone4ForCausalLM", D, "ids"),
    "nemotron": ("NemotronConfig", "NemotronForCausalLM", dict(D, head_dim=16), "ids"),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", dict(D, num_experts=4, num_experts_per_tok=2), "ids"),
    "qwen3-moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(D, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, head_dim=16), "ids"),
    "gpt-oss": ("GptOssConfig", "GptOssForCausalLM", dict(D, num_local_experts=4, num_experts_per_tok=2, head_dim=16, layer_types=["full_attention"] * 2), "ids"),
    "deepseek-v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM", dict(D, num_key_value_heads=4, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, first_k_dense_replace=1, n_group=1, topk_group=1), "ids"),
    "mpt": ("MptConfig", "MptForCausalLM", dict(vocab_size=128, d_model=64, n_heads=4, n_layers=2, max_seq_len=64), "ids"),
    "openai-gpt": ("OpenAIGPTConfig", "OpenAIGPTLMHeadModel", dict(vocab_size=128, n_embd=64, n_layer=2, n_head=4, n_positions=64), "ids"),
    "ctrl": ("CTRLConfig", "CTRLLMHeadModel", dict(vocab_size=128, n_embd=64, n_layer=2, n_head=4, dff=128, n_positions=64), "ids"),
    # encoder-decoders
    "mt5": ("MT5Config", "MT5ForConditionalGeneration", T5, "seq2seq"),
    "longt5": ("LongT5Config", "LongT5ForConditionalGeneration", dict(T5, encoder_attention_type="local", local_radius=4), "seq2seq"),
    "blenderbot": ("BlenderbotConfig", "BlenderbotForConditionalGeneration", Q, "seq2seq"),
    "plbart": ("PLBartConfig", "PLBartForConditionalGeneration", Q, "seq2seq"),
    "pegasus-x": ("PegasusXConfig", "PegasusXForConditionalGeneration", dict(Q, block_size=4, num_global_tokens=4), "seq2seq"),
    # vision
    "vit-mae-pretraining": ("ViTMAEConfig", "ViTMAEForPreTraining", dict(V, decoder_hidden_size=64, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=128), "pixels"),
    "ijepa": ("IJepaConfig", "IJepaForImageClassification", V, "pixels"),
    "vit-msn": ("ViTMSNConfig", "ViTMSNForImageClassification", V, "pixels"),
    "swiftformer": ("SwiftFormerConfig", "SwiftFormerForImageClassification", dict(depths=[1, 1, 1, 1], embed_dims=[16, 32, 64, 128], num_labels=5), "pixels"),
    "mobilenet-v2": ("MobileNetV2Config", "MobileNetV2ForImageClassification", dict(image_size=32, depth_multiplier=0.35, num_labels=5), "pixels"),
    "efficientnet": ("EfficientNetConfig", "EfficientNetForImageClassification", dict(image_size=32, depth_coefficient=0.5, num_labels=5), "pixels"),
    "regnet": ("RegNetConfig", "RegNetForImageClassification", dict(STAGES, embedding_size=16, groups_width=8), "pixels"),
    "poolformer": ("PoolFormerConfig", "PoolFormerForImageClassification", dict(STAGES, num_encoder_blocks=4), "pixels"),
    "clip-vision": ("CLIPConfig", "CLIPForImageClassification", dict(vision_config=dict(V), text_config=dict(T), num_labels=5), "pixels"),
})
S.main()
