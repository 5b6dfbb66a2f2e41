"""Text files of the shapes people have: one 'LABEL text' a line, and files that are not UTF-8 (issue 25)."""

from __future__ import annotations

import pytest

from slimforge import load_dataset
from slimforge.errors import DataError

TREC = "DESC:manner How did serfdom develop in and then leave Russia ?\nENTY:cremat What films featured the character Popeye Doyle ?\n"


def test_label_first_lines_are_read(tmp_path):
    path = tmp_path / "trec.txt"
    path.write_text(TREC * 20)
    data = load_dataset("text-lines", path=str(path), tokenizer="vocab", test_fraction=0.25)
    assert data.info.num_classes == 2 and len(data.train) + len(data.val) + len(data.test) == 40
    texts, labels = data.raw["train"]
    assert all(t.endswith("?") and not t.startswith(("DESC", "ENTY")) for t in texts)


def test_an_encoding_option_reads_latin1_and_its_absence_names_it(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(("pos Très bon film\nneg Pas terrible, hélas\n" * 10).encode("latin-1"))
    with pytest.raises(DataError, match="data.options.encoding=latin-1"):
        load_dataset("text-lines", path=str(path), tokenizer="vocab")
    data = load_dataset("text-lines", path=str(path), tokenizer="vocab", encoding="latin-1")
    assert "Très bon film" in data.raw["train"][0] + data.raw["test"][0]


def test_a_line_without_text_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("pos fine\nneg\n")
    with pytest.raises(DataError, match="line 2 is not 'label text'"):
        load_dataset("text-lines", path=str(path), tokenizer="vocab")
