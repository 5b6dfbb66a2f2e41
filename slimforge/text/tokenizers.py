"""Tokenisers for text models: a teacher's Hugging Face fast tokenizer, or a word vocabulary.

Both turn texts into lists of token ids and save themselves into a folder (``tokenizer/`` in a
run folder), so a run folder alone is enough to evaluate or predict:

* :class:`HFTokenizer` wraps ``transformers.AutoTokenizer`` (a fast, Rust-backed tokenizer);
  saved with ``save_pretrained`` (``tokenizer.json`` + its config).
* :class:`VocabTokenizer` splits lower-cased text into words and punctuation and maps them
  to ids by a vocabulary built from a training split (most frequent first); saved as
  ``vocab.json``. For students that do not share the teacher's tokenizer.

Texts longer than ``max_length`` tokens are truncated (the end is dropped; an HF tokenizer
keeps its closing ``[SEP]``); :func:`count_truncated` says how many were.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from slimforge.artifacts import atomic_write_bytes, read_json
from slimforge.errors import ArtifactError, DataError

TOKENIZER_DIR = "tokenizer"
VOCAB_FILE = "vocab.json"
PAD, UNK = "[PAD]", "[UNK]"
_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class TextTokenizer(Protocol):
    """What datasets and ``slimforge predict`` need from a tokenizer."""

    kind: str
    pad_id: int
    vocab_size: int
    max_length: int

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, special tokens included, at most ``max_length`` long."""
        ...

    def save(self, folder: str | Path) -> Path: ...


class HFTokenizer:
    """A Hugging Face fast tokenizer (``AutoTokenizer.from_pretrained(path)``)."""

    kind = "huggingface"

    def __init__(self, tokenizer: Any, max_length: int = 128) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise DataError(f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer; slimforge needs one (a tokenizer.json).")
        if tokenizer.pad_token_id is None:
            raise DataError(f"The tokenizer {type(tokenizer).__name__} has no padding token; set tokenizer.pad_token first.")
        self.tokenizer = tokenizer
        self.pad_id = int(tokenizer.pad_token_id)
        self.vocab_size = len(tokenizer)
        model_max = getattr(tokenizer, "model_max_length", None) or max_length
        self.max_length = int(min(max_length, model_max)) if model_max < 10**9 else int(max_length)

    @classmethod
    def from_pretrained(cls, path: str | Path, max_length: int = 128) -> HFTokenizer:
        from transformers import AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise DataError(f"Tokenizer folder {path} does not exist.")
        try:
            tok = AutoTokenizer.from_pretrained(str(path), use_fast=True)
        except Exception as exc:  # transformers and the Rust tokenizers raise assorted types for a corrupt folder
            raise DataError(f"Cannot load a Hugging Face tokenizer from {path}: {type(exc).__name__}: {str(exc)[:300]}") from None
        return cls(tok, max_length)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:  # the fast tokenizer raises IndexError on an empty batch
            return []
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

    def encode_untruncated_lengths(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(list(texts), truncation=False)["input_ids"]]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))
        _write_meta(folder, {"kind": self.kind, "max_length": self.max_length})
        return folder


class VocabTokenizer:
    """Lower-cased words and punctuation mapped to ids; ``[PAD]`` is 0, ``[UNK]`` is 1."""

    kind = "vocab"

    def __init__(self, tokens: Sequence[str], max_length: int = 128, lowercase: bool = True) -> None:
        if list(tokens[:2]) != [PAD, UNK]:
            raise DataError(f"A vocabulary must start with {PAD!r}, {UNK!r}; got {list(tokens[:2])}.")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise DataError(f"A tokenizer's max_length must be a positive integer, not {max_length!r}.")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.unk_id = 0, 1
        self.vocab_size = len(self.tokens)
        self.max_length = int(max_length)
        self.lowercase = lowercase

    @classmethod
    def build(cls, texts: Iterable[str], max_size: int = 20000, min_freq: int = 1, max_length: int = 128) -> VocabTokenizer:
        """The ``max_size`` most frequent words of ``texts`` seen at least ``min_freq`` times (ties alphabetical)."""
        counts = Counter(w for text in texts for w in _WORDS.findall(text.lower()))
        ranked = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *ranked[: max(0, max_size - 2)]], max_length)

    def split(self, text: str) -> list[str]:
        return _WORDS.findall(text.lower() if self.lowercase else text)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [[self.index.get(w, self.unk_id) for w in self.split(t)[: self.max_length]] for t in texts]

    def encode_untruncated_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(self.split(t)) for t in texts]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        data = {"kind": self.kind, "lowercase": self.lowercase, "max_length": self.max_length, "tokens": self.tokens}
        atomic_write_bytes(folder / VOCAB_FILE, json.dumps(data, ensure_ascii=False).encode())
        return folder


