"""Folder trees: `class/image` and `split/class/image` (Roboflow's `folder` export is the latter).
Clips (mp4, mov, ...) are read in the same layouts.

Class names are the folder names exactly as written (spaces kept). Images nested deeper inside a
class folder belong to that class, links to folders followed (a loop, or a second link to a
folder already walked, is skipped). Hidden files and folders are passed over.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.errors import InputError
from shotlab.core.clips import is_clip_path
from shotlab.core.images import is_image_path
from shotlab.curate.records import SPLIT_ALIASES, Record, Scan, Skipped, normalise_split


def is_media_path(path: Path) -> bool:
    """An image or a clip (clips go to `curate/clip_import.py`)."""
    return is_image_path(path) or is_clip_path(path)


def visible(path: Path) -> bool:
    return not path.name.startswith(".")


def subfolders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and visible(p))


def files_under(folder: Path, *, hidden: bool = False,
                aliases: bool = True) -> tuple[list[Path], list[Skipped]]:
    """Files (and symlinks to files, broken ones included; pipes and devices too, so that
    reading them names them) under `folder`, skipping hidden entries unless `hidden`, in path
    order; and the folders not followed, with why (`aliases=False`: a second link to a folder
    already walked is left out of those, as harmless).

    A link to a folder is followed wherever it points, as a link to a file is (whoever made the
    folder put it there; `Path.rglob` would pass it over and list the link as a file). A link
    back to a folder it sits in (`cat/up -> ..`) would walk forever, and two links to one folder
    at each level (a diamond) would walk the last level 2^depth times: such links are listed as
    skipped. A folder reached as itself is always walked, so its files win over a link's copies
    (`import_common.unique_records`). Entries are listed with `os.scandir`, whose file types
    come with the listing: only links and folders cost a `stat`."""
    found: list[Path] = []
    passed: list[Skipped] = []
    real = Path(os.path.realpath(folder))
    walk_into(folder, (real,), Walk(found, passed, {real}, hidden, aliases))
    return found, passed


@dataclass
class Walk:
    """What a folder walk has gathered: the files, the folders not followed, and the real paths
    of the folders walked (a link to one of them is not followed again)."""

    found: list[Path]
    passed: list[Skipped]
    walked: set[Path]
    hidden: bool = False  # hidden files and folders are walked too
    aliases: bool = True  # a second link to a folder walked is named among `passed`


def walk_into(directory: Path, above: tuple[Path, ...], walk: Walk) -> None:
    """Add the files under `directory` to the walk; `above`: the real paths of the folders walked
    down to it, itself last (a link to one of them, or to a folder holding one, is a loop)."""
    try:
        with os.scandir(directory) as listing:
            entries = sorted((e for e in listing if walk.hidden or not e.name.startswith(".")),
                             key=lambda e: e.name)
    except OSError as exc:
        walk.passed.append(Skipped(str(directory),
                                   f"cannot list this folder ({exc.strerror or exc})"))
        return
    for entry in entries:
        path = directory / entry.name
        if not is_folder(entry):  # follows links: a link to a folder is a folder
            walk.found.append(path)
            continue
        real = Path(os.path.realpath(path))
        if any(inside.is_relative_to(real) for inside in above):
            walk.passed.append(Skipped(str(path), f"a link to {real}, a folder that holds it "
                                                  f"(a loop): not followed"))
        elif entry.is_symlink() and real in walk.walked:  # its files are listed once
            if walk.aliases:
                walk.passed.append(Skipped(str(path), f"a link to {real}, a folder already "
                                                      f"walked: not followed again"))
        else:
            walk.walked.add(real)
            walk_into(path, (*above, real), walk)


def is_folder(entry: os.DirEntry) -> bool:
    """`entry` is a folder, or a link to one; False (a file, named when read) for a link that
    loops or runs through a file, where `DirEntry.is_dir` raises and `Path.is_dir` said no."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def read_class_tree(root: Path, split: str | None) -> Scan:
    files, passed = files_under(root)
    scan = Scan(skipped=passed)
    for path in files:
        relative = path.relative_to(root)
        if not is_media_path(path):
            scan.ignored.append(path)
        elif len(relative.parts) == 1:
            scan.skipped.append(Skipped(str(path), "not inside a class folder (no label)"))
        else:
            scan.records.append(Record(path.absolute(), (relative.parts[0],), split))
    return scan


def has_split_folders(root: Path) -> bool:
    """True for a `split/class/image` tree; an error when split and class folders are mixed."""
    folders = subfolders(root)
    splits = [f.name for f in folders if f.name.lower() in SPLIT_ALIASES]
    if splits and len(splits) != len(folders):
        others = [f.name for f in folders if f.name.lower() not in SPLIT_ALIASES]
        raise InputError(f"{root} mixes split folders ({', '.join(splits)}) with class folders "
                         f"({', '.join(others)}): put every class folder inside a split folder, "
                         f"or rename a class that is called like a split")
    return bool(splits)


def read_folder(root: Path) -> Scan:
    if not has_split_folders(root):
        return read_class_tree(root, None)
    scan = Scan()
    for folder in subfolders(root):
        scan.extend(read_class_tree(folder, normalise_split(folder.name)))
    for path in sorted(p for p in root.iterdir() if p.is_file() and visible(p)):
        if is_media_path(path):
            scan.skipped.append(Skipped(str(path), "not inside a split/class folder (no label)"))
        else:
            scan.ignored.append(path)
    return scan
