"""Zip files: extracted safely into the workspace, never next to the user's zip."""

from __future__ import annotations

import fcntl
import zipfile
from contextlib import contextmanager
from pathlib import Path

from shotlab.core.archive_limits import ZipLimits, check_names, check_zip, extract_zip
from shotlab.core.errors import InputError
from shotlab.core.files import atomic_path, open_lock, remove
from shotlab.core.images import is_image_path, sha256_file
from shotlab.curate.records import SPLIT_ALIASES

COMPLETE_MARKER = ".shotlab-extracted"


def extract(zip_path: Path, media_dir: Path, limits: ZipLimits | None = None) -> Path:
    """Extract `zip_path` into `media_dir/<stem>-<hash>` once; later calls reuse the folder.

    The folder name carries the zip's content hash, so importing the same zip twice gives the
    same file paths (and so adds nothing twice), while a changed zip gets a folder of its own.
    The zip's declared sizes, file count and compression ratio are checked against `limits`
    (see core/archive_limits.py) before anything is written; a refused zip leaves nothing behind.
    """
    try:
        digest = sha256_file(zip_path)
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{zip_path}: not a readable zip file ({exc})") from None
    target = media_dir / f"{zip_path.stem}-{digest[:12]}"
    with archive:
        check_names(archive, zip_path)  # before anything is created in the workspace
        if not any(not member.is_dir() for member in archive.infolist()):
            raise InputError(f"{zip_path}: the zip holds no files, so there is nothing to "
                             f"import; check that it is the export you meant")
        limits = check_zip(archive, zip_path, **vars(limits or ZipLimits.resolve()), options=True)
        with extraction_lock(target):
            if not (target / COMPLETE_MARKER).is_file():
                with atomic_path(target) as partial:
                    remove(target)  # an unmarked folder: left by an interrupted older shotlab
                    extract_zip(archive, zip_path, partial, limits=limits, options=True)
                    (partial / COMPLETE_MARKER).write_text(digest)
    return target


@contextmanager
def extraction_lock(target: Path):
    """Held while `target` is extracted, so two imports of one zip do not share a half-written
    folder: the second waits, then reuses the first one's result."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open_lock(target.with_name(target.name + ".lock")) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def visible_entries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]


def is_wrapper(folder: Path) -> bool:
    """A folder that only wraps the dataset: not a split folder, no images of its own."""
    return (folder.is_dir() and folder.name.lower() not in SPLIT_ALIASES
            and not any(p.is_file() and is_image_path(p) for p in folder.iterdir()))


def unwrap(root: Path) -> Path:
    """Descend through lone wrapper folders (zips often hold `name/train/...`)."""
    entries = visible_entries(root)
    while len(entries) == 1 and is_wrapper(entries[0]):
        root = entries[0]
        entries = visible_entries(root)
    return root
