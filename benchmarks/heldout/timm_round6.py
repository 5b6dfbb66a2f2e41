"""Issue 20, fifth held-out timm pass (families in no other list, 2026-12-05): the sweep with its list replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round6.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    # transformers and hybrids
    "deepseek_vit_412m": ({"img_size": 56, "depth": 2}, 56),
    "gemma4_vit_167m": ({"img_size": 64, "depth": 2}, 64),
    "qwen3_vit_88m": ({"img_size": 64, "depth": 2}, 64),
    "iformer_m": ({}, 224),
    "lowformer_b0": ({}, 224),
    "efficientvim_m1": ({}, 224),
    "mobilenetv5_300m": ({}, 256),
    "swiftformer_xs": ({}, 224),
    "eca_halonext26ts": ({}, 256),
    # convolutional
    "lcnetv2_small": ({}, 224),
    "cpubone_b0_bfrobust": ({}, 224),
    "repghostnet_100": ({}, 224),
    "selecsls42b": ({}, 224),
    "tresnet_m": ({}, 224),
    "dpn68b": ({}, 224),
    "cspnext_tiny": ({}, 224),
    "inception_v4": ({}, 299),
    "hardcorenas_a": ({}, 224),
})
S.main()
