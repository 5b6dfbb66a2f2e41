"""Mixed-dimension item tables by popularity (``slimforge.recsys.mixed_dim``) against the full table,
smaller MF trained from scratch, and int4 rows: size and ranking quality on MovieLens.

    OMP_NUM_THREADS=1 nice python benchmarks/recsys_mixed_dim.py --root ../shared/data/movielens-small \
        --json benchmarks/results/recsys_mixed_dim.json

MF (``--dim`` factors, the data's defaults: softmax objective, ``--epochs`` epochs, seed ``--seed``) is
trained once; each mixed-dimension setting replaces its item table (blocks of ``shares`` of the items by
training popularity, at ``widths`` of the table's width, each block initialised by the SVD of its trained
rows), is fine-tuned ``--finetune-epochs`` at ``--finetune-lr`` (last epoch kept), then stored fp32 and with
int4 rows (``--finetune-epochs 0``: no fine-tune). Controls: the trained MF fine-tuned as long at the same rate (``fp32 +ft``), and MF at smaller
widths trained from scratch as long as the baseline. Size: the artifact's weight file. Quality: test
HR@10 / NDCG@10 on the split's fixed 100 candidates, Recall@20 / NDCG@20 over the unseen catalogue.
With ``--keep DIR`` every variant is kept as a folder (``DIR/NAME``, ``DIR/NAME-int4``) for
``recsys_folder_latency.py``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import slimforge
from slimforge.recsys.mixed_dim import mixed_dimensions
from slimforge.quantize import QuantizeConfig, quantize, save_quantized
from slimforge.optimize.size import weight_file
from slimforge.train import TrainConfig, seed_everything, train

METRICS = ("hr@10", "ndcg@10", "recall@20", "ndcg@20")
SETTINGS = {  # name: (shares of the items by popularity, widths as fractions of the table's); names for dim 32
    "md-10.30.60-w32.8.4": ((0.1, 0.3, 0.6), (1.0, 0.25, 0.125)),
    "md-20.80-w32.8": ((0.2, 0.8), (1.0, 0.25)),
    "md-5.25.70-w16.8.2": ((0.05, 0.25, 0.7), (0.5, 0.25, 0.0625)),
}


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    data = slimforge.load_dataset("movielens", **({"root": args.root} if args.root else {}))
    popularity = data.catalogue.popularity
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp())
    calibration = [data.train.__getitems__(list(range(32)))]
    rows: dict[str, dict] = {}

    def fit(model, epochs, lr=None, name="") -> None:
        t0 = time.monotonic()
        cfg = TrainConfig(epochs=epochs, quiet=True, num_threads=args.threads, keep_best=False, **({"lr": lr} if lr else {}))
        train(model, data, cfg, out=tmp / f"run-{name}")
        print(f"{name}: trained {epochs} epochs in {time.monotonic() - t0:.0f} s", flush=True)

    def record(name: str, model, recipe: str) -> None:
        model.eval()
        folder = tmp / name
        slimforge.save(model, folder)
        data.save_assets(folder)
        result = quantize(model, calibration, QuantizeConfig(backend="fbgemm-int4"))
        int4, packed = result.quantized, save_quantized(result, tmp / f"{name}-int4")
        data.save_assets(packed)
        for label, m, size in ((name, model, weight_file(folder).stat().st_size), (f"{name} int4", int4, weight_file(packed).stat().st_size)):
            with torch.no_grad():
                scores = slimforge.evaluate(m, data.test)
            rows[label] = {"recipe": recipe + (" -> int4 rows" if m is int4 else ""), "bytes": size,
                           **{k: round(float(scores[k]), 4) for k in METRICS}}
            print(label, rows[label], flush=True)

    seed_everything(args.seed)
    base = slimforge.create_model("mf", dim=args.dim, **data.info.model_kwargs())
    fit(base, args.epochs, name="mf")
    record("fp32", base, f"MF {args.dim} factors, {args.epochs} epochs")
    if args.finetune_epochs:
        control = copy.deepcopy(base)
        seed_everything(args.seed)
        fit(control, args.finetune_epochs, args.finetune_lr, name="control")
        record("fp32 +ft", control, f"the same + {args.finetune_epochs} epochs at lr {args.finetune_lr:g}")
    for name, (shares, widths) in SETTINGS.items():
        model = copy.deepcopy(base)
        blocks = mixed_dimensions(model, popularity, shares, widths)
        with torch.no_grad():
            before = {k: round(float(v), 4) for k, v in slimforge.evaluate(model.eval(), data.test).items() if k in METRICS}
        print(f"{name}: blocks {blocks}, before fine-tuning {before}", flush=True)
        if args.finetune_epochs:
            seed_everything(args.seed)
            fit(model.train(), args.finetune_epochs, args.finetune_lr, name=name)
        record(name, model, f"item table {blocks['item_embedding']} (rows, width) by popularity + {args.finetune_epochs} epochs")
        rows[name]["before_finetune"] = before
    for dim in args.small_dims:
        seed_everything(args.seed)
        small = slimforge.create_model("mf", dim=dim, **data.info.model_kwargs())
        fit(small, args.epochs, name=f"mf{dim}")
        record(f"mf{dim}", small, f"MF {dim} factors from scratch, {args.epochs} epochs")
    base_bytes, base_ndcg = rows["fp32"]["bytes"], rows["fp32"]["ndcg@10"]
    for r in rows.values():
        r["size_x"] = round(base_bytes / r["bytes"], 2)
        r["ndcg@10_rel"] = round(100 * (r["ndcg@10"] / base_ndcg - 1), 2)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "threads": args.threads, "args": vars(args), "rows": rows}
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


def table(rows: dict) -> str:
    lines = ["| variant | weight file (KB) | size x | HR@10 | NDCG@10 | NDCG@10 rel. | Recall@20 | NDCG@20 |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['bytes'] / 1024:.0f} | {r['size_x']:.2f} | {r['hr@10']:.4f} | {r['ndcg@10']:.4f} | "
                     f"{r['ndcg@10_rel']:+.2f}% | {r['recall@20']:.4f} | {r['ndcg@20']:.4f} |")
    return "\n".join(lines)


def movielens_parser(description: str) -> argparse.ArgumentParser:
    """The options every MovieLens MF benchmark here takes: data folder, factors, epochs, seed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--root", help="MovieLens folder (default: $SLIMFORGE_DATA)")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    return p


def _parse() -> argparse.Namespace:
    p = movielens_parser(__doc__.splitlines()[0])
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--small-dims", type=int, nargs="*", default=[8, 16])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--keep", help="folder to keep every variant's run folder in (NAME, NAME-int4; for recsys_folder_latency.py)")
    p.add_argument("--json")
    return p.parse_args()


if __name__ == "__main__":
    main()
