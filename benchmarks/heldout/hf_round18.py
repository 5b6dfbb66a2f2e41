"""Issue 20, eighteenth held-out Hugging Face pass (model types no list names, from ``hf_coverage.py``, 2026-12-07,
session 28): the text towers of ALIGN, AltCLIP, BLIP, OWLv2, Chinese-CLIP, CLAP, FLAVA, GroupViT, MetaCLIP 2, SigLIP 2
and X-CLIP, and Depth Pro; measured blind (the first run's table is the held-out result).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round18.py [--models depth-pro]

Tiny as the sweep's (hidden 64, 2 layers, 4 heads, vocabulary 128, images 32 px in patches of 8); each input is made
from the config where the model needs more than token ids or pixels.
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
T = dict(S.TEXT, max_position_embeddings=64)
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    "align-text": ("AlignTextConfig", "AlignTextModel", dict(T), "ids"),
    "altclip-text": ("AltCLIPTextConfig", "AltCLIPTextModel", dict(T, project_dim=32, pad_token_id=1), "ids"),
    "blip-text": ("BlipTextConfig", "BlipTextModel", dict(T, encoder_hidden_size=48), lambda c, ids: {"input_ids": ids, "encoder_hidden_states": torch.randn(2, 5, 48)}),
    "owlv2-text": ("Owlv2TextConfig", "Owlv2TextModel", dict(T), "ids"),
    "chinese-clip-text": ("ChineseCLIPTextConfig", "ChineseCLIPTextModel", dict(T), "ids"),
    "clap-text": ("ClapTextConfig", "ClapTextModel", dict(T, pad_token_id=1), "ids"),
    "flava-text": ("FlavaTextConfig", "FlavaTextModel", dict(T), "ids"),
    "groupvit-text": ("GroupViTTextConfig", "GroupViTTextModel", dict(T), "ids"),
    "metaclip2-text": ("MetaClip2TextConfig", "MetaClip2TextModel", dict(T), "ids"),
    "siglip2-text": ("Siglip2TextConfig", "Siglip2TextModel", dict(T), "ids"),
    "xclip-text": ("XCLIPTextConfig", "XCLIPTextModel", dict(T), "ids"),
    "depth-pro": ("DepthProConfig", "DepthProForDepthEstimation", dict(fusion_hidden_size=16, patch_size=32, intermediate_hook_ids=[1, 0], intermediate_feature_dims=[16, 16],
                                                                      scaled_images_ratios=[0.5, 1.0], scaled_images_overlap_ratios=[0.0, 0.25],
                                                                      scaled_images_feature_dims=[32, 32], merge_padding_value=1, use_batch_norm_in_fusion_residual=False,
                                                                      use_bias_in_fusion_residual=True, use_fov_model=False, num_fov_head_layers=1,
                                                                      image_model_config=dict(model_type="dinov2", hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=8),
                                                                      patch_model_config=dict(model_type="dinov2", hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=8),
                                                                      fov_model_config=dict(model_type="dinov2", hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=8)),
                  lambda c, ids: {"pixel_values": torch.randn(2, 3, 64, 64)}),
})


if __name__ == "__main__":
    S.main()
