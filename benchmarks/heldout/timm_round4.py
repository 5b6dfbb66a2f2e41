"""Issue 20, third held-out timm pass (21 models in no other list): the sweep with its list replaced.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round4.py [--models a,b --size 256]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    "mobilenetv4_hybrid_medium": ({}, 224),
    "vit_pe_core_tiny_patch16_384": ({"img_size": 96}, 96),
    "deit_small_distilled_patch16_224": ({"img_size": 96}, 96),
    "fastvit_mci0": ({}, 224),
    "swin_s3_tiny_224": ({}, 224),
    "botnet26t_256": ({}, 256),
    "halonet26t": ({}, 256),
    "vit_betwixt_patch16_rope_reg4_gap_256": ({"img_size": 64}, 64),
    "shvit_s1": ({}, 224),
    "csatv2": ({}, 224),
    "vit_srelpos_small_patch16_224": ({}, 224),
    "vit_base_patch16_rpn_224": ({"img_size": 64, "depth": 2}, 64),
    "naflexvit_base_patch16_gap": ({"depth": 2}, 64),
    "resmlp_12_224": ({}, 224),
    "gmlp_s16_224": ({}, 224),
    "sequencer2d_s": ({}, 224),
    "starnet_s1": ({}, 224),
    "rdnet_tiny": ({}, 224),
    "hgnetv2_b0": ({}, 224),
    "mambaout_femto": ({}, 224),
    "inception_next_atto": ({}, 224),
})
S.main()
