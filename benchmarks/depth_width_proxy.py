"""Depth and width at equal measured latency, a 1-epoch proxy (issue 22): how many residual blocks to remove before
narrowing. The reference's removable blocks (identity shortcut, no stride) are ranked by the KL divergence of its
outputs without each one, on 1,024 training images; for k in ``--ks`` the k lowest are removed, the removal timed
(interleaved with the reference, 45 rounds, medians), and the rest pruned with the uniform latency-aware allocation to
target / that fraction; each candidate's adaptive-batch-norm distance (EagleEye: batch norms re-estimated on 2,048
other training images, KL from the reference on 2,048 more) is logged as a one-shot ranking, then it is distilled from
the reference for ``--epochs`` (slimforge's default KD) per seed and tested.

    PYTHONPATH=benchmarks:. nice .venv/bin/python benchmarks/depth_width_proxy.py --ks 0 1 2 3 --seeds 0 1 \
        --json benchmarks/results/depth_width_proxy.json

Written before ``LatencySettings(blocks=N)`` (``slimforge/prune/depth.py``), which ranks and removes blocks the same
way for any model; this script keeps the ResNet-20 specifics it was run with.
"""

import argparse
import copy
import json
import logging
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import slimforge
from latency_prune import interleaved_medians
from slimforge.cli.compress import _finetune_config
from slimforge.distill.api import DistillSection
from slimforge.distill.api import run as distill_run
from slimforge.experiment import run_data_config
from slimforge.measure import choose_layout
from slimforge.prune.latency import LatencySettings
from slimforge.train import evaluate, seed_everything

def removable(model):
    out = []
    for sname in ("layer1", "layer2", "layer3"):
        for i, b in enumerate(getattr(model, sname)):
            if isinstance(b.shortcut, nn.Identity) and b.conv1.stride == (1, 1):
                out.append((sname, i))
    return out

def adaptive_bn(model, xs_bn, xs_ev, ys_ev, base_ev):
    m = copy.deepcopy(model).train()
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.reset_running_stats(); mod.momentum = None
    with torch.no_grad():
        for i in range(0, len(xs_bn), 256):
            m(xs_bn[i:i + 256])
        m.eval(); out = m(xs_ev)
    return (out.argmax(-1) == ys_ev).float().mean().item(), F.kl_div(out.log_softmax(-1), base_ev, log_target=True, reduction="batchmean").item()

def drop(model, blocks):
    m = copy.deepcopy(model)
    for sname in ("layer1", "layer2", "layer3"):
        seq = getattr(m, sname)
        setattr(m, sname, nn.Sequential(*[b for i, b in enumerate(seq) if (sname, i) not in blocks]))
    return m

p = argparse.ArgumentParser()
p.add_argument("--reference", default="benchmarks/reference/fashion-mnist-resnet20w2")
p.add_argument("--target", type=float, default=0.3)
p.add_argument("--ks", type=int, nargs="+", default=[0, 1, 2, 3])
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--seeds", type=int, nargs="+", default=[0])
p.add_argument("--tolerance", type=float, default=0.03)
p.add_argument("--json", default="/tmp/mx/depth_proxy.json")
args = p.parse_args()
logging.basicConfig(level=logging.INFO, format="%(message)s")
ref = slimforge.load(args.reference).eval()
data = run_data_config(args.reference).load()
example = data.train.__getitems__(list(range(32)))[0].float()
calib = data.train.__getitems__(list(range(1024)))
xs, ys = calib[0].float(), calib[1]
xs_bn = data.train.__getitems__(list(range(4096, 6144)))[0].float()
torch.set_num_threads(2)
with torch.no_grad():
    base = ref(xs).log_softmax(-1)
    scores = {}
    for blk in removable(ref):
        out = drop(ref, {blk})(xs)
        scores[blk] = F.kl_div(out.log_softmax(-1), base, log_target=True, reduction="batchmean").item()
        logging.info("block %s: KL %.4f acc %.4f", blk, scores[blk], (out.argmax(-1) == ys).float().mean())
order = sorted(scores, key=scores.get)
torch.set_num_threads(1)
layout = choose_layout(ref, example, threads=1)
settings = LatencySettings(batch_size=32, threads=1, channels_last=layout == "channels_last", allocation="uniform", tolerance=args.tolerance)
rows = []
for k in args.ks:
    blocks = set(order[:k])
    torch.set_num_threads(1)
    dropped = drop(ref, blocks)
    lat = interleaved_medians({"r": ref, "d": dropped}, example, 45, layout == "channels_last")
    fd = lat["d"] / lat["r"]
    aim = args.target / fd
    pruned = slimforge.prune(copy.deepcopy(dropped).train(), example[:2], target_latency=aim, latency=settings).eval()
    lat = interleaved_medians({"r": ref, "p": pruned}, example, 45, layout == "channels_last")
    fp = lat["p"] / lat["r"]
    widths = [m.out_channels for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    logging.info("k=%d drop %s: dropped-only %.3f, aim %.3f, pruned %.3f widths %s", k, sorted(blocks), fd, aim, fp, widths)
    torch.set_num_threads(2)
    ev = data.train.__getitems__(list(range(2048, 4096)))
    with torch.no_grad():
        base_ev = ref(ev[0].float()).log_softmax(-1)
    abn_acc, abn_kl = adaptive_bn(pruned, xs_bn, ev[0].float(), ev[1], base_ev)
    logging.info("k=%d adaptive BN: acc %.4f KL %.4f", k, abn_acc, abn_kl)
    for seed in args.seeds:
      cfg = _finetune_config(args.reference, args.epochs, 0.01, None, 2).model_copy(update={"seed": seed, "quiet": True})
      seed_everything(seed)
      t0 = time.perf_counter()
      res = distill_run(copy.deepcopy(pruned).train(), [args.reference], data, DistillSection().to_config(), cfg)
      test = evaluate(res.model.eval().cpu(), data.test)["accuracy"]
      rows.append({"k": k, "seed": seed, "abn_acc": abn_acc, "abn_kl": abn_kl, "dropped": sorted(blocks), "dropped_fraction": fd, "latency": fp, "widths": widths,
                 "params": sum(p.numel() for p in pruned.parameters()), "test": test, "s": time.perf_counter() - t0})
      logging.info("k=%d seed %d: test %.4f latency %.3f", k, seed, test, fp)
      json.dump(rows, open(args.json, "w"), indent=1)
for r in rows:
    print(r["k"], r["seed"], r["abn_acc"], r["abn_kl"], r["dropped"], f"{r['latency']:.3f}", f"{r['test']:.4f}", r["params"])
