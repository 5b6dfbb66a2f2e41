"""Measured CPU speed-up of whole-head pruning on a timm ViT, against its MAC reduction.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/prune_vit_speedup.py                 # deit_tiny
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/prune_vit_speedup.py --model vit_small_patch16_224

The timm model (random init, 224x224) is pruned by slimforge twice: 50% of the heads and 50% of
the MLP neurons of every block with the residual width kept (``ratio={"blocks.*.attn*": 0.5,
"blocks.*.mlp*": 0.5}``), and ``ratio=0.5`` on everything (heads, MLP neurons and the embedding
width). When Torch-Pruning is installed, its ViT example's set-up is run beside them
(examples/transformers/prune_timm_vit.py: ``num_heads={m.qkv: m.num_heads}``, ``prune_num_heads=True``,
``head_pruning_ratio=0.5``, ``pruning_ratio=0.5``, ``ignored_layers=[model.head]``, the attention
forward patched to ``reshape(B, N, -1)`` as that example does, L2 magnitude). Every model runs
batch 32 on 1 thread, interleaved round-robin; the median of the rounds is reported.
Efficiency = speed-up / MAC reduction, MACs counted over linear layers and matmuls from the same
captured graph for every model.
"""

from __future__ import annotations

import argparse
import copy
import platform
import warnings

import torch
import torch.nn.functional as F

from prune_speedup import interleaved_medians, macs_of

warnings.filterwarnings("ignore")


def torch_pruning_vit(model: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module | None:
    """Torch-Pruning's documented timm ViT set-up (see the module docstring); None if not installed."""
    try:
        import torch_pruning as tp
    except ImportError:
        return None
    from timm.layers import Attention

    def forward(self, x, attn_mask=None, is_causal=False):  # the example's forward: reshape(B, N, -1)
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        return self.proj_drop(self.proj(self.norm(x.transpose(1, 2).reshape(B, N, -1))))

    num_heads = {}
    for m in model.modules():
        if isinstance(m, Attention):
            m.forward = forward.__get__(m, Attention)
            num_heads[m.qkv] = m.num_heads
    pruner = tp.pruner.BasePruner(
        model, example, importance=tp.importance.GroupMagnitudeImportance(p=2), pruning_ratio=0.5,
        ignored_layers=[model.head], num_heads=num_heads, prune_num_heads=True, prune_head_dims=False,
        head_pruning_ratio=0.5, round_to=1,
    )
    pruner.step()
    for m in model.modules():
        if isinstance(m, Attention):
            m.num_heads = pruner.num_heads[m.qkv]
            m.head_dim = m.qkv.out_features // (3 * m.num_heads)
    return model


def heads_of(model: torch.nn.Module) -> str:
    counts = sorted({m.num_heads for m in model.modules() if hasattr(m, "qkv") and hasattr(m, "num_heads")})
    return "/".join(map(str, counts))


def main() -> None:
    import timm

    import slimforge.prune as sp

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="deit_tiny_patch16_224")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 224, 224)
    base = timm.create_model(args.model, pretrained=False).eval()
    models = {"original": base}
    models["slimforge heads+MLP 50%"] = sp.prune(copy.deepcopy(base), x[:2], ratio={"blocks.*.attn*": 0.5, "blocks.*.mlp*": 0.5})
    models["slimforge ratio=0.5 (+ embed dim)"] = sp.prune(copy.deepcopy(base), x[:2], ratio=0.5)
    theirs = torch_pruning_vit(copy.deepcopy(base), x[:1])
    if theirs is not None:
        models["Torch-Pruning ViT example"] = theirs
    macs = {k: macs_of(m, x) for k, m in models.items()}
    medians = interleaved_medians(models, x, args.rounds)
    print(f"\n{args.model} (random init), batch {args.batch}, 224x224, 1 thread, {args.rounds} interleaved rounds; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print("| model | heads | embed dim | params (M) | GMACs/image | median s | MAC reduction | speed-up | speed-up / MAC reduction |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, m in models.items():
        red, speed = macs["original"] / macs[name], medians["original"] / medians[name]
        print(f"| {name} | {heads_of(m)} | {m.cls_token.shape[-1]} | {sum(p.numel() for p in m.parameters()) / 1e6:.2f} | "
              f"{macs[name] / 2 / 1e9:.3f} | {medians[name]:.3f} | {red:.2f}x | {speed:.2f}x | {speed / red:.2f} |")


if __name__ == "__main__":
    main()
