"""Issue 20, thirteenth held-out Hugging Face pass (architectures in no other list, 2026-12-06, session 26): speech and
music decoders (CSM, Kyutai speech-to-text, MusicGen Melody), speech encoders (LASR, Qwen2-Audio's, Voxtral's), a
document model (UDOP), vision towers (TIPSv2, VideoPrism, Pixio), measured blind (the first run's table is the
held-out result).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round13.py [--models csm,pixio]

Tiny as the sweep's (hidden 64, 2 layers, 4 heads, vocabulary 128, images 32 px in patches of 8); each input is made
from the config where the model needs more than token ids or pixels.
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
T, D, V = S.TEXT, S.DECODER, S.VISION
VIS = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
pixels = lambda c, ids: {"pixel_values": torch.randn(2, 3, 32, 32)}
MIMI = dict(model_type="mimi", hidden_size=64, num_filters=8, upsampling_ratios=[4, 2], codebook_size=32, codebook_dim=16, num_quantizers=2,
            vector_quantization_hidden_dimension=16, upsample_groups=64, num_hidden_layers=1, intermediate_size=128,
            num_attention_heads=4, num_key_value_heads=4, sliding_window=16, frame_rate=None)  # the audio codec, unused by these inputs
mel = lambda bins, frames: (lambda c, ids: {"input_features": torch.randn(2, bins, frames)})
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    # speech and music decoders
    "kyutai-stt": ("KyutaiSpeechToTextConfig", "KyutaiSpeechToTextForConditionalGeneration", dict(vocab_size=128, codebook_vocab_size=33, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=256, num_codebooks=2, max_position_embeddings=64, sliding_window=32, audio_bos_token_id=32, audio_pad_token_id=100, pad_token_id=3, bos_token_id=1, codec_config=MIMI),
                   lambda c, ids: {"input_ids": torch.cat([ids[:, :, None], torch.randint(0, 32, (2, 12, 2))], 2)}),
    "musicgen-melody": ("MusicgenMelodyDecoderConfig", "MusicgenMelodyForCausalLM", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128, num_codebooks=2, max_position_embeddings=64, pad_token_id=127, bos_token_id=127),
                        lambda c, ids: {"input_ids": ids.repeat(2, 1)}),
    "csm": ("CsmConfig", "CsmForConditionalGeneration", dict(D, num_codebooks=2, vocab_size=64, text_vocab_size=128, head_dim=16, pad_token_id=100, codebook_pad_token_id=63, codebook_eos_token_id=0, bos_token_id=1, audio_token_id=101, audio_eos_token_id=102,
                                                              depth_decoder_config=dict(num_codebooks=2, backbone_hidden_size=64, vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=8), codec_config=MIMI),
            lambda c, ids: {"input_ids": torch.cat([ids[:, :, None].clamp(max=99), torch.randint(0, 60, (2, 12, 1))], 2)}),
    # speech encoders
    "lasr-encoder": ("LasrEncoderConfig", "LasrEncoder", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, subsampling_conv_channels=16, num_mel_bins=16, conv_kernel_size=5), mel(64, 16)),
    "qwen2-audio-encoder": ("Qwen2AudioEncoderConfig", "Qwen2AudioEncoder", dict(num_mel_bins=16, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128, d_model=64, max_source_positions=32), mel(16, 64)),
    "voxtral-encoder": ("VoxtralEncoderConfig", "VoxtralEncoder", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_mel_bins=16, max_source_positions=32), mel(16, 64)),
    # a document model
    "udop": ("UdopConfig", "UdopEncoderModel", dict(vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, image_size=32, patch_size=8, max_2d_position_embeddings=64),
             lambda c, ids: {"input_ids": ids, "bbox": torch.sort(torch.rand(2, 12, 4), -1)[0], "pixel_values": torch.randn(2, 3, 32, 32)}),
    # vision towers
    "tipsv2-vision": ("Tipsv2VisionConfig", "Tipsv2VisionModel", dict(VIS, mlp_ratio=2.0), pixels),
    "videoprism-vision": ("VideoPrismVisionConfig", "VideoPrismVisionModel", dict(image_size=32, num_frames=2, tubelet_size=(1, 8, 8), hidden_size=64, num_attention_heads=4, intermediate_size=128, num_spatial_layers=1, num_temporal_layers=1, num_auxiliary_layers=1),
                          lambda c, ids: {"pixel_values_videos": torch.randn(2, 2, 3, 32, 32)}),
    "pixio": ("PixioConfig", "PixioModel", dict(VIS, mlp_ratio=2, n_cls_tokens=2), pixels),
})


if __name__ == "__main__":
    S.main()
