"""Text datasets: file formats, padding and bucketing, and the errors bad files give."""

from __future__ import annotations

import json

import pytest
import torch
from .conftest import make_corpus, write_csv

from slimforge.data import load_dataset
from slimforge.errors import ConfigError, DataError
from slimforge.text.data import LengthBucketSampler, TextDataset
from tests.conftest import needs_shared


def test_csv_batches_are_padded_to_their_longest_text(corpus_csv):
    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer="vocab", val_fraction=0.1)
    assert len(data.train) + len(data.val) + len(data.test) == 240
    assert data.info.classes == ("0", "1") and data.info.vocab_size == 2 + 26
    inputs, targets, idx = data.train.__getitems__([0, 5, 9])
    lengths = data.train.lengths[[0, 5, 9]]
    assert inputs["input_ids"].shape == (3, int(lengths.max()))
    assert inputs["attention_mask"].sum(1).tolist() == lengths.tolist()
    assert (inputs["input_ids"][inputs["attention_mask"] == 0] == data.info.pad_id).all()
    assert idx.tolist() == [0, 5, 9] and targets.shape == (3,)
    single, y, i = data.train[5]
    assert torch.equal(single["input_ids"], inputs["input_ids"][1][: int(lengths[1])])


def test_evaluation_splits_are_stored_shortest_first(corpus_csv):
    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer="vocab")
    assert torch.equal(data.test.lengths, data.test.lengths.sort().values)


def test_hf_tokenizer_adds_special_tokens_and_truncates_long_texts(tmp_path, tiny_bert_dir):
    rows = make_corpus(40) + [(" ".join(["good"] * 200), 1)]
    path = write_csv(tmp_path / "long.csv", rows)
    data = load_dataset("text-csv", train=str(path), test=str(path), tokenizer=str(tiny_bert_dir), max_length=16)
    assert data.info.max_length == 16 and int(data.test.lengths.max()) == 16
    assert data.split["truncated"]["test"] >= 1
    ids = data.test.__getitems__([len(data.test) - 1])[0]["input_ids"][0]
    assert ids[0].item() == 2 and ids[-1].item() == 3  # [CLS] ... [SEP] kept after truncation
    # An empty batch (e.g. a transfer set with no augmented copies) encodes to nothing, not IndexError.
    assert data.tokenizer.encode([]) == [] and data.tokenizer.encode_untruncated_lengths([]) == []


def test_tsv_and_jsonl_with_named_columns(tmp_path):
    rows = make_corpus(60)
    tsv = write_csv(tmp_path / "d.tsv", rows, header=("review", "stars"), delimiter="\t")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps({"review": t, "stars": "pos" if y else "neg"}) for t, y in rows) + "\n")
    a = load_dataset("text-tsv", path=str(tsv), text_column="review", label_column="stars", tokenizer="vocab")
    b = load_dataset("jsonl", path=str(jsonl), text_column="review", label_column="stars", tokenizer="vocab")
    assert a.info.classes == ("0", "1") and b.info.classes == ("neg", "pos")
    assert torch.equal(a.test.labels, b.test.labels)


def test_csv_without_the_named_columns_says_which_are_there(corpus_csv):
    with pytest.raises(DataError, match=r"no column 'sentence'.*\['text', 'label'\].*text_column"):
        load_dataset("text-csv", path=str(corpus_csv), text_column="sentence", tokenizer="vocab")


def test_empty_text_is_an_error_naming_the_row(tmp_path):
    path = write_csv(tmp_path / "e.csv", [*make_corpus(5), ("   ", 1)])
    with pytest.raises(DataError, match="row 5 has an empty text"):
        load_dataset("text-csv", train=str(path), test=str(path), tokenizer="vocab")


def test_labels_outside_the_classes_are_an_error(tmp_path):
    path = write_csv(tmp_path / "l.csv", [("nice one", "pos"), ("bad one", "neg"), ("what", "maybe")])
    with pytest.raises(DataError, match="label 'maybe' is not one of the classes"):
        load_dataset("text-csv", train=str(path), test=str(path), classes=["neg", "pos"], tokenizer="vocab")


def test_unknown_option_and_missing_file_are_clear(corpus_csv, tmp_path):
    with pytest.raises(ConfigError, match=r"Unknown option\(s\) \['tokeniser'\] for dataset 'text-csv'.*Did you mean 'tokenizer'"):
        load_dataset("text-csv", path=str(corpus_csv), tokeniser="vocab")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("text-csv", path=str(tmp_path / "nope.csv"), tokenizer="vocab")


