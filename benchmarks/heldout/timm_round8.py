"""Issue 20, seventh held-out timm pass (2026-12-06, session 21): one small model of each timm family that no earlier
list held (families found by a script over ``timm.list_models()`` against every list before): the sweep with its list
replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round8.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    # transformers and hybrids
    "focalnet_tiny_srf": ({}, 224),
    "maxxvit_rmlp_nano_rw_256": ({}, 256),
    "maxxvitv2_nano_rw_256": ({}, 256),
    "sam2_hiera_tiny": ({}, 224),
    "halo2botnet50ts_256": ({}, 256),
    "convformer_s18": ({}, 112),
    # convolutional
    "convnextv2_atto": ({}, 224),
    "cs3darknet_focus_s": ({}, 256),
    "cspresnet50": ({}, 224),
    "darknet17": ({}, 256),
    "dm_nfnet_f0": ({}, 192),
    "ecaresnet26t": ({}, 224),
    "ecaresnetlight": ({}, 224),
    "fbnetc_100": ({}, 224),
    "fbnetv3_b": ({}, 224),
    "gc_efficientnetv2_rw_t": ({}, 224),
    "gcresnet33ts": ({}, 256),
    "ghostnet_050": ({}, 224),
    "hgnet_tiny": ({}, 224),
    "lcnet_050": ({}, 224),
    "legacy_seresnet18": ({}, 224),
    "mnasnet_050": ({}, 224),
    "mobilenet_edgetpu_v2_s": ({}, 224),
    "pnasnet5large": ({}, 224),
    "regnety_002": ({}, 224),
    "resnetaa34d": ({}, 224),
    "resnetblur18": ({}, 224),
    "resnetv2_18d": ({}, 224),
    "resnext26ts": ({}, 256),
    "sedarknet21": ({}, 256),
    "semnasnet_050": ({}, 224),
    "seresnext26d_32x4d": ({}, 224),
    "spnasnet_100": ({}, 224),
    "tf_efficientnet_b0": ({}, 224),
    "tf_mixnet_s": ({}, 224),
    "tinynet_e": ({}, 106),
    "vgg11_bn": ({}, 224),
    "vovnet39a": ({}, 224),
})
S.main()
