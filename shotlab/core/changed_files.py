"""Files edited since import: found cheaply, and given their current sha256 in the store.

The scan cache (curate/checks/stats_cache.py), the embedding cache (train/embeddings.py) and a
run's frozen manifest know a file by the sha256 its sample records. Hashing every file on every
check would read every byte of every photo, so a file is hashed again only when its size differs
from the one recorded at import, or it was modified after its sample was imported. Where the
bytes did change, the sample's `sha256` and `metadata.size_bytes` become the file's own: every
cache keyed by the old digest misses, and the file is measured, embedded and trained on as it
is now. A file whose modification time was set back (some copy tools keep the original's) and
whose size did not change is not noticed.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from shotlab.core import store
from shotlab.core.images import sha256_file

FIELDS = ["id", "filepath", "sha256", "metadata.size_bytes", "imported_at", "created_at"]


def refresh_changed(dataset, gone: list | None = None) -> list[str]:
    """Give the samples whose files changed since import their current sha256 and size;
    returns those files' paths. Files gone since import are added to `gone` (when given: a
    caller whose caches would answer for them says so); unreadable ones are left to whoever
    reads them."""
    if store.kind_of(dataset) == store.TEXT:  # the comment is in the database, not a user file
        return []
    changed = {}
    for sample_id, path, digest, size, imported, created in zip(*dataset.values(FIELDS)):
        try:
            stat = os.stat(path)
            if stat.st_size == size and not modified_after(stat.st_mtime, imported or created):
                continue
            fresh = sha256_file(path)
        except FileNotFoundError:
            if gone is not None:
                gone.append(path)
            continue
        except OSError:
            continue
        if fresh != digest:
            changed[sample_id] = (path, fresh, stat.st_size)
    if changed:
        view = dataset.select(list(changed), ordered=True)
        view.set_values("sha256", [digest for _, digest, _ in changed.values()])
        described = view.exists("metadata")  # a sample without metadata has no size to update
        described.set_values("metadata.size_bytes",
                             [changed[i][2] for i in described.values("id")])
    return [path for path, _, _ in changed.values()]


def modified_after(mtime: float, stamp: datetime | None) -> bool:
    """True when a file's mtime is later than `stamp` (the database's naive UTC), or no stamp."""
    if stamp is None:
        return True
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return mtime > stamp.timestamp()


def changed_summary(changed: list[str]) -> str:
    """'N files changed since import (first: PATH)': how check, suggest and train name them."""
    from shotlab.core.output import plural

    return f"{plural(len(changed), 'file')} changed since import (first: {changed[0]})"
