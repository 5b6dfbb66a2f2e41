"""Bad data at every dataset boundary is one error naming the file (and line, option or image),
never a traceback and never a silently wrong dataset (an extra class, a truncated label)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from slimforge.data import load_dataset
from slimforge.errors import ConfigError, DataError

TEXTS = ["good film", "bad film", "great fun", "awful mess", "fine movie", "poor show"] * 5


def jsonl(path: Path, last_label, lines: list[str] | None = None) -> Path:
    """30 rows labelled 0/1, the last one labelled ``last_label`` (any JSON value)."""
    labels = [i % 2 for i in range(29)] + [last_label]
    rows = lines or [json.dumps({"text": t, "label": y}) for t, y in zip(TEXTS, labels)]
    path.write_text("\n".join(rows) + "\n")
    return path


def csv(path: Path, last_label: str, raw: bytes | None = None) -> Path:
    labels = [str(i % 2) for i in range(29)] + [last_label]
    path.write_bytes(raw if raw is not None else ("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(TEXTS, labels))).encode())
    return path


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("label, expected", [
    pytest.param([1, 2], "line 30: label [1, 2] is not a class name", id="list"),
    pytest.param(1.5, "line 30: label 1.5 is not a class index", id="fraction"),
    pytest.param(None, "line 30: label None is not a class name", id="null"),
    pytest.param(True, "line 30: label True is not a class name", id="bool"),
    pytest.param({"a": 1}, "line 30: label {'a': 1} is not a class name", id="object"),
    pytest.param("x", "the labels mix class indices (e.g. 0) and names (e.g. 'x')", id="name-among-indices"),
    pytest.param(-1, "label -1 is negative", id="negative"),
    pytest.param(10**6, "no training row has 999998 of the indices 0..1000000", id="huge-index"),
    pytest.param(3, "no training row has [2]", id="index-gap"),
])
def test_jsonl_label_that_is_not_a_class_is_refused(label, expected, tmp_path):
    path = jsonl(tmp_path / "reviews.jsonl", label)
    with pytest.raises(DataError) as error:
        load_dataset("jsonl", path=str(path), tokenizer="vocab")
    assert str(path) in str(error.value) and expected in str(error.value)


@pytest.mark.parametrize("literal, expected", [("NaN", "label nan"), ("Infinity", "label inf")])
def test_jsonl_non_finite_label_is_refused(literal, expected, tmp_path):
    rows = [json.dumps({"text": t, "label": i % 2}) for i, t in enumerate(TEXTS)] + [f'{{"text": "x y", "label": {literal}}}']
    path = jsonl(tmp_path / "r.jsonl", 0, rows)
    with pytest.raises(DataError, match=rf"r.jsonl line 31: {expected} is not a class index"):
        load_dataset("jsonl", path=str(path), tokenizer="vocab")


@pytest.mark.parametrize("label, expected", [
    pytest.param("1.5", "mix class indices (e.g. 0) and names (e.g. '1.5')", id="fraction"),
    pytest.param("", "line 31: the label is empty", id="empty"),
    pytest.param("-1", "label -1 is negative", id="negative"),
    pytest.param("99999999", "no training row has 99999997 of the indices", id="huge-index"),
])
def test_csv_label_that_is_not_a_class_is_refused(label, expected, tmp_path):
    path = csv(tmp_path / "reviews.csv", label)
    with pytest.raises(DataError) as error:
        load_dataset("text-csv", path=str(path), tokenizer="vocab")
    assert str(path) in str(error.value) and expected in str(error.value)


def test_label_outside_the_named_classes_names_the_split(tmp_path):
    path = jsonl(tmp_path / "r.jsonl", 5)
    with pytest.raises(DataError, match=r"r.jsonl (train|test) split, row \d+: label 5 is not one of the classes \['neg', 'pos'\]"):
        load_dataset("jsonl", path=str(path), tokenizer="vocab", classes=["neg", "pos"])


def test_whole_float_labels_are_class_indices(tmp_path):
    """JSON's 1.0 is the index 1, not a class named '1.0' (and not an error)."""
    data = load_dataset("jsonl", path=str(jsonl(tmp_path / "r.jsonl", 1.0)), tokenizer="vocab")
    assert data.info.classes == ("0", "1")


