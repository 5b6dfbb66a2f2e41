"""Row-wise int8 / int4 / int2 embedding tables (FBGEMM) against fp32: size, scoring latency, ranking quality.

    OMP_NUM_THREADS=1 nice python benchmarks/recsys_embedding_quant.py --root ../shared/data/movielens-small \
        --models mf neumf --threads 1 --json benchmarks/results/recsys_embedding_quant.json

Each model is trained once on MovieLens (NCF protocol, the data's default settings, ``--epochs``,
seed 0), then quantized by each ``fbgemm-int*`` backend. With ``--svd-energy E`` the tables are
also factorised by SVD (the embedding tables only, keeping E of each table's squared singular
values, ranks rounded up to ``--svd-rank-multiple``), fine-tuned for
``--finetune-epochs`` at ``--finetune-lr``, and quantized again (``svd``, ``svd+fbgemm-int*``).
Reported per variant:

* bytes: the artifact's weight file (``model.safetensors`` for fp32, ``quantized.safetensors``),
  and the embedding tables alone (fp32 rows vs packed rows + per-row scale/offset);
* test HR@10 / NDCG@10 (100 sampled candidates) and Recall@20 / NDCG@20 (unseen catalogue);
* latency: scoring 256 test users x their 100 candidates (25,600 pairs) in one call, ``--threads``
  threads, median of ``--reps`` calls; the variants are timed in turns (one call each per round,
  order rotated) so load from other processes hits them alike. ``latency_ms`` is each model's
  own ``forward``: every user's side computed once (the grouped path of
  ``slimforge.recsys.models``), the packed tables read by torch kernels. Timed with them, not
  evaluated again: ``fp32_pairwise_ms`` (fp32 scoring every pair from scratch, the path before
  issue 21's work), ``fbgemm_kernel_ms`` (the same quantized model with FBGEMM's lookup kernel) and,
  for the SVD variants, ``unfolded_ms`` (the factorised tables' rows ``A_i B`` computed before the
  product, instead of ``B`` folded into the user side).
  Each also as ``*_quiet_ms``: the median of the calls the process ran unpreempted (see
  :func:`interleaved_medians`), the figure to trust on a shared machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

import slimforge
from slimforge.factorize import FactorizeConfig, factorize
from slimforge.quantize import QuantizeConfig, quantize, save_quantized
from slimforge.recsys.protocol import pair_inputs
from slimforge.train import TrainConfig, seed_everything, train

BACKENDS = ("fbgemm-int8", "fbgemm-int4", "fbgemm-int2")
METRICS = ("hr@10", "ndcg@10", "recall@20", "ndcg@20")


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    data = slimforge.load_dataset(args.data, **({"root": args.root} if args.root else {}))
    batch = scoring_batch(data, args.users)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "torch": torch.__version__, "dataset": data.info.name, "test_sha256": data.split["test_sha256"],
              "pairs_per_call": int(batch["user"].numel()), "models": {}}
    for name in args.models:
        seed_everything(0)
        model = train(slimforge.create_model(name, **data.info.model_kwargs()), data,
                      TrainConfig(epochs=args.epochs, num_threads=args.threads, quiet=True)).model.eval()
        variants = {"fp32": model}
        rows = {}
        with tempfile.TemporaryDirectory() as tmp:
            fp32_dir = slimforge.save(model, Path(tmp) / "fp32")
            rows["fp32"] = {"bytes": (fp32_dir / "model.safetensors").stat().st_size, "table_bytes": table_bytes(model)}
            add_quantized(model, "", data, variants, rows, Path(tmp), args.backends)
            if args.svd_energy is not None:
                tables = tuple(n for n, m in model.named_modules() if isinstance(m, nn.Embedding) and m.embedding_dim > 1)
                svd = factorize(copy.deepcopy(model), FactorizeConfig(energy=args.svd_energy, include_embeddings=True, layers=tables,
                                                                      rank_multiple=args.svd_rank_multiple))
                svd_model = train(svd.model, data, TrainConfig(epochs=args.finetune_epochs, lr=args.finetune_lr, num_threads=args.threads,
                                                              quiet=True)).model.eval()
                svd_dir = slimforge.save(svd_model, Path(tmp) / "svd")
                variants["svd"] = svd_model
                rows["svd"] = {"bytes": (svd_dir / "model.safetensors").stat().st_size, "table_bytes": table_bytes(svd_model), "ranks": svd.ranks}
                add_quantized(svd_model, "svd+", data, variants, rows, Path(tmp), args.backends)
        for label, variant in variants.items():
            metrics = data.test.evaluate(variant)
            rows[label].update({k: round(metrics[k], 4) for k in METRICS})
        timed = {**variants, **timing_only_variants(variants)}
        record_timings(rows, interleaved_medians(timed, batch, args.reps))
        base = rows["fp32"]
        for label, row in rows.items():
            row["size_ratio"] = round(base["bytes"] / row["bytes"], 2)
            row["table_ratio"] = round(base["table_bytes"] / row["table_bytes"], 2)
            row["ndcg@10_rel_change_%"] = round(100 * (row["ndcg@10"] - base["ndcg@10"]) / base["ndcg@10"], 2)
            row["ndcg@20_rel_change_%"] = round(100 * (row["ndcg@20"] - base["ndcg@20"]) / base["ndcg@20"], 2)
            row["latency_vs_fp32"] = round(row["latency_ms"] / base["latency_ms"], 3)
            row["quiet_latency_vs_fp32"] = ratio(row["latency_quiet_ms"], base["latency_quiet_ms"])
        report["models"][name] = rows
        print(name, json.dumps(rows, indent=1), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(table(report))


def add_quantized(model: nn.Module, prefix: str, data, variants: dict, rows: dict, tmp: Path, backends: tuple[str, ...] = BACKENDS) -> None:
    """Quantize ``model`` by each of ``backends``; record each variant's artifact size and tables."""
    for backend in backends:
        result = quantize(model, [data.train.__getitems__(list(range(64)))], QuantizeConfig(backend=backend))
        folder = save_quantized(result, tmp / f"{prefix}{backend}")
        variants[prefix + backend] = result.quantized
        rows[prefix + backend] = {"bytes": (folder / "quantized.safetensors").stat().st_size, "table_bytes": table_bytes(result.quantized),
                                  "tables": result.quantized.tables()}


