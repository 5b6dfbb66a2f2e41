"""Classify texts with a run folder alone: its model (fp32 or int8), tokenizer and class names.

    for p in slimforge.text.predict("runs/sst2-minilm", ["a gripping, funny film"]):
        print(p.label, p.probabilities)

Texts longer than the tokenizer's ``max_length`` are truncated (``Prediction.truncated``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from slimforge import artifacts
from slimforge.errors import DataError
from slimforge.text.tokenizers import load_tokenizer

LABELS_FILE = "labels.json"


@dataclass(frozen=True)
class Prediction:
    """label: the most probable class; probabilities: class -> probability; truncated: the text was cut to max_length."""

    text: str
    label: str
    probabilities: dict[str, float]
    truncated: bool = False


def load_classifier(run: str | Path) -> tuple[Any, Any, list[str] | None]:
    """(model, tokenizer, class names or None) from a run folder (``slimforge.save`` or ``save_quantized``)."""
    from slimforge.quantize import is_quantized_artifact, load_quantized

    folder = Path(run)
    model = load_quantized(folder) if is_quantized_artifact(folder) else artifacts.load(folder)
    tokenizer = load_tokenizer(folder)
    labels_path = folder / LABELS_FILE
    classes = json.loads(labels_path.read_text()).get("classes") if labels_path.is_file() else None
    return model, tokenizer, classes


@torch.no_grad()
def predict(run: str | Path, texts: str | Sequence[str], batch_size: int = 64) -> list[Prediction]:
    """Labels and class probabilities for ``texts`` from the model in ``run``."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"Text {i} is empty ({text!r}); there is nothing to classify.")
    model, tokenizer, classes = load_classifier(run)
    if hasattr(model, "eval"):
        model.eval()
    lengths = tokenizer.encode_untruncated_lengths(texts)
    out: list[Prediction] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        ids = tokenizer.encode(chunk)
        if any(len(x) == 0 for x in ids):
            bad = next(i for i, x in enumerate(ids) if len(x) == 0)
            raise DataError(f"Text {start + bad} ({chunk[bad]!r}) has no tokens the tokenizer knows how to split.")
        probs = torch.softmax(model(pad_batch(ids, tokenizer.pad_id)).float(), dim=-1)
        names = classes or [str(i) for i in range(probs.shape[-1])]
        for j, row in enumerate(probs.tolist()):
            k = max(range(len(row)), key=row.__getitem__)
            out.append(Prediction(chunk[j], names[k], dict(zip(names, row)), lengths[start + j] > tokenizer.max_length))
    return out


def pad_batch(ids: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """{"input_ids": (B, L), "attention_mask": (B, L)} padded to the longest of ``ids``."""
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[i, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def save_text_assets(folder: str | Path, tokenizer: Any, classes: Sequence[str]) -> Path:
    """Write ``tokenizer/`` and ``labels.json`` into a run folder (what ``predict`` reads)."""
    folder = Path(folder)
    tokenizer.save(folder / "tokenizer")
    artifacts.write_json(folder / LABELS_FILE, {"classes": list(classes)})
    return folder
