"""Measure what an optimisation bought: accuracy, real latency and throughput, size.

Latency is measured, never inferred from MACs. Variants are timed **interleaved** in one
process (A B A B ... one call at a time, after warm-up) with the thread count fixed and
reported, so machine noise falls on every variant alike; each variant's p50/p90/p99 and
throughput are then comparable as ratios. On CUDA, calls are timed with CUDA events.

    variants = {"fp32": model, "int8": load_variant("runs/x-int8").predict}
    report = measure_latency(variants, example_input(info, 32), threads=1)
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimforge.deploy_forms import _channels_last_inputs, build_reference_forms
from slimforge.errors import ArtifactError, ConfigError
from slimforge.train.evaluate import move_to

Predictor = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------- latency


@dataclass(frozen=True)
class Latency:
    """Per-call latency of one variant at one batch size, in milliseconds."""

    batch_size: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput: float  # samples per second at the median latency
    calls: int

    @classmethod
    def from_times(cls, batch_size: int, seconds: Sequence[float]) -> Latency:
        ms = sorted(t * 1000.0 for t in seconds)
        p50 = _percentile(ms, 50)
        return cls(batch_size, p50, _percentile(ms, 90), _percentile(ms, 99), statistics.fmean(ms), batch_size / (p50 / 1000.0), len(ms))


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def measure_latency(
    variants: Mapping[str, Predictor],
    inputs: torch.Tensor | Mapping[int, torch.Tensor],
    *,
    threads: int | None = 1,
    warmup: int = 5,
    repeats: int = 30,
    min_seconds: float = 0.0,
    device: str | torch.device = "cpu",
) -> dict[str, dict[int, Latency]]:
    """Time every variant on the same inputs, interleaved call by call.

    inputs: one batch (batch, ...) or {batch_size: batch}. ``repeats`` timed calls per variant
    and batch size (more while ``min_seconds`` of timing has not passed), after ``warmup``.
    Returns {variant: {batch_size: Latency}}.
    """
    batches = dict(inputs) if isinstance(inputs, Mapping) else {int(inputs.shape[0]): inputs}
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device)
    try:
        results: dict[str, dict[int, Latency]] = {name: {} for name in variants}
        with torch.inference_mode():
            for bs, x in batches.items():
                x = move_to(x, device)
                for _ in range(warmup):
                    for fn in variants.values():
                        fn(x)
                times: dict[str, list[float]] = {name: [] for name in variants}
                started = time.perf_counter()
                while True:
                    for name, fn in variants.items():
                        times[name].append(_time_call(fn, x, device))
                    n = len(next(iter(times.values())))
                    if n >= repeats and time.perf_counter() - started >= min_seconds:
                        break
                for name in variants:
                    results[name][bs] = Latency.from_times(bs, times[name])
        return results
    finally:
        torch.set_num_threads(previous_threads)


def _time_call(fn: Predictor, x: torch.Tensor, device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(x)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


# ---------------------------------------------------------------- size and cost


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``example`` (torch.utils.flop_counter; FLOPs / 2),
    plus those of LSTM layers, which the flop counter does not see (their fused kernel has no formula;
    RNN and GRU decompose into counted matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    lstm_macs: list[int] = []
    hooks = [m.register_forward_hook(lambda mod, args, _out: lstm_macs.append(_lstm_macs(mod, args[0])))
             for m in model.modules() if isinstance(m, nn.LSTM)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return int(counter.get_total_flops() // 2) + sum(lstm_macs)


def _lstm_macs(lstm: nn.LSTM, x: Any) -> int:
    """MACs of one LSTM call on input ``x`` (a tensor or a PackedSequence): per time step, layer and
    direction, four gates of (input x hidden + hidden x hidden), and the projection when it has one."""
    if isinstance(x, nn.utils.rnn.PackedSequence):
        steps_times_batch = int(x.data.shape[0])
    else:
        steps_times_batch = int(x.shape[0] * x.shape[1]) if x.dim() == 3 else int(x.shape[0])
    hidden, out = lstm.hidden_size, lstm.proj_size or lstm.hidden_size
    directions = 2 if lstm.bidirectional else 1
    total = 0
    for layer in range(lstm.num_layers):
        inputs = lstm.input_size if layer == 0 else out * directions
        per_step = 4 * hidden * (inputs + out) + (hidden * out if lstm.proj_size else 0)
        total += directions * per_step
    return total * steps_times_batch


def folder_size(path: str | Path, pattern: str = "*") -> int:
    """Bytes of the files matching ``pattern`` in a folder (or one file's size)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.glob(pattern) if f.is_file())


def peak_cuda_memory(fn: Predictor, x: torch.Tensor) -> int | None:
    """Peak bytes allocated on the GPU during one call (None on the CPU, where torch has no such counter)."""
    if x.device.type != "cuda":
        return None
    torch.cuda.reset_peak_memory_stats(x.device)
    with torch.inference_mode():
        fn(x)
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated(x.device))


# ---------------------------------------------------------------- accuracy


