"""Issue 20, ninth held-out Hugging Face pass (architectures in no other list, 2026-12-06, session 21): speech encoders
(wav2vec 2.0 and its family, AST) and the text models of transformers' model types that no earlier list held.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round9.py [--models wav2vec2,hubert]

Chosen by a script over transformers' causal-LM, sequence-classification, masked-LM, token-classification and
audio-classification classes against every earlier list (227 configs): the multimodal ``...ForConditionalGeneration``
models (image + text inputs) are left for another pass. Left out: AXK1 and Mistral 4 (their tiny configs' unpruned
forward fails on a rotary size), Cohere Compass text (no 'full_attention' layer type in its tiny config), Qwen4-exp
(a cache of linear layers only), ModernVBERT (its padding index outside the tiny vocabulary), T5Gemma 2 (its encoder
holds a full-size vision tower). MoE and latent-attention sizes are set as in the eighth pass (4 experts of 64,
latent ranks 32 / 16, indexers 4 heads of 16), and LaRA-mini's gated delta net as the seventh pass's Qwen3.5 (4 value
heads of 16; its default 16 heads of 128 on a 64-wide tiny model left 29.1% of the parameters prunable).
"""
import warnings
warnings.filterwarnings("ignore")
import prune_hf_sweep as S
T, D = S.TEXT, S.DECODER
MOE = dict(D, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, head_dim=16)
# a tiny wav2vec 2.0 front end: 3 convolutions (stride 5 x 2 x 2 over 1,600 samples -> 79 frames), 4-group positional conv
W = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32, 32),
         conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
         num_labels=5, classifier_proj_size=32)
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
 # speech encoders
 "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2ForSequenceClassification", W, "wave"),
 "hubert": ("HubertConfig", "HubertForSequenceClassification", W, "wave"),
 "wavlm": ("WavLMConfig", "WavLMForSequenceClassification", dict(W, num_buckets=32, max_bucket_distance=64), "wave"),
 "data2vec-audio": ("Data2VecAudioConfig", "Data2VecAudioForSequenceClassification", dict(W, num_conv_pos_embeddings=4), "wave"),
 "unispeech": ("UniSpeechConfig", "UniSpeechForSequenceClassification", W, "wave"),
 "unispeech-sat": ("UniSpeechSatConfig", "UniSpeechSatForSequenceClassification", W, "wave"),
 "sew": ("SEWConfig", "SEWForSequenceClassification", dict(W, squeeze_factor=2), "wave"),
 "sew-d": ("SEWDConfig", "SEWDForSequenceClassification", dict(W, squeeze_factor=2, position_buckets=32, max_relative_positions=64), "wave"),
 "wav2vec2-conformer": ("Wav2Vec2ConformerConfig", "Wav2Vec2ConformerForSequenceClassification", dict(W, conv_depthwise_kernel_size=7), "wave"),
 "wav2vec2-bert": ("Wav2Vec2BertConfig", "Wav2Vec2BertForSequenceClassification", dict(W, output_hidden_size=64, conv_depthwise_kernel_size=7, left_max_position_embeddings=16, right_max_position_embeddings=4), "frames"),
 "ast": ("ASTConfig", "ASTForAudioClassification", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, max_length=64, num_mel_bins=16, patch_size=8, frequency_stride=4, time_stride=8, num_labels=5), "mel"),
 # text
 "apertus1p5-text": ("Apertus1p5TextConfig", "Apertus1p5TextForCausalLM", dict(D, head_dim=16), "ids"),
 "beam": ("BeamConfig", "BeamForCausalLM", D, "ids"),
 "deepseek-v4": ("DeepseekV4Config", "DeepseekV4ForCausalLM", dict(MOE, n_routed_experts=4, num_key_value_heads=1, o_lora_rank=32, index_n_heads=4, index_head_dim=16, index_topk=8, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16), "ids"),
 "dory": ("DoryConfig", "DoryForCausalLM", dict(D, head_dim=16), "ids"),
 "ergo": ("ErgoConfig", "ErgoForCausalLM", dict(MOE, first_dense_intermediate_size=128, shared_intermediate_size=64), "ids"),
 "flint": ("FlintConfig", "FlintForCausalLM", D, "ids"),
 "gemma4-unified-text": ("Gemma4UnifiedTextConfig", "Gemma4UnifiedForCausalLM", dict(D, head_dim=16, global_head_dim=16, vocab_size_per_layer_input=128, hidden_size_per_layer_input=16), "ids"),
 "glm-moe-dsa": ("GlmMoeDsaConfig", "GlmMoeDsaForCausalLM", dict(MOE, n_routed_experts=4, index_n_heads=4, index_head_dim=16, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16), "ids"),
 "granitemoe-swa": ("GraniteMoeSWAConfig", "GraniteMoeSWAForCausalLM", dict(D, num_local_experts=4), "ids"),
 "hrm-text": ("HrmTextConfig", "HrmTextForCausalLM", dict(D, head_dim=16), "ids"),
 "hy-v4": ("HYV4Config", "HYV4ForCausalLM", dict(MOE, n_routed_experts=4, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, qk_head_dim=16, v_head_dim=16, index_n_heads=4, index_head_dim=16, index_topk=8), "ids"),
 "hyperclovax": ("HyperCLOVAXConfig", "HyperCLOVAXForCausalLM", D, "ids"),
 "inkling-text": ("InklingTextConfig", "InklingForCausalLM", dict(MOE, n_routed_experts=4, swa_num_attention_heads=4, swa_num_key_value_heads=2, swa_head_dim=16), "ids"),
 "kolibri1": ("Kolibri1Config", "Kolibri1ForCausalLM", dict(MOE, num_local_experts=4, shared_expert_intermediate_size=64), "ids"),
 "laguna": ("LagunaConfig", "LagunaForCausalLM", MOE, "ids"),
 "lara-mini": ("LaraMiniConfig", "LaraMiniForCausalLM", dict(MOE, num_local_experts=4, shared_expert_intermediate_size=64, eos_token_id=0, bos_token_id=0, linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=16, linear_value_head_dim=16), "ids"),
 "mimo-v2-flash": ("MiMoV2FlashConfig", "MiMoV2FlashForCausalLM", dict(MOE, n_routed_experts=4), "ids"),
 "minicpm5-moe": ("MiniCPM5MoeConfig", "MiniCPM5MoeForCausalLM", dict(MOE, n_routed_experts=4), "ids"),
 "sarvam-moe": ("SarvamMoEConfig", "Glm4MoeForCausalLM", dict(MOE, n_routed_experts=4), "ids"),
 "ultrabert": ("UltrabertConfig", "UltrabertForSequenceClassification", dict(T, num_labels=5), "ids"),
 "neomme": ("NeoMMEConfig", "NeoMMEForMaskedLM", dict(T, num_key_value_heads=2, head_dim=16, embedding_rank=32, embedding_dim=32, patch_size=4), "ids"),
 "openai-privacy-filter": ("OpenAIPrivacyFilterConfig", "OpenAIPrivacyFilterForTokenClassification", dict(MOE, num_labels=5), "ids"),
})
S.main()
