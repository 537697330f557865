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


def test_a_line_of_spaces_is_a_row_and_a_blank_line_none(tmp_path):
    """A comment of spaces in a one-column file was dropped as a blank line, so import and
    predict never said it was empty (with a label column it was a row, reported empty)."""
    path = tmp_path / "c.csv"
    path.write_text("text\nhello world\n   \n\t\n\nbye now\n,\n")
    rows, bad = read_rows(path)
    assert [(r.line, r.fields["text"]) for r in rows] == [(2, "hello world"), (3, "   "),
                                                          (4, "\t"), (6, "bye now")]
    assert bad == []


def test_jsonl_rows_and_their_errors(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a", "label": "ok"}\n[1]\n{bad\n\n{"text": "b"}\n')
    rows, bad = read_rows(path)
    assert [(r.line, r.fields["text"]) for r in rows] == [(1, "a"), (5, "b")]
    assert [line for line, _ in bad] == [2, 3]


def test_a_lone_surrogate_anywhere_in_a_json_row_skips_it_by_line(tmp_path):
    """Valid JSON, but no text: a label `"spam\\ud800"` crashed `curate import` with a
    traceback when the database refused it, part way through the write."""
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "a", "label": "spam\\ud800"}\n'
                    '{"text": "b", "labels": ["ok", "x\\udfff"]}\n'
                    '{"text": "c", "meta": {"\\ud800k": 1}}\n{"text": "d\\ud83d"}\n'
                    '{"text": "e \\ud83d\\ude00", "label": "ok"}\n')
    rows, bad = read_rows(path)
    assert [r.line for r in rows] == [5]  # a surrogate pair is an emoji, not a fault
    assert [line for line, _ in bad] == [1, 2, 3, 4]
    reasons = [reason for _, reason in bad]
    assert reasons[0].startswith("field 'label' is not valid Unicode text: it holds a lone "
                                 "surrogate ('\\ud800' at character 5")
    assert reasons[1].startswith("field 'labels' is not valid")
    assert reasons[2].startswith("the field name '\\ud800k' is not valid")
    assert reasons[3].startswith("the text is not valid")


def test_an_empty_file_or_another_suffix_is_one_line(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(InputError, match="e.csv: the file is empty"):
        read_rows(tmp_path / "e.csv")
    with pytest.raises(InputError, match=r"expected a .csv or .jsonl"):
        read_rows(tmp_path / "e.txt")


def test_a_field_past_csvs_own_limit_is_a_row_not_a_crash(tmp_path):
    """Python's csv refuses fields over 131,072 characters; the row's own checks judge it."""
    import csv

    path = tmp_path / "c.csv"
    path.write_text("text,label\nfirst,ok\n" + "c" * 200_000 + ",ok\nsmall,ok\n")
    limit = csv.field_size_limit()
    rows, bad = read_rows(path)
    assert [(r.line, len(r.fields["text"])) for r in rows] == [(2, 5), (3, 200_000), (4, 5)]
    assert bad == [] and csv.field_size_limit() == limit


@pytest.mark.parametrize("content, line, why", [
    (b'text,label\nfirst,"ok\nsecond,ok\nthird,violence\n', 2, "unexpected end of data"),
    (b'text,label\nfirst,ok\n"a"b,ok\n', 3, "',' expected after '\"'"),
])
def test_broken_quoting_refuses_the_file_naming_the_row(tmp_path, content, line, why):
    """A quote left open read the rest of the file into one label; now nothing is guessed."""
    path = tmp_path / "q.csv"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_rows(path)
    assert str(caught.value).startswith(
        f"{path}: the row starting on line {line} is not valid CSV ({why}); close its quotes")


@pytest.mark.parametrize("content, reason", [
    (b'"multi\ncaf\xe9 line\nend",ok', "on line 3: not UTF-8 (byte 4 of the line)"),
    # the bad line opens the quotes: cut out before parsing, the field's later lines were read
    # as comments of their own ("kill you tonight\"" labelled violence)
    (b'"caf\xe9 I will\nkill you tonight",violence', "not UTF-8 (byte 5 of the line)"),
    # the bad line closes them: the file was refused as "not valid CSV, close its quotes"
    (b'"multi line\nsecond caf\xe9 part",ok', "on line 3: not UTF-8 (byte 11 of the line)"),
])
def test_a_row_with_a_bad_line_is_skipped_whole_and_the_rows_after_it_are_read(
        tmp_path, content, reason):
    path = tmp_path / "c.csv"
    path.write_bytes(b"text,label\n" + content + b"\nnext,violence\nlast,ok\n")
    rows, bad = read_rows(path)
    after = 2 + content.count(b"\n") + 1
    assert [(r.line, r.fields["text"]) for r in rows] == [(after, "next"), (after + 1, "last")]
    assert [line for line, _ in bad] == [2]
    assert bad[0][1].startswith(reason) and bad[0][1].endswith("save the file as UTF-8")


def test_a_header_naming_a_column_twice_refuses_the_file(tmp_path):
    """'text,text' read the second text alone, and the first was lost without a word."""
    path = tmp_path / "c.csv"
    path.write_text("text,label,Text\na,ok,b\n")
    with pytest.raises(InputError, match=r"c.csv: the header names column 'Text' twice "
                                         r"\(columns 1 and 3\); rename or remove one"):
        read_rows(path)
    # a column no reader finds by name may repeat: one-hot classes 'Cat' and 'cat', notes
    path.write_text("text,Cat,cat,notes,Notes\na,1,0,x,y\n")
    assert read_rows(path)[0][0].fields == {"text": "a", "Cat": "1", "cat": "0", "notes": "x",
                                            "Notes": "y"}


def test_a_header_that_is_not_utf8_refuses_the_file(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"t\xe9xt,label\nfirst,ok\n")
    with pytest.raises(InputError, match=r"c.csv: line 1 of the header row is not UTF-8 \(byte "
                                         r"2 of the line\)"):
        read_rows(path)


def test_a_utf16_file_is_named_as_such(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes("text,label\nhello,ok\n".encode("utf-16"))
    with pytest.raises(InputError, match=r"u.csv: the file is UTF-16; save it as UTF-8"):
        read_rows(path)


def test_a_column_is_found_as_imports_find_it():
    from shotlab.core.rows import column_key
    from shotlab.export.predict_texts import comment_of

    assert column_key({"Text ": "hi", "text": "exact"}, "text") == "text"
    assert column_key({" TEXT": "hi"}, "text") == " TEXT" and column_key({"x": 1}, "text") is None
    assert comment_of("c.csv", 2, {"Text": "hello"}).text == "hello"  # predict refused it


def test_a_deeply_nested_json_row_is_a_bad_line_not_a_traceback(tmp_path):
    """A row nested 600 deep crashed the surrogate check with a RecursionError, and one 100,000
    deep json.loads itself: both ended `curate import` and `predict` in a traceback."""
    path = tmp_path / "c.jsonl"
    deep = '{"text": "a", "x": ' + "[" * 600 + "]" * 600 + "}"
    deeper = '{"text": "b", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text(f'{deep}\n{deeper}\n{{"text": "c"}}\n')
    rows, bad = read_rows(path)
    assert [r.line for r in rows] == [1, 3]
    assert bad == [(2, "JSON nested too deeply to read; flatten the row")]
