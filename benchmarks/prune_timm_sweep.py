"""One generic call on many timm models: does ``slimforge.prune(model, x, ratio=0.3)`` prune,
how many parameters go, and are attention heads removed? Issue 20's sweep, as a script (slow).

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/prune_timm_sweep.py [--models a,b] [--ratio 0.3] [--size 224] [--library-call]

Each model is built with ``slimforge.create_model("timm:<name>")`` (or the source it names: ``torchvision:swin_v2_t``);
with ``--library-call`` by the library's own call instead (``timm.create_model(name, pretrained=False, ...)``,
``torchvision.models.get_model(name, weights=None, ...)``), saved with no factory and loaded with no trust
(random init; transformers at a small image size so the run stays short), pruned at ``--ratio``
with the defaults, saved with ``slimforge.save`` and reloaded with ``slimforge.load``; the row
says whether the reloaded model gives identical outputs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import torch

warnings.filterwarnings("ignore")

# name -> (create_model keywords, image size)
MODELS: dict[str, tuple[dict, int]] = {
    "resnet18": ({}, 224),
    "mobilenetv3_small_100": ({}, 224),
    "efficientnet_b0": ({}, 224),
    "convnext_atto": ({}, 224),
    "regnetx_002": ({}, 224),
    "poolformer_s12": ({}, 224),
    "mixer_s16_224": ({}, 224),
    "vit_tiny_patch16_224": ({"img_size": 96}, 96),
    "deit_tiny_patch16_224": ({"img_size": 96}, 96),
    "swin_tiny_patch4_window7_224": ({"img_size": 112}, 112),
    "levit_128s": ({}, 224),
    "mobilevit_xxs": ({}, 256),
    "eva02_tiny_patch14_224": ({"img_size": 98}, 98),
    "beit_base_patch16_224": ({"img_size": 64, "depth": 2}, 64),  # 2 of 12 blocks, to keep the run short
    "vit_little_patch16_reg1_gap_256.sbb_in12k": ({"img_size": 64}, 64),
    "maxvit_rmlp_pico_rw_256": ({}, 256),
    # issue 20's families whose attention kept its heads until timm's further attention forms
    "vit_relpos_small_patch16_224": ({}, 224),
    "cait_xxs24_224": ({}, 224),
    "pvt_v2_b0": ({}, 224),
    "twins_svt_small": ({}, 224),
    "xcit_nano_12_p16_224": ({}, 224),
    "davit_tiny": ({}, 224),
    "efficientformer_l1": ({}, 224),
    "tiny_vit_5m_224": ({}, 224),
    "convit_tiny": ({}, 224),
    "gcvit_xxtiny": ({}, 224),
    "edgenext_xx_small": ({}, 224),
    "coat_lite_tiny": ({}, 224),
    "coat_tiny": ({}, 224),
    "coatnet_pico_rw_224": ({}, 224),
    "swinv2_tiny_window8_256": ({}, 256),
    "fastvit_sa12": ({}, 224),
    "nest_tiny": ({}, 224),
    "vit_base_patch16_siglip_224": ({"img_size": 64, "depth": 2}, 64),  # attention-pool head; 2 of 12 blocks
    # the families that still kept their attention whole after the forms above
    "mvitv2_tiny": ({}, 224),
    "samvit_base_patch16": ({"img_size": 256, "depth": 4, "global_attn_indexes": (1, 3)}, 256),  # 4 of 12 blocks
    "efficientvit_m0": ({}, 224),
    "efficientformerv2_s0": ({}, 224),
    "crossvit_tiny_240": ({}, 240),
    "volo_d1_224": ({}, 224),
    "nextvit_small": ({}, 224),
    "tnt_s_patch16_224": ({}, 224),
    # torchvision (any "source:name" slimforge.create_model takes)
    "torchvision:swin_v2_t": ({}, 224),
}


def heads(model: torch.nn.Module) -> int:
    """Heads of every attention module of a registered form (``num_heads``, or Hiera's ``heads``: what pruning updates;
    EfficientViT's LiteMLA keeps no count: its fused q/k/v width over a head's, 3 x ``dim``), and of attention written
    by hand (its head count attribute, which pruning keeps in line; not counted before 2026-12-06)."""
    from slimforge.prune.attention import find_attention_form

    def count(m: torch.nn.Module) -> int:
        if hasattr(m, "aggreg") and isinstance(getattr(m, "dim", None), int):
            return m.qkv.conv.out_channels // (3 * m.dim)
        return next((getattr(m, a) for a in ("num_heads", "heads") if isinstance(getattr(m, a, None), int)), 0)

    from slimforge.prune._capture import head_counts
    from slimforge.prune._trace import unknown_attention

    return (sum(count(m) for m in model.modules() if (form := find_attention_form(m)) is not None and not form.part)
            + sum(max(head_counts(m).values()) for m in model.modules() if unknown_attention(m)))  # written by hand


def library_call(name: str, kwargs: dict) -> torch.nn.Module:
    """The model as a user builds it without slimforge."""
    kwargs = dict(kwargs)
    if name.startswith("torchvision:"):
        import torchvision

        return torchvision.models.get_model(name.split(":", 1)[1], weights=None, num_classes=kwargs.pop("num_classes", 1000), **kwargs)
    import timm

    return timm.create_model(name.removeprefix("timm:"), pretrained=False, **kwargs)


def run(name: str, kwargs: dict, size: int, ratio: float, by_library: bool = False) -> str:
    import slimforge
    import slimforge.prune as sp

    torch.manual_seed(0)
    if by_library:
        model = library_call(name, kwargs).eval()
    else:
        model = slimforge.create_model(name if ":" in name else f"timm:{name}", **kwargs).eval()
    x = torch.randn(2, 3, size, size)
    n0, h0 = sum(p.numel() for p in model.parameters()), heads(model)
    start = time.perf_counter()
    try:
        sp.prune(model, x, ratio=ratio)
    except Exception as exc:  # noqa: BLE001 - a sweep reports every failure and goes on
        return f"| {name} | {size} | no | {n0 / 1e6:.2f} | - | {h0} | - | {time.perf_counter() - start:.1f} | - | {type(exc).__name__}: {str(exc)[:120]} |"
    seconds = time.perf_counter() - start
    n1, h1 = sum(p.numel() for p in model.parameters()), heads(model)
    try:
        with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
            slimforge.save(model, tmp)
            same = torch.equal(slimforge.load(tmp).eval()(x), model(x))
    except Exception as exc:  # noqa: BLE001
        return (f"| {name} | {size} | yes | {n0 / 1e6:.2f} | {1 - n1 / n0:.1%} | {h0} | {h1} | {seconds:.1f} | "
                f"{type(exc).__name__}: {str(exc)[:160]} | |")
    return (f"| {name} | {size} | yes | {n0 / 1e6:.2f} | {1 - n1 / n0:.1%} | {h0} | {h1} | {seconds:.1f} | "
            f"{'identical' if same else 'DIFFERENT'} | |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--size", type=int, default=224, help="image size of a model not listed in MODELS")
    parser.add_argument("--library-call", action="store_true", help="build with timm.create_model / torchvision, not slimforge")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"ratio={args.ratio}, importance l2, round_to 8, random init, 1 thread, torch {torch.__version__}")
    print("| model | input | prunes | params (M) | params removed | heads before | heads after | prune s | save/load | error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        kwargs, size = MODELS.get(name, ({}, args.size))
        print(run(name, kwargs, size, args.ratio, args.library_call), flush=True)


if __name__ == "__main__":
    main()
