"""Classify texts with a run folder alone: its model (fp32 or int8), tokenizer and class names.

    for p in slimforge.text.predict("runs/sst2-minilm", ["a gripping, funny film"]):
        print(p.label, p.probabilities)

Texts longer than the tokenizer's ``max_length`` are truncated (``Prediction.truncated``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from slimforge import artifacts
from slimforge.errors import ArtifactError, DataError
from slimforge.loading import load
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
    model = load_quantized(folder) if is_quantized_artifact(folder) else load(folder)
    tokenizer = load_tokenizer(folder)
    check_tokenizer_fits(folder, model, tokenizer.vocab_size, tokenizer.pad_id)
    return model, tokenizer, read_labels(folder)


def read_labels(folder: str | Path) -> list[str] | None:
    """The class names in ``folder/labels.json`` (None when there is none), checked: an object whose
    ``classes`` is a list of distinct strings."""
    path = Path(folder) / LABELS_FILE
    if not path.exists():
        return None
    data = artifacts.read_json(path)
    classes = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ArtifactError(f"{path}: 'classes' must be a non-empty list of class names (strings); found {classes!r}.")
    if len(set(classes)) != len(classes):
        twice = next(c for c in classes if classes.count(c) > 1)
        raise ArtifactError(f"{path}: class {twice!r} is listed twice; each class index needs its own name.")
    return classes


def check_tokenizer_fits(folder: str | Path, model: Any, vocab_size: int, pad_id: int) -> None:
    """Refuse a tokenizer whose ids the model cannot embed (a token id >= the model's vocabulary
    would index past its embedding table)."""
    expected = _model_vocab_size(Path(folder), model)
    if expected is not None and (vocab_size > expected or pad_id >= expected):
        raise ArtifactError(
            f"{Path(folder) / 'tokenizer'} has {vocab_size} tokens (pad id {pad_id}), but the model in {folder} embeds "
            f"only {expected} ids; the tokenizer is not the one the model was trained with."
        )


def _model_vocab_size(folder: Path, model: Any) -> int | None:
    if (folder / artifacts.STRUCTURE_FILE).is_file():
        size = artifacts.read_spec(folder).kwargs.get("vocab_size")
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) else None


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
        if classes is not None and len(classes) != probs.shape[-1]:
            raise ArtifactError(f"{Path(run) / LABELS_FILE} names {len(classes)} classes, but the model in {run} predicts {probs.shape[-1]}.")
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
