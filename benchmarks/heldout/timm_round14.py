"""Issue 20, a further held-out timm pass (2026-12-07, session 33): 20 model names that no earlier list, benchmark, test or
document named, drawn at random (seed 20261210) from ``timm.list_models()`` among those of at most 40 M parameters,
each at its pretrained configuration's input size: the sweep with its list replaced. Run blind: written and run
before any change made for it.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round14.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    "mambaout_tiny": ({}, 224),  # 26.5 M
    "tiny_vit_21m_384": ({}, 384),  # 21.2 M
    "tf_mobilenetv3_large_minimal_100": ({}, 224),  # 3.9 M
    "starnet_s050": ({}, 224),  # 0.5 M
    "xcit_small_12_p16_384": ({}, 384),  # 26.3 M
    "xception65": ({}, 299),  # 39.9 M
    "mobilenet_edgetpu_v2_l": ({}, 224),  # 10.9 M
    "crossvit_9_dagger_240": ({}, 240),  # 8.8 M
    "nf_regnet_b1": ({}, 256),  # 10.2 M
    "repghostnet_080": ({}, 224),  # 3.3 M
    "vit_small_patch16_dinov3_qkvb": ({}, 256),  # 21.6 M
    "hrnet_w18": ({}, 224),  # 21.3 M
    "convnext_femto": ({}, 224),  # 5.2 M
    "efficientnet_b0_g16_evos": ({}, 224),  # 8.1 M
    "nf_regnet_b3": ({}, 288),  # 18.6 M
    "cait_xxs36_384": ({}, 384),  # 17.4 M
    "fbnetv3_d": ({}, 224),  # 10.3 M
    "convnext_pico": ({}, 224),  # 9.0 M
    "regnety_080_tv": ({}, 224),  # 39.4 M
    "lowformer_b15": ({}, 224),  # 34.0 M
})
S.main()
