"""`shotlab curate pull roboflow`: download a Roboflow dataset version with its SDK, import it.

The export lands in `<workspace>/downloads/roboflow/<workspace>/<project>/<version>/<format>`,
written under a temporary name and renamed once complete, so an interrupted download is never
used; its zip is unpacked within shotlab's archive limits (size, file count, compression ratio:
core/archive_limits.py, raised with $SHOTLAB_ZIP_MAX_*). A Roboflow version is a frozen snapshot, so a later pull of the same version and format
imports the earlier download without contacting Roboflow (and without needing a key).

The API key lives only in memory: shotlab writes it nowhere. The SDK puts it in every request
URL, so `requests` errors carry it, and Roboflow's 401 body echoes it back; every error reported
here has it replaced by `***`. The SDK's chatter ("loading Roboflow workspace...") goes to
stderr, so the CLI's stdout holds only the import report.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from shotlab.core import workspace
from shotlab.core.archive_limits import extract_zip
from shotlab.core.errors import InputError, ShotlabError
from shotlab.core.files import atomic_path, remove
from shotlab.curate import archives
from shotlab.curate.importer import ImportReport, import_path

# Roboflow URL slugs: letters, digits, '-' and '_'. No dots, so a ref can never name '..' in the
# download path built from it.
REF_PATTERN = re.compile(r"([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)/([0-9]+)")
PULL_FORMATS = ("folder", "multiclass")  # Roboflow's classification exports
COMPLETE_MARKER = ".shotlab-complete"
KEY_HINT = ("give the key with --api-key or ROBOFLOW_API_KEY, or run `roboflow login` "
            "(keys: https://app.roboflow.com/settings/api)")
AUTH_STATUSES = (401, 403)
NOT_FOUND_STATUS = 404
MAX_REASON = 200  # characters of the server's message kept in one-line errors


@dataclass(frozen=True)
class RoboflowRef:
    workspace: str
    project: str
    version: int

    def __str__(self) -> str:
        return f"{self.workspace}/{self.project}/{self.version}"


def parse_ref(ref: str) -> RoboflowRef:
    """`"my-team/vehicles/3"` -> RoboflowRef; InputError naming the expected form otherwise."""
    match = REF_PATTERN.fullmatch(ref.strip().strip("/"))
    if not match or int(match[3]) < 1:
        raise InputError(f"'{ref}' is not a Roboflow dataset version; expected "
                         f"WORKSPACE/PROJECT/VERSION with a version number from 1, e.g. "
                         f"my-team/vehicles/3 (the end of the version's app.roboflow.com URL)")
    return RoboflowRef(match[1], match[2], int(match[3]))


def download_dir(ref: RoboflowRef, fmt: str) -> Path:
    return (workspace.current().downloads_dir / "roboflow" / ref.workspace / ref.project
            / str(ref.version) / fmt)


def pull_and_import(ref: RoboflowRef, name: str, *, fmt: str = "folder", multilabel: bool = False,
                    api_key: str | None = None, progress: bool | None = None) -> ImportReport:
    """Download Roboflow dataset version `ref` in export format `fmt` (once), import it into `name`.

    The key is `api_key`, else `$ROBOFLOW_API_KEY`, else the one Roboflow's own config holds for
    the workspace (`roboflow login`). Raises InputError for a bad key, reference or project, and
    ShotlabError when Roboflow cannot be reached or the download fails.
    """
    if fmt not in PULL_FORMATS:
        raise InputError(f"Roboflow export format '{fmt}' cannot be imported; expected one of "
                         f"{', '.join(PULL_FORMATS)}")
    target = download_dir(ref, fmt)
    if not (target / COMPLETE_MARKER).is_file():
        download(ref, fmt, resolve_api_key(api_key, ref), target)
    return import_path(archives.unwrap(target), name, fmt="roboflow", multilabel=multilabel,
                       progress=progress)


def import_sdk():
    """The `roboflow` package, imported without keeping its import-time side effects.

    Importing it loads a `.env` file found above its install folder into `os.environ`
    (python-dotenv) and replaces `warnings.formatwarning` for the whole process.
    """
    environ, formatwarning = dict(os.environ), warnings.formatwarning
    try:
        import roboflow
    except ValueError as exc:  # json.JSONDecodeError: a broken ~/.config/roboflow/config.json
        raise InputError(f"cannot load Roboflow's config file ({exc}); fix or delete it "
                         f"(`roboflow login` writes a new one)") from None
    finally:
        for added in set(os.environ) - set(environ):
            del os.environ[added]
        os.environ.update(environ)
        warnings.formatwarning = formatwarning
    return roboflow


def resolve_api_key(given: str | None, ref: RoboflowRef) -> str:
    key = (given or os.environ.get("ROBOFLOW_API_KEY") or "").strip()
    if not key:
        import_sdk()
        from roboflow.config import load_roboflow_api_key

        key = (load_roboflow_api_key(ref.workspace) or "").strip()
    if not key:
        raise InputError(f"no Roboflow API key to pull {ref}; {KEY_HINT}")
    return key


def download(ref: RoboflowRef, fmt: str, api_key: str, target: Path) -> None:
    """Download and extract the export into `target`, through a temporary folder beside it."""
    roboflow = import_sdk()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            rf_workspace = roboflow.Roboflow(api_key=api_key).workspace(ref.workspace)
            project = rf_workspace.project(ref.project)
            check_project_type(project.type, ref)
            version = project.version(ref.version)
            with atomic_path(target) as partial, limited_extraction():
                remove(target)  # an unmarked folder: left by an interrupted older shotlab
                version.download(fmt, location=str(partial), overwrite=True)
                (partial / COMPLETE_MARKER).write_text(f"roboflow {ref} {fmt}\n")
    except ShotlabError:
        raise
    except Exception as exc:  # the SDK raises RuntimeError, RoboflowError, requests', KeyError...
        raise sdk_error(exc, ref, api_key) from None  # `from exc` would carry the key in its text


@contextlib.contextmanager
def limited_extraction():
    """While pulling, the SDK unpacks its `roboflow.zip` with shotlab's checked extraction.

    The SDK's own `extract_zip` (roboflow.util.general, looked up by roboflow.core.version at
    call time) extracts every member with no limit on size, count or ratio; the SDK has no hook,
    so the name is pointed at `checked_extract` for the duration of the pull and restored after.
    """
    from roboflow.core import version

    original = version.extract_zip
    version.extract_zip = checked_extract
    try:
        yield
    finally:
        version.extract_zip = original


def checked_extract(location: str, desc: str | None = None) -> None:
    """The SDK's `extract_zip(location, desc)`, within the limits of core/archive_limits.py."""
    zip_path = Path(location) / "roboflow.zip"
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise ShotlabError(f"Roboflow sent a damaged zip ({exc}); pull again") from None
    with archive:
        extract_zip(archive, zip_path, Path(location))
    zip_path.unlink()


