"""Reading interaction logs: MovieLens ``ratings.csv``/``movies.csv`` (ml-latest, ml-20m/25m/32m),
the ``::``-separated ``ratings.dat``/``movies.dat`` (ml-1m, ml-10m), ml-100k's tab-separated
``u.data`` with ``u.item`` (genres as 19 flags), or any CSV with user, item, rating and timestamp
columns.

Ids are kept as the file has them (any integers; nothing assumes they are dense or start at 1);
:mod:`slimforge.recsys.protocol` maps them to contiguous indices.

Bad input gets an error naming the file, the row and what was expected; two cases have a
documented behaviour instead:

* the same (user, item) pair on several rows (a re-rating): the latest row is kept
  (``duplicates="latest"``, the default, counted in the split record) or refused (``"error"``);
* an empty rating field is an error like any other non-number.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slimforge.errors import DataError

RATINGS_FILES = ("ratings.csv", "ratings.dat", "u.data")
ITEMS_FILES = ("movies.csv", "movies.dat", "u.item")
NO_GENRES = "(no genres listed)"  # MovieLens' marker for a movie without genres
# ml-100k's genres, in the order of u.item's 19 flag columns (its u.genre lists the same).
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
                 "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


@dataclass(frozen=True)
class Interactions:
    """One row per interaction, ids as in the source file.

    users, items: (N,) int64 raw ids; ratings: (N,) float32; timestamps: (N,) int64 (seconds);
    source: where they came from (a file, or "generated"); duplicates_dropped: rows that repeated
    an earlier (user, item) pair and were replaced by the later one.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    source: str
    duplicates_dropped: int = 0

    def __len__(self) -> int:
        return len(self.users)


