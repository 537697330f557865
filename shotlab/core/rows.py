"""Rows of a CSV or JSONL file, each with the line it starts on: what text import, predict on
comments and posts read. Bad rows are reported by line, never raised one at a time.

    rows, bad = read_rows(Path("comments.csv"))   # [Row(line=2, fields={...})], [(line, reason)]

CSV: the first row is the header (UTF-8, a BOM allowed); a quoted field may span lines, so a row's
`line` is the line it starts on; a blank line (or one of commas alone) is no row, but a line of
spaces is a row, whose text the caller finds empty. JSONL: one JSON object per line; blank lines
are skipped. A row with bytes that are not UTF-8 (on any of its lines) is reported with its line
and the byte offset, and the rest still read; so is a JSON row with a lone surrogate escape
(`\\ud800`) in any field or field name.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.errors import InputError

ROW_SUFFIXES = frozenset({".csv", ".jsonl"})
# The columns a row of posts names its picture by (any letter case), first found wins; a row
# with one and a `text` column is a post (an image and its caption), not a comment.
IMAGE_COLUMNS = ("image_path", "image", "filepath")
# How the reason of a row that is not UTF-8 ends: an import that skipped only such rows says the
# file's encoding is the cause, not its path or format.
SAVE_AS_UTF8 = "save the file as UTF-8"


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line of the file the row starts on
    fields: dict
    missing: tuple[str, ...] = ()  # CSV: header columns the row was too short to hold ("" in fields)


def read_rows(path: Path) -> tuple[list[Row], list[tuple[int, str]]]:
    """The rows of `path` (.csv or .jsonl) and the bad ones as (line, reason)."""
    path = Path(path)
    if path.suffix.lower() not in ROW_SUFFIXES:
        raise InputError(f"{path}: expected a .csv or .jsonl file of rows")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    refuse_utf16(path, data)
    if path.suffix.lower() == ".csv":
        return read_csv(path, data)
    lines, bad = decode_lines(data)
    rows, more_bad = read_jsonl(path, lines)
    return rows, sorted(bad + more_bad)


def refuse_utf16(path: Path, head: bytes) -> None:
    """InputError where `head` (the file's first bytes) starts with a UTF-16 byte order mark:
    every line of it would be "not UTF-8", and the fix is one save."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{path}: the file is UTF-16; save it as UTF-8")


def other_delimiter(header: list[str]) -> str | None:
    """A hint where a CSV header that lacks its columns holds a ';' or a tab (a spreadsheet
    saved with another delimiter reads as one column), else None."""
    found = next((d for d in (";", "\t") if any(d in name for name in header)), None)
    return None if found is None else (
        f"the header holds a {found!r}: the file seems to use another delimiter than a comma; "
        f"save it comma-separated")


def without_bom(data: bytes) -> bytes:
    """`data` without a leading UTF-8 byte order mark (Windows editors write one): it is no
    part of the text, its hash or its decision."""
    return data.removeprefix(b"\xef\xbb\xbf")


def decode_lines(data: bytes) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(line number, text) for each UTF-8 line, and (line, reason) for the ones that are not."""
    data = without_bom(data)
    lines, bad = [], []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            lines.append((number, raw.decode("utf-8")))
        except UnicodeDecodeError as exc:
            bad.append((number, f"not UTF-8 (byte {exc.start + 1} of the line); "
                                f"{SAVE_AS_UTF8}"))
    return lines, bad


def read_jsonl(path: Path, lines) -> tuple[list[Row], list[tuple[int, str]]]:
    rows, bad = [], []
    for number, text in lines:
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            bad.append((number, f"not valid JSON ({exc.msg})"))
            continue
        except RecursionError:
            bad.append((number, "JSON nested too deeply to read; flatten the row"))
            continue
        if not isinstance(value, dict):
            bad.append((number, "expected a JSON object with named fields"))
            continue
        if (reason := unwritable_field(value)) is not None:
            bad.append((number, reason))
            continue
        rows.append(Row(number, value))
    return rows, bad


def unwritable_field(value) -> str | None:
    """Why a JSON row cannot be stored, where a string in it (a field's name or value, a label
    in a list) holds a lone surrogate: the database, hashes and tokenizers refuse it, and a
    label that reached the import's write crashed it part way. Walked with a stack: a row
    nested thousands deep is no reason for a RecursionError."""
    stack = [("", value)]
    while stack:
        name, item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if (reason := surrogate_reason(f"the field name {ascii(key)}", key)) is not None:
                    return reason
                stack.append((str(key) if not name else f"{name}.{key}", inner))
        elif isinstance(item, list):
            stack.extend((name, inner) for inner in item)
        elif isinstance(item, str):
            shown = f"field '{name}'" if name.lower() != "text" else "the text"
            if (reason := surrogate_reason(shown, item)) is not None:
                return reason
    return None


def surrogate_reason(what: str, text: str) -> str | None:
    """'{what} is not valid Unicode text: ...' where `text` holds a lone surrogate (a JSON
    escape such as `\\ud800` without its pair), else None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"{what} is not valid Unicode text: it holds a lone surrogate "
                f"({ascii(text[exc.start])} at character {exc.start + 1}, a JSON escape without "
                f"its pair); fix or remove that escape")
    return None


