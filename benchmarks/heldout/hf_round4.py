"""Issue 20, fourth held-out Hugging Face pass (24 architectures in no other list): the sweep with its list replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/hf_round4.py [--models mixtral,qwen2-moe]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_hf_sweep as S
T, D, V, Q = S.TEXT, S.DECODER, S.VISION, S.SEQ2SEQ
S.MODELS.clear(); S.HELD_OUT.clear()
S.MODELS.update({
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(D, num_local_experts=4, num_experts_per_tok=2), "ids"),
    "qwen2-moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", dict(D, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64, shared_expert_intermediate_size=64), "ids"),
    "gemma3-text": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(D, head_dim=16), "ids"),
    "cohere": ("CohereConfig", "CohereForCausalLM", D, "ids"),
    "granite": ("GraniteConfig", "GraniteForCausalLM", D, "ids"),
    "persimmon": ("PersimmonConfig", "PersimmonForCausalLM", dict(T, pad_token_id=0), "ids"),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", D, "ids"),
    "xglm": ("XGLMConfig", "XGLMForCausalLM", dict(vocab_size=128, d_model=64, num_layers=2, attention_heads=4, ffn_dim=128, max_position_embeddings=64), "ids"),
    "biogpt": ("BioGptConfig", "BioGptForCausalLM", T, "ids"),
    "xlnet": ("XLNetConfig", "XLNetForSequenceClassification", dict(vocab_size=128, d_model=64, n_layer=2, n_head=4, d_inner=128), "ids"),
    "deberta": ("DebertaConfig", "DebertaForSequenceClassification", T, "ids"),
    "squeezebert": ("SqueezeBertConfig", "SqueezeBertForSequenceClassification", dict(T, embedding_size=64), "ids"),
    "roformer": ("RoFormerConfig", "RoFormerForSequenceClassification", dict(T, embedding_size=64), "ids"),
    "nystromformer": ("NystromformerConfig", "NystromformerForSequenceClassification", dict(T, num_landmarks=4, segment_means_seq_len=12), "ids"),
    "ernie": ("ErnieConfig", "ErnieForSequenceClassification", T, "ids"),
    "blenderbot-small": ("BlenderbotSmallConfig", "BlenderbotSmallForConditionalGeneration", Q, "seq2seq"),
    "m2m100": ("M2M100Config", "M2M100ForConditionalGeneration", Q, "seq2seq"),
    "led": ("LEDConfig", "LEDForConditionalGeneration", dict(Q, max_encoder_position_embeddings=64, max_decoder_position_embeddings=64, attention_window=4), "seq2seq"),
    "yolos-cls-like-vit": ("ViTMAEConfig", "ViTMAEModel", dict(V, mask_ratio=0.0), "pixels"),
    "deit-distilled": ("DeiTConfig", "DeiTForImageClassificationWithTeacher", V, "pixels"),
    "dinov2-reg": ("Dinov2WithRegistersConfig", "Dinov2WithRegistersForImageClassification", V, "pixels"),
    "convnextv2": ("ConvNextV2Config", "ConvNextV2ForImageClassification", dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_labels=5), "pixels"),
    "resnet-hf": ("ResNetConfig", "ResNetForImageClassification", dict(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_labels=5), "pixels"),
    "focalnet": ("FocalNetConfig", "FocalNetForImageClassification", dict(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_labels=5), "pixels"),
})
S.main()
