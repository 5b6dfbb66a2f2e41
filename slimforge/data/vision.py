"""Image datasets: digits, fashion-mnist, mnist, cifar10 and any ImageFolder tree."""

from __future__ import annotations

import gzip
import os
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimforge.data import register_dataset
from slimforge.data.core import Augment, DataSplits, DatasetInfo, NamedClassSplits, TensorImageDataset, carve_validation, check_option
from slimforge.errors import DataError
from slimforge.preprocess import PreprocessSpec

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def shared_data_dirs() -> list[Path]:
    """Where benchmark data may live: $SLIMFORGE_DATA, then ../shared/data and ./shared/data."""
    dirs = [Path(os.environ["SLIMFORGE_DATA"])] if os.environ.get("SLIMFORGE_DATA") else []
    return dirs + [Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]


def cache_dir() -> Path:
    return Path(os.environ.get("SLIMFORGE_CACHE", Path.home() / ".cache" / "slimforge"))


def _splits(
    name: str,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    classes: tuple[str, ...],
    augment: Augment | None,
    val_fraction: float,
    split_seed: int,
    scale: float = 255.0,
    source: str = "",
    raw: tuple[tuple[int, ...], str] | None = None,
) -> DataSplits:
    """Check the arrays, carve validation from train, compute normalisation on the train part only.

    Labels may come as any integer dtype or as whole floats; each must be a class index
    0..len(classes)-1. ``source`` names the files in errors. ``raw``: the per-sample shape and
    dtype of the arrays as the user holds them (default: (C, H, W) and the images' dtype)."""
    source = source or name
    train_y = _checked_arrays(source, "train", train_x, train_y, len(classes))
    test_y = _checked_arrays(source, "test", test_x, test_y, len(classes))
    if tuple(test_x.shape[1:]) != tuple(train_x.shape[1:]):
        raise DataError(f"{source}: test images are {tuple(test_x.shape[1:])} (C, H, W) but train images are {tuple(train_x.shape[1:])}.")
    train_idx, val_idx, record = carve_validation(len(train_y), val_fraction, split_seed)
    fit = train_x[train_idx].float() / scale
    mean = tuple(fit.mean(dim=(0, 2, 3)).tolist())
    std = tuple(fit.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist())
    full = TensorImageDataset(train_x, train_y, mean, std, scale=scale, seed=split_seed)
    test = TensorImageDataset(test_x, test_y, mean, std, scale=scale)
    info = DatasetInfo(name, len(classes), tuple(train_x.shape[1:]), classes)
    record = {**record, "mean": [round(m, 6) for m in mean], "std": [round(s, 6) for s in std], "augment": _describe(augment)}
    raw_shape, raw_dtype = raw or (tuple(train_x.shape[1:]), str(train_x.dtype).removeprefix("torch."))
    preprocess = PreprocessSpec(tuple(train_x.shape[1:]), mean, std, float(scale), tuple(raw_shape), raw_dtype)
    return DataSplits(full.subset(train_idx, augment), full.subset(val_idx), test, info, record, preprocess=preprocess)


