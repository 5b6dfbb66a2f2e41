"""Hinton, Vinyals & Dean (2015), MNIST, in plain PyTorch: the yardstick for ``hinton_mnist.py``.

    python benchmarks/hinton_mnist_reference.py --data ../shared/data/mnist/mnist.npz --seeds 0,1,2 \
        [--device cuda] [--teacher-epochs 60] [--student-epochs 60] [--json results.jsonl]

No slimforge import: one file of torch, written the way a careful person would write it by hand,
with the settings of ``recipes/hinton-mnist/`` (keep the two in step; the constants below say
which recipe key each one mirrors). Per seed, in one process:

1. teacher 784-1200-1200-10: dropout 0.2 on the inputs and 0.5 on the hidden units, inputs
   jittered by up to 2 pixels (zero padding, random crop), each unit's incoming weights kept to
   L2 norm <= MAX_NORM after every step, all 60,000 training images;
2. student alone 784-800-800-10: no regularisation, the plain training images;
3. student distilled: the same student and schedule, loss = SOFT * T^2 * KL(teacher/T || student/T)
   + HARD * CE(labels), T = 20, on the teacher's outputs for the plain training images (computed
   once, in eval mode: what slimforge's teacher cache holds).

Each line printed (and appended to ``--json``) is one model: seed, role, test errors out of 10,000.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# recipes/hinton-mnist/teacher.yaml
TEACHER = {"hidden": (1200, 1200), "input_dropout": 0.2, "dropout": 0.5, "jitter": 2, "max_norm": 3.5,
           "lr": 0.03, "weight_decay": 0.0}
# recipes/hinton-mnist/student.yaml
STUDENT = {"hidden": (800, 800), "input_dropout": 0.0, "dropout": 0.0, "jitter": 0, "max_norm": None,
           "lr": 0.1, "weight_decay": 5e-4, "grad_clip": None}
# recipes/hinton-mnist/distill.yaml: the same student and optimiser; the gradient norm clipped at 5
# (slimforge distill's default, DISTILL_GRAD_CLIP: without it this loss diverges at lr 0.1)
DISTILLED = {**STUDENT, "grad_clip": 5.0}
TEMPERATURE, SOFT, HARD = 20.0, 0.9, 0.1
VERBOSE = False
BATCH, MOMENTUM = 128, 0.9  # SGD with Nesterov momentum, cosine decay to 0, per step


class MLP(nn.Module):
    def __init__(self, hidden: tuple[int, ...], input_dropout: float, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(input_dropout)]
        width = 784
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def load(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    """Images as (N, 1, 28, 28) float in [0, 255]; mean and std of the training pixels, as slimforge."""
    d = np.load(path)
    out = {k: torch.from_numpy(d[k]) for k in ("x_train", "y_train", "x_test", "y_test")}
    train = out["x_train"].float() / 255
    out["mean"], out["std"] = train.mean().item() * 255, train.std().item() * 255
    for k in ("x_train", "x_test"):
        out[k] = out[k].float().unsqueeze(1).to(device)
    for k in ("y_train", "y_test"):
        out[k] = out[k].long().to(device)
    return out


def normalise(x: torch.Tensor, data: dict) -> torch.Tensor:
    return (x - data["mean"]) / data["std"]


def jitter(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``pad`` pixels each way, filling with 0 (background)."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=gen.device)
    rows = (dy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (dx.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    channels = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    return padded[torch.arange(b, device=x.device).view(b, 1, 1, 1), channels, rows, cols]


@torch.no_grad()
def max_norm_(model: nn.Module, limit: float) -> None:
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.copy_(torch.renorm(m.weight, 2, 0, limit))


def fit(model: nn.Module, data: dict, settings: dict, epochs: int, seed: int, soft_targets: torch.Tensor | None = None) -> float:
    """Train in place; returns seconds. With ``soft_targets`` (N, 10 teacher logits) the loss is Hinton's."""
    device = data["x_train"].device
    gen = torch.Generator(device=device).manual_seed(seed)
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": settings["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
                          lr=settings["lr"], momentum=MOMENTUM, nesterov=True)
    n = len(data["y_train"])
    steps = epochs * math.ceil(n / BATCH)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps))))
    started = time.perf_counter()
    model.train()
    loss = torch.zeros(())  # the last batch's loss, printed after each epoch
    for epoch in range(epochs):
        if VERBOSE and epoch:
            print(f"  epoch {epoch}: last loss {loss.item():.4f}, test errors {test_errors(model, data)}", flush=True)
            model.train()
        order = torch.randperm(n, generator=gen, device=device)
        for i in range(0, n, BATCH):
            idx = order[i : i + BATCH]
            x = data["x_train"][idx]
            if settings["jitter"]:
                x = jitter(x, settings["jitter"], gen)
            logits = model(normalise(x, data))
            hard = F.cross_entropy(logits, data["y_train"][idx])
            if soft_targets is None:
                loss = hard
            else:
                t = TEMPERATURE
                soft = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(soft_targets[idx] / t, 1), reduction="batchmean") * t * t
                loss = SOFT * soft + HARD * hard
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if settings.get("grad_clip"):
                nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
            opt.step()
            sched.step()
            if settings["max_norm"]:
                max_norm_(model, settings["max_norm"])
        if not math.isfinite(loss.item()):
            raise RuntimeError("the loss became NaN")
    return time.perf_counter() - started


