"""Transfer-set augmentation (Tang et al. 2019): perturbed copies, tokenised and labelled by a teacher."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from slimforge.data import load_dataset
from slimforge.errors import ConfigError, DataError
from slimforge.text.augment import AugmentConfig, augment_texts, label_copies, load_transfer, perturb, save_transfer, transfer_split
from slimforge.text.data import TextDataset

TEXTS = ["a superb and lovely film", "awful tedious plot", "the movie was really quite dull", "fun"]


def test_copies_are_deterministic_new_and_made_of_the_corpus_words():
    config = AugmentConfig(copies=10, seed=3)
    copies = augment_texts(TEXTS, config)
    assert copies == augment_texts(TEXTS, config)
    assert copies != augment_texts(TEXTS, AugmentConfig(copies=10, seed=4))
    assert len(copies) == len(set(copies)) and not set(copies) & set(TEXTS)  # no duplicates, no originals
    assert 0 < len(copies) <= 10 * len(TEXTS)
    vocabulary = {w for t in TEXTS for w in t.split()} | {"[MASK]"}
    assert all(set(c.split()) <= vocabulary for c in copies)
    assert any("[MASK]" in c for c in copies)


def test_each_perturbation_alone_does_what_it_says():
    words = "one two three four five six seven eight".split()
    rng = random.Random(0)
    masked = perturb(words, words, AugmentConfig(p_mask=1.0, p_swap=0.0, p_ngram=0.0, mask_token="<m>"), rng)
    assert masked == ["<m>"] * len(words)
    swapped = perturb(words, ["x"], AugmentConfig(p_mask=0.0, p_swap=1.0, p_ngram=0.0), rng)
    assert swapped == ["x"] * len(words)
    for _ in range(50):  # an n-gram is a contiguous span of 1..max_ngram words
        cut = perturb(words, words, AugmentConfig(p_mask=0.0, p_swap=0.0, p_ngram=1.0, max_ngram=3), rng)
        assert 1 <= len(cut) <= 3 and " ".join(cut) in " ".join(words)


@pytest.mark.parametrize("bad", [{"copies": -1}, {"p_mask": 1.5}, {"p_ngram": -0.1}, {"max_ngram": 0}])
def test_bad_settings_are_named(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        AugmentConfig(**bad)


def test_transfer_split_keeps_the_originals_first_and_round_trips_through_safetensors(corpus_csv, tmp_path):
    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer="vocab", max_length=32)
    dataset, n = transfer_split(data, AugmentConfig(copies=3))
    assert n == len(data.train) and len(dataset) > n
    first, _, _ = dataset.__getitems__(list(range(n)))
    original, _, _ = data.train.__getitems__(list(range(n)))
    assert torch.equal(first["input_ids"], original["input_ids"])
    assert torch.equal(dataset.labels[:n], data.train.labels)

    logits = np.zeros((len(dataset), 2), dtype=np.float32)
    logits[n:, 1] = 1.0  # the "teacher" says class 1 for every copy
    label_copies(dataset, n, logits)
    assert dataset.labels[n:].eq(1).all() and torch.equal(dataset.labels[:n], data.train.labels)
    with pytest.raises(ConfigError, match="teacher outputs"):
        label_copies(dataset, n, logits[:-1])

    path = save_transfer(dataset, n, tmp_path / "transfer.safetensors")
    again, n_again = load_transfer(path)
    assert n_again == n and len(again) == len(dataset)
    idx = [0, n - 1, n, len(dataset) - 1]
    assert torch.equal(again.__getitems__(idx)[0]["input_ids"], dataset.__getitems__(idx)[0]["input_ids"])
    assert torch.equal(again.__getitems__(idx)[1], dataset.__getitems__(idx)[1])


def test_a_file_that_is_not_a_transfer_split_is_named(tmp_path):
    bad = tmp_path / "not.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="not.safetensors"):
        load_transfer(bad)


def test_flat_text_data_that_does_not_add_up_is_refused():
    with pytest.raises(DataError, match="does not add up"):
        TextDataset.from_flat(torch.arange(5), torch.tensor([2, 2]), torch.tensor([0, 1]), 0)
    with pytest.raises(DataError, match="no tokens"):
        TextDataset.from_flat(torch.arange(2), torch.tensor([2, 0]), torch.tensor([0, 1]), 0)


def test_distil_on_a_transfer_set_with_embeddings_from_the_teacher(corpus_csv, tiny_bert_dir, tmp_path):
    import slimforge
    from slimforge.distill import DistillConfig
    from slimforge.distill import run as distill
    from slimforge.models import create_model
    from slimforge.train import TrainConfig

    fast = TrainConfig(epochs=3, batch_size=16, optimizer="adamw", lr=1e-2, weight_decay=0.0, quiet=True, num_threads=1)
    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer=str(tiny_bert_dir))
    teacher = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir))
    slimforge.train(teacher, data, fast, tmp_path / "teacher")
    table = slimforge.load(tmp_path / "teacher").hf.get_input_embeddings().weight.detach()
    student = create_model("text-bilstm", **data.info.model_kwargs(), emb_dim=table.shape[1], hidden=16)
    config = DistillConfig(loss="mse", hard_weight=0.0, augment_copies=3, init_embeddings=True, soft_weight=1.0)
    calls = []
    original = torch.nn.Embedding.forward

    def spy(self, ids):  # the student's first forward sees the teacher's table (rescaled), not a random one
        if self is student.embedding and torch.is_grad_enabled() and not calls:  # the first training step
            w = self.weight.detach()
            calls.append(torch.nn.functional.cosine_similarity(w[5:].flatten(), table[5:].flatten(), dim=0).item())
        return original(self, ids)

    torch.nn.Embedding.forward = spy
    try:
        result = distill(student, [tmp_path / "teacher"], data, config, fast, tmp_path / "student")
    finally:
        torch.nn.Embedding.forward = original
    assert calls and calls[0] > 0.99
    import json

    written = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert written["data"]["sizes"]["train"] > len(data.train)  # originals plus copies
    assert result.metrics["test_accuracy"] >= 0.8


def test_transfer_sets_need_text_and_the_teacher_cache(corpus_csv, tiny_bert_dir, tmp_path):
    from slimforge.distill import DistillConfig
    from slimforge.distill import run as distill
    from slimforge.models import create_model
    from slimforge.train import TrainConfig

    fast = TrainConfig(epochs=1, batch_size=16, quiet=True, num_threads=1)
    digits = load_dataset("digits")
    cnn = create_model("cnn", **digits.info.model_kwargs())
    with pytest.raises(ConfigError, match="not a text dataset"):
        distill(cnn, [cnn], digits, DistillConfig(augment_copies=2), fast, tmp_path / "a")
    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer=str(tiny_bert_dir))
    student = create_model("text-cnn", **data.info.model_kwargs(), emb_dim=8, filters=4)
    teacher = create_model("hf-text-classifier", num_classes=2, pretrained=str(tiny_bert_dir))
    with pytest.raises(ConfigError, match="needs distill.cache"):
        distill(student, [teacher], data, DistillConfig(augment_copies=2, cache=False), fast, tmp_path / "b")
    with pytest.raises(ConfigError, match="augment_copies"):
        DistillConfig(augment_copies=-1)