def find_ratings_file(path: str | Path) -> Path:
    """``path`` itself when it is a file, else the ratings file inside folder ``path``."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path} does not exist: point root= (or --data-root) at a MovieLens folder or a ratings file.")
    for name in RATINGS_FILES:
        if (path / name).is_file():
            return path / name
    raise DataError(f"{path} holds no ratings file (looked for {', '.join(RATINGS_FILES)}).")


def read_ratings(
    path: str | Path,
    user_column: str = "userId",
    item_column: str = "movieId",
    rating_column: str = "rating",
    time_column: str = "timestamp",
    duplicates: str = "latest",
) -> Interactions:
    """Read a ratings file: CSV with a header (column names as given), ``::``-separated
    ``user::item::rating::timestamp`` lines without one (MovieLens 1M's ``.dat``), or the same
    fields tab-separated (ml-100k's ``u.data``, any ``.tsv`` without a header)."""
    if duplicates not in ("latest", "error"):
        raise DataError(f"duplicates must be 'latest' or 'error', not {duplicates!r}.")
    file = find_ratings_file(path)
    if file.suffix == ".dat":
        rows = _dat_rows(file)
    elif file.name == "u.data" or file.suffix == ".tsv":
        rows = _dat_rows(file, separator="\t")
    else:
        rows = _csv_rows(file, (user_column, item_column, rating_column, time_column))
    users, items, ratings, stamps = [], [], [], []
    names = (user_column, item_column, rating_column, time_column)
    for line, fields in rows:
        users.append(_integer(fields[0], file, line, names[0]))
        items.append(_integer(fields[1], file, line, names[1]))
        ratings.append(_number(fields[2], file, line, names[2]))
        stamps.append(_integer(fields[3], file, line, names[3]))
    if not users:
        raise DataError(f"{file} holds no interactions (only a header, or nothing).")
    interactions = Interactions(
        np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), np.asarray(ratings, dtype=np.float32),
        np.asarray(stamps, dtype=np.int64), str(file),
    )
    return drop_duplicates(interactions, duplicates == "error")


def drop_duplicates(data: Interactions, refuse: bool = False) -> Interactions:
    """Keep one row per (user, item): the latest by timestamp, the later row on a tie; ``refuse``
    raises instead, naming the first repeated pair."""
    order = np.lexsort((np.arange(len(data)), data.timestamps, data.items, data.users))
    u, i = data.users[order], data.items[order]
    last_of_pair = np.ones(len(order), dtype=bool)
    last_of_pair[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
    dropped = int((~last_of_pair).sum())
    if dropped == 0:
        return data
    if refuse:
        first = order[np.flatnonzero(~last_of_pair)[0]]
        raise DataError(
            f"{data.source}: user {data.users[first]} and item {data.items[first]} appear on more than one row "
            f"({dropped} repeated pairs in all). Pass duplicates='latest' to keep each pair's latest row."
        )
    keep = np.sort(order[last_of_pair])  # file order, as read
    return Interactions(data.users[keep], data.items[keep], data.ratings[keep], data.timestamps[keep], data.source,
                        data.duplicates_dropped + dropped)


def read_genres(path: str | Path) -> dict[int, list[str]]:
    """item raw id -> genre names, from MovieLens ``movies.csv`` (``movieId,title,genres``, genres
    ``|``-separated) or ``movies.dat``; a folder is searched for one. {} when there is none."""
    path = Path(path)
    file = next((path / n for n in ITEMS_FILES if (path / n).is_file()), None) if path.is_dir() else path
    if file is None or not file.is_file():
        return {}
    if file.name == "u.item":
        return _ml100k_genres(file)
    rows = _dat_rows(file, width=3, encoding="latin-1") if file.suffix == ".dat" else _csv_rows(file, ("movieId", "title", "genres"))
    genres: dict[int, list[str]] = {}
    for line, fields in rows:
        names = [g for g in fields[2].split("|") if g and g != NO_GENRES]
        genres[_integer(fields[0], file, line, "movieId")] = names
    return genres


def _ml100k_genres(file: Path) -> dict[int, list[str]]:
    """ml-100k's ``u.item``: ``id|title|release|video release|IMDb URL|`` then one 0/1 flag per genre."""
    genres: dict[int, list[str]] = {}
    for line, fields in _dat_rows(file, width=5 + len(ML100K_GENRES), encoding="latin-1", separator="|"):
        flags = fields[-len(ML100K_GENRES):]
        if any(f.strip() not in ("0", "1") for f in flags):
            raise DataError(f"{file}, line {line}: the last {len(ML100K_GENRES)} fields must be 0/1 genre flags, got {flags}.")
        genres[_integer(fields[0], file, line, "movie id")] = [g for g, f in zip(ML100K_GENRES, flags) if f.strip() == "1" and g != "unknown"]
    return genres


# ---------------------------------------------------------------- helpers


def _csv_rows(file: Path, columns: tuple[str, ...]):
    """(line number, the fields of ``columns``) for each data row of a CSV with a header."""
    with open(file, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{file} is empty; expected a header with columns {', '.join(columns)}.")
        header = [h.strip() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(
                f"{file} has no column {', '.join(repr(c) for c in missing)} (its header: {', '.join(header)}). "
                f"Expected the columns {', '.join(columns)}; name others with user_column=, item_column=, rating_column=, time_column=."
            )
        where = [header.index(c) for c in columns]
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < len(header):
                raise DataError(f"{file}, line {line}: {len(row)} fields where the header has {len(header)}.")
            yield line, [row[k] for k in where]


def _dat_rows(file: Path, width: int = 4, encoding: str = "utf-8", separator: str = "::"):
    """(line number, fields) of a ``separator``-separated file without a header."""
    with open(file, encoding=encoding, errors="replace") as f:
        for line, text in enumerate(f, start=1):
            text = text.rstrip("\r\n")
            if not text:
                continue
            fields = text.split(separator)
            if len(fields) < width:
                raise DataError(f"{file}, line {line}: {len(fields)} {separator!r}-separated fields where {width} are expected ({text[:60]!r}).")
            yield line, fields


def _integer(text: str, file: Path, line: int, column: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None and value.is_integer():  # "1.0" from a spreadsheet export
        return int(value)
    raise DataError(f"{file}, line {line}: {column} {text!r} is not an integer id. Ids and timestamps must be integers.")


def _number(text: str, file: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise DataError(f"{file}, line {line}: {column} {text!r} is not a finite number.")
    return value
