"""`shotlab curate import`: read a source, check every image, add the new ones to the store.

The pipeline is: find the format, let its reader list labelled paths (`Scan`), hash and fully
decode each file in a thread pool (`inspect_image`), then add the samples whose resolved path is
not in the dataset yet. Bad files are skipped and listed with their reason; nothing the user owns
is moved or modified. With `strict=True` any skip fails the import before anything is added.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from shotlab.core import store, workspace
from shotlab.core.archive_limits import ZipLimits
from shotlab.core.errors import BadImageError, InputError, StrictImportError
from shotlab.core.images import DEFAULT_MAX_PIXELS, ImageFacts, inspect_image
from shotlab.core.output import plural
from shotlab.core.progress import progress_bar
from shotlab.curate import archives, clip_import, text_import
from shotlab.curate.duplicates import exact_duplicate_groups
from shotlab.curate.import_common import (ImportReport, add_all, check_not_empty, require_kind,
                                          unique_records, unlisted_warnings)
from shotlab.curate.records import Record, Scan, Skipped

FORMATS = ("auto", "folder", "csv", "roboflow", "fiftyone", "text")
LABELS_CSV = "labels.csv"
REPEATED_PATHS = ("dataset '{name}' already holds samples that repeat another sample's file path "
                  "(left by concurrent imports of an older shotlab), so concurrent imports into it "
                  "are not guarded; delete the repeated samples in the App to restore the guard")


def resolve_source(path: Path, fmt: str, zip_limits: ZipLimits | None = None) -> tuple[Path, str]:
    """The folder or CSV to read (zips extracted into the workspace) and its format."""
    if not (path.exists() or path.is_symlink()):
        raise InputError(f"{path}: no such file or folder")
    if path.is_file() and path.suffix.lower() == ".zip":
        path = archives.unwrap(archives.extract(path, workspace.current().media_dir, zip_limits))
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
        if path.suffix.lower() == ".jsonl":  # comments or posts, and no `text` key was found
            return no_text_key(path)
        raise InputError(f"{path}: cannot import this file; give a folder, a .zip or a .csv")
    if looks_like_fiftyone(path):
        return "fiftyone"
    return "roboflow" if looks_like_roboflow(path) else "folder"


def no_text_key(path: Path):
    """InputError for a .jsonl that is no file of comments: UTF-16, or no `text` key."""
    from shotlab.core.rows import refuse_utf16
    from shotlab.curate.text_import import first_names

    try:
        with open(path, "rb") as f:
            refuse_utf16(path, f.read(2))
    except OSError:
        pass  # first_names finds nothing either
    raise InputError(f"{path}: no 'text' key in its first object ({first_names(path)}); a "
                     f".jsonl of comments (or of posts, beside an image path) names the "
                     f"comment 'text'")


def read(path: Path, fmt: str, multilabel: bool) -> Scan:
    from shotlab.curate.readers import csvfile, fiftyone_dir, folder, roboflow

    readers = {
        "folder": lambda: folder.read_folder(path),
        "csv": lambda: csvfile.read_table(path, multilabel=multilabel),
        "roboflow": lambda: roboflow.read_roboflow(path, multilabel=multilabel),
        "fiftyone": lambda: fiftyone_dir.read_fiftyone(path),
    }
    return readers[fmt]()


def source_disagrees(existing, paths: list[str], candidates: dict[str, Record],
                     name: str) -> list[str]:
    """A warning when files already in the dataset (`paths`, its filepaths in order) have other
    labels, or another split, in this source: a re-import adds new files and never changes a
    sample. (A source that leaves a file unlabeled or without a split disagrees with nothing.)"""
    if existing is None or candidates.keys().isdisjoint(paths):
        return []
    stored = {f: (frozenset(labels), split) for f, labels, split in zip(
        paths, store.sample_labels(existing), existing.values("split"))}
    differ = [(f, r) for f, r in candidates.items() if f in stored and (
        (r.labels and frozenset(r.labels) != stored[f][0])
        or (r.split and r.split != stored[f][1]))]
    if not differ:
        return []
    path, record = differ[0]
    labels, split = stored[path]
    return [f"{plural(len(differ), 'file')} already in '{name}' "
            f"{'has' if len(differ) == 1 else 'have'} other labels or another split in "
            f"this source (first: {path}: {','.join(sorted(labels)) or 'unlabeled'} / "
            f"{split or 'no split'} in the dataset, {','.join(record.labels) or 'unlabeled'} / "
            f"{record.split or 'no split'} here); a re-import never changes a sample: relabel "
            f"in the App (a relabel:<class> tag, then `shotlab curate apply`)"]


def gone_from_source(existing, root: Path, paths: list[str], candidates: dict,
                     name: str) -> list[str]:
    """A warning when samples of this source's folder, not tagged `exclude`, have files that
    are gone from disk: a file moved to another class folder is imported again under its new
    path and label, and its old sample stays (the summary counted it as a copy with a
    conflicting label, then train and export refused the missing file)."""
    from shotlab.curate.review import EXCLUDE_TAG

    folder = (root if root.is_dir() else root.parent).resolve()  # samples' paths: resolved
    inside = str(folder) + os.sep
    gone = [p for p in paths if p.startswith(inside) and p not in candidates
            and not os.path.lexists(p)]
    if gone:  # those already tagged are dealt with
        F = store.fiftyone().ViewField
        dealt = set(existing.match(F("filepath").is_in(gone)).match_tags(EXCLUDE_TAG)
                    .values("filepath"))
        gone = [p for p in gone if p not in dealt]
    if not gone:
        return []
    return [f"{plural(len(gone), 'sample')} of '{name}' from {folder} "
            f"{'has' if len(gone) == 1 else 'have'} a file that is gone (first: {gone[0]}); a "
            f"file moved to another folder is imported again as a new sample and the old one "
            f"stays: tag the old ones 'exclude' in the App (`shotlab curate app {name}`), or "
            f"restore the files"]


def check_task(records: list[Record], multilabel: bool, source: Path) -> None:
    if multilabel:
        return
    several = [r for r in records if len(r.labels) > 1]
    if several:
        raise InputError(f"{source}: {plural(len(several), 'image')} "
                         f"{'has' if len(several) == 1 else 'have'} several labels (first: "
                         f"{several[0].path} -> {', '.join(several[0].labels)}); "
                         f"import with --multilabel")


Checked = tuple[str, Record, ImageFacts]  # resolved path, what the source said, what the file is


def over_default_limit(valid: list[Checked]) -> list[str]:
    """A warning when `--max-pixels` let in images over the default limit: only `predict` and
    `serve` take the option, so training, checks and export would refuse those files."""
    over = [path for path, _, facts in valid if facts.width * facts.height > DEFAULT_MAX_PIXELS]
    if not over:
        return []
    return [f"{len(over)} imported image(s) are over {DEFAULT_MAX_PIXELS:,} pixels (first: "
            f"{over[0]}): train, curate check and export read dataset files at that limit and "
            f"will refuse them (only predict and serve take --max-pixels); downscale them, or "
            f"tag them 'exclude' in the App and run `shotlab curate apply`"]


def inspect_all(candidates: dict[str, Record], *, max_pixels: int, workers: int,
                progress: bool | None) -> tuple[list[Checked], list[Skipped]]:
    """Hash and decode every file in a thread pool.

    Large photos gain from the threads (decoding releases the GIL); small images are limited by
    Python overhead, so expect little gain there (see benchmarks/results/import_speed.md).
    """
    def check(record: Record) -> ImageFacts | Skipped:
        try:
            return inspect_image(record.path, max_pixels=max_pixels)
        except BadImageError as exc:  # named as the reader names a row's file ("row 7 of x.csv")
            return Skipped(f"{exc.path} ({record.where})" if record.where else exc.path,
                           exc.reason)

    valid, skipped = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(check, candidates.values())
        for (filepath, record), result in progress_bar(
                zip(candidates.items(), results), enabled=progress, total=len(candidates),
                unit="img", desc="Checking images"):
            if isinstance(result, Skipped):
                skipped.append(result)
            else:
                valid.append((filepath, record, result))
    return valid, skipped


def make_sample(checked: Checked, task: str, source: dict):
    fo = store.fiftyone()
    filepath, record, facts = checked
    metadata = fo.ImageMetadata(size_bytes=facts.size_bytes, mime_type=facts.mime_type,
                                width=facts.width, height=facts.height,
                                num_channels=facts.channels)
    applied = sorted(record.labels) if task == "multilabel" else list(record.labels)
    return fo.Sample(filepath=filepath, ground_truth=store.make_label(record.labels, task),
                     applied_label=applied, split=record.split, sha256=facts.sha256,
                     metadata=metadata, **source)


def target_dataset(existing, name: str, task: str):
    """The dataset to add to: created if new, completed if an interrupted import left it half-made."""
    if existing is None:
        return store.create(name, task)
    if store.is_half_made(existing):
        store.complete(existing, task)
    return existing


def import_path(path: str | Path, name: str, *, fmt: str = "auto", multilabel: bool = False,
                strict: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS,
                workers: int | None = None, progress: bool | None = None,
                allow_empty: bool = False, zip_limits: ZipLimits | None = None,
                sampling: str | None = None, max_seconds: float | None = None) -> ImportReport:
    """Import images and labels from `path` into the dataset `name` (created if new).
    A source of clips goes to `curate/clip_import.py` (with `sampling` and `max_seconds`), a
    CSV or JSONL of comments (format "text", or "auto" on a file with a `text` column and no
    file path column) to `curate/text_import.py`.

    Returns an ImportReport: how many samples were added, how many were already there, and
    every skipped file with its reason. Raises InputError for a source that cannot be read or
    holds no image (unless `allow_empty`), and StrictImportError (before adding anything) when
    `strict` and any file was skipped. A zip is extracted within `zip_limits` (see
    core/archive_limits.py). Two imports of the same files may run at once: each file is added
    once.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'; expected one of {', '.join(FORMATS)}")
    given = Path(path).absolute()
    if fmt == "text" or (fmt == "auto" and text_import.is_text_table(given)):
        return text_import.import_texts(given, name, multilabel=multilabel, strict=strict,
                                        allow_empty=allow_empty, progress=progress)
    root, fmt = resolve_source(given, fmt, zip_limits)
    scan = read(root, fmt, multilabel)
    check_task(scan.records, multilabel, given)
    task = "multilabel" if multilabel else "multiclass"
    if clip_import.has_clips(scan):
        return with_unlisted(scan, clip_import.import_clips(
            scan, name, task=task, fmt=fmt, given=given, strict=strict, allow_empty=allow_empty,
            progress=progress, sampling=sampling or clip_import.DEFAULT_SAMPLING,
            max_seconds=max_seconds or clip_import.DEFAULT_MAX_SECONDS,
            **({} if max_pixels == DEFAULT_MAX_PIXELS else {"max_pixels": max_pixels})))
    existing = store.find(name)
    if existing is not None and not store.is_half_made(existing):
        store.require_task(existing, task)
        require_kind(existing, "image")
    candidates, repeats = unique_records(scan.records)
    paths = existing.values("filepath") if existing is not None else []
    known = set(paths)
    new = {f: r for f, r in candidates.items() if f not in known}
    valid, bad = inspect_all(new, max_pixels=max_pixels,
                             workers=workers or min(8, os.cpu_count() or 1), progress=progress)
    skipped = scan.skipped + repeats + bad
    if strict and skipped:
        raise StrictImportError(f"{len(skipped)} files would be skipped (first: {skipped[0].path}: "
                                f"{skipped[0].reason}); nothing was imported (drop --strict to skip them)")
    check_not_empty(scan, valid, skipped, existing, given, allow_empty)
    dataset = target_dataset(existing, name, task)
    warnings = [] if store.unique_paths(dataset) else [REPEATED_PATHS.format(name=name)]
    warnings += source_disagrees(existing, paths, candidates, name) + over_default_limit(valid)
    warnings += gone_from_source(existing, root, paths, candidates, name)
    source = {"import_format": fmt, "import_path": str(given),
              "imported_at": datetime.now(timezone.utc)}
    added = add_all(dataset, valid, task, source, progress, make=make_sample)
    groups = exact_duplicate_groups(dataset.values("sha256"), store.sample_labels(dataset),
                                    multilabel=task == "multilabel")
    return with_unlisted(scan, ImportReport(
        name=name, task=task, source=str(given), format=fmt, added=added,
        already_present=len(candidates) - len(bad) - added, skipped=skipped,
        ignored=len(scan.ignored), duplicate_groups=len(groups),
        conflicting_groups=sum(g.conflicting for g in groups), warnings=warnings))


def with_unlisted(scan: Scan, report: ImportReport) -> ImportReport:
    """`report` with the images the source's label files do not list, counted and named."""
    report.unlisted = len(scan.unlisted)
    report.warnings = [*report.warnings, *unlisted_warnings(scan)]
    return report
