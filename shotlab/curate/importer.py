"""`shotlab curate import`: read a source, check every image, add the new ones to the store.

The pipeline is: find the format, let its reader list labelled paths (`Scan`), hash and fully
decode each file in a thread pool (`inspect_image`), then add the samples whose resolved path is
not in the dataset yet. Bad files are skipped and listed with their reason; nothing the user owns
is moved or modified. With `strict=True` any skip fails the import before anything is added.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from shotlab.core import store, workspace
from shotlab.core.errors import BadImageError, InputError, StrictImportError
from shotlab.core.images import DEFAULT_MAX_PIXELS, ImageFacts, inspect_image
from shotlab.core.progress import progress_bar
from shotlab.curate import archives
from shotlab.curate.duplicates import exact_duplicate_groups
from shotlab.curate.records import Record, Scan, Skipped

FORMATS = ("auto", "folder", "csv", "roboflow", "fiftyone")
LABELS_CSV = "labels.csv"
BATCH = 500  # samples per database write: big enough to be fast, small enough to show progress


@dataclass
class ImportReport:
    name: str
    task: str
    source: str
    format: str
    added: int = 0
    already_present: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0
    duplicate_groups: int = 0
    conflicting_groups: int = 0

    def to_dict(self) -> dict:
        data = dict(vars(self))
        data["skipped"] = [vars(s) for s in self.skipped]
        return data


def resolve_source(path: Path, fmt: str) -> tuple[Path, str]:
    """The folder or CSV to read (zips extracted into the workspace) and its format."""
    if not (path.exists() or path.is_symlink()):
        raise InputError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() == ".zip":
        path = archives.unwrap(archives.extract(path, workspace.current().media_dir))
    if fmt in ("auto", "csv") and (path / LABELS_CSV).is_file():
        path = path / LABELS_CSV  # the layout `curate export --format csv` writes
    if fmt == "auto":
        fmt = detect_format(path)
    if (fmt == "csv") != path.is_file():
        expected = "a .csv file" if fmt == "csv" else "a folder (or a .zip of one)"
        raise InputError(f"{path}: --format {fmt} expects {expected}")
    return path, fmt


def detect_format(path: Path) -> str:
    from shotlab.curate.readers.fiftyone_dir import looks_like_fiftyone
    from shotlab.curate.readers.roboflow import looks_like_roboflow

    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise InputError(f"{path}: cannot import this file; give a folder, a .zip or a .csv")
    if looks_like_fiftyone(path):
        return "fiftyone"
    return "roboflow" if looks_like_roboflow(path) else "folder"


def read(path: Path, fmt: str, multilabel: bool) -> Scan:
    from shotlab.curate.readers import csvfile, fiftyone_dir, folder, roboflow

    readers = {
        "folder": lambda: folder.read_folder(path),
        "csv": lambda: csvfile.read_table(path, multilabel=multilabel),
        "roboflow": lambda: roboflow.read_roboflow(path, multilabel=multilabel),
        "fiftyone": lambda: fiftyone_dir.read_fiftyone(path),
    }
    return readers[fmt]()


def check_task(records: list[Record], multilabel: bool, source: Path) -> None:
    if multilabel:
        return
    several = [r for r in records if len(r.labels) > 1]
    if several:
        raise InputError(f"{source}: {len(several)} images have several labels (first: "
                         f"{several[0].path} -> {', '.join(several[0].labels)}); "
                         f"import with --multilabel")


def unique_records(records: list[Record]) -> tuple[list[Record], list[Skipped]]:
    """One record per resolved path: a sample's identity is its resolved file path."""
    seen: set[Path] = set()
    kept, repeats = [], []
    for record in records:
        key = record.path.resolve()
        if key in seen:
            repeats.append(Skipped(str(record.path), "listed more than once; the first entry was used"))
        else:
            seen.add(key)
            kept.append(record)
    return kept, repeats


def inspect_all(records: list[Record], *, max_pixels: int, workers: int,
                progress: bool | None) -> tuple[list[tuple[Record, ImageFacts]], list[Skipped]]:
    """Hash and decode every file in a thread pool (decoding and hashing release the GIL)."""
    def check(record: Record) -> ImageFacts | Skipped:
        try:
            return inspect_image(record.path, max_pixels=max_pixels)
        except BadImageError as exc:
            return Skipped(exc.path, exc.reason)

    valid, skipped = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(check, records)
        for record, result in progress_bar(zip(records, results), enabled=progress,
                                           total=len(records), unit="img", desc="Checking images"):
            if isinstance(result, Skipped):
                skipped.append(result)
            else:
                valid.append((record, result))
    return valid, skipped


def make_sample(record: Record, facts: ImageFacts, task: str, source: dict):
    fo = store.fiftyone()
    metadata = fo.ImageMetadata(size_bytes=facts.size_bytes, mime_type=facts.mime_type,
                                width=facts.width, height=facts.height,
                                num_channels=facts.channels)
    return fo.Sample(filepath=str(record.path.resolve()), ground_truth=store.make_label(record.labels, task),
                     split=record.split, sha256=facts.sha256, metadata=metadata, **source)


def add_new(dataset, valid: list[tuple[Record, ImageFacts]], task: str, source: dict,
            progress: bool | None) -> int:
    """Add the samples whose resolved path is not in the dataset; return how many were added."""
    existing = set(dataset.values("filepath"))
    new = [(r, f) for r, f in valid if str(r.path.resolve()) not in existing]
    with progress_bar(enabled=progress, total=len(new), unit="img", desc="Adding to dataset") as bar:
        for start in range(0, len(new), BATCH):
            batch = [make_sample(r, f, task, source) for r, f in new[start:start + BATCH]]
            dataset.add_samples(batch, progress=False)
            bar.update(len(batch))
    return len(new)


def import_path(path: str | Path, name: str, *, fmt: str = "auto", multilabel: bool = False,
                strict: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                workers: int | None = None, progress: bool | None = None) -> ImportReport:
    """Import images and labels from `path` into the dataset `name` (created if new).

    Returns an ImportReport: how many samples were added, how many were already there, and
    every skipped file with its reason. Raises InputError for a source that cannot be read,
    and StrictImportError (before adding anything) when `strict` and any file was skipped.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")
    given = Path(path).absolute()
    root, fmt = resolve_source(given, fmt)
    scan = read(root, fmt, multilabel)
    records, repeats = unique_records(scan.records)
    check_task(records, multilabel, given)
    task = "multilabel" if multilabel else "multiclass"
    valid, bad = inspect_all(records, max_pixels=max_pixels,
                             workers=workers or min(8, os.cpu_count() or 1), progress=progress)
    skipped = scan.skipped + repeats + bad
    if strict and skipped:
        raise StrictImportError(f"{len(skipped)} files would be skipped (first: {skipped[0].path}: "
                                f"{skipped[0].reason}); nothing was imported (drop --strict to skip them)")
    dataset = store.open_or_create(name, task)
    source = {"import_format": fmt, "import_path": str(given),
              "imported_at": datetime.now(timezone.utc)}
    added = add_new(dataset, valid, task, source, progress)
    groups = exact_duplicate_groups(dataset.values("sha256"), store.sample_labels(dataset))
    return ImportReport(name=name, task=task, source=str(given), format=fmt, added=added,
                        already_present=len(valid) - added, skipped=skipped,
                        ignored=len(scan.ignored), duplicate_groups=len(groups),
                        conflicting_groups=sum(g.conflicting for g in groups))
