"""Compositional (quotient-remainder) item tables (``mf`` with ``qr_buckets``) against MF with a full table
and smaller MF, all trained from scratch: size and ranking quality on MovieLens.

    OMP_NUM_THREADS=1 nice python benchmarks/recsys_compositional.py --root ../shared/data/movielens-small \
        --json benchmarks/results/recsys_compositional.json

Every variant is MF with ``--dim`` factors trained the same way (the data's defaults: sampled softmax,
``--epochs`` epochs, seed ``--seed``); ``qr<m>``: the item table is ``Q[i // m] * R[i % m]``. Each is stored
fp32 and with int4 rows. Size: the artifact's weight file. Quality: test HR@10 / NDCG@10 on the split's
fixed 100 candidates, Recall@20 / NDCG@20 over the unseen catalogue.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import slimforge
from slimforge.optimize.size import weight_file
from slimforge.quantize import QuantizeConfig, quantize, save_quantized
from slimforge.train import TrainConfig, seed_everything, train

from recsys_mixed_dim import METRICS, movielens_parser, table  # noqa: E402  (run from benchmarks/ or with it on sys.path)


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    data = slimforge.load_dataset("movielens", **({"root": args.root} if args.root else {}))
    tmp = Path(tempfile.mkdtemp())
    calibration = [data.train.__getitems__(list(range(32)))]
    rows: dict[str, dict] = {}
    variants = {"mf": {}, **{f"qr{m}": {"qr_buckets": m} for m in args.buckets}, **{f"mf{d}": {"dim": d} for d in args.small_dims}}
    for name, kwargs in variants.items():
        seed_everything(args.seed)
        model = slimforge.create_model("mf", **{"dim": args.dim, **kwargs, **data.info.model_kwargs()})
        t0 = time.monotonic()
        train(model, data, TrainConfig(epochs=args.epochs, quiet=True, num_threads=args.threads), out=tmp / name)
        seconds = time.monotonic() - t0
        packed = save_quantized(quantize(model.eval(), calibration, QuantizeConfig(backend="fbgemm-int4")), tmp / f"{name}-int4")
        for label, folder in ((name, tmp / name), (f"{name} int4", packed)):
            m = slimforge.load(folder) if folder == tmp / name else slimforge.load_quantized(folder)
            with torch.no_grad():
                scores = slimforge.evaluate(m.eval(), data.test)
            rows[label] = {"kwargs": kwargs, "bytes": weight_file(folder).stat().st_size, "train_s": round(seconds, 1),
                           **{k: round(float(scores[k]), 4) for k in METRICS}}
            print(label, rows[label], flush=True)
    base_bytes, base_ndcg = rows["mf"]["bytes"], rows["mf"]["ndcg@10"]
    for r in rows.values():
        r["size_x"] = round(base_bytes / r["bytes"], 2)
        r["ndcg@10_rel"] = round(100 * (r["ndcg@10"] / base_ndcg - 1), 2)
    print(table(rows))
    if args.json:
        report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
                  "torch": torch.__version__, "threads": args.threads, "args": vars(args), "rows": rows}
        Path(args.json).write_text(json.dumps(report, indent=1))


def _parse() -> argparse.Namespace:
    p = movielens_parser(__doc__.splitlines()[0])
    p.add_argument("--buckets", type=int, nargs="*", default=[100, 1000, 3000])
    p.add_argument("--small-dims", type=int, nargs="*", default=[8])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json")
    return p.parse_args()


if __name__ == "__main__":
    main()
