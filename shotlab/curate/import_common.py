"""What `curate import` of images, clips and comments share: the report, one record per file, the
refusal of an import that found nothing, the guarded add loop (curate/importer.py,
curate/clip_import.py, curate/text_import.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from shotlab.core.errors import InputError
from shotlab.core.progress import progress_bar
from shotlab.curate.records import Record, Scan, Skipped


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
    unlisted: int = 0  # images beside a label file that no row names (records.Unlisted)
    duplicate_groups: int = 0
    conflicting_groups: int = 0
    warnings: list[str] = field(default_factory=list)
    # A clip import (curate/clip_import.py): the linked frames dataset and its frames.
    frames_dataset: str | None = None
    frames_added: int = 0
    frames_decoded: int = 0  # 0 when every clip's frames came from the workspace's cache
    sampling: str | None = None
    kind: str = "image"  # "text" for comments (curate/text_import.py)

    def to_dict(self) -> dict:
        data = dict(vars(self))
        data["skipped"] = [vars(s) for s in self.skipped]
        return data


def unlisted_warnings(scan: Scan) -> list[str]:
    """One warning per label file with images beside it that it does not list: they are not
    imported, and a truncated CSV would otherwise lose them without trace."""
    from shotlab.core.output import plural

    by_listing: dict[Path, list[Path]] = {}
    for item in scan.unlisted:
        by_listing.setdefault(item.listing, []).append(item.path)
    lines = []
    for listing, paths in by_listing.items():
        where = f"{plural(len(paths), 'image')} in {os.path.commonpath([p.parent for p in paths])}"
        if not listing.exists():  # a Roboflow split folder without its _classes.csv
            lines.append(f"{where} {'is' if len(paths) == 1 else 'are'} in no label file (no "
                         f"{listing} beside them; first: {paths[0]}); not imported: restore "
                         f"the export's {listing.name} there and import again")
            continue
        lines.append(f"{where} {'is' if len(paths) == 1 else 'are'} not listed in "
                     f"{listing.name} (first: {paths[0]}); not imported: add a row for each "
                     f"(unlabeled: an empty label, or all zeros) and import again")
    return lines


def unique_records(records: list[Record]) -> tuple[dict[str, Record], list[Skipped]]:
    """Records keyed by resolved path (a sample's identity), the first one winning, except that
    in a folder (no rows to order them) the file itself wins over a link to it found first."""
    unique: dict[str, Record] = {}
    repeats = []
    for record in records:
        filepath = os.path.realpath(record.path)
        kept = unique.get(filepath)
        if kept is not None and not (record.where or kept.where) \
                and os.path.abspath(record.path) == filepath:
            unique[filepath] = record  # the file itself, found after a link to it
            record, kept = kept, record
        if kept is not None:
            repeats.append(Skipped(str(record.path), repeated(record, kept)))
        else:
            unique[filepath] = record
    return unique, repeats


def repeated(record: Record, first: Record) -> str:
    """Why a repeat is skipped, naming both rows where the source has rows, and what the first
    entry kept where the two disagree (another label or split)."""
    said = (f"{record.where}: listed more than once; the first entry ({first.where}) was used"
            if record.where and first.where else
            f"the same file as {first.path}, imported once, under that name")
    differs = [f"{what} {shown(mine)} here, {shown(kept)} kept" for what, mine, kept in
               (("label", record.labels, first.labels), ("split", record.split, first.split))
               if (set(mine) != set(kept) if what == "label" else mine != kept)]
    return said + (f", and they disagree: {'; '.join(differs)}" if differs else "")


def shown(value) -> str:
    """A label tuple or a split as a message shows it."""
    if isinstance(value, tuple):
        return "'" + ";".join(value) + "'" if value else "none"
    return f"'{value}'" if value else "none"


def check_not_empty(scan: Scan, valid: list, skipped: list[Skipped], existing,
                    given: Path, allow_empty: bool, *, nothing: str | None = None) -> None:
    """An import that finds no image at all, or creates a dataset with nothing in it, is almost
    always a wrong path: refuse it unless asked for. `nothing` says what was found when nothing
    was skipped either (default: no image files)."""
    if allow_empty or (scan.records and (valid or existing is not None)):
        return
    from shotlab.core.rows import SAVE_AS_UTF8

    found = (f"{len(skipped)} {'rows' if nothing else 'files'} skipped (first: {skipped[0].path}: "
             f"{skipped[0].reason})" if skipped else
             nothing or f"no image files ({len(scan.ignored)} other files ignored)")
    if skipped and all(s.reason.endswith(SAVE_AS_UTF8) for s in skipped):  # the encoding alone
        raise InputError(f"{given}: {found}; nothing was imported")
    raise InputError(f"{given}: {found}; nothing was imported. Check the path and --format, or "
                     f"pass --allow-empty to create or keep the dataset anyway")


KIND_WORDS = {"image": "images", "text": "comments (text)"}


def require_kind(dataset, kind: str) -> None:
    """Refuse to add samples of `kind` to a dataset that holds another kind of input."""
    from shotlab.core import store

    held = store.kind_of(dataset)
    if held != kind:
        raise InputError(f"dataset '{dataset.name}' holds {KIND_WORDS.get(held, held)}; import "
                         f"{KIND_WORDS.get(kind, kind)} under another --name")


def add_all(dataset, checked: list[tuple], task: str, source: dict, progress: bool | None, *,
            make, unit: str = "img") -> int:
    """Add the samples `make(item, task, source)` builds from `checked` (tuples whose first
    element is the resolved file path); returns how many this process added. While it runs the
    dataset records the import (`IMPORTING`): one stopped part way (Ctrl-C, a kill) stays
    recorded, and `curate info` says so; a Ctrl-C here says what was kept and how to finish."""
    from shotlab.core.errors import Interrupted

    added = 0
    mark = start_import(dataset, source.get("import_path"), len(checked))
    try:
        with progress_bar(enabled=progress, total=len(checked), unit=unit,
                          desc="Adding to dataset") as bar:
            for start in range(0, len(checked), BATCH):
                batch = checked[start:start + BATCH]
                added += add_batch(dataset, batch, task, source, make)
                bar.update(len(batch))
    except KeyboardInterrupt:  # said a bare "Aborted!", the dataset looking complete
        raise Interrupted(f"interrupted: {added} of {len(checked)} new files were added to "
                           f"'{dataset.name}' and are kept; run the same import again to add "
                           f"the rest (files already added are not added twice)") from None
    end_import(dataset, mark)
    return added


IMPORTING = "importing"  # dataset.info[store.INFO_KEY][IMPORTING]: {"host:pid": import}


def start_import(dataset, path, files: int) -> str:
    """Record on the dataset that this process is adding `files` files from `path`; its key."""
    import socket

    from shotlab.core.clock import utc_now

    key = f"{socket.gethostname()}:{os.getpid()}"
    entry = {"path": str(path), "files": files, "started": utc_now(),
             "process_started": process_start(os.getpid())}
    write_record(dataset, key, entry)
    return key


def end_import(dataset, key: str) -> None:
    """This import finished: its record goes, with those of earlier imports of the same source
    that stopped part way (this one added what they had left)."""
    dataset.reload()
    found = imports(dataset)
    path = found.get(key, {}).get("path")  # another host's record stays: it cannot be told
    for other, entry in found.items():
        if other == key or (entry.get("path") == path and import_running(other, entry) is False):
            write_record(dataset, other, None)


def imports(dataset) -> dict[str, dict]:
    """The dataset's import records by their "host:pid" key."""
    from shotlab.core import store

    found = dataset.info.get(store.INFO_KEY, {}).get(IMPORTING) or {}
    return {unescaped(key): entry for key, entry in found.items()}


def write_record(dataset, key: str, entry: dict | None) -> None:
    """One import's record written (None: removed) by itself, so two imports into one dataset
    never drop each other's (a host name's dots escaped: a dot is a path in MongoDB)."""
    from shotlab.core import store

    store.set_info(dataset, f"{IMPORTING}.{escaped(key)}", entry)


def escaped(key: str) -> str:
    return key.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def unescaped(key: str) -> str:
    return key.replace("%2E", ".").replace("%24", "$").replace("%25", "%")


def import_running(key: str, entry: dict) -> bool | None:
    """Whether the process of an import record (`host:pid`) still runs; None for another
    host's. A pid now held by another process (reused since) is not the import: the record
    keeps the process's start time."""
    import socket

    host, _, pid = key.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    started = process_start(int(pid))
    return started is not None and started == entry.get("process_started", started)


def process_start(pid: int) -> float | None:
    """When process `pid` started (psutil), None when there is none."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def unfinished_imports(dataset) -> list[str]:
    """One warning per import into `dataset` that stopped part way (or runs now)."""
    dataset.reload()  # another process records its import: this one's copy may be older
    found = imports(dataset)
    lines = []
    for key, entry in found.items():
        running = import_running(key, entry)
        state = ("is running now" if running else "stopped part way" if running is False
                 else f"on {key.rpartition(':')[0]} has not finished")
        lines.append(f"an import of {entry.get('path')} ({entry.get('files')} new files, started "
                     f"{entry.get('started')}) {state}"
                     + ("" if running else f": this dataset may lack some of them; run the same "
                        f"`shotlab curate import {entry.get('path')} --name {dataset.name}` "
                        f"again to finish it"))
    return lines


def add_batch(dataset, batch: list[tuple], task: str, source: dict, make) -> int:
    """Insert `batch` in one write; returns how many samples this process added.

    The unique index on `filepath` refuses a path that a concurrent import added since this one
    looked: the write then stops at that sample, and the rest is retried without the paths now
    present (they count as already there)."""
    added = 0
    while batch:
        samples = [make(c, task, source) for c in batch]
        try:
            # The fields are declared when the dataset is created (store.declare_fields).
            dataset.add_samples(samples, expand_schema=False, batcher=False, progress=False)
            return added + len(batch)
        except ValueError as exc:  # FiftyOne's wrapper around pymongo's BulkWriteError
            inserted = duplicate_path_inserts(exc)
            if inserted is None:
                raise
        added += inserted
        present = set(dataset.match({"filepath": {"$in": [c[0] for c in batch]}}).values("filepath"))
        batch = [c for c in batch if c[0] not in present]
    return added


def duplicate_path_inserts(exc: ValueError) -> int | None:
    """How many samples the failed write added before it met a path already present, or None
    when `exc` is not that error."""
    details = getattr(exc.__cause__, "details", None) or {}
    errors = details.get("writeErrors") or [{}]
    if errors[0].get("code") != 11000 or "filepath" not in str(errors[0].get("keyPattern", "")):
        return None
    return int(details.get("nInserted", 0))
