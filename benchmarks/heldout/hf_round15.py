"""Issue 20, fifteenth held-out Hugging Face pass (architectures in no other list, 2026-12-06, session 27): detectors and
segmenters (RT-DETR, Conditional DETR, Mask2Former), vision towers (RADIO, Sapiens2, FLAVA's image encoder,
Chinese-CLIP's, MGP-STR's scene-text recogniser), an audio tower (CLAP's HTS-AT), an audio codec (DAC), Bark's semantic
decoder, and bare text models of new families (EmbeddingGemma 2, GLM-5-Next, Mistral Large 4); measured blind (the
first run's table is the held-out result).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round15.py [--models radio,dac]

Tiny as the sweep's (hidden 64, 2 layers, 4 heads, vocabulary 128, images 32 px in patches of 8); each input is made
from the config where the model needs more than token ids or pixels.
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
T, D, V = S.TEXT, S.DECODER, S.VISION
pixels = lambda size, width=None: (lambda c, ids: {"pixel_values": torch.randn(2, 3, size, width or size)})
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    # detectors and segmenters
    "rt-detr": ("RTDetrConfig", "RTDetrForObjectDetection", dict(backbone_config=dict(model_type="rt_detr_resnet", embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                                                                                      layer_type="basic", out_features=["stage2", "stage3", "stage4"]),
                                                                 encoder_in_channels=[32, 64, 128], encoder_hidden_dim=32, d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                                                 decoder_in_channels=[32, 32, 32], encoder_attention_heads=4, decoder_attention_heads=4, decoder_layers=2,
                                                                 num_queries=10, num_denoising=0, num_labels=5), pixels(64)),
    "conditional-detr": ("ConditionalDetrConfig", "ConditionalDetrForObjectDetection", dict(use_timm_backbone=True, backbone="resnet18", use_pretrained_backbone=False, d_model=32,
                                                                                            encoder_layers=1, decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
                                                                                            encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=10, num_labels=5), pixels(64)),
    "mask2former": ("Mask2FormerConfig", "Mask2FormerForUniversalSegmentation", dict(backbone_config=dict(model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4], image_size=64,
                                                                                                          window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"]),
                                                                                     feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_feedforward_dim=64, dim_feedforward=64,
                                                                                     decoder_layers=2, encoder_layers=1, num_queries=10, num_attention_heads=4, num_labels=5), pixels(64)),
    # vision towers
    "radio": ("RadioConfig", "RadioModel", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=8, image_size=32, max_img_size=64, num_cls_tokens=2,
                                                num_registers=2, patch_dim=192, summary_idxs=[0, 1]), pixels(32)),
    "sapiens2": ("Sapiens2Config", "Sapiens2Model", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads_per_layer=[4, 2, 2, 4],
                                                         num_key_value_attention_heads=2, num_first_full_attention_layers=1, num_last_full_attention_layers=1, image_size=32,
                                                         patch_size=8, num_register_tokens=2), pixels(32)),
    "flava-image": ("FlavaImageConfig", "FlavaImageModel", dict(V), pixels(32)),
    "chinese-clip-vision": ("ChineseCLIPVisionConfig", "ChineseCLIPVisionModel", dict(V), pixels(32)),
    "mgp-str": ("MgpstrConfig", "MgpstrForSceneTextRecognition", dict(image_size=[32, 64], patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, max_token_length=8,
                                                                    num_character_labels=10, num_bpe_labels=50, num_wordpiece_labels=50), pixels(32, 64)),
    # audio
    "clap-audio": ("ClapAudioConfig", "ClapAudioModel", dict(spec_size=64, num_mel_bins=16, patch_size=4, patch_stride=[4, 4], hidden_size=64, depths=[1, 1], num_attention_heads=[2, 4],
                                                            patch_embeds_hidden_size=32, window_size=4, num_hidden_layers=2, projection_dim=32),
                   lambda c, ids: {"input_features": torch.randn(2, 1, 64, 16)}),
    "dac": ("DacConfig", "DacModel", dict(encoder_hidden_size=8, downsampling_ratios=[2, 4], decoder_hidden_size=32, n_codebooks=2, codebook_size=32, codebook_dim=4,
                                          upsampling_ratios=[4, 2], hidden_size=32, hop_length=8), lambda c, ids: {"input_values": torch.randn(2, 1, 800)}),
    # decoders and bare text models
    "bark-semantic": ("BarkSemanticConfig", "BarkSemanticModel", dict(block_size=64, input_vocab_size=128, output_vocab_size=128, num_layers=2, num_heads=4, hidden_size=64), "ids"),
    "embedding-gemma2-text": ("EmbeddingGemma2TextConfig", "EmbeddingGemma2TextModel", dict(D, head_dim=16, hidden_size_per_layer_input=16, embedding_dim=48, sliding_window=16), "ids"),
    "glm5-next-text": ("Glm5NextTextConfig", "Glm5NextTextModel", dict(D, num_key_value_heads=4, moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2, kv_lora_rank=16,
                                                                       q_lora_rank=24, v_head_dim=16, qk_nope_head_dim=16, index_topk=8, index_head_dim=16, index_n_heads=2,
                                                                       linear_head_dim=16, linear_num_heads=4, hc_mult=2, index_kpool=4, indexer_types=["full", "full"]), "ids"),
    "mistral-large4-text": ("MistralLarge4TextConfig", "MistralLarge4TextModel", dict(D, num_key_value_heads=4, moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2,
                                                                                     kv_lora_rank=16, qk_rope_head_dim=8, v_head_dim=16, qk_nope_head_dim=8, index_topk=8,
                                                                                     index_head_dim=16, index_n_heads=2, head_dim=8, first_k_dense_replace=1,
                                                                                     indexer_types=["full", "full"], no_rope_layers=[1, 0], kv_source_layers=[0, 1]), "ids"),
})


if __name__ == "__main__":
    S.main()