@torch.no_grad()
def measure_accuracy(predict: Predictor, batches: Iterable[Any], num_classes: int, topk: int = 5) -> dict[str, float]:
    """Top-1, top-k (when there are more than k classes) and macro-F1 over (inputs, targets, ...) batches."""
    if isinstance(predict, nn.Module):
        predict.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    topk_hits = total = 0
    for batch in batches:
        x, y = batch[0], batch[1]
        logits = predict(x).float().cpu()
        pred = logits.argmax(1)
        confusion += torch.bincount(y * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)
        if num_classes > topk:
            topk_hits += (logits.topk(topk, 1).indices == y.view(-1, 1)).any(1).sum().item()
        total += y.numel()
    if total == 0:
        raise ValueError("measure_accuracy: no samples")
    tp = confusion.diag().double()
    precision = tp / confusion.sum(0).clamp_min(1)
    recall = tp / confusion.sum(1).clamp_min(1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), torch.zeros_like(tp))
    present = confusion.sum(1) > 0
    out = {"accuracy": tp.sum().item() / total, "macro_f1": f1[present].mean().item(), "samples": total}
    if num_classes > topk:
        out[f"top{topk}_accuracy"] = topk_hits / total
    return out


# ---------------------------------------------------------------- variants from run folders


@dataclass
class Variant:
    """A model to measure: how to call it, plus what can be counted about it."""

    name: str
    predict: Predictor
    kind: str  # "pytorch" or a quantization backend name
    path: str | None = None
    module: nn.Module | None = None  # the fp32 module, when there is one (params, MACs)
    info: dict[str, Any] = field(default_factory=dict)


def load_variant(path: str | Path, name: str | None = None, threads: int = 1, channels_last: bool = False) -> Variant:
    """A run folder (``model.json``) or a quantized artifact (``quantized.json``) as a Variant.

    channels_last: run PyTorch models with weights and 4-D inputs in channels-last memory
    format, the layout oneDNN's CPU convolutions are fastest in (1.4-1.5x for the CNNs measured
    in BENCHMARKS.md); quantized artifacts keep their runtime's own layout.
    """
    path = Path(path)
    name = name or path.name
    from slimforge.quantize import is_quantized_artifact, load_quantized

    if is_quantized_artifact(path):
        q = load_quantized(path, threads=threads)
        return Variant(name, q, q.backend, str(path), info={"mode": q.mode, "fp32_layers": list(q.fp32_layers)})
    if (path / "model.json").is_file():
        from slimforge.loading import load

        model = load(path).eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            return Variant(name, _channels_last_inputs(model), "pytorch", str(path), module=model, info={"memory_format": "channels_last"})
        return Variant(name, model, "pytorch", str(path), module=model)
    raise ArtifactError(f"{path} is neither a run folder (model.json) nor a quantized artifact (quantized.json).")


def describe_variant(variant: Variant, example: torch.Tensor) -> dict[str, Any]:
    """Parameters, MACs and on-disk size where they can be known."""
    out: dict[str, Any] = {"name": variant.name, "kind": variant.kind, "path": variant.path, **variant.info}
    if variant.module is not None:
        out["params"] = count_parameters(variant.module)
        out["macs"] = count_macs(variant.module, _first_rows(example, 1))
    if variant.path:
        # The deployable file only: model weights, or the quantized runtime file.
        out["size_bytes"] = (folder_size(variant.path, "model.safetensors") or folder_size(variant.path, "*.onnx")
                             or folder_size(variant.path, "*.pt2") or folder_size(variant.path, "quantized.safetensors"))
    return out


def measure_variants(
    variants: Sequence[Variant],
    example: torch.Tensor,
    batch_sizes: Sequence[int] = (1, 32),
    *,
    eval_batches: Sequence[Any] | None = None,
    num_classes: int | None = None,
    threads: int = 1,
    repeats: int = 30,
    warmup: int = 5,
    reference: Sequence[str] = (),
    quality: Callable[[Variant], dict[str, float]] | None = None,
    metric: str = "accuracy",
) -> dict[str, Any]:
    """Accuracy (when ``eval_batches``), interleaved latency at each batch size, size and cost.

    quality: instead of classification accuracy, each variant's figures from this function (a
    recommender's ``hr@10``, ``ndcg@10``, ... from ``RankingSplit.evaluate``); ``metric`` names the
    one the report compares (``measurement["metric"]``).

    reference: fp32 forms of the first variant's module to time alongside, interleaved with the
    variants (names from :func:`slimforge.deploy_forms.list_reference_forms`, e.g. ("eager",
    "channels_last")); each variant then also gets ``speedup_vs_eager`` and ``speedup_vs_best_fp32``
    in :func:`slimforge.report.build_rows`. Empty (the default here; ``slimforge measure`` times
    eager and channels-last) times none.

    Returns a JSON-able dict: {"threads", "batch_sizes", "variants": [{name, accuracy, latency: {bs: {...}}, params, macs, size_bytes}],
    "reference" (when asked): {"forms": {form: {bs: {...}}}, "unavailable": {form: why}, "best_fp32_form": {bs: form}}}.
    """
    inputs = {bs: _batch_of(example, bs) for bs in batch_sizes}
    forms, unavailable = _reference_forms(variants, inputs[max(batch_sizes)], reference, threads)
    timed = {v.name: v.predict for v in variants} | {f"{_REFERENCE_PREFIX}{n}": p for n, p in forms.items()}
    try:
        latency = measure_latency(timed, inputs, threads=threads, repeats=repeats, warmup=warmup)
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if not _out_of_memory(e):
            raise
        raise ConfigError(f"batch sizes {list(batch_sizes)}: the model ran out of memory ({str(e).splitlines()[0][:160]}); measure smaller batch sizes.") from None
    rows = []
    for v in variants:
        row = describe_variant(v, example)
        if quality is not None:
            row.update(quality(v))
        elif eval_batches is not None and num_classes is not None:
            row.update(measure_accuracy(v.predict, eval_batches, num_classes))
        row["latency"] = {str(bs): asdict(lat) for bs, lat in latency[v.name].items()}
        rows.append(row)
    out = {"threads": threads, "batch_sizes": list(batch_sizes), "cpu_count": os.cpu_count(), "torch": torch.__version__,
           "machine": machine_description(), "metric": metric, "variants": rows}
    if reference:
        out["reference"] = _reference_summary(forms, unavailable, latency, batch_sizes)
    return out


