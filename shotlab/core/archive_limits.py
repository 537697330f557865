"""Limits on what a zip may expand to, checked before anything is written, and enforced while
extracting.

A zip's central directory states each member's compressed and uncompressed size, so a zip bomb
(a small file that inflates to gigabytes) can be refused before one byte is written:

    with zipfile.ZipFile(path) as archive:
        check_zip(archive, path)            # InputError naming the limit and how to raise it
        extract_zip(archive, path, target)  # checks again, then streams; stops a member that lies

The declared sizes can lie (they are just numbers in the file), so `extract_zip` also stops a
member as soon as more bytes come out of it than it declared; it also refuses member paths that
would land outside the target folder (zip-slip).

Each limit can be raised per call where the command has the options (`curate import
--zip-max-bytes ...`; a refusal names them only there) or for every command
through its environment variable (`SHOTLAB_ZIP_MAX_BYTES`, `SHOTLAB_ZIP_MAX_FILES`,
`SHOTLAB_ZIP_MAX_RATIO`).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.errors import InputError

# Small image datasets (shotlab's subject) are at most a few GB; a bundle is one model, under 1 GB.
# 16 GiB leaves room for either several times over while a bomb cannot fill an ordinary disk.
DEFAULT_MAX_BYTES = 16 * 1024 ** 3
# One file is one sample (and one inode); 200,000 is several times a large "small" dataset.
DEFAULT_MAX_FILES = 200_000
# JPEG, PNG and ONNX weights barely compress (ratio ~1.0-1.2), CSV and JSON reach 5-20x; deflate's
# ceiling is ~1032x, which zip bombs sit at. 100x refuses bombs and passes any real dataset.
DEFAULT_MAX_RATIO = 100.0
# Below this size a member or archive cannot hurt, whatever its ratio (a tiny highly compressible
# labels.csv is fine); the ratio is only judged past it.
RATIO_GRACE_BYTES = 1024 ** 2
CHUNK = 1024 ** 2  # bytes copied per read while extracting

ENV = {"max_bytes": "SHOTLAB_ZIP_MAX_BYTES", "max_files": "SHOTLAB_ZIP_MAX_FILES",
       "max_ratio": "SHOTLAB_ZIP_MAX_RATIO"}
FLAGS = {"max_bytes": "--zip-max-bytes", "max_files": "--zip-max-files",
         "max_ratio": "--zip-max-ratio"}


@dataclass(frozen=True)
class ZipLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_files: int = DEFAULT_MAX_FILES
    max_ratio: float = DEFAULT_MAX_RATIO

    @classmethod
    def resolve(cls, max_bytes: int | None = None, max_files: int | None = None,
                max_ratio: float | None = None) -> "ZipLimits":
        """Given values first, then the environment variables, then the defaults."""
        given = {"max_bytes": max_bytes, "max_files": max_files, "max_ratio": max_ratio}
        values = {k: v if v is not None else _from_env(k) for k, v in given.items()}
        return cls(**{k: v for k, v in values.items() if v is not None})


def _from_env(key: str) -> float | int | None:
    text = os.environ.get(ENV[key], "").strip()
    if not text:
        return None
    kind = float if key == "max_ratio" else int
    try:
        value = kind(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise InputError(f"${ENV[key]}={text!r}: expected a positive "
                         f"{'number' if kind is float else 'whole number'}; fix or unset it")
    return value


def _refuse(path, what: str, key: str, limits: ZipLimits, options: bool) -> InputError:
    how = f"{FLAGS[key]} or ${ENV[key]}" if options else f"${ENV[key]}"
    return InputError(f"{path}: {what}, over the limit of {getattr(limits, key):,}; nothing was "
                      f"extracted (if you trust this zip, raise the limit with {how})")


def check_zip(archive: zipfile.ZipFile, path, *, max_bytes: int | None = None,
              max_files: int | None = None, max_ratio: float | None = None,
              options: bool = False) -> ZipLimits:
    """Raise InputError if the zip's central directory declares more files, more bytes or a higher
    compression ratio than allowed; returns the limits used (for `extract_zip`).

    `options`: the calling command has the --zip-max-* options (curate import), so a refusal
    names them beside the environment variable; elsewhere (predict's bundle, Roboflow pull) it
    names only the variable."""
    limits = ZipLimits.resolve(max_bytes, max_files, max_ratio)
    members = archive.infolist()
    if len(members) > limits.max_files:
        raise _refuse(path, f"{len(members):,} files", "max_files", limits, options)
    total = sum(m.file_size for m in members)
    if total > limits.max_bytes:
        raise _refuse(path, f"expands to {total:,} bytes", "max_bytes", limits, options)
    packed = sum(m.compress_size for m in members)
    for name, size, compressed in [*((m.filename, m.file_size, m.compress_size) for m in members),
                                   ("the whole zip", total, packed)]:
        if size > RATIO_GRACE_BYTES and size > limits.max_ratio * max(compressed, 1):
            ratio = size / max(compressed, 1)
            raise _refuse(path, f"{name} is compressed {ratio:,.0f}:1 (a zip bomb?)",
                          "max_ratio", limits, options)
    return limits


def check_names(archive: zipfile.ZipFile, path) -> None:
    """Refuse a zip any of whose entries would land outside its extraction folder (zip-slip), or
    whose file entry names the folder itself ('.', '', 'a/..')."""
    for member in archive.infolist():
        name = member.filename
        normalised = os.path.normpath(name.replace("\\", "/")) if name else "."
        if os.path.isabs(normalised) or normalised == ".." or normalised.startswith("../"):
            raise InputError(f"{path}: entry '{name}' would be written outside the extraction "
                             f"folder; refusing the whole zip (re-create it without such paths)")
        if normalised == "." and not member.is_dir():
            raise InputError(f"{path}: entry '{name}' names no file (it is the extraction "
                             f"folder itself); refusing the whole zip (re-create it without it)")


def extract_zip(archive: zipfile.ZipFile, path, target: Path, *,
                limits: ZipLimits | None = None, options: bool = False) -> Path:
    """Extract every member under `target` after checking names and limits, never writing more
    bytes for a member than its entry declares. Raises InputError for a refused, forged or
    damaged zip; what was written by then is left for the caller to remove (extract into a
    temporary folder). `options` as for `check_zip`."""
    check_names(archive, path)
    check_zip(archive, path, **vars(limits or ZipLimits.resolve()), options=options)
    target = Path(target)
    for member in archive.infolist():
        try:
            extract_member(archive, member, target, path)
        except (zipfile.BadZipFile, EOFError, zlib.error, RuntimeError,
                NotImplementedError) as exc:
            # RuntimeError: an encrypted member; NotImplementedError: an unknown compression
            raise InputError(f"{path}: cannot extract ({exc}); re-create the zip") from None
        except OSError as exc:  # entries that clash on disk, a name too long, a full disk
            raise InputError(f"{path}: cannot extract entry '{member.filename}' "
                             f"({exc.strerror or exc}); re-create the zip (entries must not "
                             f"clash, like a file 'a' and a file 'a/b')") from None
    return target


def extract_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, path) -> None:
    destination = target / member.filename
    if member.is_dir():
        destination.mkdir(parents=True, exist_ok=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(member) as source, open(destination, "wb") as out:
        copy_at_most(source, out, member.file_size, path, member.filename)


def copy_at_most(source, out, declared: int, path, name: str) -> None:
    """Copy `source` to `out`, raising InputError once more than `declared` bytes come out.

    (CPython's zipfile already cuts a member at its declared size and then fails its CRC check;
    this does not rely on that.)"""
    written = 0
    while chunk := source.read(min(CHUNK, declared - written + 1)):
        written += len(chunk)
        if written > declared:
            raise InputError(f"{path}: member {name} holds more than the {declared:,} bytes its "
                             f"entry declares (a forged zip); refusing the whole zip")
        out.write(chunk)
