"""`shotlab curate import` of comments: a CSV or JSONL file of texts becomes a text dataset.

Columns (CSV header, or JSONL keys): `text`, then either `label` (multiclass; with
`--multilabel`, classes separated by ';' or, in JSONL, a list) or one-hot tag columns (every
other column, 0/1), and optionally `split` (train/val/test) and `group` (texts `curate split`
keeps together: one thread, one author).

Where comments live: a FiftyOne sample needs a file, so each comment is written once into the
workspace as `WORKSPACE/texts/<sha256[:2]>/<sha256>.txt` (UTF-8, exactly the comment, 0600),
named by the sha256 of its bytes. The sample's `filepath` is that file and its `text` field the
comment; `dataset.info["kind"]` is "text". The name makes the file path the comment's identity:
the store's unique index on `filepath` then gives idempotent re-import and safe concurrent
imports as for images, and the same text twice is one sample.

Rows are checked before anything is written: a bad row (empty text, not UTF-8, over
`MAX_TEXT_CHARS` characters, a missing column, a tag that is not 0/1, an unknown split) is
skipped and reported by its line; a text repeated with another label is a conflict, reported on
the later line (the first label is kept; an unlabeled line is no answer in a multiclass import,
so it conflicts with nothing and a labelled repeat's label is kept). The source file is only
read.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from shotlab.core import store, workspace
from shotlab.core.errors import InputError, StrictImportError
from shotlab.core.progress import progress_bar
from shotlab.core.rows import (ROW_SUFFIXES, Row, as_str, column_key, other_delimiter,
                               read_rows, without_bom)
from shotlab.curate.duplicates import disagree
from shotlab.curate.records import Skipped, normalise_split, unknown_split

FORMAT = "text"
TEXT_COLUMN = "text"
SPLIT_COLUMN = "split"
GROUP_COLUMN = "group"
# The App has no viewer for .txt media: these fields are switched on in its sidebar, so every
# tile and the sample view show the comment and its label.
APP_FIELDS = ("text", "ground_truth", "tags")


@dataclass(frozen=True)
class Columns:
    """Which column holds what."""

    text: str
    label: str | None  # the label column, else the labels are one-hot `classes`
    classes: tuple[str, ...]
    split: str | None
    group: str | None


@dataclass(frozen=True)
class TextRecord:
    line: int
    text: str
    sha256: str
    labels: tuple[str, ...]
    split: str | None
    group: str | None


def is_text_table(path: Path) -> bool:
    """A .csv or .jsonl file with a `text` column and no image path column: comments."""
    from shotlab.curate.readers.csvfile import PATH_COLUMNS

    if not path.is_file() or path.suffix.lower() not in ROW_SUFFIXES:
        return False
    names = {n.lower() for n in first_names(path)}
    return TEXT_COLUMN in names and not names & {*PATH_COLUMNS, "image_path"}


def first_names(path: Path) -> list[str]:
    """The CSV header's names, or the keys of the first JSONL object ([] if unreadable). Only
    the first line is decoded: a bad byte further down is a bad row, reported by its line."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)  # a header longer than this is no header
        first = next((line for line in head.splitlines() if line.strip()), b"")  # \n, \r\n, \r
        first = without_bom(first).decode("utf-8", errors="replace")
        if path.suffix.lower() == ".csv":
            return [h.strip() for h in next(csv.reader([first]), [])]
        value = json.loads(first or "{}")
        return list(value) if isinstance(value, dict) else []
    except (OSError, csv.Error, json.JSONDecodeError):
        return []


def find_columns(names: list[str], path: Path) -> Columns:
    from shotlab.curate.readers.csvfile import LABEL_COLUMNS, find_column

    text = find_column(names, (TEXT_COLUMN,))
    if text is None:
        raise InputError(f"{path}: no '{TEXT_COLUMN}' column in {names}; " + (
            other_delimiter(names) or f"name the column that holds the comments "
                                      f"'{TEXT_COLUMN}'"))
    label = find_column(names, LABEL_COLUMNS)
    split = find_column(names, (SPLIT_COLUMN,))
    group = find_column(names, (GROUP_COLUMN,))
    classes = () if label else tuple(n for n in names if n and n not in (text, split, group))
    return Columns(text, label, classes, split, group)


def column_names(rows: list[Row]) -> list[str]:
    """The CSV header (every row has its keys), or every key the JSONL objects use, in order."""
    return list(dict.fromkeys(k for row in rows for k in row.fields))


def row_labels(fields: dict, columns: Columns, where: str) -> tuple[str, ...]:
    """The row's classes; ValueError (its message prefixed by `where`) for a bad tag value.
    The label is found in each row as the file's columns are found (letter case aside,
    `label` or `labels`): JSONL rows may spell it differently, and one row's `Label` made
    every other row's `label` unread, importing them as unlabeled without a word."""
    from shotlab.curate.readers.csvfile import LABEL_COLUMNS, label_values, onehot_labels

    if columns.label is None:
        return onehot_labels({c: as_str(fields.get(c)) for c in columns.classes},
                             list(columns.classes), where)
    key = next((k for name in LABEL_COLUMNS if (k := column_key(fields, name)) is not None),
               None)
    return label_values(fields.get(key) if key is not None else None)


