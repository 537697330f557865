"""The bundle on disk: manifest.json with the sha256 of every file, verification, zip.

    bundle/
      manifest.json      classes, task, policy + thresholds, preprocessing, input shape,
                         dataset manifest hash, source run, versions, runtimes, files {name: sha256}
      model.onnx         FP32, softmax/sigmoid inside, dynamic batch
      model.fp16.onnx    with --fp16
      model.engine       with --to tensorrt (+ timing.cache, calibration.cache with --int8)
      trtexec.txt        the trtexec line that builds the engine on the target device
      report.html/json   the validation report measured through each runtime
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from shotlab.core.errors import InputError
from shotlab.core.images import sha256_file

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1  # bumped when the bundle layout changes incompatibly


def file_hashes(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in `folder` except the manifest itself."""
    return {path.relative_to(folder).as_posix(): sha256_file(path)
            for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != MANIFEST_FILE}


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Add the hashes of the folder's files to `manifest` and write it; returns it."""
    manifest = {**manifest, "format_version": FORMAT_VERSION, "files": file_hashes(folder)}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise InputError(f"{folder}: not a shotlab bundle (no {MANIFEST_FILE}); give the folder "
                         f"or .zip that `shotlab export` wrote")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); re-export the bundle") from None


def verify(folder: Path, manifest: dict) -> None:
    """Raise InputError naming the first file that is missing or whose sha256 differs."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise InputError(f"{folder / MANIFEST_FILE}: lists no file hashes; re-export the bundle")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise InputError(f"{folder}: bundle file {name} is missing; re-export the bundle "
                             f"or restore the file")
        if sha256_file(path) != expected:
            raise InputError(f"{path}: sha256 does not match the bundle manifest (the file was "
                             f"modified or corrupted); re-export the bundle, do not run it")


def zip_folder(folder: Path, target: Path) -> Path:
    """`target` (.zip) holding the folder's files at its root; returns `target`."""
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    partial.replace(target)
    return target


def unzip(archive_path: Path, target: Path) -> Path:
    """Extract a bundle zip into `target`, refusing members that would land outside it."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            root = target.resolve()
            for member in archive.namelist():
                if not (root / member).resolve().is_relative_to(root):
                    raise InputError(f"{archive_path}: member {member} points outside the "
                                     f"bundle; refusing to extract it")
            archive.extractall(target)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{archive_path}: not a readable zip ({exc}); re-export with "
                         f"`shotlab export RUN --zip`") from None
    return target


def replace_folder(source: Path, target: Path) -> Path:
    """Move `source` to `target`, removing what was at `target` first."""
    if target.exists():
        shutil.rmtree(target)
    source.replace(target)
    return target