def _checked_arrays(source: str, split: str, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``y`` as int64 after checking ``x`` is (N, C, H, W) of finite numbers and ``y`` holds N class indices."""
    if x.ndim != 4 or x.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise DataError(f"{source}: {split} images are {x.dtype} of shape {tuple(x.shape)}; expected numbers (N, H, W) or (N, C, H, W).")
    if not len(x):
        raise DataError(f"{source}: the {split} split holds no images.")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise DataError(f"{source}: {split} images hold NaN or infinite values (first at image {int((~torch.isfinite(x)).flatten(1).any(1).nonzero()[0])}).")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{source}: {len(x)} {split} images but labels of shape {tuple(y.shape)}; expected one class index per image.")
    if y.dtype in (torch.bool, torch.complex64, torch.complex128) or (y.is_floating_point() and not (torch.isfinite(y) & (y == y.round())).all()):
        bad = next((v for v in y.tolist() if not (isinstance(v, (int, float)) and float(v).is_integer())), y[0].item())
        raise DataError(f"{source}: {split} labels must be class indices (whole numbers); found {bad!r}.")
    labels = y.long()
    wrong = ((labels < 0) | (labels >= num_classes)).nonzero()
    if len(wrong):
        i = int(wrong[0])
        raise DataError(f"{source}: {split} label {int(labels[i])} (image {i}) is not a class index 0..{num_classes - 1}.")
    return labels


def _describe(augment: Augment | None) -> dict[str, Any] | None:
    return None if augment is None else {"pad": augment.pad, "hflip": augment.hflip}


# ---------------------------------------------------------------- digits


@register_dataset("digits", help="scikit-learn's 8x8 handwritten digits (1,797 images, bundled; the default)")
def digits(val_fraction: float = 0.1, split_seed: int = 0, augment: bool = False, test_fraction: float = 0.2) -> DataSplits:
    from sklearn.datasets import load_digits

    check_option("test_fraction", test_fraction, float, low=0.0, high=1.0, low_open=True, high_open=True, dataset="digits")
    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32)).unsqueeze(1)  # (N, 1, 8, 8), values 0..16
    y = torch.from_numpy(bunch.target.astype(np.int64))
    # digits has no official test split: hold out a fixed, seeded test set first.
    rest, test_idx, _ = carve_validation(len(y), test_fraction, seed=12345)
    aug = Augment(pad=1) if augment else None
    splits = _splits("digits", x[rest], y[rest], x[test_idx], y[test_idx], tuple(str(i) for i in range(10)), aug, val_fraction, split_seed, scale=16.0)
    splits.split["test_fraction"] = test_fraction
    return splits


# ---------------------------------------------------------------- IDX (MNIST family)


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file as a numpy array, with errors naming the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc}); it is corrupt or truncated.") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: expected {int(np.prod(shape))} values for shape {shape}, found {body.size}; the file is truncated.")
    return body.reshape(shape)


def _find_idx(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    return None


@register_dataset("fashion-mnist", help="Zalando's Fashion-MNIST, 28x28 grey (Debian package dataset-fashion-mnist, or root=DIR of IDX files)")
def fashion_mnist(root: str | None = None, val_fraction: float = 0.1, split_seed: int = 0, augment: bool = True) -> DataSplits:
    candidates = [Path(root)] if root else [Path(p) for p in FASHION_MNIST_DIRS]
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    for folder in candidates:
        files = [_find_idx(folder, s) for s in stems]
        if all(files):
            break
    else:
        where = ", ".join(str(c) for c in candidates)
        raise DataError(
            f"Fashion-MNIST files not found in {where} (need {', '.join(s + '[.gz]' for s in stems)}). "
            "Install them with `apt-get install -y dataset-fashion-mnist` (as root; `make demo`/`make test` do this), "
            "or pass root=DIR / --data-root DIR pointing at a folder of IDX files."
        )
    tx, ty, vx, vy = (torch.from_numpy(read_idx(f).copy()) for f in files)
    aug = Augment(pad=2, hflip=True) if augment else None  # garments are left-right symmetric
    return _splits("fashion-mnist", tx.unsqueeze(1), ty, vx.unsqueeze(1), vy, FASHION_CLASSES, aug, val_fraction, split_seed,
                   source=str(files[0].parent))


@register_dataset("mnist", help="MNIST from an npz (x_train, y_train, x_test, y_test), e.g. ../shared/data/mnist/mnist.npz")
def mnist(root: str | None = None, val_fraction: float = 0.1, split_seed: int = 0, augment: bool = False) -> DataSplits:
    candidates = [Path(root)] if root else [d / "mnist" for d in shared_data_dirs()]
    for c in candidates:
        path = c if c.is_file() else c / "mnist.npz"
        if path.is_file():
            break
    else:
        raise DataError(f"mnist.npz not found in {', '.join(map(str, candidates))}; pass root=PATH (--data-root on the command line) to the npz or its folder.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = [torch.from_numpy(z[k].copy()) for k in ("x_train", "y_train", "x_test", "y_test")]
    except (KeyError, ValueError, OSError, EOFError, TypeError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not an MNIST npz with x_train, y_train, x_test, y_test ({exc}).") from None
    tx, ty, vx, vy = arrays
    for key, x in (("x_train", tx), ("x_test", vx)):
        if x.ndim != 3:
            raise DataError(f"{path}: {key} has shape {tuple(x.shape)}; expected (N, height, width) grey images.")
    aug = Augment(pad=2) if augment else None  # no flips: digits are not mirror-symmetric
    return _splits("mnist", tx.unsqueeze(1), ty, vx.unsqueeze(1), vy, tuple(str(i) for i in range(10)), aug, val_fraction, split_seed,
                   source=str(path))


# ---------------------------------------------------------------- CIFAR-10 and image folders


# PIL's own decompression-bomb threshold (Image.MAX_IMAGE_PIXELS, 1024 * 1024 * 1024 // 4 // 3),
# fixed here so that a program which raised or disabled PIL's limit does not lift ours.
MAX_IMAGE_PIXELS = 89_478_485
MAX_IMAGE_SIZE = 4096  # image-folder's image_size: every image is held in memory at this size


def _load_class_tree(folder: Path, classes: tuple[str, ...] | None = None, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Decode a ``folder/<class>/<image>`` tree into (N, C, H, W) uint8 and labels.

    classes: the class folders expected (a test split must have exactly train's); size: resize
    every image to size x size (None: all images must share one size). Hidden files are skipped;
    an empty class folder, a file that is not an image, or a decompression bomb is a :class:`DataError`.
    """
    found = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not found:
        raise DataError(f"{folder}: no class folders (expected {folder}/<class>/<image files>).")
    if classes is not None and found != tuple(sorted(classes)):
        missing, extra = [c for c in classes if c not in found], [c for c in found if c not in classes]
        raise DataError(
            f"{folder}: its class folders are not the training classes (missing {missing}, extra {extra}); "
            "every split must hold the same classes, or a label would mean another class."
        )
    classes = classes or found
    images, labels = [], []
    for label, cls in enumerate(classes):
        files = sorted(f for f in (folder / cls).iterdir() if not f.name.startswith("."))
        if not files:
            raise DataError(f"{folder / cls}: the class folder is empty; add images or remove the class.")
        for file in files:
            images.append(_read_image(file, size))
            labels.append(label)
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"{folder}: images have different sizes {sorted(shapes)[:3]}; use image-folder with image_size=.")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.long), classes


