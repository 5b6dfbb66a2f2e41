"""Issue 20, eleventh held-out timm pass (2026-12-06, session 28): 20 model names that no earlier list, benchmark, test
or document named, drawn at random (seed 20261208) from ``timm.list_models()`` among those of at most 40 M parameters,
each at its pretrained configuration's input size: the sweep with its list replaced. Run blind: written and run
before any change made for it.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round12.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    "starnet_s2": ({}, 224),  # 3.7 M
    "mobilenetv3_large_100": ({}, 224),  # 5.5 M
    "ecaresnext50t_32x4d": ({}, 224),  # 25.0 M
    "vit_medium_patch16_gap_384": ({}, 384),  # 39.0 M
    "iformer_s": ({}, 224),  # 6.6 M
    "regnety_016": ({}, 224),  # 11.2 M
    "lambda_resnet50ts": ({}, 256),  # 21.5 M
    "regnety_080": ({}, 224),  # 39.2 M
    "vit_small_patch32_384": ({}, 384),  # 22.9 M
    "xcit_tiny_24_p16_384": ({}, 384),  # 12.1 M
    "iformer_t": ({}, 224),  # 2.9 M
    "efficientnet_b3_gn": ({}, 288),  # 11.7 M
    "fastvit_sa24": ({}, 256),  # 21.6 M
    "hgnetv2_b5": ({}, 224),  # 39.6 M
    "levit_conv_256": ({}, 224),  # 18.9 M
    "sequencer2d_m": ({}, 224),  # 38.3 M
    "semnasnet_100": ({}, 224),  # 3.9 M
    "resnet61q": ({}, 256),  # 36.8 M
    "xception41p": ({}, 299),  # 26.9 M
    "selecsls42": ({}, 224),  # 30.4 M
})
S.main()