def check_project_type(project_type: str, ref: RoboflowRef) -> None:
    if project_type != "classification":
        raise InputError(f"Roboflow project {ref.workspace}/{ref.project} is of type "
                         f"'{project_type}'; shotlab pulls classification projects only")


def sdk_error(exc: Exception, ref: RoboflowRef, api_key: str) -> ShotlabError:
    """A one-line error naming `ref`, with the key scrubbed from everything the SDK said."""
    reason, status = describe(exc)
    for form in {api_key, quote(api_key, safe="")}:  # before shortening: no half key survives
        reason = reason.replace(form, "***")
    reason = " ".join(reason.split())
    reason = reason[:MAX_REASON] + "..." if len(reason) > MAX_REASON else reason
    if status in AUTH_STATUSES:
        return InputError(f"Roboflow refused the API key for {ref} ({reason}); {KEY_HINT}")
    if status == NOT_FOUND_STATUS:
        return InputError(f"Roboflow has no {ref} for this key ({reason}); check "
                          f"WORKSPACE/PROJECT/VERSION against the version's URL")
    return ShotlabError(f"could not download Roboflow dataset {ref}: {reason}")


def describe(exc: Exception) -> tuple[str, int | None]:
    """The message and HTTP status in an SDK exception (Roboflow's `{"error": ...}` JSON body)."""
    import requests
    from roboflow.config import API_URL

    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return f"cannot reach {API_URL} ({type(exc).__name__})", None
    text, status = str(exc), None
    try:
        error = json.loads(text)["error"]
    except (ValueError, KeyError, TypeError):
        error = None
    if isinstance(error, dict):
        text, status = str(error.get("message", error)), as_status(error.get("status"))
    elif isinstance(error, str):
        text = error
    if isinstance(exc, (KeyError, TypeError, AttributeError)):
        text = f"unexpected answer from {API_URL} ({type(exc).__name__}: {text})"
    return text, status


def as_status(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
