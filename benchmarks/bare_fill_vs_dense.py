"""A pruned sentence encoder's embeddings put back to their width three ways, each distilled towards the unpruned
encoder's token states for the same steps on the same batches: ``constant`` (kept features in their places, a
trainable constant in each removed one), ``mix`` (slimforge's ``OutputFill``: the constant plus a learned mix of the
kept features for each removed place, removed x kept parameters) and ``dense`` (a width x kept layer, the 0/1 map
at first, every entry trainable). All three compute the same right after pruning.

What it answers: what a model whose features are used as they are (embeddings compared with an index the unpruned
model built) gains from learning its removed features back from the kept ones, and whether the removed places'
rows suffice (a head would absorb any such layer into its own weights, so a linear probe is reported too). Reported on SST-2's dev sentences against the unpruned MiniLM-L6: the mean cosine of
each sentence's embedding (mean of token states) with the teacher's, the share of sentences whose teacher embedding
is the nearest of all 872 (an index built by the unpruned model, queried with the pruned one), and a linear probe's
accuracy (logistic regression on 2,000 training sentences' embeddings).

    PYTHONPATH=. .venv/bin/python benchmarks/bare_fill_vs_dense.py --data $SLIMFORGE_DATA/sst2 --steps 300
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import slimforge
from slimforge.prune import _output_projection as op


def sentences(path: Path, n: int | None = None) -> tuple[list[str], list[int]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = rows[:n] if n else rows
    return [r["sentence"] for r in rows], [int(r["label"]) for r in rows]


def to_dense(model: torch.nn.Module) -> None:
    """Each OutputFill replaced by the dense OutputProjection that computes the same: identity rows in the kept
    places, the mix in the removed ones, the fill as their bias."""
    for key, fill in list(model.slimforge_outputs.items()):
        dense = op.OutputProjection(fill.kept, fill.fill.shape[0], fill.targets)
        with torch.no_grad():
            dense.weight.zero_()
            dense.weight[fill.index, torch.arange(fill.kept)] = 1.0
            dense.weight[fill.removed] = fill.mix
            dense.bias.copy_(fill.fill)
            dense.bias[fill.index] = 0.0
        model.slimforge_outputs[key] = dense


def embed(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1)


def embeddings(model: torch.nn.Module, tok, texts: list[str], batch: int = 64) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            out.append(embed(model, tok(texts[i:i + batch], padding=True, truncation=True, max_length=64, return_tensors="pt")))
    return torch.cat(out)


def evaluate(model, tok, teacher_dev: torch.Tensor, dev: list[str], probe_train: tuple, dev_labels: list[int]) -> dict:
    from sklearn.linear_model import LogisticRegression

    model.eval()
    emb = embeddings(model, tok, dev)
    a, b = torch.nn.functional.normalize(emb, dim=1), torch.nn.functional.normalize(teacher_dev, dim=1)
    cosine = (a * b).sum(1).mean().item()
    nearest = (a @ b.T).argmax(1)
    recall = (nearest == torch.arange(len(dev))).float().mean().item()
    train_texts, train_labels = probe_train
    probe = LogisticRegression(max_iter=2000).fit(embeddings(model, tok, train_texts).numpy(), train_labels)
    accuracy = probe.score(emb.numpy(), dev_labels)
    return {"cosine": round(cosine, 4), "index_recall@1": round(recall, 4), "probe_accuracy": round(accuracy, 4)}


def distil(student, teacher, tok, texts: list[str], steps: int, batch: int, lr: float, seed: int) -> None:
    student.train()
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=lr)
    order = np.random.default_rng(seed).permutation(len(texts))
    for step in range(steps):
        idx = order[(step * batch) % len(order):][:batch]
        inputs = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            target = teacher(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(target.dtype)
        loss = (((student(**inputs).last_hidden_state - target) ** 2) * mask).sum() / mask.sum() / target.shape[-1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the SST-2 folder (train.tsv, dev.tsv)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    import transformers
    from slimforge.text.data import default_teacher_path

    path = default_teacher_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    teacher = transformers.AutoModel.from_pretrained(path).eval()
    train_texts, train_labels = sentences(opts.data / "train.tsv")
    dev, dev_labels = sentences(opts.data / "dev.tsv")
    probe_train = (train_texts[-2000:], train_labels[-2000:])
    distil_texts = train_texts[:-2000]
    teacher_dev = embeddings(teacher, tok, dev)

    torch.manual_seed(opts.seed)
    pruned = copy.deepcopy(teacher)
    example = tok(distil_texts[:16], padding=True, return_tensors="pt")
    slimforge.prune(pruned, example_kwargs=dict(example), ratio=opts.ratio)
    n0, n1 = (sum(p.numel() for p in m.parameters()) for m in (teacher, pruned))
    dense, constant = copy.deepcopy(pruned), copy.deepcopy(pruned)
    to_dense(dense)
    for fill in constant.slimforge_outputs.values():
        fill.mix.requires_grad_(False)  # stays zero: the constant alone
    extra = {name: sum(p.numel() for p in m.slimforge_outputs.parameters()) for name, m in (("constant", constant), ("mix", pruned), ("dense", dense))}
    extra["constant"] -= sum(f.mix.numel() for f in constant.slimforge_outputs.values())
    results = {"ratio": opts.ratio, "params_removed": round(1 - n1 / n0, 4), "output_layer_params": extra,
               "teacher": evaluate(teacher, tok, teacher_dev, dev, probe_train, dev_labels)}
    results["after pruning (all three the same)"] = evaluate(pruned, tok, teacher_dev, dev, probe_train, dev_labels)
    for name, model in (("constant", constant), ("mix", pruned), ("dense", dense)):
        start = time.perf_counter()
        distil(model, teacher, tok, distil_texts, opts.steps, opts.batch, opts.lr, opts.seed)
        results[f"{name}, distilled {opts.steps} steps"] = {**evaluate(model, tok, teacher_dev, dev, probe_train, dev_labels),
                                                            "seconds": round(time.perf_counter() - start)}
        print(name, results[f"{name}, distilled {opts.steps} steps"], flush=True)
    print(json.dumps(results, indent=1))
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
