"""CSV label files: `filepath,label[,split]` or one-hot `filepath,classA,classB,...[,split]`.

Paths are relative to the CSV's folder. A row naming a file outside that folder tree, or a file
that does not exist, is reported with its row number, never followed. Header names and values
are stripped of surrounding spaces (Roboflow writes `filename, classA, classB`), so class names
keep their inner spaces as written.

Images in the rows' folders that no row names (nor another CSV beside this one) are not
imported, and counted as unlisted: a truncated label file would otherwise lose them unseen.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from shotlab.core.errors import InputError
from shotlab.core.rows import decode_lines, other_delimiter, refuse_utf16, without_bom
from shotlab.curate.readers.folder import is_media_path, visible
from shotlab.curate.records import (Record, Scan, Skipped, Unlisted, normalise_split,
                                   unknown_split)

PATH_COLUMNS = ("filepath", "filename", "file", "path", "image")
LABEL_COLUMNS = ("label", "labels")
SPLIT_COLUMN = "split"
MULTI_SEPARATOR = ";"  # `labels` column of a multilabel CSV: "cat;dog"
TRUE_VALUES, FALSE_VALUES = {"1", "1.0", "true"}, {"0", "0.0", "false", ""}


def read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and every non-blank row with the line it ends on; a short row lacks the keys
    of its missing fields, a long one holds its extra non-empty fields under the key None (as
    csv.DictReader's restkey; a trailing comma adds an empty field, which is no misalignment)."""
    def fields(row: list[str]) -> dict:
        values = dict(zip(header, (v.strip() for v in row)))
        extra = row[len(header):]
        return values | ({None: extra} if any(v.strip() for v in extra) else {})

    try:
        data = path.read_bytes()
        refuse_utf16(path, data[:2])
        reader = csv.reader(io.StringIO(utf8_text(path, data), newline=""),
                            skipinitialspace=True)
        header = [h.strip() for h in next(reader, [])]
        rows = [(reader.line_num, fields(row)) for row in reader if any(row)]
    except (OSError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read as CSV ({exc})") from None
    if not header:
        raise InputError(f"{path}: empty CSV file; expected a header such as 'filepath,label'")
    return header, rows


def utf8_text(path: Path, data: bytes) -> str:
    """The file's text (a UTF-8 BOM dropped), or InputError naming the first line that is not
    UTF-8 as the comment reader does (`core.rows.decode_lines`: the line, the byte in it)."""
    try:
        return without_bom(data).decode("utf-8")
    except UnicodeDecodeError:
        line, reason = decode_lines(data)[1][0]
        raise InputError(f"{path}: line {line} is {reason}") from None


def check_header(path: Path, header: list[str], roles: list[str | None],
                 classes: list[str]) -> None:
    """Refuse a header naming a column it reads twice: the path, label and split columns
    (found whatever their case) and, in a one-hot CSV, the classes. A row's later value would
    silently win (a label read from the second 'label' column, a class counted twice); a
    column nobody reads ('notes') may repeat."""
    read = [(role, lambda h, r=role: h.lower() == r.lower()) for role in roles if role]
    read += [(name, lambda h, n=name: h == n) for name in dict.fromkeys(classes)]
    for name, same in read:
        numbers = [number for number, column in enumerate(header, 1) if same(column)]
        if len(numbers) > 1:
            raise InputError(f"{path}: the header names column '{name}' twice (columns "
                             f"{numbers[0]} and {numbers[1]}); rename or remove one")


def find_column(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.lower(): h for h in header}
    return next((lowered[n] for n in names if n in lowered), None)


def resolve_row_path(folder: Path, value: str, where: str) -> Path | Skipped:
    """The row's file, or why it is refused: outside the CSV's folder tree, or missing."""
    if not value:
        return Skipped(where, "empty file path")
    candidate = Path(os.path.normpath(folder / value))  # lexical: '..' cannot climb out unseen
    if not candidate.is_relative_to(folder):
        return Skipped(f"{candidate} ({where})",
                       f"outside the CSV's folder {folder}; move the file under it")
    if not (candidate.exists() or candidate.is_symlink()):
        return Skipped(f"{candidate} ({where})", "file not found")
    return candidate


def onehot_labels(row: dict[str, str], classes: list[str], where: str) -> tuple[str, ...]:
    labels = []
    for name in classes:
        value = row.get(name, "").lower()
        if value in TRUE_VALUES:
            labels.append(name)
        elif value not in FALSE_VALUES:
            raise ValueError(f"{where}: column '{name}' is '{row[name]}', expected 0 or 1")
    return tuple(labels)


def read_table(csv_path: Path, *, multilabel: bool, default_split: str | None = None) -> Scan:
    """Records from one CSV; `default_split` applies where there is no split column."""
    header, rows = read_rows(csv_path)
    path_column = find_column(header, PATH_COLUMNS)
    if path_column is None:
        raise InputError(f"{csv_path}: no file path column in {header}; " + (
            other_delimiter(header) or f"name one '{PATH_COLUMNS[0]}' (or "
            f"{', '.join(PATH_COLUMNS[1:])}), or, for a file of comments, name the comments' "
            f"column 'text'"))
    label_column = find_column(header, LABEL_COLUMNS)
    split_column = find_column(header, (SPLIT_COLUMN,))
    classes = [h for h in header if h not in (path_column, split_column) and h]
    check_header(csv_path, header, [path_column, label_column, split_column],
                 [] if label_column else classes)
    folder = Path(os.path.normpath(csv_path.parent.absolute()))
    scan, named = Scan(), set()
    for number, row in rows:
        where = f"row {number} of {csv_path.name}"
        require_fields(row, [label_column] if label_column else classes, csv_path, number, header)
        if None in row:  # a misaligned row: its values may sit in the wrong columns
            scan.skipped.append(Skipped(where, f"{len(header) + len(row[None])} fields, the "
                                        f"header has {len(header)} ({','.join(header)}); quote "
                                        f"a value holding a comma, or remove the extra fields"))
            continue
        path = resolve_row_path(folder, row.get(path_column, ""), where)
        named.add(path if isinstance(path, Path) else None)
        if isinstance(path, Skipped):
            scan.skipped.append(path)
            continue
        try:
            labels = (split_labels(row[label_column]) if label_column
                      else onehot_labels(row, classes, where))
        except ValueError as exc:
            scan.skipped.append(Skipped(str(path), str(exc)))
            continue
        split = normalise_split(row.get(split_column)) if split_column else default_split
        if split_column and split is None and row.get(split_column, "").strip():
            scan.skipped.append(Skipped(str(path), f"{where}: {unknown_split(row[split_column])}"))
            continue
        scan.records.append(Record(path, labels, split, where))
    scan.unlisted = [Unlisted(p, csv_path) for p in unlisted_images(csv_path, named)]
    return scan


def unlisted_images(csv_path: Path, named: set) -> list[Path]:
    """The images and clips beside the rows' own that no row names (rows skipped for their label
    or split still name theirs): the rows a truncated or partial label file lacks.

    Only the folders the rows' images sit in are looked at, not the folders below them (a CSV
    at ~ does not walk the home tree), and images another CSV beside this one names are left
    out: with data/train.csv and data/val.csv sharing data/images/, the val images are not
    missing rows of train.csv. Compared as written, as rows are resolved (`resolve_row_path`)."""
    folders = sorted({p.parent for p in named if p is not None})
    unnamed = [p for folder in folders for p in media_in(folder) if p not in named]
    if not unnamed:  # nearly always: the sibling CSVs need not be read
        return []
    others = rows_of_other_csvs(csv_path)
    return [p for p in unnamed if p not in others]


def media_in(folder: Path) -> list[Path]:
    """The images and clips directly in `folder` (links to files too), hidden ones passed over."""
    try:
        return sorted(p for p in folder.iterdir()
                      if visible(p) and is_media_path(p) and not p.is_dir())
    except OSError:
        return []  # a row's folder that cannot be listed: its rows' own files say why


def rows_of_other_csvs(csv_path: Path) -> set[Path]:
    """The files the other CSV files in `csv_path`'s folder name in their path column, resolved
    as this CSV's rows are. A CSV that cannot be read, or has no path column, names none."""
    folder = Path(os.path.normpath(csv_path.parent.absolute()))
    named = set()
    for other in sorted(folder.glob("*")):
        if (other.suffix.lower() != ".csv" or other.name == csv_path.name or not visible(other)
                or not other.is_file()):
            continue
        try:
            header, rows = read_rows(other)
        except InputError:
            continue
        column = find_column(header, PATH_COLUMNS)
        named |= {Path(os.path.normpath(folder / row[column])) for _, row in rows
                  if column and row.get(column)}
    return named


def require_fields(row: dict[str, str], columns: list[str], csv_path: Path, line: int,
                   header: list[str]) -> None:
    """A row too short to hold its labels is a broken file, not an unlabeled image."""
    missing = [c for c in columns if c not in row]
    if missing:
        raise InputError(f"{csv_path}: line {line} has {len(row)} fields, no '{missing[0]}' "
                         f"(the header has {len(header)}: {','.join(header)}); complete the row "
                         f"(an empty field means unlabeled)")


def label_values(value) -> tuple[str, ...]:
    """A CSV or JSONL label field's classes: a JSONL list (each item as text, once), or the
    `split_labels` of the text."""
    from shotlab.core.rows import as_str

    if isinstance(value, list):  # JSONL: "labels": ["violence", "harassment"]
        return tuple(dict.fromkeys(as_str(v).strip() for v in value if as_str(v).strip()))
    return split_labels(as_str(value).strip())


def split_labels(value: str) -> tuple[str, ...]:
    """The labels of a label field: 'cat;dog' is two in either task, so a multiclass import
    refuses it (`importer.check_task`: use --multilabel) instead of making a class 'cat;dog'."""
    if not value:
        return ()
    return tuple(dict.fromkeys(v.strip() for v in value.split(MULTI_SEPARATOR) if v.strip()))
