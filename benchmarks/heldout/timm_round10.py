"""Issue 20, ninth held-out timm pass (2026-12-06, session 27): 20 model names that no earlier list, benchmark or test
named, drawn at random (seed 20261206) from ``timm.list_models()`` among those of at most 40 M parameters, each at
its pretrained configuration's input size: the sweep with its list replaced. Run blind: written and run before any
change made for it.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/timm_round10.py [--models a,b]
"""
import warnings
warnings.filterwarnings("ignore")
import prune_timm_sweep as S
S.MODELS.clear()
S.MODELS.update({
    "resnetv2_50x1_bit": ({}, 224),
    "nf_seresnet26": ({}, 224),
    "coatnet_bn_0_rw_224": ({}, 224),
    "iformer_l2": ({}, 224),
    "shvit_s4": ({}, 256),
    "mobilevitv2_200": ({}, 256),
    "seresnext26ts": ({}, 256),
    "botnet50ts_256": ({}, 256),
    "vit_srelpos_medium_patch16_224": ({}, 224),
    "efficientnet_el_pruned": ({}, 300),
    "mobilenet_edgetpu_v2_m": ({}, 224),
    "ese_vovnet39b_evos": ({}, 224),
    "efficientnet_b4": ({}, 320),
    "eca_resnet33ts": ({}, 256),
    "resnet51q": ({}, 256),
    "mnasnet_small": ({}, 224),
    "mobilenetv2_050": ({}, 224),
    "efficientvit_b2": ({}, 224),
    "fastvit_s12": ({}, 256),
    "tf_efficientnet_em": ({}, 240),
})
S.main()
