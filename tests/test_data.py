"""Datasets: splits recorded, augmentation deterministic, clear errors for missing or bad files."""

from __future__ import annotations

import gzip

import pytest
import torch

from slimforge.data import list_datasets, load_dataset
from slimforge.data.vision import read_idx
from slimforge.errors import DataError, UnknownNameError
from tests.conftest import SHARED_DATA, needs_fashion, needs_shared


def test_digits_splits_are_disjoint_and_recorded():
    data = load_dataset("digits")
    assert data.info.input_shape == (1, 8, 8) and data.info.num_classes == 10
    sizes = data.describe()["sizes"]
    assert sizes["train"] + sizes["val"] + sizes["test"] == 1797
    assert data.split["val_fraction"] == 0.1 and len(data.split["val_indices_sha256"]) == 16
    x, y, idx = data.train.__getitems__([0, 1, 2])
    assert x.shape == (3, 1, 8, 8) and x.dtype == torch.float32 and idx.tolist() == [0, 1, 2]
    again = load_dataset("digits")
    assert data.split == again.split


def test_validation_carve_changes_with_seed_only():
    a, b, c = (load_dataset("digits", split_seed=s) for s in (0, 0, 1))
    assert a.split["val_indices_sha256"] == b.split["val_indices_sha256"] != c.split["val_indices_sha256"]


def test_augmentation_is_seeded_per_epoch():
    data = load_dataset("digits", augment=True)
    data.train.set_epoch(3)
    first = data.train.__getitems__(list(range(16)))[0]
    data.train.set_epoch(3)
    assert torch.equal(first, data.train.__getitems__(list(range(16)))[0])
    data.train.set_epoch(4)
    assert not torch.equal(first, data.train.__getitems__(list(range(16)))[0])
    assert data.val.augment is None and data.test.augment is None


@needs_fashion
def test_fashion_mnist_from_debian_package():
    data = load_dataset("fashion-mnist")
    assert data.describe()["sizes"] == {"train": 54000, "val": 6000, "test": 10000}
    assert data.info.input_shape == (1, 28, 28)
    assert data.train.augment is not None and data.train.augment.hflip


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DataError, match="apt-get install -y dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=str(tmp_path))


def test_truncated_idx_file(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    with gzip.open(path, "wb") as f:
        f.write(header + bytes(100))
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)


@needs_shared
def test_mnist_npz_from_shared_data():
    data = load_dataset("mnist", root=str(SHARED_DATA / "mnist"))
    assert data.describe()["sizes"]["test"] == 10000


def test_image_folder(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (20, 20), (i * 40, 10, 200 if cls == "dog" else 0)).save(tmp_path / split / cls / f"{i}.png")
    data = load_dataset("image-folder", root=str(tmp_path), image_size=16, val_fraction=0.25)
    assert data.info.classes == ("cat", "dog") and data.info.input_shape == (3, 16, 16)
    assert len(data.test) == 12 and len(data.train) + len(data.val) == 12


def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match="Unknown dataset 'fashion'.*fashion-mnist"):
        load_dataset("fashion")
    assert {"digits", "fashion-mnist", "mnist", "cifar10", "image-folder"} <= set(list_datasets())


def test_random_crop_takes_each_sample_s_own_window_of_the_padded_image():
    from slimforge.data.core import Augment, TensorImageDataset

    images = torch.arange(6 * 3 * 5 * 5, dtype=torch.float32).view(6, 3, 5, 5)
    ds = TensorImageDataset(images, torch.zeros(6), (0.0, 0.0, 0.0), (1 / 255, 1 / 255, 1 / 255), augment=Augment(pad=2), scale=255.0)
    ds.set_epoch(3)
    crops = ds._augment(images.clone())
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for crop, image in zip(crops, padded):  # each crop is one 5x5 window of its own padded image, every channel alike
        windows = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(crop, image[:, dy : dy + 5, dx : dx + 5])]
        assert len(windows) == 1
    ds.set_epoch(3)
    assert torch.equal(ds._augment(images.clone()), crops)  # reseeded per epoch: resumable
