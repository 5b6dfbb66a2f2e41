"""Issue 20, tenth held-out Hugging Face pass (architectures in no other list, 2026-12-06, session 22): video
classifiers, vision-language generators (image tokens in the text), dense-prediction and detection models, dual
encoders, speech-to-text and time-series transformers.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round10.py [--models videomae,llava]

Chosen from transformers' model types that no earlier list held (260 configs): the ``...ForConditionalGeneration``
classes the ninth pass left out, and the task heads other than causal-LM / classification. Each input is made from the
config (a callable in place of the sweep's input kind): video clips, image tokens repeated where the text model expects
the image's features, boxes and patches as the model needs. Sub-models are tiny as the sweep's (hidden 64, 2 layers,
4 heads, vocabulary 128, images 32 px in patches of 8).
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
T, D, V = S.TEXT, S.DECODER, S.VISION
VIS = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8)
LLAMA = dict(D, model_type="llama")
IMG = 99  # the image token's id in the tiny vocabularies


def clip(frames=4, size=32):
    return lambda c, ids: {"pixel_values": torch.randn(2, frames, 3, size, size)}


def image_text(tokens, image=32, frames=0, **extra):
    """``tokens`` image placeholders, then text; the image's pixels (one image each, ``frames`` as an image-count axis
    where the model takes one) and whatever else the model asks for."""
    def make(c, ids):
        ids = ids.clone()
        ids[ids >= 98] = 5
        pixels = torch.randn(2, *([frames] if frames else []), 3, image, image)
        out = {"input_ids": torch.cat([torch.full((2, tokens), IMG), ids], 1), "pixel_values": pixels}
        out.update({k: v(c) if callable(v) else v for k, v in extra.items()})
        return out
    return make


def qwen2_vl(c, ids):
    """Qwen2-VL's flattened patches (2 frames of 8 x 8 per patch, 4 x 4 patches) merged 2 x 2 into 4 image tokens
    after a vision-start token; its M-RoPE positions need the token types."""
    ids = ids.clone()
    ids[ids >= 98] = 5
    ids = torch.cat([torch.full((2, 1), 98), torch.full((2, 4), IMG), ids], 1)
    return {"input_ids": ids, "mm_token_type_ids": (ids == IMG).int(), "pixel_values": torch.randn(32, 3 * 2 * 8 * 8),
            "image_grid_thw": torch.tensor([[1, 4, 4], [1, 4, 4]])}


def kosmos2(c, ids):
    """Kosmos-2: its 4 latent image queries take the places marked in ``image_embeds_position_mask``."""
    ids = torch.cat([ids[:, :1], torch.full((2, 4), 5), ids[:, 1:]], 1)
    mask = torch.zeros_like(ids)
    mask[:, 1:5] = 1
    return {"input_ids": ids, "image_embeds_position_mask": mask, "pixel_values": torch.randn(2, 3, 32, 32)}


def pixels(size=32):
    return lambda c, ids: {"pixel_values": torch.randn(2, 3, size, size)}


def pixels_text(size=32):
    return lambda c, ids: {"input_ids": ids, "pixel_values": torch.randn(2, 3, size, size)}


S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
 # video classification
 "videomae": ("VideoMAEConfig", "VideoMAEForVideoClassification", dict(VIS, num_frames=4, tubelet_size=2, num_labels=5), clip()),
 "timesformer": ("TimesformerConfig", "TimesformerForVideoClassification", dict(VIS, num_frames=4, num_labels=5), clip()),
 "vivit": ("VivitConfig", "VivitForVideoClassification", dict(VIS, num_frames=4, tubelet_size=[2, 8, 8], num_labels=5), clip()),
 "vjepa2": ("VJEPA2Config", "VJEPA2ForVideoClassification", dict(VIS, crop_size=32, frames_per_clip=4, tubelet_size=2, pred_hidden_size=32, pred_num_attention_heads=4, pred_num_hidden_layers=1, pred_num_mask_tokens=2, num_pooler_layers=1, num_labels=5), lambda c, ids: {"pixel_values_videos": torch.randn(2, 4, 3, 32, 32)}),
 # vision-language generation: image tokens in the text
 "llava": ("LlavaConfig", "LlavaForConditionalGeneration", dict(vision_config=dict(VIS, model_type="clip_vision_model"), text_config=LLAMA, image_token_index=IMG, projector_hidden_act="gelu"), image_text(16)),
 "paligemma": ("PaliGemmaConfig", "PaliGemmaForConditionalGeneration", dict(vision_config=dict(VIS, model_type="siglip_vision_model"), text_config=dict(D, model_type="gemma", head_dim=16), image_token_index=IMG, projection_dim=64), image_text(16)),
 "mistral3": ("Mistral3Config", "Mistral3ForConditionalGeneration", dict(vision_config=dict(VIS, model_type="pixtral", head_dim=16), text_config=dict(D, model_type="mistral", head_dim=16), image_token_index=IMG, spatial_merge_size=2), image_text(4, image_sizes=torch.tensor([[32, 32], [32, 32]]))),
 "aya-vision": ("AyaVisionConfig", "AyaVisionForConditionalGeneration", dict(vision_config=dict(VIS, model_type="siglip_vision_model"), text_config=dict(D, model_type="cohere2"), image_token_index=IMG, downsample_factor=2), image_text(4)),
 "gemma3-vl": ("Gemma3Config", "Gemma3ForConditionalGeneration", dict(vision_config=dict(VIS, model_type="siglip_vision_model"), text_config=dict(D, model_type="gemma3_text", head_dim=16), image_token_index=IMG, mm_tokens_per_image=4), image_text(4)),
 "idefics3": ("Idefics3Config", "Idefics3ForConditionalGeneration", dict(vision_config=dict(VIS, model_type="idefics3_vision"), text_config=LLAMA, image_token_id=IMG, scale_factor=2), image_text(4, frames=1)),
 "smolvlm": ("SmolVLMConfig", "SmolVLMForConditionalGeneration", dict(vision_config=dict(VIS, model_type="smolvlm_vision"), text_config=LLAMA, image_token_id=IMG, scale_factor=2), image_text(4, frames=1)),
 "qwen2-vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", dict(vision_config=dict(embed_dim=64, hidden_size=64, depth=2, num_heads=4, patch_size=8, spatial_merge_size=2, temporal_patch_size=2, in_chans=3), text_config=dict(D, model_type="qwen2_vl_text", rope_scaling=dict(type="mrope", mrope_section=[2, 2, 4])), image_token_id=IMG, vision_start_token_id=98), qwen2_vl),
 "blip": ("BlipConfig", "BlipForConditionalGeneration", dict(vision_config=VIS, text_config=dict(T, model_type="blip_text_model", bos_token_id=1, sep_token_id=2, pad_token_id=0), projection_dim=64), pixels_text()),
 "blip-2": ("Blip2Config", "Blip2ForConditionalGeneration", dict(vision_config=VIS, qformer_config=dict(T, encoder_hidden_size=64), text_config=dict(D, model_type="opt", ffn_dim=128, word_embed_proj_dim=64), num_query_tokens=4, image_token_index=IMG), image_text(4)),
 "kosmos-2": ("Kosmos2Config", "Kosmos2ForConditionalGeneration", dict(vision_config=VIS, text_config=dict(vocab_size=128, embed_dim=64, layers=2, attention_heads=4, ffn_dim=128, max_position_embeddings=64), latent_query_num=4), kosmos2),
 "pix2struct": ("Pix2StructConfig", "Pix2StructForConditionalGeneration", dict(vision_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, d_ff=128, d_kv=16, patch_embed_hidden_size=48, seq_len=16), text_config=dict(vocab_size=128, hidden_size=64, num_layers=2, num_heads=4, d_ff=128, d_kv=16)), lambda c, ids: {"flattened_patches": torch.cat([torch.arange(16).view(1, 16, 1).expand(2, 16, 2) // 4 + 1, torch.randn(2, 16, 48)], 2).float(), "attention_mask": torch.ones(2, 16), "decoder_input_ids": ids[:, :6]}),
 # dense prediction, detection
 "dpt": ("DPTConfig", "DPTForDepthEstimation", dict(VIS, num_hidden_layers=4, neck_hidden_sizes=[16, 32, 64, 64], fusion_hidden_size=32, backbone_out_indices=[0, 1, 2, 3], head_in_index=-1), pixels()),
 "depth-anything": ("DepthAnythingConfig", "DepthAnythingForDepthEstimation", dict(backbone_config=dict(VIS, model_type="dinov2", reshape_hidden_states=False, num_hidden_layers=4, out_indices=[1, 2, 3, 4], image_size=28, patch_size=14), neck_hidden_sizes=[16, 32, 64, 64], reassemble_hidden_size=64, fusion_hidden_size=32, head_hidden_size=16), pixels(28)),
 "upernet-convnext": ("UperNetConfig", "UperNetForSemanticSegmentation", dict(backbone_config=dict(model_type="convnext", hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], out_features=["stage1", "stage2", "stage3", "stage4"]), hidden_size=32, auxiliary_channels=16, num_labels=5), pixels()),
 "yolos": ("YolosConfig", "YolosForObjectDetection", dict(VIS, image_size=[32, 32], num_detection_tokens=4, num_labels=5), pixels()),
 "detr": ("DetrConfig", "DetrForObjectDetection", dict(use_timm_backbone=False, backbone_config=dict(model_type="resnet", embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], out_features=["stage4"]), use_pretrained_backbone=False, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, num_queries=8, num_labels=5), pixels(64)),
 "glpn": ("GLPNConfig", "GLPNForDepthEstimation", dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_attention_heads=[1, 2, 4, 8], decoder_hidden_size=32), pixels()),
 "vitpose": ("VitPoseConfig", "VitPoseForPoseEstimation", dict(backbone_config=dict(VIS, model_type="vitpose_backbone", image_size=[32, 32], patch_size=[8, 8], out_indices=[2]), num_labels=5), pixels()),
 "swin2sr": ("Swin2SRConfig", "Swin2SRForImageSuperResolution", dict(image_size=16, patch_size=1, embed_dim=32, depths=[2, 2], num_heads=[4, 4], window_size=4, upscale=2), pixels(16)),
 # dual encoders
 "align": ("AlignConfig", "AlignModel", dict(text_config=dict(T, model_type="align_text_model"), vision_config=dict(image_size=32, width_coefficient=0.25, depth_coefficient=0.25), projection_dim=80), pixels_text()),
 "altclip": ("AltCLIPConfig", "AltCLIPModel", dict(text_config=dict(T, model_type="altclip_text_model", project_dim=64), vision_config=VIS, projection_dim=64), pixels_text()),
 "chinese-clip": ("ChineseCLIPConfig", "ChineseCLIPModel", dict(text_config=T, vision_config=VIS, projection_dim=64), pixels_text()),
 "owlvit": ("OwlViTConfig", "OwlViTForObjectDetection", dict(text_config=dict(T, max_position_embeddings=16), vision_config=VIS, projection_dim=64), lambda c, ids: {"input_ids": ids, "pixel_values": torch.randn(2, 3, 32, 32)}),
 "vilt": ("ViltConfig", "ViltForQuestionAnswering", dict(T, image_size=32, patch_size=8, max_image_length=-1, num_labels=5), lambda c, ids: {"input_ids": ids, "pixel_values": torch.randn(2, 3, 32, 32)}),
 # speech and music
 "speech-to-text": ("Speech2TextConfig", "Speech2TextForConditionalGeneration", dict(S.SEQ2SEQ, input_feat_per_channel=16, conv_channels=32, max_source_positions=64), lambda c, ids: {"input_features": torch.randn(2, 40, 16), "decoder_input_ids": ids[:, :6]}),
 "moonshine": ("MoonshineConfig", "MoonshineForConditionalGeneration", dict(vocab_size=128, hidden_size=64, intermediate_size=128, encoder_num_hidden_layers=2, decoder_num_hidden_layers=2, encoder_num_attention_heads=4, decoder_num_attention_heads=4, encoder_num_key_value_heads=4, decoder_num_key_value_heads=4, pad_token_id=0, decoder_start_token_id=1), lambda c, ids: {"input_values": torch.randn(2, 1600), "decoder_input_ids": ids[:, :6]}),
 "speecht5-asr": ("SpeechT5Config", "SpeechT5ForSpeechToText", dict(vocab_size=128, hidden_size=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, conv_dim=(32, 32, 32), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4), lambda c, ids: {"input_values": torch.randn(2, 1600), "decoder_input_ids": ids[:, :6]}),
 "musicgen": ("MusicgenDecoderConfig", "MusicgenForCausalLM", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128, num_codebooks=2, max_position_embeddings=64), lambda c, ids: {"input_ids": ids.repeat(2, 1), "encoder_hidden_states": torch.randn(2, 5, 64)}),
 # time series
 "patchtst": ("PatchTSTConfig", "PatchTSTForClassification", dict(num_input_channels=3, context_length=32, patch_length=8, patch_stride=8, d_model=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128, num_targets=5), lambda c, ids: {"past_values": torch.randn(2, 32, 3)}),
 "patchtsmixer": ("PatchTSMixerConfig", "PatchTSMixerForTimeSeriesClassification", dict(num_input_channels=3, context_length=32, patch_length=8, patch_stride=8, d_model=64, num_layers=2, num_targets=5), lambda c, ids: {"past_values": torch.randn(2, 32, 3)}),
 # text encoders with a task head
 "splinter": ("SplinterConfig", "SplinterForQuestionAnswering", dict(T, question_token_id=104), lambda c, ids: {"input_ids": torch.cat([ids[:, :3], torch.full((2, 1), 104), ids[:, 4:]], 1)}),
 "bros": ("BrosConfig", "BrosForTokenClassification", dict(T, num_labels=5), lambda c, ids: {"input_ids": ids, "bbox": torch.rand(2, 12, 8)}),
})
if __name__ == "__main__":
    S.main()
