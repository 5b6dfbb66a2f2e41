"""Transfer sets for distillation: new texts made from the training texts, labelled by the teacher.

Tang et al. (2019, "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks")
distil a BERT teacher into a BiLSTM on the training set plus ~20 perturbed copies of each
sentence. The perturbations need no labels, because the teacher supplies the targets:

* masking: each word becomes the teacher's mask token with probability ``p_mask``;
* swapping: each word becomes a word drawn from the corpus's unigram distribution with
  probability ``p_swap`` (the paper draws a word of the same part of speech; no tagger is
  assumed here, so the draw is over all words);
* n-gram sampling: with probability ``p_ngram`` the copy is cut to a random span of 1 to
  ``max_ngram`` words.

Texts are split on whitespace (SST-2 and most classification sets are already tokenised that
way). The result is deterministic for a given ``seed``, so a teacher cache built on it can be
reused by every student and every epoch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimforge.errors import ConfigError
from slimforge.text.data import TextDataset


@dataclass(frozen=True)
class AugmentConfig:
    """How many copies per text and how each is perturbed (Tang et al.'s defaults)."""

    copies: int = 20
    p_mask: float = 0.1
    p_swap: float = 0.1
    p_ngram: float = 0.25
    max_ngram: int = 5
    mask_token: str = "[MASK]"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise ConfigError(f"augment.copies must be >= 0, got {self.copies}.")
        for key in ("p_mask", "p_swap", "p_ngram"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"augment.{key} must be in [0, 1], got {getattr(self, key)!r}.")
        if self.max_ngram < 1:
            raise ConfigError(f"augment.max_ngram must be >= 1, got {self.max_ngram}.")


def augment_texts(texts: Sequence[str], config: AugmentConfig = AugmentConfig()) -> list[str]:
    """Up to ``config.copies`` perturbed copies of each text, in order, without duplicates.

    A copy equal to an original text or to an earlier copy is dropped (so fewer than
    ``copies * len(texts)`` may come back); ``copies`` tries are made per text.
    """
    rng = random.Random(config.seed)
    words = [t.split() for t in texts]
    corpus = [w for ws in words for w in ws]
    if config.p_swap and not corpus:
        raise ConfigError("Cannot augment: the texts contain no words.")
    seen = set(texts)
    out: list[str] = []
    for ws in words:
        if not ws:
            continue
        for _ in range(config.copies):
            text = " ".join(perturb(ws, corpus, config, rng))
            if text and text not in seen:
                seen.add(text)
                out.append(text)
    return out


def perturb(words: Sequence[str], corpus: Sequence[str], config: AugmentConfig, rng: random.Random) -> list[str]:
    """One perturbed copy of ``words``: mask or swap each word, then maybe cut to an n-gram."""
    new = []
    for w in words:
        u = rng.random()
        if u < config.p_mask:
            new.append(config.mask_token)
        elif u < config.p_mask + config.p_swap:
            new.append(rng.choice(corpus))
        else:
            new.append(w)
    if len(new) > 1 and rng.random() < config.p_ngram:
        n = rng.randint(1, min(config.max_ngram, len(new)))
        start = rng.randrange(len(new) - n + 1)
        new = new[start : start + n]
    return new


def transfer_split(data: Any, config: AugmentConfig = AugmentConfig()) -> tuple[TextDataset, int]:
    """The training split followed by its augmented copies, tokenised like it: ``(dataset, n_original)``.

    data: :class:`~slimforge.text.data.TextDataSplits`. The copies carry label 0 until the
    teacher labels them (:func:`label_copies`); distil them with ``hard_weight=0`` or after
    labelling. The mask token is the tokenizer's own (``[MASK]`` for BERT-family ones).
    """
    texts, labels = data.raw["train"]
    mask = getattr(getattr(data.tokenizer, "tokenizer", None), "mask_token", None) or config.mask_token
    copies = augment_texts(texts, replace(config, mask_token=mask))
    train = data.train
    ids = [train.tokens[o : o + n].tolist() for o, n in zip(train.offsets.tolist(), train.lengths.tolist())]
    dataset = TextDataset(ids + data.tokenizer.encode(copies), train.labels.tolist() + [0] * len(copies), train.pad_id)
    return dataset, len(train)


def label_copies(dataset: TextDataset, n_original: int, teacher_logits: Any) -> None:
    """Give the copies (rows ``n_original:``) the teacher's predicted class as their label.

    teacher_logits: (len(dataset), classes) array or tensor (a teacher cache holds one).
    """
    logits = torch.as_tensor(np.array(teacher_logits[n_original:]))  # a copy: caches are read-only memory maps
    if logits.shape[0] != len(dataset) - n_original:
        raise ConfigError(f"{logits.shape[0]} teacher outputs for {len(dataset) - n_original} augmented texts.")
    dataset.labels[n_original:] = logits.argmax(-1)


def save_transfer(dataset: TextDataset, n_original: int, path: str | Path) -> Path:
    """Write a transfer split (tokens, lengths, labels, the number of originals) to a safetensors file."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tensors = {"tokens": dataset.tokens.to(torch.int32), "lengths": dataset.lengths.to(torch.int32), "labels": dataset.labels.to(torch.int32)}
    save_file(tensors, str(tmp), metadata={"n_original": str(n_original), "pad_id": str(dataset.pad_id)})
    tmp.replace(path)
    return path


def load_transfer(path: str | Path) -> tuple[TextDataset, int]:
    """Read what :func:`save_transfer` wrote: ``(dataset, n_original)``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in ("tokens", "lengths", "labels")}
        n_original, pad_id = int(meta["n_original"]), int(meta["pad_id"])
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ConfigError(f"{path} is not a transfer split written by save_transfer: {exc}") from None
    return TextDataset.from_flat(tensors["tokens"], tensors["lengths"], tensors["labels"], pad_id), n_original


__all__ = ["AugmentConfig", "augment_texts", "label_copies", "load_transfer", "perturb", "save_transfer", "transfer_split"]
