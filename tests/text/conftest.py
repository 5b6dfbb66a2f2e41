"""Tiny text fixtures built offline: a 2-layer BERT with its own WordPiece vocabulary, and a
synthetic sentiment corpus where a few words decide the label."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

POSITIVE = ["good", "great", "fun", "lovely", "superb", "moving"]
NEGATIVE = ["bad", "awful", "boring", "dull", "poor", "tedious"]
FILLER = ["the", "film", "was", "a", "story", "and", "it", "plot", "actors", "this", "movie", "very", "quite", "really"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_corpus(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` (text, label) pairs: label 1 when the text holds more positive than negative words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        strong = POSITIVE if label else NEGATIVE
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 12))] + [rng.choice(strong) for _ in range(rng.randint(1, 2))]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_csv(path: Path, rows: list[tuple[str, object]], header: tuple[str, str] = ("text", "label"), delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def corpus_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("corpus") / "reviews.csv", make_corpus(240))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A Hugging Face model folder: BertForSequenceClassification (2 layers, hidden 32, 4 heads) + fast tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = SPECIALS + sorted(set(POSITIVE + NEGATIVE + FILLER))
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}, model_max_length=64)
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, num_labels=2, pad_token_id=0,
    )
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    return folder
