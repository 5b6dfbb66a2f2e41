"""Issue 20, sixth held-out timm pass (2026-12-05, session 19: families in no other list, after the reach-class
ranking): the sweep with its list replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round7.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    # transformers and hybrids
    "caformer_s18": ({}, 112),
    "hieradet_small": ({}, 128),
    "visformer_tiny": ({}, 224),
    "aimv2_large_patch14_224": ({"img_size": 56, "depth": 2}, 56),
    "test_vit": ({}, 160),
    "test_vit3": ({}, 160),
    "lamhalobotnet50ts_256": ({}, 256),
    "sehalonet33ts": ({}, 256),
    "haloregnetz_b": ({}, 224),
    "coatnext_nano_rw_224": ({}, 224),
    "beitv2_base_patch16_224": ({"img_size": 64, "depth": 2}, 64),
    # convolutional
    "cspdarknet53": ({}, 224),
    "densenetblur121d": ({}, 224),
    "fasternet_t0": ({}, 224),
    "gernet_s": ({}, 224),
    "mobileone_s0": ({}, 224),
    "nfnet_l0": ({}, 224),
    "repvgg_a0": ({}, 224),
    "resnetrs50": ({}, 224),
    "skresnext50_32x4d": ({}, 224),
    "xception41": ({}, 299),
    "rexnetr_100": ({}, 224),
    "efficientnetv2_rw_t": ({}, 224),
    "regnetz_b16": ({}, 224),
    "gmixer_12_224": ({}, 224),
    "bat_resnext26ts": ({}, 256),
})
S.main()
