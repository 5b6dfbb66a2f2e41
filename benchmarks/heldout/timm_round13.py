"""Issue 20, a further held-out timm pass (2026-12-07, session 28): 20 model names that no earlier list, benchmark, test or
document named, drawn at random (seed 20261209) from ``timm.list_models()`` among those of at most 40 M parameters,
each at its pretrained configuration's input size: the sweep with its list replaced. Run blind: written and run
before any change made for it.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round13.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    "dla60x_c": ({}, 224),  # 1.3 M
    "tf_efficientnet_es": ({}, 224),  # 5.4 M
    "legacy_seresnext26_32x4d": ({}, 224),  # 16.8 M
    "rexnet_200": ({}, 224),  # 16.4 M
    "levit_256d": ({}, 224),  # 26.2 M
    "resnest50d_1s4x24d": ({}, 224),  # 25.7 M
    "xcit_tiny_12_p8_224": ({}, 224),  # 6.7 M
    "test_coatnet": ({}, 160),  # 0.6 M
    "vit_tiny_r_s16_p8_384": ({}, 384),  # 6.4 M
    "efficientformerv2_s2": ({}, 224),  # 12.7 M
    "poolformerv2_s24": ({}, 224),  # 21.3 M
    "levit_384": ({}, 224),  # 39.1 M
    "resnetaa50": ({}, 224),  # 25.6 M
    "regnety_006": ({}, 224),  # 6.1 M
    "vit_small_patch8_224": ({}, 224),  # 21.7 M
    "vit_relpos_small_patch16_rpn_224": ({}, 224),  # 22.0 M
    "mobilenetv4_conv_small_050": ({}, 224),  # 2.2 M
    "resnetv2_50": ({}, 224),  # 25.5 M
    "fasternet_t1": ({}, 224),  # 7.6 M
    "hiera_small_abswin_256": ({}, 256),  # 34.4 M
})
S.main()
