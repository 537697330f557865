"""Temporary folders that outlive no process: each is named after the process that made it,
and making one removes those of processes that are gone.

    folder = scratch_folder("shotlab-clip-")   # /tmp/shotlab-clip-<pid>-XXXX, mode 0700

A process killed with SIGKILL (a server stopped hard, a Ray replica replaced) runs no exit
handler and no `finally`, so its folders stay in /tmp: an unpacked bundle, an uploaded clip
(a moderation service's uploads are exactly what must not linger). The pid in the name lets
the next process of the same kind remove them (`sweep`), whatever killed the first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def scratch_folder(prefix: str) -> Path:
    """A new private folder (mode 0700) `<prefix><pid>-XXXX` in the system's temporary folder,
    after removing the ones of `prefix` whose process is gone."""
    sweep(prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def sweep(prefix: str) -> None:
    """Remove this user's `<prefix><pid>-*` folders whose process is gone. (Process ids are
    taken to be this machine's: containers sharing /tmp but not a process namespace should each
    set TMPDIR.) Names without a pid (made by an older shotlab) are left alone."""
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        try:
            mine = folder.lstat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True
