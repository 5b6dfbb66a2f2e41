"""Accuracy bars for int8 and SVD on Fashion-MNIST, with trained models.

    # 1. train the reference models (a GPU makes this minutes) and the SVD bar:
    python benchmarks/quantize_accuracy.py train --data DIR --out WEIGHTS_DIR
    # 2. quantize them with every backend on the CPU and measure test accuracy:
    nice python benchmarks/quantize_accuracy.py measure --data DIR --weights WEIGHTS_DIR

DIR holds the four ``*-ubyte.gz`` files of Fashion-MNIST. Training uses a small loop of its own
(SGD/cosine for resnet20, Adam for the MLPs, the whole split on the device) so that it depends on
nothing but the model registry; weights are written as safetensors.

SVD bar: mlp-1200 trained, factorised to half its parameters (``target_ratio=0.5``), then
fine-tuned for 2 epochs; the accuracy before and after is printed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimforge.models import create_model

MEAN, STD = 0.2860, 0.3530
MODELS = {
    "resnet20": dict(name="resnet20", num_classes=10, in_channels=1),
    "mlp-800": dict(name="mlp-800", num_classes=10, in_channels=1),
    "mlp-1200": dict(name="mlp-1200", num_classes=10, in_channels=1),
}


def load_fashion(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (n, 1, 28, 28) normalised float32; y: (n,) int64."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    x = (torch.from_numpy(images.copy()).float() / 255 - MEAN) / STD
    return x, torch.from_numpy(labels.copy()).long()


def batches(x: torch.Tensor, y: torch.Tensor, size: int, shuffle: bool, gen: torch.Generator | None = None):
    order = torch.randperm(len(x), generator=gen, device="cpu").to(x.device) if shuffle else torch.arange(len(x), device=x.device)
    for i in range(0, len(x), size):
        idx = order[i : i + size]
        yield x[idx], y[idx]


@torch.no_grad()
def test_accuracy(model, x: torch.Tensor, y: torch.Tensor, size: int = 500) -> float:
    if isinstance(model, nn.Module):
        model.eval()
    correct = sum((model(xb).argmax(1) == yb).sum().item() for xb, yb in batches(x, y, size, False))
    return correct / len(x)


def augment(x: torch.Tensor) -> torch.Tensor:
    """Random horizontal flip and a random shift of up to 2 pixels (reflect-padded crop)."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    i, j = np.random.randint(0, 5, size=2)
    return padded[:, :, i : i + 28, j : j + 28]


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, cnn: bool, lr: float | None = None) -> None:
    steps = epochs * ((len(x) + 127) // 128)
    if cnn:
        opt = torch.optim.SGD(model.parameters(), lr=lr or 0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr or 1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=steps, pct_start=0.15)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for xb, yb in batches(x, y, 128, True, gen):
            if cnn:
                xb = augment(xb)
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            sched.step()


def train(args: argparse.Namespace) -> None:
    from safetensors.torch import save_file

    from slimforge.factorize import FactorizeConfig, factorize

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    np.random.seed(0)
    xtr, ytr = (t[: args.limit or None].to(device) for t in load_fashion(Path(args.data), "train"))
    xte, yte = (t[: args.limit or None].to(device) for t in load_fashion(Path(args.data), "test"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__}
    for key in args.models:
        epochs = args.cnn_epochs if key == "resnet20" else args.mlp_epochs
        spec = dict(MODELS[key])
        model = create_model(spec.pop("name"), **spec).to(device)
        start = time.time()
        n = args.cnn_samples if key == "resnet20" and args.cnn_samples else len(xtr)
        fit(model, xtr[:n], ytr[:n], epochs, cnn=key == "resnet20")
        report[key] = {"epochs": epochs, "train_samples": n, "test_accuracy": test_accuracy(model, xte, yte), "seconds": round(time.time() - start, 1)}
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / f"{key}.safetensors"))
        print(key, report[key], flush=True)
        if key == "mlp-1200":
            # The SVD bar: half the parameters, 2 fine-tuning epochs.
            result = factorize(model, FactorizeConfig(target_ratio=0.5, include_conv=False))
            before = test_accuracy(model, xte, yte)
            fit(model, xtr, ytr, 2, cnn=False, lr=3e-4)
            report["mlp-1200-svd"] = {
                **result.to_json(),
                "accuracy_after_factorize": before,
                "accuracy_after_2_epochs": test_accuracy(model, xte, yte),
                "fp32_accuracy": report[key]["test_accuracy"],
            }
            print("mlp-1200-svd", report["mlp-1200-svd"], flush=True)
    (out / f"train_report-{'-'.join(args.models)}.json").write_text(json.dumps(report, indent=2))


def measure(args: argparse.Namespace) -> None:
    from safetensors.torch import load_file

    from slimforge.quantize import QuantizeConfig, quantize

    torch.set_num_threads(args.threads)
    xtr, ytr = load_fashion(Path(args.data), "train")
    xte, yte = load_fashion(Path(args.data), "test")
    gen = torch.Generator().manual_seed(0)
    calibration = [xb for xb, _ in batches(xtr, ytr, 32, True, gen)][: args.calib_batches]
    rows = []
    for key in args.models:
        spec = dict(MODELS[key])
        model = create_model(spec.pop("name"), **spec)
        model.load_state_dict(load_file(str(Path(args.weights) / f"{key}.safetensors")))
        fp32 = test_accuracy(model, xte, yte)
        for backend in args.backends:
            for first_last in (False, True):
                config = QuantizeConfig(backend=backend, calib_batches=args.calib_batches, fp32_first_last=first_last)
                result = quantize(model, calibration, config)
                int8 = test_accuracy(result.quantized, xte, yte)
                row = {
                    "model": key, "backend": backend, "mode": result.info["mode"], "fp32_first_last": first_last,
                    "fp32_accuracy": fp32, "int8_accuracy": int8, "drop_points": round(100 * (fp32 - int8), 2),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--cnn-epochs", type=int, default=15)
    t.add_argument("--mlp-epochs", type=int, default=15)
    t.add_argument("--cnn-samples", type=int, default=0, help="train resnet20 on the first N samples only (CPU budget)")
    t.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    t.add_argument("--limit", type=int, default=0, help="use only the first N samples of each split (smoke test)")
    m = sub.add_parser("measure")
    m.add_argument("--data", required=True)
    m.add_argument("--weights", required=True)
    m.add_argument("--models", nargs="+", default=["resnet20", "mlp-800"], choices=list(MODELS))
    m.add_argument("--backends", nargs="+", default=["onnxruntime", "torch"])
    m.add_argument("--calib-batches", type=int, default=32)
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--json", default="")
    args = p.parse_args()
    train(args) if args.command == "train" else measure(args)


if __name__ == "__main__":
    main()