def load_tokenizer(folder: str | Path, max_length: int | None = None) -> HFTokenizer | VocabTokenizer:
    """The tokenizer saved in ``folder`` (a ``tokenizer/`` folder, or a run folder holding one)."""
    folder = Path(folder)
    if (folder / TOKENIZER_DIR).is_dir():
        folder = folder / TOKENIZER_DIR
    if (folder / VOCAB_FILE).is_file():
        data = read_vocab_file(folder / VOCAB_FILE)
        return VocabTokenizer(data["tokens"], max_length or data["max_length"], data["lowercase"])
    if (folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file():
        meta = _read_meta(folder)
        return HFTokenizer.from_pretrained(folder, max_length or meta.get("max_length", 128))
    raise ArtifactError(
        f"{folder} holds no tokenizer (expected {VOCAB_FILE} or a Hugging Face tokenizer.json). "
        "Text run folders keep theirs in tokenizer/; pass the dataset option tokenizer=PATH otherwise."
    )


MAX_VOCAB = 10_000_000  # tokens; a vocabulary larger than any real one is a corrupt or hostile file


def read_vocab_file(path: Path) -> dict[str, Any]:
    """A ``vocab.json`` written by :meth:`VocabTokenizer.save`, checked: ``tokens`` a list of distinct
    non-empty strings starting with ``[PAD]``, ``[UNK]`` (ids are list positions, so every id is
    in range), ``max_length`` a positive integer, ``lowercase`` a boolean. Anything else is an
    :class:`ArtifactError` naming the file and the key."""
    data = _read_json_object(path)
    tokens = data.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        bad = tokens if not isinstance(tokens, list) else next(t for t in tokens if not (isinstance(t, str) and t))
        raise ArtifactError(f"{path}: 'tokens' must be a list of non-empty strings (the token of each id); found {bad!r}.")
    if tokens[:2] != [PAD, UNK]:
        raise ArtifactError(f"{path}: 'tokens' must start with the special tokens {PAD!r} (id 0), {UNK!r} (id 1); it starts {tokens[:2]}.")
    if len(tokens) > MAX_VOCAB:
        raise ArtifactError(f"{path}: {len(tokens)} tokens is more than any vocabulary slimforge builds ({MAX_VOCAB}).")
    seen: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if token in seen:
            raise ArtifactError(f"{path}: token {token!r} has two ids ({seen[token]} and {i}); every token must appear once.")
        seen[token] = i
    max_length, lowercase = data.get("max_length", 128), data.get("lowercase", True)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ArtifactError(f"{path}: 'max_length' must be a positive integer, not {max_length!r}.")
    if not isinstance(lowercase, bool):
        raise ArtifactError(f"{path}: 'lowercase' must be true or false, not {lowercase!r}.")
    if data.get("kind", VocabTokenizer.kind) != VocabTokenizer.kind:
        raise ArtifactError(f"{path}: 'kind' is {data['kind']!r}; a vocab.json holds a {VocabTokenizer.kind!r} tokenizer.")
    return {"tokens": tokens, "max_length": max_length, "lowercase": lowercase}


def _read_json_object(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} must hold a JSON object, not {type(data).__name__}.")
    return data


def count_truncated(tokenizer: HFTokenizer | VocabTokenizer, texts: Sequence[str]) -> int:
    """How many of ``texts`` are longer than the tokenizer's ``max_length`` (and so truncated)."""
    return sum(n > tokenizer.max_length for n in tokenizer.encode_untruncated_lengths(texts))


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    atomic_write_bytes(folder / "slimforge_tokenizer.json", json.dumps(meta).encode())


def _read_meta(folder: Path) -> dict[str, Any]:
    """``slimforge_tokenizer.json`` ({} when absent); a ``max_length`` that is not a positive integer is an error."""
    path = folder / "slimforge_tokenizer.json"
    if not path.is_file():
        return {}
    meta = _read_json_object(path)
    max_length = meta.get("max_length", 128)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ArtifactError(f"{path}: 'max_length' must be a positive integer, not {max_length!r}.")
    return meta