def parse_row(row: Row, columns: Columns, source: Path) -> TextRecord | Skipped:
    """The row as a record, or why it is skipped (named by its line)."""
    from shotlab.runtime.text import check_text

    where = f"line {row.line} of {source.name}"
    missing = [c for c in (columns.text, columns.label, *columns.classes) if c in row.missing]
    if missing:
        return Skipped(where, f"missing column '{missing[0]}' (the row ends before it); complete "
                              f"the row (an empty field means unlabeled)")
    if columns.text not in row.fields:
        return Skipped(where, f"no '{columns.text}' field; every row needs its comment")
    try:
        text = check_text(row.fields[columns.text], where)
        labels = row_labels(row.fields, columns, where)
    except (InputError, ValueError) as exc:
        return Skipped(where, str(exc).removeprefix(f"{where}: "))
    raw_split = as_str(row.fields.get(columns.split)).strip() if columns.split else ""
    split = normalise_split(raw_split)
    if raw_split and split is None:
        return Skipped(where, unknown_split(raw_split))
    group = as_str(row.fields.get(columns.group)).strip() if columns.group else ""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return TextRecord(row.line, text, digest, labels, split, group or None)


def read_texts(path: Path, multilabel: bool,
               progress) -> tuple[list[TextRecord], list[Skipped], Columns]:
    """Every row of `path` as a record or a skip, in file order."""
    rows, bad = read_rows(path)
    columns = find_columns(column_names(rows) if rows else first_names(path), path)
    skipped = [Skipped(f"line {line} of {path.name}", reason) for line, reason in bad]
    records = []
    for row in progress_bar(rows, enabled=progress, unit="row", desc="Checking comments"):
        parsed = parse_row(row, columns, path)
        (skipped if isinstance(parsed, Skipped) else records).append(parsed)
    return records, skipped, columns


def check_task(records: list[TextRecord], multilabel: bool, source: Path) -> None:
    several = [r for r in records if len(r.labels) > 1]
    if several and not multilabel:
        from shotlab.core.output import plural

        raise InputError(f"{source}: {plural(len(several), 'row')} with several labels (first: line "
                         f"{several[0].line} -> {', '.join(several[0].labels)}); import with "
                         f"--multilabel")


def show(labels: tuple[str, ...]) -> str:
    return ",".join(labels) or "(unlabeled)"


def unique_texts(records: list[TextRecord], source: Path, multilabel: bool = False
                 ) -> tuple[dict[str, TextRecord], list[Skipped], int, int]:
    """Records by sha256, the first line of each text winning, except that in a multiclass
    import a labelled line wins over an unlabeled one before it (no label is no answer yet:
    keeping the first would lose the label); the other lines are skipped, saying whether their
    label conflicts (`duplicates.disagree`, the rule images follow). Returns also how many texts
    repeat, and how many of those with another label."""
    first: dict[str, TextRecord] = {}
    skipped, repeated, conflicting = [], set(), set()
    for record in records:
        kept = first.setdefault(record.sha256, record)
        if kept is record:
            continue
        repeated.add(record.sha256)
        if record.labels and not kept.labels and not multilabel:
            first[record.sha256], kept, record = record, record, kept
        reason = f"same text as line {kept.line}; imported once"
        if disagree([kept.labels, record.labels], multilabel=multilabel):
            conflicting.add(record.sha256)
            reason = (f"conflict: same text as line {kept.line}, labelled {show(kept.labels)} "
                      f"there and {show(record.labels)} here; line {kept.line}'s label was "
                      f"kept (fix the wrong one)")
        elif set(kept.labels) != set(record.labels):
            reason += f", labelled {show(kept.labels)} as there"
        skipped.append(Skipped(f"line {record.line} of {source.name}", reason))
    return first, skipped, len(repeated), len(conflicting)


def line_of(skipped: Skipped) -> int:
    return int(skipped.path.split()[1])  # "line N of FILE"


def text_path(sha256: str) -> Path:
    """Where the comment whose UTF-8 bytes have this sha256 lives in the workspace."""
    return workspace.current().texts_dir / sha256[:2] / f"{sha256}.txt"


