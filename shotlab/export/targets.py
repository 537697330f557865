"""Where `shotlab export` writes, and what it may replace there.

Export replaces only what it wrote: `OUT/` and `OUT.rejected/` when they are bundles (or empty
folders), `OUT.zip` when it is a bundle zip; `OUT` needs --force besides. A bundle is recognised
by its manifest's keys and by holding no file its manifest does not list; anything else (a
folder of notes, someone else's manifest.json, a symlink) is refused in one line, --force or
not. The checks run before any work and again just before each replacement.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

from shotlab.core.errors import InputError
from shotlab.core.files import partial_name
from shotlab.runtime import bundle as bundle_files

# The keys (and their JSON types) every manifest written by `bundle.write_manifest` has: how a
# folder or zip is recognised as a bundle that export may replace.
BUNDLE_KEYS = {"format_version": int, "files": dict, "runtimes": dict, "classes": list}
MAX_MANIFEST_BYTES = 16 * 2**20  # a real manifest is a few KB; reading a bigger one is not worth it


def rejected_path_of(out: Path) -> Path:
    return out.with_name(out.name + ".rejected")


def check_targets(out: Path, run_dir: Path, *, zip_bundle: bool, force: bool) -> None:
    """Refuse, before any work, to write where export would replace something it did not write.

    `out` and `out.rejected` may be replaced only when they are bundles (or empty folders),
    `out.zip` only when it is a bundle zip; `out` needs `force` besides. A run inside a folder
    that would be replaced (or inside the staging folder `out.partial`) is refused by name."""
    for folder in (out, rejected_path_of(out), partial_name(out)):
        if run_dir.resolve().is_relative_to(folder.resolve()):
            raise InputError(f"--out {out}: {folder} holds the run being exported ({run_dir}) "
                             f"and would be replaced; choose an --out outside the run folder")
    zip_path = zip_path_of(out)
    check_replaceable(rejected_path_of(out), "folder", why="a refused export is moved there")
    check_replaceable(out, "folder")
    if zip_bundle:
        check_replaceable(zip_path, "zip")
    taken = [path for path in ([out, zip_path] if zip_bundle else [out])
             if path.exists() and not (path.is_dir() and not any(path.iterdir()))]
    if taken and not force:
        raise InputError(f"{taken[0]} already exists; pass --force to replace it or --out for "
                         f"another folder")


def check_replaceable(path: Path, kind: str, *, why: str = "") -> None:
    """Raise InputError unless `path` is absent or a bundle `kind` ('folder' or 'zip') that
    export may replace; `why` says why export would write there."""
    if not (path.exists() or path.is_symlink()):
        return
    problem = bundle_problem(path, kind)
    if problem:
        what = "shotlab bundle" if kind == "folder" else "shotlab bundle zip"
        raise InputError(f"{path} is in the way{f' ({why})' if why else ''} and is not a "
                         f"{what}: {problem}. Export replaces only a bundle it wrote, --force or "
                         f"not; move it away or choose another --out")


def bundle_problem(path: Path, kind: str) -> str | None:
    """Why `path` is not a bundle export may replace; None when it is (or is an empty folder).

    A bundle is a real folder (or zip) whose manifest.json has `BUNDLE_KEYS` and which holds
    no file the manifest does not list (besides `manifest.*`: the manifest and what signs it)."""
    if path.is_symlink():
        return "it is a symbolic link"
    return folder_problem(path) if kind == "folder" else zip_problem(path)


def folder_problem(folder: Path) -> str | None:
    if not folder.is_dir():
        return "it is not a folder"
    if next(folder.iterdir(), None) is None:
        return None  # an empty folder: nothing to lose
    try:  # the manifest first: a large folder of someone else's is never listed
        manifest = json.loads((folder / bundle_files.MANIFEST_FILE).read_text())
    except FileNotFoundError:
        return f"it holds no {bundle_files.MANIFEST_FILE}"
    except (OSError, ValueError) as exc:
        return f"its {bundle_files.MANIFEST_FILE} cannot be read ({exc})"
    return keys_problem(manifest) or extra_problem(
        manifest, [p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()])


def zip_problem(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(bundle_files.MANIFEST_FILE)
            if info.file_size > MAX_MANIFEST_BYTES:
                return f"its {bundle_files.MANIFEST_FILE} is {info.file_size} bytes"
            manifest = json.loads(archive.read(info))
            names = [name for name in archive.namelist() if not name.endswith("/")]
    except KeyError:
        return f"it holds no {bundle_files.MANIFEST_FILE}"
    except (zipfile.BadZipFile, OSError) as exc:
        return f"it is not a readable zip ({exc})"
    except (ValueError, zlib.error, EOFError) as exc:
        return f"its {bundle_files.MANIFEST_FILE} cannot be read ({exc})"
    return keys_problem(manifest) or extra_problem(manifest, names)


def keys_problem(manifest) -> str | None:
    if not isinstance(manifest, dict):
        return f"its {bundle_files.MANIFEST_FILE} is not a JSON object"
    missing = [key for key, kind in BUNDLE_KEYS.items() if not isinstance(manifest.get(key), kind)]
    return f"its {bundle_files.MANIFEST_FILE} has no {', '.join(missing)}" if missing else None


def extra_problem(manifest: dict, names: list[str]) -> str | None:
    extra = [name for name in names if name not in manifest["files"]
             and not ("/" not in name and name.startswith("manifest."))]
    if extra:
        return (f"it holds {len(extra)} file(s) the bundle's manifest does not list "
                f"({', '.join(sorted(extra)[:3])})")
    return None


def zip_path_of(out: Path) -> Path:
    return out.with_name(out.name + ".zip")
