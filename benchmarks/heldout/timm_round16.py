"""Issue 20, a sixteenth held-out timm pass (2026-12-07, session 35): 20 model names that no earlier list, benchmark, test
or document named, drawn at random (seed 20261212) from ``timm.list_models()`` among those of at most 40 M parameters,
each at its pretrained configuration's input size: the sweep with its list replaced. Run blind: written and run
before any change made for it.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round16.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    "hgnetv2_b1": ({}, 224),  # 6.3 M
    "coatnet_rmlp_0_rw_224": ({}, 224),  # 27.4 M
    "resnest50d_4s2x40d": ({}, 224),  # 30.4 M
    "convnextv2_tiny": ({}, 224),  # 28.6 M
    "iformer_l": ({}, 224),  # 14.8 M
    "cs3darknet_s": ({}, 256),  # 3.3 M
    "maxvit_pico_rw_256": ({}, 256),  # 7.5 M
    "rexnetr_300": ({}, 224),  # 34.8 M
    "eca_resnext26ts": ({}, 256),  # 10.3 M
    "tiny_vit_21m_224": ({}, 224),  # 33.2 M
    "rexnetr_150": ({}, 224),  # 9.8 M
    "tf_efficientnet_cc_b0_4e": ({}, 224),  # 13.3 M
    "efficientnet_b0_gn": ({}, 224),  # 5.3 M
    "efficientvim_m4": ({}, 256),  # 19.6 M
    "vit_medium_patch32_clip_224": ({}, 224),  # 39.7 M
    "mixnet_l": ({}, 224),  # 7.3 M
    "cait_xs24_384": ({}, 384),  # 26.7 M
    "regnety_004": ({}, 224),  # 4.3 M
    "dla60x": ({}, 224),  # 17.4 M
    "res2net50_26w_4s": ({}, 224),  # 25.7 M
})
S.main()