_REFERENCE_PREFIX = "reference:"


def _reference_forms(variants: Sequence[Variant], example: Any, reference: Sequence[str], threads: int) -> tuple[dict[str, Predictor], dict[str, str]]:
    """The first variant's module in each requested fp32 form (a quantized baseline has no module to re-deploy)."""
    if not reference:
        return {}, {}
    from slimforge.deploy_forms import build_reference_forms

    base = variants[0].module if variants else None
    if base is None:
        return {}, {n: "the baseline is not a PyTorch module" for n in reference}
    return build_reference_forms(base, example, reference, threads)


def _reference_summary(forms: Mapping[str, Predictor], unavailable: Mapping[str, str], latency: Mapping[str, Mapping[int, Latency]],
                       batch_sizes: Sequence[int]) -> dict[str, Any]:
    from slimforge.deploy_forms import fastest_form

    timed = {n: latency[f"{_REFERENCE_PREFIX}{n}"] for n in forms}
    best = {str(bs): fastest_form({n: lat[bs].p50_ms for n, lat in timed.items()}) for bs in batch_sizes}
    return {"forms": {n: {str(bs): asdict(lat) for bs, lat in lats.items()} for n, lats in timed.items()},
            "unavailable": dict(unavailable), "best_fp32_form": best}


def _batch_of(example: Any, batch_size: int) -> Any:
    """``example`` (a tensor, or a dict of tensors such as a text batch) repeated to ``batch_size`` rows."""
    _check_batch_fits(example, batch_size)
    if isinstance(example, dict):
        return {k: _batch_of(v, batch_size) for k, v in example.items()}
    reps = math.ceil(batch_size / example.shape[0])
    return example.repeat(reps, *([1] * (example.dim() - 1)))[:batch_size].contiguous()


def _out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in text or "out of memory" in text


def _row_bytes(example: Any) -> int:
    if isinstance(example, dict):
        return sum(_row_bytes(v) for v in example.values())
    return example[:1].numel() * example.element_size()


def machine_description() -> dict[str, Any]:
    """The CPU a measurement ran on: model name, cores, the ISA PyTorch's kernels use, torch version."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import platform

    return {"cpu": cpu or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "isa": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}


def available_memory() -> int | None:
    """Bytes of memory this machine can still hand out (Linux's MemAvailable), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _check_batch_fits(example: Any, batch_size: int) -> None:
    """A batch whose inputs alone would take more than half the free memory is one clear error, not a crash."""
    need = _row_bytes(example) * batch_size
    free = available_memory()
    if free is not None and need > free // 2:
        raise ConfigError(
            f"batch size {batch_size}: its inputs alone need {need / 2**30:.1f} GiB and this machine has "
            f"{free / 2**30:.1f} GiB free; measure smaller batch sizes (e.g. 1,32)."
        )


def _first_rows(example: Any, n: int) -> Any:
    return {k: v[:n] for k, v in example.items()} if isinstance(example, dict) else example[:n]


def choose_layout(model: nn.Module, example: torch.Tensor, threads: int = 1, repeats: int = 10) -> str:
    """"channels_last" when it runs ``model`` faster than the default layout on ``example`` (a short
    interleaved probe, medians), else "contiguous"; non-4-D inputs are always "contiguous"."""
    if not (isinstance(example, torch.Tensor) and example.dim() == 4):
        return "contiguous"
    forms, _ = build_reference_forms(model, example, ["eager", "channels_last"], threads)
    lat = measure_latency(forms, example, threads=threads, warmup=3, repeats=repeats)
    bs = int(example.shape[0])
    return "channels_last" if lat["channels_last"][bs].p50_ms < lat["eager"][bs].p50_ms else "contiguous"
