"""Reading labelled texts from files: CSV/TSV with a header, JSON lines, one 'label text' a line;
in UTF-8 or a named encoding; every problem a :class:`DataError` naming the file and the line."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from slimforge.errors import ConfigError, DataError

NEWLINE, TAB = b"\n", "\t"



def clean_label(value: Any, where: str) -> int | str:
    """A label as read from a file: a class index (an integer, or a whole float such as JSON's
    ``1.0``) or a class name (a non-empty string, stripped). Lists, objects, booleans, null,
    fractions, NaN and infinities are a :class:`DataError` naming ``where`` (file and line, or
    split and row)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"{where}: label {value!r} is not a class name (a string) or a class index (an integer).")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise DataError(f"{where}: label {value!r} is not a class index (a whole number) or a class name.")
        return int(value)
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise DataError(f"{where}: the label is empty; fill it in or remove the row.")
    return value


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


# ---------------------------------------------------------------- readers


def read_table(path: str | Path, text_column: str, label_column: str, delimiter: str, encoding: str = "utf-8") -> tuple[list[str], list[Any]]:
    """(texts, labels) from a CSV/TSV file with a header naming ``text_column`` and ``label_column``.

    A row whose text is empty or whose label is not a class name or index is a :class:`DataError`
    naming the file and the line."""
    path = _existing(path)
    reader = csv.DictReader(io.StringIO(read_text(path, encoding), newline=""), delimiter=delimiter,
                            quoting=csv.QUOTE_NONE if delimiter == TAB else csv.QUOTE_MINIMAL)
    try:
        header = reader.fieldnames or []
        missing = [c for c in (text_column, label_column) if c not in header]
        if missing:
            raise DataError(
                f"{path}: no column {', '.join(repr(c) for c in missing)}; the header has {header[:20]}. "
                "Name the columns with the dataset options text_column=... label_column=..."
            )
        texts, labels = [], []
        for i, row in enumerate(reader):
            where = f"{path} line {reader.line_num}"
            texts.append(_checked_text(row[text_column], where, i))
            labels.append(clean_label(row[label_column], where))
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num}: not valid {'TSV' if delimiter == TAB else 'CSV'} ({exc}).") from None
    return texts, labels


def read_jsonl(path: str | Path, text_column: str, label_column: str, encoding: str = "utf-8") -> tuple[list[str], list[Any]]:
    """(texts, labels) from a JSON-lines file of objects holding ``text_column`` and ``label_column``."""
    path = _existing(path)
    texts, labels = [], []
    for n, line in enumerate(read_text(path, encoding).split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise DataError(f"{path} line {n} is not JSON ({exc}).") from None
        missing = [c for c in (text_column, label_column) if not isinstance(row, dict) or c not in row]
        if missing:
            keys = sorted(row)[:20] if isinstance(row, dict) else type(row).__name__
            raise DataError(f"{path} line {n}: no key {', '.join(repr(c) for c in missing)} (it has {keys}). "
                            "Name them with text_column=... label_column=...")
        if not isinstance(row[text_column], str):
            raise DataError(f"{path} line {n}: {text_column!r} must be a string (the text), not {row[text_column]!r}.")
        texts.append(_checked_text(row[text_column], f"{path} line {n}", len(texts)))
        labels.append(clean_label(row[label_column], f"{path} line {n}"))
    return texts, labels


def read_label_lines(path: str | Path, separator: str | None = None, encoding: str = "utf-8") -> tuple[list[str], list[Any]]:
    """(texts, labels) from one example a line, the label first: ``LABEL text ...`` (TREC, fastText
    without its prefix), split at the first ``separator`` (default: the first run of spaces or tabs)."""
    path = _existing(path)
    texts, labels = [], []
    for n, line in enumerate(read_text(path, encoding).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(separator, 1) if separator else line.strip().split(None, 1)
        if len(parts) != 2 or not parts[1].strip():
            shown = "whitespace" if separator is None else repr(separator)
            raise DataError(f"{path} line {n} is not 'label{' ' if separator is None else separator}text' (split at {shown}): {line[:80]!r}.")
        texts.append(_checked_text(parts[1].strip(), f"{path} line {n}", len(texts)))
        labels.append(clean_label(parts[0].strip(), f"{path} line {n}"))
    return texts, labels


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The text of ``path`` in ``encoding`` (UTF-8 by default, a leading BOM dropped). A binary file,
    or bytes that are not in the encoding, is a :class:`DataError` naming the file, the line and the byte offset."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc}).") from None
    if not data.strip():
        raise DataError(f"{path} is empty.")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path} is a binary file, not text (a NUL byte at line {data.count(NEWLINE, 0, nul) + 1}, byte offset {nul}).")
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        return data.decode("utf-8-sig" if utf8 else encoding)
    except LookupError:
        raise ConfigError(f"encoding {encoding!r} is not a text encoding Python knows (e.g. utf-8, latin-1, cp1252).") from None
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if utf8 and data.startswith(b"\xef\xbb\xbf") else 0)
        raise DataError(
            f"{path} is not {'UTF-8' if utf8 else encoding} text: line {data.count(NEWLINE, 0, start) + 1}, byte offset {start} "
            f"({data[start:start + 1]!r}: {exc.reason}). Name its encoding with data.options.encoding=latin-1 (or the one it has), "
            "or convert it, e.g. iconv -f latin1 -t utf-8."
        ) from None


def _checked_text(text: Any, where: str, row: int) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: row {row} has an empty text ({text!r}); remove it or fill it in.")
    return text


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise DataError(f"Data file {path} is a folder; give the file itself.")
    if not path.is_file():
        raise DataError(f"Data file {path} does not exist.")
    return path
