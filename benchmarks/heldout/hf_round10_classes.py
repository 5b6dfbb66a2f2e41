"""Issue 20, spot checks beside the tenth held-out pass (2026-12-06, session 22): mainstream Hugging Face classes whose
architectures earlier passes held only in another class (CLIP and SigLIP as dual encoders, SigLIP 2, wav2vec 2.0 for
CTC, ViT-MAE pretraining, InstructBLIP).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round10_classes.py [--models clip-model]
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
T, V = S.TEXT, S.VISION
VIS = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8)
pt = lambda c, ids: {"input_ids": ids, "pixel_values": torch.randn(2, 3, 32, 32)}
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
 "clip-model": ("CLIPConfig", "CLIPModel", dict(text_config=T, vision_config=VIS, projection_dim=64), pt),
 "siglip-model": ("SiglipConfig", "SiglipModel", dict(text_config=T, vision_config=VIS), pt),
 "siglip2-model": ("Siglip2Config", "Siglip2Model", dict(text_config=T, vision_config=dict(VIS, num_patches=16)), lambda c, ids: {"input_ids": ids, "pixel_values": torch.randn(2, 16, 192), "pixel_attention_mask": torch.ones(2, 16, dtype=torch.long), "spatial_shapes": torch.tensor([[4, 4], [4, 4]])}),
 "wav2vec2-ctc": ("Wav2Vec2Config", "Wav2Vec2ForCTC", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32, 32), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=32), "wave"),
 "vitmae-pretraining": ("ViTMAEConfig", "ViTMAEForPreTraining", dict(VIS, decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64), "pixels"),
 "instructblip": ("InstructBlipConfig", "InstructBlipForConditionalGeneration", dict(vision_config=VIS, qformer_config=dict(T, encoder_hidden_size=64), text_config=dict(S.DECODER, model_type="llama"), num_query_tokens=4, image_token_index=99), lambda c, ids: {"input_ids": torch.cat([torch.full((2, 4), 99), ids.clamp(max=90)], 1), "qformer_input_ids": ids, "pixel_values": torch.randn(2, 3, 32, 32)}),
})
if __name__ == "__main__":
    S.main()
