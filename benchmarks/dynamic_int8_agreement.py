"""How far dynamic int8 moves a model from fp32: accuracy, changed predictions and logit error on val and test.

    python benchmarks/dynamic_int8_agreement.py RUN                      # a fine-tuned MiniLM (SST-2)
    python benchmarks/dynamic_int8_agreement.py RUN --data fashion-mnist # a reference MLP

Variants: slimforge's torch-dynamic backend (per-channel and per-tensor weights), torch.ao's
stock dynamic Linear (which narrows activations to 7 bits), 8-bit weights and activations
(what saturates int16 sums on CPUs without VNNI), ONNX Runtime dynamic int8, and both backends
with SmoothQuant (``--smooth-alpha``, ranges measured on 8 x 64 training examples). The range
settings are those of a CPU without VNNI (``reduce_range=True``) unless ``--full-range``.
Accuracy differences of a few tenths of a point on 872 SST-2 dev sentences are a handful of
sentences; the changed predictions and the logit error are the steadier measures. SST-2 uses
the split of ``benchmarks/nlp_sst2.py`` (max length 64, 2% of the training phrases as val).
"""

import argparse
import copy
import dataclasses
import os
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import slimforge  # noqa: E402
from slimforge.data import load_dataset  # noqa: E402
from slimforge.quantize import QuantizeConfig, quantize  # noqa: E402
from slimforge.text.data import default_teacher_path  # noqa: E402
from slimforge.text.quantize import dynamic_int8  # noqa: E402


def logits(model, split, batch_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (n, classes), true labels (n,)) over ``split``."""
    out, labels = [], []
    with torch.no_grad():
        for i in range(0, len(split), batch_size):
            batch = split.__getitems__(list(range(i, min(i + batch_size, len(split)))))
            out.append(model(batch[0]).float())
            labels.append(batch[1])
    return torch.cat(out), torch.cat(labels)


def torch_ao_stock(model: torch.nn.Module) -> torch.nn.Module:
    """torch.ao's own dynamic int8: per-channel 8-bit weights, activations narrowed to 7 bits."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    return quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a trained run folder (hf-text-classifier on SST-2, or a Fashion-MNIST model)")
    p.add_argument("--data", default="sst2", choices=["sst2", "fashion-mnist"])
    p.add_argument("--full-range", action="store_true", help="8-bit settings, as on a CPU with VNNI")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--smooth-alpha", type=float, nargs="*", default=[0.8], help="SmoothQuant variants (calibrated on the train split)")
    p.add_argument("--calib-batches", type=int, default=8, help="SmoothQuant: batches of 64 training examples")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = slimforge.load(args.run).eval()
    options = {"tokenizer": str(default_teacher_path()), "max_length": 64, "val_fraction": 0.02} if args.data == "sst2" else {}
    data = load_dataset(args.data, **options)
    narrow = not args.full_range
    example = data.val.__getitems__(list(range(32)))
    onnxruntime = QuantizeConfig(backend="onnxruntime", mode="dynamic", calib_batches=1, threads=args.threads, reduce_range=narrow)
    torch_dynamic = QuantizeConfig(backend="torch-dynamic", mode="dynamic", calib_batches=1, reduce_range=narrow)
    variants = {
        "torch-dynamic per-channel": dynamic_int8(model, reduce_range=narrow),
        "torch-dynamic per-tensor": dynamic_int8(model, per_channel=False, reduce_range=narrow),
        "torch.ao stock (7-bit activations)": torch_ao_stock(model),
        "8-bit weights and activations": dynamic_int8(model, reduce_range=False),
        "onnxruntime": quantize(model, [example], onnxruntime).quantized,
    }
    calibration = [data.train.__getitems__(list(range(i * 64, (i + 1) * 64))) for i in range(args.calib_batches)]
    for alpha in args.smooth_alpha:
        for backend, config in (("torch-dynamic", torch_dynamic), ("onnxruntime", onnxruntime)):
            smooth = dataclasses.replace(config, smooth_alpha=alpha, calib_batches=len(calibration))
            variants[f"{backend} + SmoothQuant {alpha}"] = quantize(model, calibration, smooth).quantized
    for split_name in ("val", "test"):
        split = getattr(data, split_name)
        reference, labels = logits(model, split)
        print(f"{split_name} fp32: accuracy {(reference.argmax(1) == labels).float().mean().item():.4f}")
        for name, q in variants.items():
            out, _ = logits(q, split)
            changed = int((out.argmax(1) != reference.argmax(1)).sum())
            kl = torch.nn.functional.kl_div(out.log_softmax(1), reference.log_softmax(1), log_target=True, reduction="batchmean")
            print(f"{split_name} {name}: accuracy {(out.argmax(1) == labels).float().mean().item():.4f}, "
                  f"{changed} of {len(split)} predictions changed, mean |logit - fp32| {(out - reference).abs().mean().item():.4f}, "
                  f"KL(fp32 || int8) {kl.item():.5f}")


if __name__ == "__main__":
    main()