# ---------------------------------------------------------------- text files


LATIN1 = b"text,label\n" + b"fine,0\n" * 5 + b"caf\xe9 ok,1\n" + b"good,1\n" * 20


@pytest.mark.parametrize("dataset, name, raw, expected", [
    pytest.param("text-csv", "a.csv", LATIN1, "is not UTF-8 text: line 7, byte offset 49", id="csv-latin1"),
    pytest.param("jsonl", "a.jsonl", b'{"text": "ok", "label": 1}\n' * 3 + b'{"text": "caf\xe9", "label": 0}\n',
                 "is not UTF-8 text: line 4, byte offset 94", id="jsonl-latin1"),
    pytest.param("text-csv", "b.csv", b"text,label\nok,1\n\x00\x01PK\x03\x04", "is a binary file, not text (a NUL byte at line 3, byte offset 16)",
                 id="binary"),
    pytest.param("text-csv", "c.csv", b"", "is empty", id="empty"),
    pytest.param("jsonl", "d.jsonl", b'{"text": 5, "label": 1}\n', "line 1: 'text' must be a string (the text), not 5", id="text-not-string"),
    pytest.param("jsonl", "e.jsonl", b'{"text": "a", "label": 1}\n[1, 2]\n', "line 2: no key 'text', 'label'", id="row-not-object"),
])
def test_unreadable_text_file_names_file_and_place(dataset, name, raw, expected, tmp_path):
    path = tmp_path / name
    path.write_bytes(raw)
    with pytest.raises(DataError) as error:
        load_dataset(dataset, path=str(path), tokenizer="vocab")
    assert str(path) in str(error.value) and expected in str(error.value)


def test_sms_spam_file_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "SMSSpamCollection"
    path.write_bytes(b"ham\tsee you there\n" * 10 + b"spam\tcaf\xe9 prize\n")
    with pytest.raises(DataError, match=r"SMSSpamCollection is not UTF-8 text: line 11, byte offset 188"):
        load_dataset("sms-spam", root=str(path), tokenizer="vocab")


def test_folder_given_as_a_data_file_is_named(tmp_path):
    with pytest.raises(DataError, match=rf"Data file {tmp_path} is a folder"):
        load_dataset("text-csv", path=str(tmp_path), tokenizer="vocab")


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("dataset, options, expected", [
    pytest.param("digits", {"foo": 1}, "Unknown option 'foo' for dataset 'digits'", id="digits-unknown"),
    pytest.param("digits", {"val_fraction": "x"}, "option 'val_fraction' must be a number, not 'x'", id="digits-val-fraction-type"),
    pytest.param("digits", {"val_fraction": 1.5}, "option 'val_fraction' must be in [0.0, 1.0), not 1.5", id="digits-val-fraction-range"),
    pytest.param("digits", {"augment": "no"}, "option 'augment' must be true or false, not 'no'", id="digits-augment-type"),
    pytest.param("digits", {"test_fraction": 0.0}, "option 'test_fraction' must be in (0.0, 1.0), not 0.0", id="digits-empty-test"),
    pytest.param("digits", {"split_seed": 1.5}, "option 'split_seed' must be an integer, not 1.5", id="digits-seed-type"),
    pytest.param("cifar10", {"foo": 1}, "Unknown option 'foo' for dataset 'cifar10'", id="cifar-unknown"),
    pytest.param("image-folder", {"root": ".", "image_size": 0}, "option 'image_size' must be in [1, 4096], not 0", id="image-size-zero"),
    pytest.param("image-folder", {"root": ".", "image_size": "8"}, "option 'image_size' must be an integer, not '8'", id="image-size-type"),
    pytest.param("image-folder", {"root": ".", "image_size": 10**5}, "option 'image_size' must be in [1, 4096]", id="image-size-huge"),
])
def test_bad_image_dataset_option_is_a_config_error(dataset, options, expected):
    with pytest.raises(ConfigError) as error:
        load_dataset(dataset, **options)
    assert expected in str(error.value)


