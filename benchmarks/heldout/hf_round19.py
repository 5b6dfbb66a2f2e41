"""Issue 20, nineteenth held-out Hugging Face pass (model types no list names, from ``hf_coverage.py``, 2026-12-07,
session 33): vision towers (CLIP, BLIP, BLIP-2, InstructBLIP, Pix2Struct, Llama 4, InternVL, Janus, Mllama, AltCLIP,
GIT, LW-DETR's ViT, SAM-HQ), ViTPose's backbone, MaskFormer's Swin, text towers and decoders (Pix2Struct, SigLIP,
OWL-ViT, CLIPSeg, AIMv2, Qwen2-VL, Mllama, GLM-4V-MoE, T5Gemma 2's encoder, EmbeddingGemma 2, UltraVBERT), CLVP's
encoder and MusicGen Melody; measured blind (the first run's table is the held-out result).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round19.py [--models a,b]

Tiny as the sweep's (hidden 64, 2 layers, 4 heads, vocabulary 128, images 32 px in patches of 8).
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
T = dict(S.TEXT, max_position_embeddings=64)
D = dict(S.DECODER)
V = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8)
px = lambda c, ids: {"pixel_values": torch.randn(2, 3, 32, 32)}
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    "clip-vision-model": ("CLIPVisionConfig", "CLIPVisionModel", dict(V), px),
    "blip-vision": ("BlipVisionConfig", "BlipVisionModel", dict(V), px),
    "blip2-vision": ("Blip2VisionConfig", "Blip2VisionModel", dict(V), px),
    "instructblip-vision": ("InstructBlipVisionConfig", "InstructBlipVisionModel", dict(V), px),
    "pix2struct-vision": ("Pix2StructVisionConfig", "Pix2StructVisionModel", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, d_ff=128, d_kv=16, patch_embed_hidden_size=48, seq_len=16),
                          lambda c, ids: {"flattened_patches": torch.cat([torch.stack(torch.meshgrid(torch.arange(1, 5.), torch.arange(1, 5.), indexing="ij"), -1).reshape(1, 16, 2).expand(2, 16, 2), torch.randn(2, 16, 48)], -1)}),
    "pix2struct-text": ("Pix2StructTextConfig", "Pix2StructTextModel", dict(vocab_size=128, hidden_size=64, num_layers=2, num_heads=4, d_ff=128, d_kv=16, initializer_range=0.02),
                        lambda c, ids: {"input_ids": ids, "encoder_hidden_states": torch.randn(2, 5, 64)}),
    "siglip-text": ("SiglipTextConfig", "SiglipTextModel", dict(T), "ids"),
    "owlvit-text": ("OwlViTTextConfig", "OwlViTTextModel", dict(T), "ids"),
    "clipseg-text": ("CLIPSegTextConfig", "CLIPSegTextModel", dict(T), "ids"),
    "aimv2-text": ("Aimv2TextConfig", "Aimv2TextModel", dict(T), "ids"),
    "llama4-vision": ("Llama4VisionConfig", "Llama4VisionModel", dict(V, intermediate_size=256, vision_output_dim=64, projector_input_dim=64, projector_output_dim=64, pixel_shuffle_ratio=0.5, rope_theta=10000), px),
    "internvl-vision": ("InternVLVisionConfig", "InternVLVisionModel", dict(V, image_size=[32, 32], patch_size=[8, 8]), px),
    "janus-vision": ("JanusVisionConfig", "JanusVisionModel", dict(V, projection_dim=64), px),
    "mllama-vision": ("MllamaVisionConfig", "MllamaVisionModel", dict(hidden_size=64, num_hidden_layers=2, num_global_layers=1, attention_heads=4, intermediate_size=128, image_size=32, patch_size=8,
                                                                  intermediate_layers_indices=[0], vision_output_dim=128, max_num_tiles=1, supported_aspect_ratios=[[1, 1]]),
                      lambda c, ids: {"pixel_values": torch.randn(2, 1, 1, 3, 32, 32), "aspect_ratio_ids": torch.tensor([[1], [1]]), "aspect_ratio_mask": torch.ones(2, 1, 1, dtype=torch.long)}),
    "altclip-vision": ("AltCLIPVisionConfig", "AltCLIPVisionModel", dict(V), px),
    "git-vision": ("GitVisionConfig", "GitVisionModel", dict(V), px),
    "lw-detr-vit": ("LwDetrViTConfig", "LwDetrViTBackbone", dict(V, out_indices=[2], window_block_indices=[0], num_windows=1, pretrain_image_size=32), px),
    "sam-hq-vision": ("SamHQVisionConfig", "SamHQVisionModel", dict(V, output_channels=32, global_attn_indexes=[1], window_size=2, mlp_dim=128), px),
    "vitpose-backbone": ("VitPoseBackboneConfig", "VitPoseBackbone", dict(V, image_size=[32, 32], out_indices=[2]), px),
    "maskformer-swin": ("MaskFormerSwinConfig", "MaskFormerSwinModel", dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=4), px),
    "qwen2-vl-text": ("Qwen2VLTextConfig", "Qwen2VLTextModel", dict(D, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}), "ids"),
    "mllama-text": ("MllamaTextConfig", "MllamaTextModel", dict(D, cross_attention_layers=[1]), "ids"),
    "glm4v-moe-text": ("Glm4vMoeTextConfig", "Glm4vMoeTextModel", dict(D, moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1, head_dim=16, rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5, mrope_section=[2, 1, 1])), "ids"),
    "t5gemma2-encoder": ("T5Gemma2EncoderConfig", "T5Gemma2Encoder", dict(text_config=dict(D, head_dim=16, dropout_rate=0.0), vision_config=dict(V), mm_tokens_per_image=4), "ids"),
    "embeddinggemma2": ("EmbeddingGemma2Config", "EmbeddingGemma2Model", dict(text_config=dict(D, head_dim=16)), "ids"),
    "ultravbert": ("UltraVBertConfig", "UltraVBertModel", dict(text_config=dict(T), vision_config=dict(V), image_token_id=127), "ids"),
    "clvp-encoder": ("ClvpEncoderConfig", "ClvpEncoder", dict(T, hidden_size=128, intermediate_size=256, projection_dim=32), "ids"),
    "musicgen-melody": ("MusicgenMelodyDecoderConfig", "MusicgenMelodyForCausalLM", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128, num_codebooks=2),
                        lambda c, ids: {"input_ids": ids.repeat(2, 1)[:, :8].reshape(4, 8) % 128}),
})


if __name__ == "__main__":
    S.main()
