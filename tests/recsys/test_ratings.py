"""Reading ratings files: both MovieLens layouts, and a clear error for each kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest

from slimforge.errors import DataError
from slimforge.recsys.ratings import read_genres, read_ratings

from .conftest import write_ratings


def test_csv_keeps_raw_ids_and_reads_every_column(tmp_path):
    path = write_ratings(tmp_path / "ratings.csv", [(7, 123456, 4.5, 100), (3, 5, 1, 90), (7, 5, 3.0, 80)])
    data = read_ratings(tmp_path)  # the folder works as well as the file
    assert data.users.tolist() == [7, 3, 7] and data.items.tolist() == [123456, 5, 5]
    assert data.ratings.tolist() == [4.5, 1.0, 3.0] and data.timestamps.tolist() == [100, 90, 80]
    assert data.source == str(path) and data.duplicates_dropped == 0


def test_ml1m_dat_layout_is_read(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (tmp_path / "movies.dat").write_bytes("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::Caf\xe9 (1996)::Animation|Children's\n"
                                          .encode("latin-1"))
    data = read_ratings(tmp_path)
    assert data.users.tolist() == [1, 1, 2] and data.items.tolist() == [1193, 661, 1193]
    assert read_genres(tmp_path) == {1193: ["Drama"], 661: ["Animation", "Children's"]}


def test_ml100k_layout_is_read(tmp_path):
    """ml-100k: u.data is tab-separated without a header; u.item is |-separated, latin-1, genres as 19 flags."""
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t5\t881251000\n")
    flags = {242: [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 302: [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0],
             267: [1] + [0] * 18}
    titles = {242: "Kolya (1996)", 302: "L.A. Confidential (1997)", 267: "unknown"}
    (tmp_path / "u.item").write_bytes("".join(f"{i}|{titles[i]}|24-Jan-1997||http://x|{'|'.join(map(str, f))}\n" for i, f in flags.items())
                                      .encode("latin-1"))
    data = read_ratings(tmp_path)
    assert data.users.tolist() == [196, 186, 196] and data.items.tolist() == [242, 302, 302]
    assert data.ratings.tolist() == [3.0, 3.0, 5.0] and data.timestamps.tolist() == [881250949, 891717742, 881251000]
    assert read_genres(tmp_path) == {242: ["Comedy"], 302: ["Crime", "Film-Noir", "Mystery", "Thriller"], 267: []}
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|2\n")
    with pytest.raises(DataError, match=r"u.item, line 1: the last 19 fields must be 0/1 genre flags"):
        read_genres(tmp_path)


def test_genres_of_movies_csv_with_quoted_titles_and_no_genres(tmp_path):
    (tmp_path / "movies.csv").write_text('movieId,title,genres\n1,"Toy Story, The (1995)",Animation|Comedy\n2,Empty (2000),(no genres listed)\n')
    assert read_genres(tmp_path) == {1: ["Animation", "Comedy"], 2: []}
    assert read_genres(tmp_path / "absent") == {}


def test_missing_column_names_the_file_the_column_and_the_header(tmp_path):
    path = write_ratings(tmp_path / "ratings.csv", [(1, 2, 3)], header="userId,movieId,rating")
    with pytest.raises(DataError, match=r"ratings.csv has no column 'timestamp' \(its header: userId, movieId, rating\)"):
        read_ratings(path)
    # Other column names are accepted when named.
    other = write_ratings(tmp_path / "other.csv", [(1, 2, 3, 4)], header="user,item,score,time")
    assert read_ratings(other, "user", "item", "score", "time").items.tolist() == [2]


@pytest.mark.parametrize("row, message", [
    (("u17", 2, 3.0, 10), r"line 3: userId 'u17' is not an integer id"),
    ((1, "tt0114709", 3.0, 10), r"line 3: movieId 'tt0114709' is not an integer id"),
    ((1, 2, "good", 10), r"line 3: rating 'good' is not a finite number"),
    ((1, 2, 3.0, "2020-01-01"), r"line 3: timestamp '2020-01-01' is not an integer id"),
])
def test_non_numeric_fields_name_the_line_and_the_value(tmp_path, row, message):
    path = write_ratings(tmp_path / "ratings.csv", [(1, 1, 4.0, 5), row])
    with pytest.raises(DataError, match=message):
        read_ratings(path)


def test_float_formatted_ids_are_integers(tmp_path):
    path = write_ratings(tmp_path / "ratings.csv", [("1.0", "20.0", 4, "30.0")])
    assert read_ratings(path).items.tolist() == [20]


def test_duplicate_pairs_keep_the_latest_row_or_are_refused(tmp_path):
    path = write_ratings(tmp_path / "ratings.csv", [(1, 2, 1.0, 50), (1, 3, 4.0, 10), (1, 2, 5.0, 70), (1, 2, 3.0, 60)])
    data = read_ratings(path)
    assert data.duplicates_dropped == 2
    assert sorted(zip(data.items.tolist(), data.ratings.tolist(), data.timestamps.tolist())) == [(2, 5.0, 70), (3, 4.0, 10)]
    with pytest.raises(DataError, match=r"user 1 and item 2 appear on more than one row \(2 repeated pairs"):
        read_ratings(path, duplicates="error")


def test_empty_and_missing_files_are_clear(tmp_path):
    write_ratings(tmp_path / "ratings.csv", [])
    with pytest.raises(DataError, match="holds no interactions"):
        read_ratings(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_ratings(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no ratings file \(looked for ratings.csv, ratings.dat, u.data\)"):
        read_ratings(tmp_path / "empty")
    (tmp_path / "short.dat").write_text("1::2::3\n")
    with pytest.raises(DataError, match="line 1: 3 '::'-separated fields where 4"):
        read_ratings(tmp_path / "short.dat")


def test_ratings_arrays_are_int64_and_float32(tmp_path):
    data = read_ratings(write_ratings(tmp_path / "ratings.csv", [(2**40, 1, 3.5, 1_600_000_000)]))
    assert data.users.dtype == np.int64 and data.users[0] == 2**40 and data.ratings.dtype == np.float32