def test_hf_disk_without_the_datasets_package_says_how_to_install():
    pytest.importorskip("slimforge")
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="pip install datasets"):
            load_dataset("hf-disk", path="/nonexistent")
    else:
        pytest.skip("datasets is installed")


def test_length_buckets_cover_every_text_once_and_hold_similar_lengths():
    lengths = torch.randint(1, 60, (1000,), generator=torch.Generator().manual_seed(0))
    sampler = LengthBucketSampler(lengths, batch_size=32, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(1000))
    batches = sampler.batches()
    spread = torch.tensor([float(lengths[b].max() - lengths[b].min()) for b in batches]).mean()
    random_spread = torch.tensor([float(lengths[b].max() - lengths[b].min()) for b in torch.randperm(1000).split(32)]).mean()
    assert spread < random_spread / 4
    sampler.set_epoch(1)
    assert list(sampler) != order
    ranks = [set(LengthBucketSampler(lengths, 32, r, 2, seed=0)) for r in (0, 1)]
    assert not ranks[0] & ranks[1] and len(ranks[0] | ranks[1]) == 1000


def test_text_dataset_rejects_texts_without_tokens():
    with pytest.raises(DataError, match="has no tokens"):
        TextDataset([[5, 6], []], [0, 1], pad_id=0)


@needs_shared
def test_sms_spam_carves_a_seeded_test_split():
    a = load_dataset("sms-spam", tokenizer="vocab", test_fraction=0.2, max_train=200)
    b = load_dataset("sms-spam", tokenizer="vocab", test_fraction=0.2, max_train=200)
    assert a.info.classes == ("ham", "spam") and len(a.test) == round(5574 * 0.2) and len(a.train) == 200
    assert torch.equal(a.test.labels, b.test.labels) and a.split["test_indices_sha256"] == b.split["test_indices_sha256"]


@needs_shared
def test_sst2_test_split_is_the_glue_dev_set():
    data = load_dataset("sst2", tokenizer="vocab", max_train=500)
    assert len(data.test) == 872 and data.info.classes == ("negative", "positive")
    assert data.split["test_split"] == "dev" and len(data.train) == 500


def test_bucketed_batches_give_every_rank_the_same_number_of_steps():
    lengths = torch.randint(1, 60, (1000,), generator=torch.Generator().manual_seed(1))
    per_rank = [list(LengthBucketSampler(lengths, 30, r, 3, seed=0).as_batches()) for r in range(3)]  # 34 batches for 3 ranks
    assert len({len(b) for b in per_rank}) == 1  # DDP needs equal step counts, or the last collective hangs
    assert {i for batches in per_rank for b in batches for i in b} == set(range(1000))
    one = list(LengthBucketSampler(lengths, 30, seed=0).as_batches())
    assert len(one) == 34 and all(len(b) == 30 for b in one if len(b) != 1000 % 30)


def test_training_with_length_buckets_pads_less_and_still_learns(corpus_csv):
    import slimforge
    from slimforge.models import create_model
    from slimforge.train import TrainConfig

    data = load_dataset("text-csv", path=str(corpus_csv), tokenizer="vocab")
    widths = []
    original = TextDataset.__getitems__

    def spy(self, indices):
        out = original(self, indices)
        if self is data.train:
            widths.append(out[0]["input_ids"].shape[1])
        return out

    # 8 epochs: at 4, either order lands anywhere from 65% to 94% with the seed on this tiny corpus
    config = TrainConfig(epochs=8, batch_size=16, optimizer="adamw", lr=1e-2, weight_decay=0.0, quiet=True, num_threads=1)
    TextDataset.__getitems__ = spy
    try:
        plain = slimforge.train(create_model("text-cnn", **data.info.model_kwargs(), emb_dim=16, filters=8), data, config)
        plain_width, widths[:] = sum(widths) / len(widths), []
        bucketed = slimforge.train(create_model("text-cnn", **data.info.model_kwargs(), emb_dim=16, filters=8), data,
                                   config.model_copy(update={"length_buckets": True}))
    finally:
        TextDataset.__getitems__ = original
    assert sum(widths) / len(widths) < plain_width  # padded to less
    assert bucketed.metrics["test_accuracy"] >= 0.85 and plain.metrics["test_accuracy"] >= 0.85
