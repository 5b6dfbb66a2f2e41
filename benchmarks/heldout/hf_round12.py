"""Issue 20, twelfth held-out Hugging Face pass (architectures in no other list, 2026-12-06, session 26): decoders with
unusual layers (Gemma 3n's AltUp and per-layer inputs, Moshi, Chameleon, Fuyu), encoders (DPR, LXMERT's cross-modal
layers), vision towers (SAM's windowed attention with relative positions, Idefics3's and SigLIP's), a speech encoder
(Parakeet), time series (TimesFM, Informer's ProbSparse attention, Autoformer's auto-correlation), X-CLIP and Mimi,
measured blind (the first run's table is the held-out result; fixes come after and are rerun).

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round12.py [--models dpr,sam-vision]

Tiny as the sweep's (hidden 64, 2 layers, 4 heads, vocabulary 128, images 32 px in patches of 8); each input is made
from the config where the model needs more than token ids or pixels.
"""
import warnings
warnings.filterwarnings("ignore")
import torch
import prune_hf_sweep as S
T, D, V = S.TEXT, S.DECODER, S.VISION
VIS = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32, patch_size=8)
pixels = lambda c, ids: {"pixel_values": torch.randn(2, 3, 32, 32)}
TS = dict(prediction_length=8, context_length=24, lags_sequence=[1, 2, 3], num_time_features=1, d_model=32, encoder_layers=2,
          decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64)
series = lambda c, ids: {"past_values": torch.randn(2, 27), "past_time_features": torch.randn(2, 27, 1),
                         "past_observed_mask": torch.ones(2, 27), "future_values": torch.randn(2, 8),
                         "future_time_features": torch.randn(2, 8, 1)}
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    # decoders
    "gemma3n-text": ("Gemma3nTextConfig", "Gemma3nForCausalLM", dict(D, head_dim=16, vocab_size_per_layer_input=128, hidden_size_per_layer_input=16, num_kv_shared_layers=0, laurel_rank=8, altup_num_inputs=2, sliding_window=8, layer_types=["sliding_attention", "full_attention"], activation_sparsity_pattern=[0.0, 0.0]), "ids"),
    "moshi": ("MoshiConfig", "MoshiForCausalLM", dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=256, num_codebooks=2, audio_vocab_size=32, max_position_embeddings=64, sliding_window=64), "ids"),
    "chameleon": ("ChameleonConfig", "ChameleonForConditionalGeneration", dict(D, vq_config=dict(embed_dim=8, num_embeddings=16, base_channels=32, channel_multiplier=[1, 1], num_res_blocks=1, attn_resolutions=[], resolution=32, latent_channels=8), vocabulary_map={"<image>": 100}), "ids"),
    "fuyu": ("FuyuConfig", "FuyuForCausalLM", dict(text_config=dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, max_position_embeddings=64, model_type="persimmon"), image_size=32, patch_size=8), "ids"),
    "glm4v-text": ("Glm4vTextConfig", "Glm4vTextModel", dict(D, rope_parameters=dict(rope_type="default", rope_theta=10000.0, mrope_section=[2, 3, 3])), "ids"),
    # encoders
    "dpr": ("DPRConfig", "DPRQuestionEncoder", T, "ids"),
    "lxmert": ("LxmertConfig", "LxmertModel", dict(vocab_size=128, hidden_size=64, num_attention_heads=4, intermediate_size=128, l_layers=2, x_layers=1, r_layers=1, visual_feat_dim=32, max_position_embeddings=64),
               lambda c, ids: {"input_ids": ids, "visual_feats": torch.randn(2, 5, 32), "visual_pos": torch.rand(2, 5, 4)}),
    # vision towers
    "sam-vision": ("SamVisionConfig", "SamVisionModel", dict(hidden_size=64, output_channels=32, num_hidden_layers=2, num_attention_heads=4, image_size=64, patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=16, mlp_dim=128),
                   lambda c, ids: {"pixel_values": torch.randn(2, 3, 64, 64)}),
    "idefics3-vision": ("Idefics3VisionConfig", "Idefics3VisionTransformer", dict(VIS), pixels),
    "siglip-vision": ("SiglipVisionConfig", "SiglipVisionModel", dict(VIS), pixels),
    # speech
    "parakeet-encoder": ("ParakeetEncoderConfig", "ParakeetEncoder", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, subsampling_conv_channels=16, num_mel_bins=16, conv_kernel_size=5, max_position_embeddings=256),
                         lambda c, ids: {"input_features": torch.randn(2, 64, 16)}),
    # time series
    "timesfm": ("TimesFmConfig", "TimesFmModelForPrediction", dict(patch_length=8, context_length=32, horizon_length=8, num_hidden_layers=2, hidden_size=64, intermediate_size=64, head_dim=16, num_attention_heads=4),
                lambda c, ids: {"past_values": [torch.randn(32), torch.randn(32)]}),
    "informer": ("InformerConfig", "InformerModel", dict(TS), series),
    "autoformer": ("AutoformerConfig", "AutoformerModel", dict(TS, moving_average=5), series),
    # dual encoder over video, audio codec
    "xclip": ("XCLIPConfig", "XCLIPModel", dict(text_config=dict(T), vision_config=dict(VIS, num_frames=2, mit_hidden_size=64, mit_intermediate_size=128, mit_num_hidden_layers=1, mit_num_attention_heads=4), projection_dim=64, prompt_num_attention_heads=4),
              lambda c, ids: {"input_ids": ids, "pixel_values": torch.randn(2, 2, 3, 32, 32)}),
    "mimi": ("MimiConfig", "MimiModel", dict(hidden_size=64, num_filters=8, upsampling_ratios=[4, 2], codebook_size=32, codebook_dim=16, num_quantizers=2, vector_quantization_hidden_dimension=16, upsample_groups=64, num_hidden_layers=2, intermediate_size=128, num_attention_heads=4, num_key_value_heads=4, sliding_window=16, frame_rate=None),
             lambda c, ids: {"input_values": torch.randn(2, 1, 1600)}),
})


if __name__ == "__main__":
    S.main()
