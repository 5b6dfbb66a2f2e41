"""Issue 20, a fifteenth held-out timm pass (2026-12-07, session 34): 20 model names that no earlier list, benchmark, test
or document named, drawn at random (seed 20261211) from ``timm.list_models()`` among those of at most 40 M parameters,
each at its pretrained configuration's input size: the sweep with its list replaced. Run blind: written and run
before any change made for it.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round15.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    "vit_pe_core_small_patch16_384": ({}, 384),  # 23.8 M
    "mobilevitv2_125": ({}, 256),  # 7.5 M
    "rexnetr_200": ({}, 224),  # 16.5 M
    "regnety_064": ({}, 224),  # 30.6 M
    "tf_efficientnet_b1": ({}, 240),  # 7.8 M
    "tf_efficientnet_b2": ({}, 260),  # 9.1 M
    "vit_medium_patch16_clip_224": ({}, 224),  # 38.6 M
    "coat_mini": ({}, 224),  # 10.3 M
    "regnetz_b16_evos": ({}, 224),  # 9.7 M
    "regnetx_032": ({}, 224),  # 15.3 M
    "resnet10t": ({}, 176),  # 5.4 M
    "regnetz_040": ({}, 256),  # 27.1 M
    "deit_tiny_distilled_patch16_224": ({}, 224),  # 5.9 M
    "dpn68": ({}, 224),  # 12.6 M
    "convnextv2_nano": ({}, 224),  # 15.6 M
    "legacy_seresnet50": ({}, 224),  # 28.1 M
    "poolformer_s36": ({}, 224),  # 30.9 M
    "mobilenetv4_conv_aa_medium": ({}, 256),  # 9.7 M
    "efficientvim_m3": ({}, 224),  # 16.6 M
    "maxvit_tiny_tf_512": ({}, 512),  # 31.0 M
})
S.main()
