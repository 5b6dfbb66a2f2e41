"""Issue 20, fourth held-out timm pass (models in no other list, 2026-12-05): the sweep with its list replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round5.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    # transformers and hybrids
    "deit3_small_patch16_224": ({"img_size": 64}, 64),
    "pit_ti_224": ({"img_size": 96}, 96),
    "hiera_tiny_224": ({}, 224),
    "vitamin_small_224": ({"img_size": 64}, 64),
    "mobilevitv2_050": ({}, 256),
    "flexivit_small": ({"img_size": 64}, 64),
    "vit_small_patch16_18x2_224": ({"img_size": 64, "depth": 2}, 64),
    "vit_medium_patch16_gap_256": ({"img_size": 64}, 64),
    "vit_base_patch16_clip_224": ({"img_size": 64, "depth": 2}, 64),
    "vit_small_patch14_dinov2": ({"img_size": 56}, 56),
    "sebotnet33ts_256": ({}, 256),
    "lambda_resnet26t": ({}, 256),
    # convolutional
    "convmixer_768_32": ({}, 224),
    "poolformerv2_s12": ({}, 224),
    "ese_vovnet19b_dw": ({}, 224),
    "hrnet_w18_small": ({}, 224),
    "dla34": ({}, 224),
    "res2net50_14w_8s": ({}, 224),
    "resnest14d": ({}, 224),
    "mixnet_s": ({}, 224),
    "skresnet18": ({}, 224),
    "nf_resnet26": ({}, 224),
    "ghostnetv2_100": ({}, 224),
    "repvit_m1": ({}, 224),
    "rexnet_100": ({}, 224),
})
S.main()