def write_text_file(record: TextRecord) -> str:
    """Write the comment to its content-addressed file (unless it is there intact); its path.

    A temporary file of its own (mkstemp, 0600) then a rename: two imports writing the same
    comment at once never see half a file nor remove each other's temporary file, which the
    fixed `.partial` name of core/files.py would allow.
    """
    path = text_path(record.sha256)
    data = record.text.encode("utf-8")
    if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256:
        return str(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{record.sha256[:8]}-",
                                       suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return str(path)


def make_text_sample(item: tuple[str, TextRecord], task: str, source: dict):
    fo = store.fiftyone()
    filepath, record = item
    applied = sorted(record.labels) if task == "multilabel" else list(record.labels)
    return fo.Sample(filepath=filepath, text=record.text, sha256=record.sha256,
                     ground_truth=store.make_label(record.labels, task), applied_label=applied,
                     split=record.split, group=record.group, source_line=record.line,
                     metadata=fo.Metadata(size_bytes=len(record.text.encode("utf-8")),
                                          mime_type="text/plain"), **source)


def text_dataset(existing, name: str, task: str):
    """The dataset to add to: created (or completed, if an interrupted import left it
    half-made) as a text dataset, with the comment fields declared and shown in the App."""
    if existing is None:
        dataset = store.create(name, task, media=store.TEXT)
    else:
        dataset = existing
        if store.is_half_made(dataset):
            store.complete(dataset, task, media=store.TEXT)
    fo = store.fiftyone()
    schema = dataset.get_field_schema()
    for field, kind in (("text", fo.StringField), ("group", fo.StringField),
                        ("source_line", fo.IntField)):
        if field not in schema:
            dataset.add_sample_field(field, kind)
    if dataset.app_config.active_fields is None:
        dataset.app_config.active_fields = fo.ActiveFields(paths=list(APP_FIELDS))
        dataset.save()
    return dataset


def present_labels(existing, digests: set[str]) -> dict[str, tuple[str, ...]]:
    """sha256 -> current labels of the texts among `digests` already in the dataset."""
    if existing is None or store.is_half_made(existing) or not digests:
        return {}
    view = existing.match({"sha256": {"$in": sorted(digests)}})
    return dict(zip(view.values("sha256"), store.sample_labels(view)))


def conflicts_with_store(new: dict[str, TextRecord], present: dict[str, tuple[str, ...]],
                         name: str, source: Path, multilabel: bool = False) -> list[str]:
    """A warning per row whose labels the dataset's copy of its text does not take: they
    disagree (`duplicates.disagree`: an unlabeled row disagrees with nothing in a multiclass
    dataset), or the row labels a text stored unlabeled (a re-import never changes a sample)."""
    return [f"line {r.line} of {source.name}: conflict: this text is already in '{name}' "
            f"labelled {show(present[d])}, this row says {show(r.labels)}; the dataset keeps "
            f"{show(present[d])} (relabel it in the App and `curate apply` if the row is right)"
            for d, r in new.items() if d in present and (
                disagree([present[d], r.labels], multilabel=multilabel)
                or (r.labels and not present[d]))]


def import_texts(path: Path, name: str, *, multilabel: bool = False, strict: bool = False,
                 allow_empty: bool = False, progress: bool | None = None):
    """Import the comments of `path` (.csv or .jsonl) into the text dataset `name`.

    Returns an ImportReport (curate/import_common.py) with `kind` "text": rows added, already
    there, skipped by line with the reason, repeated texts (`duplicate_groups`) and conflicting
    labels (`conflicting_groups`, each also a skipped line or a warning). Raises InputError for a
    file that cannot be read or holds nothing to import (unless `allow_empty`), and
    StrictImportError (before writing anything) when `strict` and any row was skipped.
    """
    from shotlab.curate.import_common import (ImportReport, add_all, check_not_empty,
                                              require_kind)
    from shotlab.curate.records import Scan

    path = Path(path).absolute()
    if not path.is_file():
        raise InputError(f"{path}: no such file; give a .csv or .jsonl file of comments")
    task = "multilabel" if multilabel else "multiclass"
    existing = store.find(name)
    if existing is not None and not store.is_half_made(existing):
        store.require_task(existing, task)
        require_kind(existing, store.TEXT)
    records, skipped, _ = read_texts(path, multilabel, progress)
    check_task(records, multilabel, path)
    unique, repeats, repeated, conflicting = unique_texts(records, path, multilabel)
    skipped = sorted(skipped + repeats, key=line_of)
    if strict and skipped:
        raise StrictImportError(f"{len(skipped)} rows would be skipped (first: {skipped[0].path}: "
                                f"{skipped[0].reason}); nothing was imported (drop --strict to "
                                f"skip them)")
    present = present_labels(existing, set(unique))
    new = [r for d, r in unique.items() if d not in present]
    check_not_empty(Scan(records=list(unique.values())), new, skipped, existing, path,
                    allow_empty, nothing="no rows with a comment")
    warnings = conflicts_with_store(unique, present, name, path, multilabel)
    dataset = text_dataset(existing, name, task)
    items = [(write_text_file(r), r)
             for r in progress_bar(new, enabled=progress, unit="text", desc="Writing texts")]
    source = {"import_format": FORMAT, "import_path": str(path),
              "imported_at": datetime.now(timezone.utc)}
    added = add_all(dataset, items, task, source, progress, make=make_text_sample, unit="text")
    return ImportReport(name=name, task=task, source=str(path), format=FORMAT, added=added,
                        already_present=len(unique) - added, skipped=skipped,
                        duplicate_groups=repeated, conflicting_groups=conflicting + len(warnings),
                        warnings=warnings, kind=store.TEXT)
