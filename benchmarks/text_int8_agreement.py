"""How many predictions dynamic int8 changes, per-channel against per-tensor weights, on SST-2's val and dev.

    python benchmarks/text_int8_agreement.py RUN     # RUN: a fine-tuned hf-text-classifier run folder

Accuracy differences of a few tenths of a point on 872 dev sentences are a handful of
sentences; the count of changed predictions (int8 against fp32) is the steadier measure.
Uses the split of ``benchmarks/nlp_sst2.py`` (max length 64, 2% of the training phrases as val)
and 2 threads.
"""

import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import slimforge  # noqa: E402
from slimforge.data import load_dataset  # noqa: E402
from slimforge.text.data import default_teacher_path  # noqa: E402
from slimforge.text.quantize import dynamic_int8  # noqa: E402
from slimforge.train import evaluate  # noqa: E402


def predictions(model, split, batch_size: int = 128) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(split), batch_size):
            batch = split.__getitems__(list(range(i, min(i + batch_size, len(split)))))
            out.append(model(batch[0]).argmax(1))
    return torch.cat(out)


def main(run: str) -> None:
    torch.set_num_threads(2)
    model = slimforge.load(run).eval()
    data = load_dataset("sst2", tokenizer=str(default_teacher_path()), max_length=64, val_fraction=0.02)
    variants = {"int8 per-channel": dynamic_int8(model), "int8 per-tensor": dynamic_int8(model, per_channel=False)}
    for name, q in (("fp32", model), *variants.items()):
        print(name, "val accuracy", evaluate(q, data.val, batch_size=128, device="cpu")["accuracy"])
    for split_name in ("val", "test"):
        split = getattr(data, split_name)
        reference = predictions(model, split)
        for name, q in variants.items():
            changed = int((predictions(q, split) != reference).sum())
            print(f"{split_name} {name}: {changed} of {len(split)} predictions changed")


if __name__ == "__main__":
    main(sys.argv[1])
