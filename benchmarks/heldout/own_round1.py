"""Issue 20, hand-written transformers (2026-12-06, session 23): the attention models of ``own_models.py``, each written
in the style of a well-known public original (nanoGPT, vit-pytorch, Meta's Llama, a copied timm block, PyTorch's
tutorials, SASRec, ...), pruned at ``ratio`` 0.3 with the defaults, saved with ``slimforge.save(factory=...)`` and
reloaded with ``slimforge.load(trust_code=True)``. Heads are the head-count attributes of the attention modules.

    OMP_NUM_THREADS=1 PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/heldout/own_round1.py [--set own_models2] [--models a,b]

``--set own_models2`` ... ``own_models10``: the later sets, each written after the fixes for the sets before.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import torch

warnings.filterwarnings("ignore")
import importlib  # noqa: E402

HEAD_ATTRIBUTES = ("num_heads", "n_head", "n_heads", "heads", "n_local_heads", "h", "num_attention_heads", "head_num", "num_head",
                   "no_heads", "num_attention_heads_per_partition")


def heads(model: torch.nn.Module) -> int:
    total = 0
    for module in model.modules():
        for name in HEAD_ATTRIBUTES:
            if isinstance(getattr(module, name, None), int) and not isinstance(getattr(module, name), bool):
                total += getattr(module, name)
                break
    return total


def _equal(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return torch.equal(a, b)


def run(own_models, name: str, ratio: float) -> str:
    import slimforge
    import slimforge.prune as sp

    torch.manual_seed(0)
    model = own_models.build(name).eval()
    args = own_models.MODELS[name][1]()
    n0, h0 = sum(p.numel() for p in model.parameters()), heads(model)
    start = time.perf_counter()
    try:
        sp.prune(model, args, ratio=ratio)
    except Exception as exc:  # noqa: BLE001 - a sweep reports every failure and goes on
        return f"| {name} | no | {n0 / 1e6:.3f} | - | {h0} | - | {time.perf_counter() - start:.1f} | - | {type(exc).__name__}: {str(exc)[:160]} |"
    seconds = time.perf_counter() - start
    n1, h1 = sum(p.numel() for p in model.parameters()), heads(model)
    try:
        with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
            slimforge.save(model, tmp, factory=f"{own_models.__name__}:build", kwargs={"name": name})
            same = _equal(slimforge.load(tmp, trust_code=True).eval()(*args), model(*args))
        verdict = "identical" if same else "DIFFERENT"
    except Exception as exc:  # noqa: BLE001
        verdict = f"{type(exc).__name__}: {str(exc)[:160]}"
    return f"| {name} | yes | {n0 / 1e6:.3f} | {1 - n1 / n0:.1%} | {h0} | {h1} | {seconds:.1f} | {verdict} | |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", default="own_models", choices=["own_models", "own_models2", "own_models3", "own_models4", "own_models5", "own_models6", "own_models7", "own_models8", "own_models9", "own_models10"])
    parser.add_argument("--models", default=None)
    parser.add_argument("--ratio", type=float, default=0.3)
    args = parser.parse_args()
    own_models = importlib.import_module(f"heldout.{args.set}")
    torch.set_num_threads(1)
    print(f"ratio={args.ratio}, importance l2, round_to 8, random init, 1 thread, torch {torch.__version__}")
    print("| model | prunes | params (M) | params removed | heads before | heads after | prune s | save/load | error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in (args.models.split(",") if args.models else own_models.MODELS):
        print(run(own_models, name, args.ratio), flush=True)


if __name__ == "__main__":
    main()
