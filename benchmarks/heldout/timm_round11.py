"""Issue 20, tenth held-out timm pass (2026-12-06, session 28): 20 model names that no earlier list, benchmark, test or
document named, drawn at random (seed 20261207) from ``timm.list_models()`` among those of at most 40 M parameters,
each at its pretrained configuration's input size: the sweep with its list replaced. Run blind: written and run
before any change made for it.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round11.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    "levit_conv_128": ({}, 224),  # 9.2 M
    "levit_conv_384_s8": ({}, 224),  # 39.1 M
    "eca_nfnet_l0": ({}, 224),  # 24.1 M
    "dla102": ({}, 224),  # 33.3 M
    "seresnet50t": ({}, 224),  # 28.1 M
    "test_byobnet": ({}, 160),  # 0.5 M
    "convnext_femto_ols": ({}, 224),  # 5.2 M
    "efficientnet_lite2": ({}, 260),  # 6.1 M
    "cs3sedarknet_xdw": ({}, 256),  # 21.6 M
    "edgenext_x_small": ({}, 256),  # 2.3 M
    "repvit_m3": ({}, 224),  # 10.7 M
    "tf_mobilenetv3_large_100": ({}, 224),  # 5.5 M
    "mobilenetv2_140": ({}, 224),  # 6.1 M
    "skresnet34": ({}, 224),  # 22.3 M
    "xcit_nano_12_p16_384": ({}, 384),  # 3.1 M
    "skresnet50d": ({}, 224),  # 25.8 M
    "test_efficientnet_evos": ({}, 160),  # 0.4 M
    "convit_small": ({}, 224),  # 27.8 M
    "regnetz_c16": ({}, 256),  # 13.5 M
    "fasternet_s": ({}, 224),  # 31.2 M
})
S.main()