@torch.no_grad()
def logits_of(model: nn.Module, x: torch.Tensor, data: dict) -> torch.Tensor:
    model.eval()
    return torch.cat([model(normalise(x[i : i + 2000], data)) for i in range(0, len(x), 2000)])


def test_errors(model: nn.Module, data: dict) -> int:
    return int((logits_of(model, data["x_test"], data).argmax(1) != data["y_test"]).sum())


def run_seed(data: dict, seed: int, args: argparse.Namespace) -> list[dict]:
    rows = []

    def report(role: str, model: nn.Module, seconds: float, epochs: int) -> None:
        row = {"impl": "plain-pytorch", "seed": seed, "role": role, "epochs": epochs, "test_errors": test_errors(model, data),
               "seconds": round(seconds, 1), "device": str(data["x_train"].device), "torch": torch.__version__}
        print(json.dumps(row), flush=True)
        rows.append(row)

    saved = args.teacher_logits and args.teacher_logits.with_name(f"{args.teacher_logits.stem}-s{seed}.npy")
    if saved and saved.is_file():  # a teacher trained earlier: its outputs on the plain training images
        soft_targets = torch.from_numpy(np.load(saved)).to(data["x_train"].device)
    else:
        torch.manual_seed(seed)
        teacher = MLP(TEACHER["hidden"], TEACHER["input_dropout"], TEACHER["dropout"]).to(data["x_train"].device)
        report("teacher", teacher, fit(teacher, data, TEACHER, args.teacher_epochs, seed), args.teacher_epochs)
        soft_targets = logits_of(teacher, data["x_train"], data)
        if saved:
            np.save(saved, soft_targets.cpu().numpy())
    for role, settings, targets in (("student-alone", STUDENT, None), ("student-distilled", DISTILLED, soft_targets)):
        if role not in args.roles:
            continue
        torch.manual_seed(seed)
        student = MLP(settings["hidden"], settings["input_dropout"], settings["dropout"]).to(data["x_train"].device)
        report(role, student, fit(student, data, settings, args.student_epochs, seed, targets), args.student_epochs)
    return rows


def apply_settings(items: list[str]) -> None:
    global TEMPERATURE, SOFT, HARD
    for item in items:
        key, _, value = item.partition("=")
        role, _, name = key.partition(".")
        parsed = json.loads(value) if value[:1] in "0123456789-[n" else value
        if role == "distill":
            TEMPERATURE, SOFT, HARD = {"temperature": (parsed, SOFT, HARD), "soft": (TEMPERATURE, parsed, 1 - parsed)}[name]
        else:
            {"teacher": TEACHER, "student": STUDENT, "distilled": DISTILLED}[role][name] = parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="mnist.npz (x_train, y_train, x_test, y_test)")
    parser.add_argument("--seeds", default="0", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--teacher-epochs", type=int, default=60)
    parser.add_argument("--student-epochs", type=int, default=60)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="append one JSON line per model here")
    parser.add_argument("--teacher-logits", type=Path, default=None,
                        help="X.npy: reuse X-s<seed>.npy (the teacher's training-set logits) if there, else save them there")
    parser.add_argument("--roles", default="student-alone,student-distilled", type=lambda s: s.split(","), help="students to train")
    parser.add_argument("--set", action="append", default=[], metavar="ROLE.KEY=VALUE",
                        help="change a setting, e.g. teacher.lr=0.05 distilled.grad_clip=null distill.temperature=8 (exploration only)")
    parser.add_argument("--verbose", action="store_true", help="test errors after every epoch")
    args = parser.parse_args()
    apply_settings(args.set)
    global VERBOSE
    VERBOSE = args.verbose
    torch.set_num_threads(args.threads)
    data = load(args.data, torch.device(args.device))
    for seed in args.seeds:
        for row in run_seed(data, seed, args):
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