def timing_only_variants(variants: dict) -> dict:
    """'fp32:fp32_pairwise' (every pair scored from scratch), '<backend>:fbgemm_kernel'
    (FBGEMM's lookup kernel in place of the torch kernels) for each model in ``variants``, and
    '<label>:unfolded' for each model with factorised tables (their rows computed, not folded)."""
    from slimforge.recsys.quantize import EmbeddingQuantizedModel, with_fbgemm_lookups

    extra = {}
    for label, model in variants.items():
        if isinstance(model, EmbeddingQuantizedModel):
            extra[f"{label}:fbgemm_kernel"] = with_fbgemm_lookups(model)
        else:
            extra[f"{label}:fp32_pairwise"] = _Pairwise(model)
        if _factorised_tables(model):
            extra[f"{label}:unfolded"] = _unfolded(model)
    return extra


def _factorised_tables(model: nn.Module) -> list[str]:
    from slimforge.recsys._rowwise import factors

    return [name for name, m in model.named_modules() if factors(m) is not None]


class _Materialised(nn.Module):
    """A factorised table behind a module the grouped path does not recognise: its rows ``A_i B``
    are computed on lookup and enter the products at full width (the form before folding)."""

    def __init__(self, table: nn.Module) -> None:
        super().__init__()
        self.table = table

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table(ids)


def _unfolded(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    for name in _factorised_tables(model):
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, _Materialised(getattr(owner, child)))
    return model


class _Pairwise(nn.Module):
    """A recommender scoring each pair on its own (its ``score``), skipping the grouped path."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: dict) -> torch.Tensor:
        return self.model.score(inputs["user"], inputs["item"], inputs.get("item_genres"))


def scoring_batch(data, users: int) -> dict[str, torch.Tensor]:
    """The first ``users`` test users' 100 candidates as one batch of pairs."""
    rows = torch.arange(min(users, len(data.test)))
    candidates = data.test.candidates(rows)
    return pair_inputs(data.test.users[rows].repeat_interleave(candidates.shape[1]), candidates.reshape(-1), data.catalogue.item_genres)


