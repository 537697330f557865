"""The scan's results cached by image content: a re-check of an unchanged image decodes nothing.

One SQLite file in the workspace (`WORKSPACE/cache/image_stats.sqlite3`), a row per (settings,
sha256): the image's statistics and pHash. `settings` (from `image_stats.scan_settings`) names
everything the numbers depend on (the version of the measures, the thumbnail size, the hash), so
a change to any of them misses the old rows instead of reusing them. Keys are the sha256 of the bytes that were decoded, so a
file edited after import is measured again. An unreadable cache file is replaced, never trusted:
it holds nothing that cannot be measured again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from shotlab.core import workspace
from shotlab.core.files import remove

FILE_NAME = "image_stats.sqlite3"
_BATCH = 500  # digests per query: under SQLite's oldest limit on bound parameters (999)


def default_path() -> Path:
    return workspace.current().cache_dir / FILE_NAME


def connect(path: Path) -> sqlite3.Connection:
    """The cache's connection, its table created; a file that is not a readable cache is
    replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        connection = sqlite3.connect(path, timeout=30)  # a concurrent check may be writing
        try:
            connection.execute("CREATE TABLE IF NOT EXISTS stats (settings TEXT, sha256 TEXT, "
                               "stats BLOB, PRIMARY KEY (settings, sha256))")
            return connection
        except sqlite3.DatabaseError:
            connection.close()
            if attempt:
                raise
            remove(path)
    raise AssertionError("unreachable")


def lookup(path: Path, settings: str, sha256s: list[str],
           count: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """sha256 -> (`count` statistics, pHash (64,) bool) for the digests cached."""
    digests = sorted({d for d in sha256s if d})
    found = {}
    connection = connect(path)
    try:
        for start in range(0, len(digests), _BATCH):
            batch = digests[start:start + _BATCH]
            rows = connection.execute(
                f"SELECT sha256, stats FROM stats WHERE settings = ? AND sha256 IN "
                f"({','.join('?' * len(batch))})", [settings, *batch])
            found.update((digest, decode_row(blob, count)) for digest, blob in rows)
    finally:
        connection.close()
    return found


def store(path: Path, settings: str, scanned) -> None:
    """Add the readable files of a scan (an `image_stats.Scanned`), under the sha256 of the
    bytes decoded."""
    rows = [(settings, digest, encode_row(scanned.values[i], scanned.phashes[i]))
            for i, digest in enumerate(scanned.sha256s) if digest]
    if not rows:
        return
    connection = connect(path)
    try:
        with connection:  # one transaction: all rows or none
            connection.executemany("INSERT OR REPLACE INTO stats VALUES (?, ?, ?)", rows)
    finally:
        connection.close()


def encode_row(values: np.ndarray, phash: np.ndarray) -> bytes:
    return np.asarray(values, "<f8").tobytes() + np.packbits(phash).tobytes()


def decode_row(blob: bytes, count: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.frombuffer(blob, "<f8", count)
    phash = np.unpackbits(np.frombuffer(blob, np.uint8, offset=8 * count)).astype(bool)
    return values.copy(), phash