def read_csv(path: Path, data: bytes) -> tuple[list[Row], list[tuple[int, str]]]:
    """CSV rows keyed by the header; a row with more fields than the header, or one with a line
    that is not UTF-8, is bad. The whole file is parsed (bytes that are not UTF-8 held as
    escapes), so such a line never moves the quotes of the rows after it: cut out before
    parsing, a bad line inside a quoted field turned the field's later lines into rows of their
    own. A quote left open, or text after a closing quote, makes the whole file unreadable:
    where the next row starts is then a guess, and a guess would read rows into one comment or
    one label."""
    data = without_bom(data)
    if not data.strip(b"\r\n"):
        raise InputError(f"{path}: the file is empty; expected a header row such as text,label")
    not_utf8 = dict(decode_lines(data)[1])
    text = data.decode("utf-8", "surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))  # a long text is skipped by its row's check
    try:
        return csv_records(path, reader, not_utf8)
    finally:
        csv.field_size_limit(limit)


def next_record(path: Path, reader, line: int) -> list[str] | None:
    """The reader's next record (None at the end); `line` is where it starts, for the error."""
    try:
        return next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{path}: the row starting on line {line} is not valid CSV ({exc}); "
                         f"close its quotes, and double a quote inside a quoted field "
                         f"(\"\")") from None


def csv_records(path: Path, reader, not_utf8: dict[int, str]
                ) -> tuple[list[Row], list[tuple[int, str]]]:
    """The rows after the header; `not_utf8` is {line: reason} for the lines that are not
    UTF-8 (`decode_lines`)."""
    header = next_record(path, reader, 1) or [""]
    if (found := first_bad_line(not_utf8, 1, reader.line_num)) is not None:
        raise InputError(f"{path}: line {found[0]} of the header row is {found[1]}")
    if not any(h.strip() for h in header):
        raise InputError(f"{path}: line 1 should be a header such as text,label")
    header = [h.strip() for h in header]
    refuse_repeats(path, header)
    rows, bad = [], []
    while (record := next_record(path, reader, number := reader.line_num + 1)) is not None:
        if not any(record):  # a blank line, or only commas; a field of spaces is text
            continue
        if (found := first_bad_line(not_utf8, number, reader.line_num)) is not None:
            line, reason = found
            bad.append((number, reason if line == number else f"on line {line}: {reason}"))
        elif len(record) > len(header):
            bad.append((number, f"{len(record)} fields but the header has {len(header)}; "
                                f"quote fields that hold commas"))
        else:
            rows.append(Row(number, dict(zip(header, record + [""] * (len(header) - len(record)))),
                            tuple(header[len(record):])))
    return rows, bad


# The columns a reader finds by name, letter case aside: named twice, a row kept the last
# one's value ('text,text' lost the first text without a word). Other columns may repeat, as
# in the image CSV reader: one-hot classes 'Cat' and 'cat' are two columns.
FOUND_COLUMNS = frozenset({"text", "label", "labels", "split", "group", *IMAGE_COLUMNS})


def refuse_repeats(path: Path, header: list[str]) -> None:
    """Refuse a header naming one of FOUND_COLUMNS twice (letter case aside)."""
    seen: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        key = name.lower()
        if key in FOUND_COLUMNS and (first := seen.setdefault(key, number)) != number:
            raise InputError(f"{path}: the header names column '{name}' twice (columns {first} "
                             f"and {number}); rename or remove one")


def first_bad_line(not_utf8: dict[int, str], first: int, last: int) -> tuple[int, str] | None:
    """(line, why) where a record on lines `first`..`last` has a line that is not UTF-8: the
    whole record is left out, never a part of it."""
    line = next((n for n in range(first, last + 1) if n in not_utf8), None)
    return None if line is None else (line, not_utf8[line])


def as_str(value) -> str:
    """A JSONL value as the CSV reader would have it: None -> '', true -> 'true', 1 -> '1'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else json.dumps(value)


def column_key(fields: dict, name: str) -> str | None:
    """The key of `fields` that names column `name`, as imports match columns: spaces around
    and letter case ignored ('Text' is `text`); None when there is none."""
    if name in fields:
        return name
    return next((k for k in fields if isinstance(k, str) and k.strip().lower() == name), None)

