"""Issue 20, eleventh held-out Hugging Face pass (architectures in no other list, 2026-12-06, session 26): recent
decoders and hybrids, encoders, vision encoders and time-series transformers, measured blind (the first run's table is
the held-out result; fixes come after and are rerun).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round11.py [--models mistral4,zamba]

Chosen from transformers' model types that no earlier list held (343 configs), single-stack models with a sequence
classification, causal-LM, image or base head. Tiny as the sweep's (hidden 64, 2 layers, 4 heads, vocabulary 128,
images 32 px in patches of 8).
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
T, D, V = S.TEXT, S.DECODER, S.VISION
VIS = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8)
MOE = dict(D, num_experts=4, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, head_dim=16)
pixels = lambda c, ids: {"pixel_values": torch.randn(2, 3, 32, 32)}
series = lambda c, ids: {"past_values": torch.randn(2, 27), "past_time_features": torch.randn(2, 27, 1),
                         "past_observed_mask": torch.ones(2, 27), "future_values": torch.randn(2, 8),
                         "future_time_features": torch.randn(2, 8, 1)}
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    # decoders and hybrids
    "mistral4": ("Mistral4Config", "Mistral4ForSequenceClassification", dict(MOE, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16), "ids"),
    "kolibri1_1": ("Kolibri1_1Config", "Kolibri1_1ForCausalLM", dict(MOE, index_num_heads=2, index_topk=8, index_pool_size=64, index_compression=4, index_num_local_tokens=4, index_num_sink_tokens=2, shared_expert_intermediate_size=64, mlp_only_intermediate_size=128, sliding_window=8), "ids"),
    "dots3-note": ("Dots3NoteTextConfig", "Dots3NoteForCausalLM", dict(MOE, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, n_group=1, topk_group=1, index_head_dim=16, index_n_heads=4, index_topk=8), "ids"),
    "inkling2": ("Inkling2TextConfig", "Inkling2ForCausalLM", dict(D, head_dim=16, swa_num_attention_heads=4, swa_num_key_value_heads=2, swa_head_dim=16, unpadded_vocab_size=120, n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, sliding_window_size=8, rel_extent=16), "ids"),
    "qwen3_5": ("Qwen3_5Config", "Qwen3_5ForSequenceClassification", dict(text_config=dict(D, head_dim=16, linear_key_head_dim=16, linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4, num_hidden_layers=4), vision_config=dict(depth=1, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=64), num_labels=5), "ids"),
    "zamba": ("ZambaConfig", "ZambaForSequenceClassification", dict(D, num_hidden_layers=6, attention_hidden_size=128, mamba_d_state=8, mamba_dt_rank=8, attn_layer_period=3, attn_layer_offset=2), "ids"),
    "emu3": ("Emu3TextConfig", "Emu3ForCausalLM", D, "ids"),
    "axk1": ("AXK1Config", "AXK1ForSequenceClassification", dict(MOE, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, n_group=1, topk_group=1, head_dim=8), "ids"),
    "longcat-flash": ("LongcatFlashConfig", "LongcatFlashForCausalLM", dict(MOE, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, ffn_hidden_size=128, expert_ffn_hidden_size=64, num_layers=2, head_dim=8), "ids"),
    # encoders
    "t5gemma2": ("T5Gemma2Config", "T5Gemma2ForSequenceClassification", dict(encoder=dict(text_config=dict(D, head_dim=16), vision_config=dict(VIS)), decoder=dict(D, head_dim=16), num_labels=5), "ids"),
    "visual-bert": ("VisualBertConfig", "VisualBertModel", dict(T, visual_embedding_dim=32), "ids"),
    # vision encoders
    "pixtral": ("PixtralVisionConfig", "PixtralVisionModel", dict(VIS), pixels),
    "mlcd": ("MLCDVisionConfig", "MLCDVisionModel", dict(VIS), pixels),
    "vitdet": ("VitDetConfig", "VitDetModel", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2, image_size=32, patch_size=8, pretrain_image_size=32), pixels),
    # time series
    "time-series-transformer": ("TimeSeriesTransformerConfig", "TimeSeriesTransformerModel", dict(prediction_length=8, context_length=24, lags_sequence=[1, 2, 3], num_time_features=1, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64), series),
})


if __name__ == "__main__":
    S.main()
