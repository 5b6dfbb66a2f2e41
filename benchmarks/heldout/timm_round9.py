"""Issue 20, eighth held-out timm pass (2026-12-06, session 22): one model of each timm model module that no earlier
list held (modules found by a script over ``timm.list_models()`` and timm's model-to-module registry against every
list before; NASNet-A large, the only model of its module, left out for its size): the sweep with its list replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round9.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    "swinv2_cr_tiny_224": ({}, 224),
    "vit_small_r26_s32_224": ({}, 224),
    "efficientvit_b0": ({}, 128),
    "inception_v3": ({}, 128),
    "inception_resnet_v2": ({}, 128),
    "legacy_xception": ({}, 128),
})
S.main()
