"""`shotlab curate import posts.csv --name N`: posts (an image with its caption) from a CSV or JSONL.

Columns: `image_path` (also `image`, `filepath`: relative to the file's folder, never outside
it), `text` (the caption), `label` (or `labels`, "a;b" for --multilabel), optional `split`.
Rows come from `core/rows.py`; every bad row is reported by its line and skipped: no image path,
a missing or corrupt image (named, with the image check's reason), an empty or over-long caption.

A post sample is an image sample (`curate/importer.py`: `filepath` the image, its sha256,
metadata, labels, split) plus `text` (the caption), `text_sha256` and `source_line`; the
dataset's `info["kind"]` is "post". The image is the post's identity (the unique `filepath`
index), so a re-import adds nothing twice and a second row with the same image is skipped as a
repeat. Curation that works on images (duplicates, quality, label issues on image embeddings)
works on a post dataset unchanged.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from shotlab.core import store
from shotlab.core.errors import InputError, StrictImportError
from shotlab.core.images import DEFAULT_MAX_PIXELS
from shotlab.core.rows import IMAGE_COLUMNS
from shotlab.curate.import_common import ImportReport, add_all, check_not_empty, unique_records
from shotlab.curate.records import Record, Scan, Skipped, normalise_split, unknown_split

KIND = store.POST
LABEL_COLUMNS = ("label", "labels")


@dataclass(frozen=True)
class Caption:
    text: str
    line: int


def looks_like_posts(path: Path) -> bool:
    """A .csv or .jsonl whose header (a JSONL file's first object) names an image column and
    a `text` column. Read from the first row alone: a file the rows reader refuses (a column
    named twice, broken quotes) is told why by the posts import, not sent to the image CSV
    reader to be told it has no file path column."""
    from shotlab.core.rows import ROW_SUFFIXES
    from shotlab.curate.text_import import first_names

    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in ROW_SUFFIXES:
        return False
    fields = {str(name).strip().lower() for name in first_names(path)}
    return "text" in fields and any(c in fields for c in IMAGE_COLUMNS)


def field(row: dict, names: tuple[str, ...]):
    lowered = {str(k).strip().lower(): v for k, v in row.items()}
    return next((lowered[n] for n in names if n in lowered), None)


def scan_posts(path: Path) -> tuple[Scan, dict[str, Caption]]:
    """The records (one per good row) and {resolved image path: caption}; bad rows skipped
    with their line."""
    from shotlab.core.rows import as_str, read_rows
    from shotlab.curate.readers.csvfile import label_values, resolve_row_path
    from shotlab.runtime.text import text_column

    rows, bad = read_rows(path)
    folder = Path(os.path.normpath(path.parent.absolute()))
    scan = Scan(skipped=[Skipped(f"{path}:{line}", reason) for line, reason in bad])
    captions: dict[str, Caption] = {}
    for row in rows:
        where = f"line {row.line} of {path.name}"
        value = field(row.fields, IMAGE_COLUMNS)
        image = resolve_row_path(folder, str(value or "").strip(), where)
        if isinstance(image, Skipped):
            scan.skipped.append(Skipped(image.path, f"{image.reason}" if value else
                                        f"no image path (columns {', '.join(IMAGE_COLUMNS)})"))
            continue
        try:
            text = text_column(row.fields, where, "captions")
        except InputError as exc:
            scan.skipped.append(Skipped(f"{path}:{row.line}", str(exc).split(": ", 1)[-1]))
            continue
        raw_split = as_str(field(row.fields, ("split",))).strip()
        split = normalise_split(raw_split)
        if raw_split and split is None:
            scan.skipped.append(Skipped(f"{path}:{row.line}", unknown_split(raw_split)))
            continue
        scan.records.append(Record(image, label_values(field(row.fields, LABEL_COLUMNS)), split,
                                   where))
        captions.setdefault(os.path.realpath(image), Caption(text, row.line))
    return scan, captions


def declare_post_fields(dataset) -> None:
    fo = store.fiftyone()
    for name in ("text", "text_sha256"):
        dataset.add_sample_field(name, fo.StringField)
    dataset.add_sample_field("source_line", fo.IntField)
    dataset.info["kind"] = KIND
    dataset.save()


def require_posts(dataset, name: str) -> None:
    kind = (dataset.info or {}).get("kind", "image")
    if kind != KIND:
        raise InputError(f"dataset '{name}' holds {kind} samples, not posts; import the posts "
                         f"into a new dataset (another --name)")


def post_maker(captions: dict[str, Caption]):
    """importer.make_sample for a post: the image sample plus its caption fields."""
    from shotlab.curate.importer import make_sample

    def make(checked, task: str, source: dict):
        sample = make_sample(checked, task, source)
        caption = captions[checked[0]]
        sample["text"] = caption.text
        sample["text_sha256"] = hashlib.sha256(caption.text.encode("utf-8")).hexdigest()
        sample["source_line"] = caption.line
        return sample

    return make


def with_lines(bad: list[Skipped], captions: dict[str, Caption], name: str) -> list[Skipped]:
    """The image check's skips named with the row's line, as the other bad rows are."""
    def line_of(path):
        caption = captions.get(os.path.realpath(path))
        return f" (line {caption.line} of {name})" if caption else ""

    return [Skipped(f"{s.path}{line_of(s.path)}", s.reason) for s in bad]


def import_posts(path: str | Path, name: str, *, multilabel: bool = False, strict: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, workers: int | None = None,
                 progress: bool | None = None, allow_empty: bool = False) -> ImportReport:
    """Import the posts of a CSV or JSONL into dataset `name` (created if new); returns the
    same ImportReport as an image import, bad rows in `skipped` by line."""
    from shotlab.curate.duplicates import exact_duplicate_groups
    from shotlab.curate.importer import check_task, inspect_all, target_dataset

    given = Path(path).absolute()
    if not given.is_file():
        raise InputError(f"{given}: no such file; give a .csv or .jsonl of image_path, text, "
                         f"label rows")
    scan, captions = scan_posts(given)
    check_task(scan.records, multilabel, given)
    task = "multilabel" if multilabel else "multiclass"
    existing = store.find(name)
    if existing is not None and not store.is_half_made(existing):
        store.require_task(existing, task)
        require_posts(existing, name)
    candidates, repeats = unique_records(scan.records)
    known = set(existing.values("filepath")) if existing is not None else set()
    new = {f: r for f, r in candidates.items() if f not in known}
    valid, bad = inspect_all(new, max_pixels=max_pixels,
                             workers=workers or min(8, os.cpu_count() or 1), progress=progress)
    skipped = scan.skipped + repeats + with_lines(bad, captions, given.name)
    if strict and skipped:
        raise StrictImportError(f"{len(skipped)} rows would be skipped (first: {skipped[0].path}:"
                                f" {skipped[0].reason}); nothing was imported (drop --strict to "
                                f"skip them)")
    check_not_empty(scan, valid, skipped, existing, given, allow_empty)
    dataset = target_dataset(existing, name, task)
    if (dataset.info or {}).get("kind") != KIND:
        declare_post_fields(dataset)
    source = {"import_format": "posts", "import_path": str(given),
              "imported_at": datetime.now(timezone.utc)}
    added = add_all(dataset, valid, task, source, progress, make=post_maker(captions))
    # A post is its picture and its caption: one picture under two captions is no duplicate
    # (the caption may be what makes it unsafe), so neither is a label "conflict" between them.
    groups = exact_duplicate_groups([f"{image}+{text}" for image, text in zip(
        dataset.values("sha256"), dataset.values("text_sha256"))], store.sample_labels(dataset),
        multilabel=task == "multilabel")
    return ImportReport(name=name, task=task, source=str(given), format="posts", added=added,
                        already_present=len(candidates) - len(bad) - added, skipped=skipped,
                        duplicate_groups=len(groups),
                        conflicting_groups=sum(g.conflicting for g in groups))