@pytest.mark.parametrize("options, expected", [
    pytest.param({"foo": 1}, "Unknown option(s) ['foo'] for dataset 'text-csv'", id="unknown"),
    pytest.param({"max_length": 0}, "option 'max_length' must be in [1, 65536], not 0", id="max-length-zero"),
    pytest.param({"max_length": "x"}, "option 'max_length' must be an integer, not 'x'", id="max-length-type"),
    pytest.param({"vocab_size": -1}, "option 'vocab_size' must be in [3, 10000000], not -1", id="vocab-size"),
    pytest.param({"max_train": 0}, "option 'max_train' must be >= 1, not 0", id="max-train"),
    pytest.param({"test_fraction": 1.0}, "option 'test_fraction' must be in (0.0, 1.0), not 1.0", id="test-fraction"),
    pytest.param({"tokenizer": 5}, "option 'tokenizer' must be 'vocab', a tokenizer folder or a tokenizer, not 5", id="tokenizer-type"),
    pytest.param({"classes": "ab"}, "option 'classes' must be a list of class names, not 'ab'", id="classes-string"),
    pytest.param({"classes": ["a", "a"]}, "option 'classes' must name at least two distinct classes", id="classes-duplicate"),
    pytest.param({"classes": ["a", None]}, "option 'classes' holds None", id="classes-null"),
])
def test_bad_text_dataset_option_is_a_config_error(options, expected, tmp_path):
    path = csv(tmp_path / "r.csv", "1")
    with pytest.raises(ConfigError) as error:
        load_dataset("text-csv", path=str(path), **{"tokenizer": "vocab", **options})
    assert expected in str(error.value)