def table_bytes(model: nn.Module) -> int:
    """Bytes of the embedding tables: fp32 rows, or packed rows plus scales."""
    from slimforge.recsys.quantize import QuantizedEmbedding

    total = 0
    for module in model.modules():
        if isinstance(module, QuantizedEmbedding):
            total += module.nbytes
        elif isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            total += module.weight.numel() * module.weight.element_size()
    return total


@torch.no_grad()
def interleaved_medians(variants: dict, batch: dict, reps: int) -> dict[str, dict[str, float]]:
    """Per variant: ``ms``, the median of all ``reps`` calls, and ``quiet_ms``, the median of the
    calls during which this process was not preempted (``ru_nivcsw`` unchanged; on a loaded
    machine a preempted call of 1 ms takes 5 ms, and longer calls are preempted more often),
    with ``quiet_calls``, how many those were."""
    names = list(variants)
    times: dict[str, list[tuple[float, bool]]] = {n: [] for n in names}
    for n in names:  # warm-up
        for _ in range(5):
            variants[n](batch)
    for r in range(reps):
        for n in names[r % len(names):] + names[: r % len(names)]:
            switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
            start = time.perf_counter()
            variants[n](batch)
            seconds = time.perf_counter() - start
            times[n].append((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw == switches))
    out = {}
    for n, calls in times.items():
        quiet = [s for s, unpreempted in calls if unpreempted]
        out[n] = {"ms": round(statistics.median(s for s, _ in calls) * 1e3, 3),
                  "quiet_ms": round(statistics.median(quiet) * 1e3, 3) if quiet else None, "quiet_calls": len(quiet)}
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b to 3 places; None when either is missing (no unpreempted call)."""
    return None if a is None or b is None else round(a / b, 3)


def record_timings(rows: dict, timings: dict) -> None:
    """Put ``interleaved_medians``' results into ``rows``: 'label' as latency_ms, 'label:extra' as extra_ms."""
    for label, t in timings.items():
        key, _, extra = label.partition(":")
        prefix = extra or "latency"
        rows[key].update({f"{prefix}_ms": t["ms"], f"{prefix}_quiet_ms": t["quiet_ms"], f"{prefix}_quiet_calls": t["quiet_calls"]})


def table(report: dict) -> str:
    lines = ["| model | variant | weight file (KB) | size x | tables x | HR@10 | NDCG@10 | Recall@20 | NDCG@20 | NDCG@10 rel. | latency ms (x fp32) "
             "| unpreempted ms (x fp32) | FBGEMM kernel / fp32 per-pair ms | unfolded unpreempted ms |", "|---" * 14 + "|"]
    for name, rows in report["models"].items():
        for label, r in rows.items():
            lines.append(f"| {name} | {label} | {r['bytes'] / 1024:.0f} | {r['size_ratio']} | {r['table_ratio']} | {r['hr@10']} | {r['ndcg@10']} | "
                         f"{r['recall@20']} | {r['ndcg@20']} | {r['ndcg@10_rel_change_%']:+.2f}% | {r['latency_ms']} ({r['latency_vs_fp32']}) | "
                         f"{r['latency_quiet_ms']} ({r['quiet_latency_vs_fp32']}) | "
                         f"{r.get('fbgemm_kernel_ms', r.get('fp32_pairwise_ms', ''))} | {r.get('unfolded_quiet_ms', '')} |")
    return "\n".join(lines)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="movielens")
    p.add_argument("--root", default=None)
    p.add_argument("--models", nargs="+", default=["mf", "neumf"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--users", type=int, default=256)
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--svd-energy", type=float, default=None, help="also factorise the tables by SVD, keeping this energy")
    p.add_argument("--svd-rank-multiple", type=int, default=8, help="ranks rounded up to this (8: factor rows pack at int8/int4/int2)")
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--json", default=None)
    return p.parse_args()


if __name__ == "__main__":
    main()
