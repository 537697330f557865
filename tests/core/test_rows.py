"""CSV and JSONL rows keep the line they start on; bad rows are reported by line, not raised."""

import pytest

from shotlab.core.errors import InputError
from shotlab.core.rows import read_rows


def test_csv_rows_keep_their_starting_line_and_bad_rows_are_named(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b'\xef\xbb\xbftext,label\n"hi, there",ok\n"two\nlines",ok\n'
                     b'bad \xff byte,ok\n\nx,y,z\nlast,violence\n')
    rows, bad = read_rows(path)
    assert [(r.line, r.fields["text"]) for r in rows] == [(2, "hi, there"), (3, "two\nlines"),
                                                          (8, "last")]
    assert [line for line, _ in bad] == [5, 7]
    assert "not UTF-8" in bad[0][1] and "header has 2" in bad[1][1]


def test_jsonl_rows_and_their_errors(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a", "label": "ok"}\n[1]\n{bad\n\n{"text": "b"}\n')
    rows, bad = read_rows(path)
    assert [(r.line, r.fields["text"]) for r in rows] == [(1, "a"), (5, "b")]
    assert [line for line, _ in bad] == [2, 3]


def test_an_empty_file_or_another_suffix_is_one_line(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(InputError, match="e.csv: the file is empty"):
        read_rows(tmp_path / "e.csv")
    with pytest.raises(InputError, match=r"expected a .csv or .jsonl"):
        read_rows(tmp_path / "e.txt")
