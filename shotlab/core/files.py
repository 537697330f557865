"""Writing files so that a reader never sees half of one, and a failure never loses the old one.

    with atomic_path(out) as tmp:          # write anything to `tmp`; it becomes `out` on success
        write_report(tmp)
    write_text_atomic(path, text)          # the same for a string
    write_json_atomic(path, data)

The temporary name sits beside the target (same folder, so the final rename is atomic on one
filesystem) and is removed if the block raises: the target keeps its previous content.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def partial_name(path: Path) -> Path:
    """Where `path` is written before it is moved into place."""
    return path.with_name(path.name + PARTIAL_SUFFIX)


def check_can_write(path, option: str) -> None:
    """Refuse, before any work, an output path that cannot be written: one with no name
    (`.`, `/`), a folder above it that is a file, or a folder that refuses new files. Nothing
    is made: the nearest folder above it that exists is probed (the write makes the rest)."""
    from shotlab.core.errors import InputError

    path = Path(os.path.abspath(path))
    if not path.name:
        raise InputError(f"{option} {path}: name a file or folder to write, not the root")
    nearest = next(p for p in path.parents if p.exists() or p.is_symlink())  # "/" exists
    if not nearest.is_dir():
        what = "a file" if nearest.exists() else "a broken link"
        raise InputError(f"{option} {path}: {nearest} is {what}, not a folder; choose another "
                         f"{option}")
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write in {nearest} "
                         f"({exc.strerror or exc}); choose another {option}") from None


def check_own_output(path: Path, option: str, is_own, refusal: str) -> None:
    """`check_can_write`, then refuse (with `refusal`) a `path` that exists, a link included,
    unless `is_own(path)` says it is this command's earlier output: a command replaces only
    what it wrote, never a user's file, a device or a folder."""
    from shotlab.core.errors import InputError

    check_can_write(path, option)
    if (path.exists() or path.is_symlink()) and not is_own(path):
        raise InputError(refusal)


def file_head(path, size: int) -> bytes | None:
    """The first `size` bytes of a regular file (how a command recognises its own output);
    None for anything else or a file it cannot read."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return None


def remove(path: Path) -> None:
    """Remove a file or folder if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path, *, lock: bool = True):
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    Works for a file or a folder written at the temporary path (a folder replaces only a missing
    target or an empty one: replacing a full folder is the caller's decision). One process at a
    time writes a given `path` (`writing_lock`): two exports into one --out shared one staging
    folder, each clearing the other's files, and one shipped a bundle whose model was the other
    run's. `lock=False`: the caller holds `writing_lock(path)` already (a command that locks its
    output for its whole run, as `predict` does)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_name(path)
    with writing_lock(path) if lock else nullcontext():
        remove(partial)  # left by an interrupted run (no live process holds its lock)
        try:
            yield partial
            os.replace(partial, path)
        except BaseException:
            remove(partial)
            raise


def open_lock(lock: Path):
    """The lock file, created if missing, never through a link (an InputError names one):
    `open(lock, "a+")` followed a symlink planted at PATH.partial.lock (in a folder others can
    write) and created its target, an empty file anywhere the user may write. Every lock file
    shotlab takes is opened here."""
    from shotlab.core.errors import InputError

    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    except OSError:
        if Path(lock).is_symlink():
            raise InputError(f"{lock}: a symbolic link where shotlab keeps its lock; remove it "
                             f"(shotlab never writes through a link)") from None
        raise  # the caller says what an unwritable folder means for it
    return os.fdopen(fd, "a+")


@contextmanager
def writing_lock(path: Path):
    """An exclusive lock on `path`'s lock file (`PATH.partial.lock`, removed after) while the
    block runs; InputError at once when another process holds it (or this one: a lock is per
    open file, so a nested write of one path in one process is refused too). The kernel drops
    the lock of a process that dies, so a crash never leaves `path` locked. Where the
    filesystem has no flock, the block runs unlocked, as before."""
    import fcntl

    from shotlab.core.errors import InputError

    lock = path.with_name(path.name + PARTIAL_SUFFIX + ".lock")
    locked = True
    while True:
        try:
            handle = open_lock(lock)
        except OSError as exc:  # a folder it cannot write in: the caller's one line
            raise InputError(f"{path}: cannot write here ({exc.strerror or exc}); write "
                             f"somewhere else") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise InputError(f"{path}: another shotlab process is writing it now; wait for it "
                             f"to finish, or write somewhere else") from None
        except OSError:  # a filesystem without flock (NFS without lockd, Lustre noflock)
            handle.close()
            lock.unlink(missing_ok=True)
            locked = False  # written as before the lock existed
            break
        if same_file(handle, lock):
            break
        handle.close()  # removed by its last holder between our open and our lock: again
    try:
        yield
    finally:
        if locked:
            lock.unlink(missing_ok=True)
            handle.close()


def same_file(handle, path: Path) -> bool:
    """Whether the open `handle` is still the file at `path` (not one unlinked since)."""
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def write_text_atomic(path, text: str, *, encoding: str = "utf-8") -> Path:
    with atomic_path(path) as partial:
        partial.write_text(text, encoding=encoding)
    return Path(path)


def write_json_atomic(path, data, *, indent: int | None = 1, default=None) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=indent, default=default))