def test_a_single_class_is_refused(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("text,label\n" + "good film,0\n" * 30)
    with pytest.raises(DataError, match="'text-csv' has only 1 class"):
        load_dataset("text-csv", path=str(path), tokenizer="vocab")


# ---------------------------------------------------------------- image folders


def png(path: Path, size: tuple[int, int] = (6, 6), value: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)
    return path


def claimed_size_png(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb's header."""
    data = bytearray(png(path).read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[ihdr + 17 : ihdr + 21] = zlib.crc32(bytes(data[ihdr : ihdr + 17])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def image_tree(root: Path, train: dict[str, int], test: dict[str, int] | None = None) -> Path:
    for split, classes in (("train", train), ("test", test or {})):
        for cls, n in classes.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                png(root / split / cls / f"{i}.png", value=20 * i)
    return root


def truncated_png(path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


@pytest.mark.parametrize("make, expected", [
    pytest.param(lambda r: claimed_size_png(r / "train/a/bomb.png", 20_000, 20_000), "train/a/bomb.png: refused as a decompression bomb",
                 id="bomb-error"),
    pytest.param(lambda r: claimed_size_png(r / "train/a/bomb.png", 10_000, 10_000), "train/a/bomb.png: refused as a decompression bomb",
                 id="bomb-warning"),
    pytest.param(lambda r: truncated_png(r / "train/a/cut.png"), "train/a/cut.png: not a readable image", id="truncated"),
    pytest.param(lambda r: (r / "train/a/notes.txt").write_text("hello"), "train/a/notes.txt: not a readable image", id="not-an-image"),
    pytest.param(lambda r: (r / "train/a/nested").mkdir(), "train/a/nested is a folder inside a class folder", id="nested-folder"),
    pytest.param(lambda r: (r / "train/c").mkdir(), "train/c: the class folder is empty", id="empty-class"),
    pytest.param(lambda r: png(r / "test/c/0.png"), "test: its class folders are not the training classes (missing [], extra ['c'])",
                 id="test-extra-class"),
    pytest.param(lambda r: [p.unlink() for p in (r / "test/b").iterdir()] and (r / "test/b").rmdir(),
                 "test: its class folders are not the training classes (missing ['b'], extra [])", id="test-missing-class"),
])
def test_bad_image_folder_is_named(make, expected, tmp_path):
    root = image_tree(tmp_path / "images", {"a": 3, "b": 3}, {"a": 2, "b": 2})
    make(root)
    with pytest.raises(DataError) as error:
        load_dataset("image-folder", root=str(root), image_size=8)
    assert expected in str(error.value) and str(root) in str(error.value)


def test_hidden_files_in_class_folders_are_skipped(tmp_path):
    root = image_tree(tmp_path / "images", {"a": 3, "b": 3}, {"a": 2, "b": 2})
    (root / "train/a/.DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    data = load_dataset("image-folder", root=str(root), image_size=8)
    assert len(data.train) + len(data.val) == 6 and data.info.classes == ("a", "b")


# ---------------------------------------------------------------- image arrays (mnist npz)


def npz(path: Path, **changes) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 255, (40, 8, 8), dtype=np.uint8), "y_train": np.arange(40) % 10,
              "x_test": rng.integers(0, 255, (20, 8, 8), dtype=np.uint8), "y_test": np.arange(20) % 10}
    np.savez(path, **{**arrays, **changes})
    return path


@pytest.mark.parametrize("changes, expected", [
    pytest.param({"y_train": np.arange(40) % 10 + 0.5}, "train labels must be class indices (whole numbers); found 0.5", id="fraction-labels"),
    pytest.param({"y_train": np.arange(40) % 10 - 1}, "train label -1 (image 0) is not a class index 0..9", id="negative-label"),
    pytest.param({"y_test": np.arange(20) % 13}, "test label 10 (image 10) is not a class index 0..9", id="label-out-of-range"),
    pytest.param({"y_train": np.zeros((40, 2), np.int64)}, "40 train images but labels of shape (40, 2)", id="labels-2d"),
    pytest.param({"y_train": np.arange(30) % 10}, "40 train images but labels of shape (30,)", id="labels-short"),
    pytest.param({"x_train": np.full((40, 8, 8), np.nan, np.float32)}, "train images hold NaN or infinite values", id="nan-images"),
    pytest.param({"x_train": np.zeros((40, 1, 8, 8), np.uint8)}, "x_train has shape (40, 1, 8, 8)", id="images-4d"),
    pytest.param({"x_test": np.zeros((20, 9, 9), np.uint8)}, "test images are (1, 9, 9) (C, H, W) but train images are (1, 8, 8)",
                 id="test-size-differs"),
    pytest.param({"x_train": np.zeros((0, 8, 8), np.uint8), "y_train": np.zeros(0, np.int64)}, "the train split holds no images", id="empty"),
])
def test_bad_mnist_arrays_are_named(changes, expected, tmp_path):
    path = npz(tmp_path / "mnist.npz", **changes)
    with pytest.raises(DataError) as error:
        load_dataset("mnist", root=str(path))
    assert str(path) in str(error.value) and expected in str(error.value)


def test_empty_npz_file_is_named(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"mnist.npz: not an MNIST npz"):
        load_dataset("mnist", root=str(path))


def test_jsonl_text_holding_a_unicode_line_separator_is_one_row(tmp_path):
    """Lines are split at newlines only: U+2028 inside a JSON string is text, not a line break."""
    path = tmp_path / "u.jsonl"
    path.write_text("".join(json.dumps({"text": f"good\u2028film {i}", "label": i % 2}, ensure_ascii=False) + "\n" for i in range(30)))
    data = load_dataset("jsonl", path=str(path), tokenizer="vocab")
    assert len(data.train) + len(data.val) + len(data.test) == 30