def _read_image(file: Path, size: int | None = None) -> np.ndarray:
    """``file`` as (H, W, 3) uint8 RGB, resized to size x size when given."""
    from PIL import Image

    if file.is_dir():
        raise DataError(f"{file} is a folder inside a class folder; class folders hold image files only.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise DataError(f"{file}: {im.width}x{im.height} pixels is more than {MAX_IMAGE_PIXELS} (a decompression bomb?); refused.")
                rgb = im.convert("RGB")
                return np.asarray(rgb.resize((size, size)) if size else rgb, dtype=np.uint8)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{file}: refused as a decompression bomb ({exc}).") from None
    except Exception as exc:  # PIL's decoders raise OSError, SyntaxError, ValueError, ... for corrupt files
        raise DataError(f"{file}: not a readable image ({type(exc).__name__}: {exc}).") from None


def _cifar10_arrays(root: Path | None) -> tuple[torch.Tensor, ...]:
    """Decoded CIFAR-10, cached as .npy after the first extraction."""
    cache = cache_dir() / "cifar10"
    names = ("train_x", "train_y", "test_x", "test_y")
    if all((cache / f"{n}.npy").is_file() for n in names):
        try:
            return tuple(torch.from_numpy(np.load(cache / f"{n}.npy", allow_pickle=False)) for n in names)
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"The CIFAR-10 cache in {cache} is corrupt ({exc}); delete that folder to rebuild it.") from None
    candidates = [root] if root else [d / "cifar10" for d in shared_data_dirs()]
    tree = None
    for c in candidates:
        if (c / "train").is_dir() and (c / "test").is_dir():
            tree = c
            break
        tarball = c / "cifar10_jpg.tar.gz" if c.is_dir() else c
        if tarball.is_file():
            extract_to = cache / "extracted"
            if not (extract_to / "cifar10" / "train").is_dir():
                extract_to.mkdir(parents=True, exist_ok=True)
                with tarfile.open(tarball) as tar:
                    tar.extractall(extract_to, filter="data")
            tree = next(p.parent for p in extract_to.rglob("train") if p.is_dir())
            break
    if tree is None:
        raise DataError(f"CIFAR-10 not found in {', '.join(map(str, candidates))}: need train/ and test/ class folders or cifar10_jpg.tar.gz.")
    tx, ty, _ = _load_class_tree(tree / "train", CIFAR10_CLASSES)
    vx, vy, _ = _load_class_tree(tree / "test", CIFAR10_CLASSES)
    cache.mkdir(parents=True, exist_ok=True)
    for n, arr in zip(names, (tx, ty, vx, vy)):
        np.save(cache / f"{n}.npy", arr.numpy())
    return tx, ty, vx, vy


@register_dataset("cifar10", help="CIFAR-10, 32x32 colour (class-folder tree, or the tarball in ../shared/data/cifar10)")
def cifar10(root: str | None = None, val_fraction: float = 0.1, split_seed: int = 0, augment: bool = True) -> DataSplits:
    tx, ty, vx, vy = _cifar10_arrays(Path(root) if root else None)
    aug = Augment(pad=4, hflip=True) if augment else None
    return _splits("cifar10", tx, ty, vx, vy, CIFAR10_CLASSES, aug, val_fraction, split_seed, source=root or "cifar10")


@register_dataset("image-folder", help="any torchvision ImageFolder tree: root/train/<class>/..., optional root/test")
def image_folder(
    root: str | None = None, image_size: int = 32, val_fraction: float = 0.1, split_seed: int = 0, augment: bool = True, test_fraction: float = 0.2
) -> DataSplits:
    if not root:
        raise DataError("image-folder needs root=DIR (a folder of class folders, or with train/ and test/ inside).")
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"image-folder root {base} does not exist." if not base.exists() else f"image-folder root {base} is a file, not a folder.")
    check_option("image_size", image_size, int, low=1, high=MAX_IMAGE_SIZE, dataset="image-folder")
    check_option("test_fraction", test_fraction, float, low=0.0, high=1.0, low_open=True, high_open=True, dataset="image-folder")
    train_dir = base / "train" if (base / "train").is_dir() else base
    tx, ty, classes = _load_class_tree(train_dir, size=image_size)
    if (base / "test").is_dir():
        vx, vy, _ = _load_class_tree(base / "test", classes, size=image_size)
    else:
        keep, test_idx, _ = carve_validation(len(ty), test_fraction, seed=12345)
        tx, ty, vx, vy = tx[keep], ty[keep], tx[test_idx], ty[test_idx]
    pad = max(1, image_size // 8)
    aug = Augment(pad=pad, hflip=True) if augment else None
    return NamedClassSplits.of(_splits("image-folder", tx, ty, vx, vy, classes, aug, val_fraction, split_seed, source=str(base)))
