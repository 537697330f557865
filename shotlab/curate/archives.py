"""Zip files: extracted safely into the workspace, never next to the user's zip."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from shotlab.core.errors import InputError
from shotlab.core.images import is_image_path, sha256_file
from shotlab.curate.records import SPLIT_ALIASES

COMPLETE_MARKER = ".shotlab-extracted"


def check_members(archive: zipfile.ZipFile, zip_path: Path) -> None:
    """Refuse a zip any of whose entries would land outside its extraction folder."""
    for name in archive.namelist():
        normalised = os.path.normpath(name.replace("\\", "/"))
        if os.path.isabs(normalised) or normalised == ".." or normalised.startswith("../"):
            raise InputError(f"{zip_path}: entry '{name}' would be written outside the extraction "
                             f"folder; refusing the whole zip (re-create it without such paths)")


def extract(zip_path: Path, media_dir: Path) -> Path:
    """Extract `zip_path` into `media_dir/<stem>-<hash>` once; later calls reuse the folder.

    The folder name carries the zip's content hash, so importing the same zip twice gives the
    same file paths (and so adds nothing twice), while a changed zip gets a folder of its own.
    """
    try:
        digest = sha256_file(zip_path)
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{zip_path}: not a readable zip file ({exc})") from None
    target = media_dir / f"{zip_path.stem}-{digest[:12]}"
    with archive:
        check_members(archive, zip_path)
        if (target / COMPLETE_MARKER).is_file():
            return target
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        archive.extractall(partial)
    (partial / COMPLETE_MARKER).write_text(digest)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


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
