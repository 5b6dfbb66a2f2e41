"""Issue 20, fourteenth held-out Hugging Face pass (architectures in no other list, 2026-12-06, session 27): the vision
towers of Qwen2.5-VL, Qwen3-VL and GLM-4V (packed patches with a grid), SAM 2's Hiera, DINOv3's ConvNeXt, GroupViT's
grouping tower, CLIP's text tower, decoders with new attention and mixtures (AX K2, Qwen3.5-MoE, Qwen4-Exp, MiniMax-M3
text, Cohere Compass classification), Decision Transformer, EnCodec; measured blind (the first run's table is the
held-out result).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round14.py [--models clip-text,encodec]

Tiny as the sweep's (hidden 64, 2 layers, 4 heads, vocabulary 128, images 32 px in patches of 8); each input is made
from the config where the model needs more than token ids or pixels.
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
T, D = S.TEXT, S.DECODER
pixels = lambda size: (lambda c, ids: {"pixel_values": torch.randn(2, 3, size, size)})


def packed_patches(c, ids):
    """A 2-image batch of packed patches as Qwen-VL-style towers take them: (patches, C * T * P * P) and its grid."""
    grid = torch.tensor([[1, 4, 4], [1, 4, 4]])
    width = c.in_channels * c.temporal_patch_size * c.patch_size ** 2
    return {"hidden_states": torch.randn(int(grid.prod(-1).sum()), width), "grid_thw": grid}


VL_TOWER = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, patch_size=8, spatial_merge_size=2,
                temporal_patch_size=2, out_hidden_size=48)
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    # vision towers
    "qwen2.5-vl-vision": ("Qwen2_5_VLVisionConfig", "Qwen2_5_VisionTransformerPretrainedModel", dict(VL_TOWER, window_size=32, fullatt_block_indexes=[1]), packed_patches),
    "qwen3-vl-vision": ("Qwen3VLVisionConfig", "Qwen3VLVisionModel", dict(VL_TOWER, num_position_embeddings=16, deepstack_visual_indexes=[0]), packed_patches),
    "glm4v-vision": ("Glm4vVisionConfig", "Glm4vVisionModel", dict(VL_TOWER, image_size=32), packed_patches),
    "sam2-hiera": ("Sam2HieraDetConfig", "Sam2HieraDetModel", dict(hidden_size=16, num_attention_heads=1, image_size=[64, 64], blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
                                                                  num_attention_heads_per_stage=[1, 2, 4, 8], window_size_per_stage=[4, 4, 2, 2], global_attention_blocks=[3],
                                                                  window_positional_embedding_background_size=[4, 4]), pixels(64)),
    "dinov3-convnext": ("DINOv3ConvNextConfig", "DINOv3ConvNextModel", dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1], image_size=64), pixels(64)),
    "groupvit-vision": ("GroupViTVisionConfig", "GroupViTVisionModel", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, depths=[1, 1, 1], num_group_tokens=[8, 4, 0],
                                                                           num_output_groups=[8, 4, 4], num_attention_heads=4, image_size=32, patch_size=8), pixels(32)),
    # text towers and decoders
    "clip-text": ("CLIPTextConfig", "CLIPTextModel", dict(T, eos_token_id=2), "ids"),
    "cohere-compass-text": ("CohereCompassTextConfig", "CohereCompassTextForSequenceClassification", dict(D, head_dim=16, num_labels=3, rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 10000.0}}), "ids"),
    "axk2": ("AXK2Config", "AXK2ForCausalLM", dict(D, num_key_value_heads=4, moe_intermediate_size=32, n_shared_experts=1, n_routed_experts=4, num_experts_per_tok=2, n_group=1, topk_group=1,
                                                  kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=16, head_dim=8, index_topk=8, index_head_dim=16,
                                                  index_n_heads=2, gated_norm_rank=4, mlp_layer_types=["dense", "sparse"], layer_types=["indexed_attention"] * 2), "ids"),
    "qwen3.5-moe-text": ("Qwen3_5MoeTextConfig", "Qwen3_5MoeForCausalLM", dict(D, head_dim=16, layer_types=["linear_attention", "full_attention"], linear_key_head_dim=16, linear_value_head_dim=16,
                                                                           linear_num_key_heads=2, linear_num_value_heads=4, moe_intermediate_size=32, shared_expert_intermediate_size=32,
                                                                           num_experts=4, num_experts_per_tok=2), "ids"),
    "qwen4-exp-text": ("Qwen4ExpTextConfig", "Qwen4ExpForCausalLM", dict(D, head_dim=16, layer_types=["linear_attention", "indexed_attention"], linear_key_head_dim=16, linear_value_head_dim=16,
                                                                    linear_num_key_heads=2, linear_num_value_heads=4, moe_intermediate_size=32, shared_expert_intermediate_size=32,
                                                                    num_experts=4, num_experts_per_tok=2, hc_count=2, hc_lowrank=16, ple_embed_dim=64, ngram_vocab_size_base=512,
                                                                    heads_per_ngram=2, split_ngram_parts=4, indexer_n_heads=2, indexer_kv_heads=1,
                                                                    indexer_head_dim=16, indexer_budget=8, indexer_compress_ratio=2), "ids"),
    "minimax-m3-text": ("MiniMaxM3VLTextConfig", "MiniMaxM3VLForCausalLM", dict(D, head_dim=16, intermediate_size=64, dense_intermediate_size=128, shared_intermediate_size=64, num_local_experts=4,
                                                                            num_experts_per_tok=2, rotary_dim=8, index_n_heads=2, index_head_dim=16, index_block_size=4, index_topk_blocks=2,
                                                                            mlp_layer_types=["dense", "sparse"], layer_types=["full_attention"] * 2), "ids"),
    # reinforcement learning and audio
    "decision-transformer": ("DecisionTransformerConfig", "DecisionTransformerModel", dict(state_dim=8, act_dim=3, hidden_size=64, n_layer=2, n_head=4, max_ep_len=64, n_positions=64),
                             lambda c, ids: {"states": torch.randn(2, 12, 8), "actions": torch.randn(2, 12, 3), "rewards": torch.randn(2, 12, 1),
                                             "returns_to_go": torch.randn(2, 12, 1), "timesteps": torch.arange(12).repeat(2, 1), "attention_mask": torch.ones(2, 12, dtype=torch.long)}),
    "encodec": ("EncodecConfig", "EncodecModel", dict(hidden_size=32, num_filters=8, upsampling_ratios=[4, 2], codebook_size=32, num_lstm_layers=1, target_bandwidths=[30.0]),
                lambda c, ids: {"input_values": torch.randn(2, 1, 800)}),
})


if __name__ == "__main__":
    S.main()
