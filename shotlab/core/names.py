"""Names users give, and the paths shotlab builds from them.

A dataset name ends up in file and folder names (run folders, check reports, benchmark results),
so it is checked once, where it enters shotlab: `check_dataset_name` is called by the store when a
dataset is created or looked up, and by commands that use a name before they reach the store.
Every path built from a user-given value goes through `child_path`, which refuses a result outside
its parent folder, so a name that slipped past the check (or a value read from a run folder
someone else can write) still cannot point elsewhere.

    check_dataset_name("vehicles-2024")                  # -> "vehicles-2024"
    child_path(runs_dir, f"{stamp}-{name}")              # -> runs_dir/... or InputError
"""

from __future__ import annotations

import re
from pathlib import Path

from shotlab.core.errors import InputError

# ASCII only: names become file names on every filesystem, and look-alike Unicode letters would
# give two datasets that read the same; '.' never first, so '.', '..' and hidden names are out.
DATASET_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
# Room for a timestamp, the backbone and the mode beside it in one 255-byte file name.
MAX_NAME_LENGTH = 100
ALLOWED = (f"ASCII letters, digits, '-', '_' and '.' (not first), 1 to {MAX_NAME_LENGTH} "
           f"characters")


def check_dataset_name(name) -> str:
    """`name` if it is a valid dataset name; InputError stating the allowed characters otherwise."""
    if not (isinstance(name, str) and len(name) <= MAX_NAME_LENGTH
            and DATASET_NAME.fullmatch(name)):
        raise InputError(f"dataset name {name!r} is not allowed: use {ALLOWED} "
                         f"(e.g. vehicles-2024)")
    return name


def child_path(parent, *parts) -> Path:
    """`parent / part / ...`, refused (InputError) unless it resolves to a path strictly inside
    `parent`: a part with '/', '..', an absolute path, an empty name or a symlink leading out."""
    parent = Path(parent)
    path = parent.joinpath(*(str(p) for p in parts))
    try:
        inside = parent.resolve() in path.resolve().parents
    except (OSError, ValueError):  # a NUL byte, a symlink loop
        inside = False
    if not inside:
        given = "/".join(str(p) for p in parts)
        raise InputError(f"{given!r} would lead outside {parent}; use a name without '/', '..' "
                         f"or a leading '.' (letters, digits, '-', '_')")
    return path
