"""Issue 22, a cheap proxy for the equal-latency benchmark: the reference pruned to about 0.3 of its latency by
several channel allocations, each fine-tuned ``--epochs`` (1) like benchmarks/equal_latency.py's arms, test accuracy.

    PYTHONPATH=. .venv/bin/python benchmarks/latency_allocation_proxy.py --variants macs,lat_pen0,lat_pen1,lat_pen2,taylor,taylor_pen1

Variants (the allocation experiments of 2026-12-05; none is slimforge's default except ``macs`` and ``lat_pen0``):
- ``macs``: slimforge.prune(target_macs=0.204), the MAC target equal_latency.py bisected to the latency-aware
  model's measured latency (uniform: every group loses the same share);
- ``lat_penK``: slimforge.prune(target_latency=0.3) with the greedy's cost per millisecond multiplied by
  (group width / width left) ** K (K = 0 is the shipped greedy; K > 0 makes thinning a group costlier);
- ``sens``: slimforge.prune(target_latency=0.3) with ``LatencySettings(allocation="sensitivity")``: each group's loss
  measured on 1,024 training images after pruning it alone (slimforge.prune.sensitivity);
- ``uniform``: slimforge.prune(target_latency=0.3) with ``LatencySettings(allocation="uniform")``: every group
  loses the same share, the share read off the latency table, spare budget spent a step per group;
- ``taylor``, ``taylor_penK``: the same greedy on raw first-order Taylor scores (one calibration batch of 2,048
  training images), not normalised by each group's mean, so scores compare across layers as HALP's do.
"""
import argparse, copy, dataclasses, json, logging, sys, time
sys.path.insert(0, "benchmarks")
import numpy as np, torch
import slimforge
import slimforge.prune.importance as I
import slimforge.prune.latency as L
from equal_latency import finetune, measured_fraction
from slimforge.experiment import run_data_config
from slimforge.measure import choose_layout
from slimforge.prune.latency import LatencySettings

p = argparse.ArgumentParser()
p.add_argument("--variants", default="macs,lat_pen0,lat_pen1,sens")
p.add_argument("--epochs", type=int, default=1)
p.add_argument("--out", default="/tmp/latency_allocation_proxy.jsonl")
a = p.parse_args()
logging.basicConfig(level=logging.INFO, format="%(message)s")
ref = "benchmarks/reference/fashion-mnist-resnet20w2"
torch.manual_seed(0)
reference = slimforge.load(ref).eval()
data = run_data_config(ref).load()
example = data.train.__getitems__(list(range(32)))[0].float()
torch.set_num_threads(1)
layout = choose_layout(reference, example, threads=1)
settings = LatencySettings(batch_size=32, threads=1, channels_last=layout == "channels_last")
orig_offers, orig_next_offer, orig_group_scores = L._offers, L._next_offer, I._group_scores
THINNING = {"k": 0.0}


def thinning_next_offer(graph, g, offer, removed, *rest):
    """latency._next_offer with the cost scaled by (width / width left) ** THINNING."""
    found = orig_next_offer(graph, g, offer, removed, *rest)
    if found is None or not THINNING["k"]:
        return found
    cost, group, roots, after, saved = found
    width = len(offer[0])
    return cost * (width / (width - removed - len(roots))) ** THINNING["k"], group, roots, after, saved


L._next_offer = thinning_next_offer


def raw_group_scores(graph, group, slot_scores, reduction):
    """Each unit's scores summed over its slots, not divided by each slot's mean: comparable across layers."""
    return orig_group_scores(graph, group, slot_scores, "sum", normalize=False)


def raw_offers(graph, scores, by_slot, round_to, costs=None):
    """The greedy's offers with the raw scores themselves as the costs."""
    return orig_offers(graph, scores, by_slot, round_to, costs=[np.clip(np.asarray(c, dtype=np.float64), 0.0, None) for c in scores])


def calibration():
    xs, ys = data.train.__getitems__(list(range(2048)))[:2]
    return [(xs.float(), ys)]


def build(v):
    if v.startswith("taylor"):
        I._group_scores, L._offers = raw_group_scores, raw_offers
        THINNING["k"] = float(v.split("pen")[1]) if "pen" in v else 0.0
        try:
            m = copy.deepcopy(reference).train()
            return slimforge.prune(m, example[:2], target_latency=0.3, latency=settings, importance="taylor", calibration=calibration()).eval()
        finally:
            I._group_scores, L._offers = orig_group_scores, orig_offers
    m = copy.deepcopy(reference).train()
    if v == "macs":
        return slimforge.prune(m, example[:2], target_macs=0.204).eval()
    if v == "sens":  # the shipped greedy on each group's measured loss curve (allocation="sensitivity")
        THINNING["k"] = 0.0
        images, labels = data.train.__getitems__(list(range(1024)))[:2]
        batches = [(images[i:i + 256].float(), labels[i:i + 256]) for i in range(0, 1024, 256)]
        sens = dataclasses.replace(settings, allocation="sensitivity")
        return slimforge.prune(m, example[:2], target_latency=0.3, latency=sens, calibration=batches).eval()
    if v == "uniform":  # allocation="uniform": one share for every group, chosen from the latency table
        return slimforge.prune(m, example[:2], target_latency=0.3, latency=dataclasses.replace(settings, allocation="uniform")).eval()
    if v.startswith("lat"):
        THINNING["k"] = float(v.split("pen")[1]) if "pen" in v else 0.0
        return slimforge.prune(m, example[:2], target_latency=0.3, latency=settings).eval()
    raise SystemExit(v)

ns = argparse.Namespace(reference=ref, epochs=a.epochs, lr=0.01, threads=2, device="cpu")
for v in a.variants.split(","):
    t0 = time.time()
    model = build(v)
    torch.set_num_threads(1)
    frac = measured_fraction(reference, model, example, 15, layout)
    r = finetune(v, copy.deepcopy(model), data, ns, 0)
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    rec = {"variant": v, "latency_fraction": round(frac, 3), "params": sum(p.numel() for p in model.parameters()), **r,
           "wall": round(time.time() - t0), "conv_widths": widths}
    print(json.dumps(rec), flush=True)
    open(a.out, "a").write(json.dumps(rec) + "\n")
