"""Where shotlab keeps its data, and the offline settings it applies before loading libraries.

A workspace is one folder (`--workspace`, else `$SHOTLAB_HOME`, else `~/.shotlab`):

    db/         the workspace's MongoDB data (unless a database URI points elsewhere);
                its server runs while shotlab processes use it (see core/database.py)
    media/      images extracted from imported zip files (the user's zip is never touched)
    texts/      imported comments, one UTF-8 file each, named by its sha256 (curate/text_import.py)
    downloads/  Roboflow pulls
    cache/      embeddings, keyed by backbone, weights, preprocessing and image sha256
    runs/       training runs (checkpoint, manifest, metrics, plots)

It is private to its user (folders 0700, files 0600), as MongoDB keeps its own data files: it
holds the user's images, labels, models and decisions. `activate()` creates the folder 0700 and
takes group and other access away from it and shotlab's folders in it (an older workspace made
them 0755); the `shotlab` command also runs with umask 077 (`private_umask`), so every file it
creates, in the workspace or in an `--out` folder, is 0600 and every folder 0700.

FiftyOne reads its configuration once, when it is first imported, so `activate()` must run before
that. It also stops FiftyOne from reading the user's own `~/.fiftyone/config.json` or
`FIFTYONE_DATABASE_URI`: `store.fiftyone()` hands FiftyOne the URI of the workspace's own server,
so shotlab (and its tests) never touch a database the user did not name. A team database is
chosen with `--database-uri` or `$SHOTLAB_DATABASE_URI`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from shotlab.core.errors import InputError

HOME_ENV = "SHOTLAB_HOME"
EXTRA_FOLDERS = ("reports", "benchmarks", "mlflow-artifacts")  # made by curate check, train
PRIVATE_UMASK = 0o077  # no group or other bits on anything the shotlab command creates
DATABASE_URI_ENV = "SHOTLAB_DATABASE_URI"

# Every library here phones home at start unless told not to; user data is sensitive, so
# shotlab switches them all off itself rather than relying on the user to know the variables.
OFFLINE_ENVIRONMENT = {
    "FIFTYONE_DO_NOT_TRACK": "true",
    "FIFTYONE_DATABASE_VALIDATION": "false",  # mongod 6.0.5 is older than FiftyOne would like
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # ONNX Runtime 1.31's Linux wheel keeps a telemetry device id and event store in
    # ~/.cache/Microsoft/DeveloperTools/.onnxruntime unless this is set before its first session.
    "ORT_DISABLE_TELEMETRY": "1",
    # The explanation page's Streamlit (also set as a command-line option by shotlab.page).
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
}


@dataclass(frozen=True)
class Workspace:
    home: Path
    database_uri: str | None = None

    @classmethod
    def resolve(cls, home: str | Path | None = None, database_uri: str | None = None) -> "Workspace":
        home = home or os.environ.get(HOME_ENV) or Path.home() / ".shotlab"
        uri = database_uri or os.environ.get(DATABASE_URI_ENV) or None
        return cls(Path(home).expanduser().resolve(), uri)

    @property
    def db_dir(self) -> Path:
        return self.home / "db"

    @property
    def media_dir(self) -> Path:
        return self.home / "media"

    @property
    def texts_dir(self) -> Path:
        return self.home / "texts"

    @property
    def downloads_dir(self) -> Path:
        return self.home / "downloads"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def own_folders(self) -> tuple[Path, ...]:
        """The workspace and the folders shotlab makes in it."""
        return (self.home, self.db_dir, self.media_dir, self.texts_dir, self.downloads_dir,
                self.cache_dir, self.runs_dir, *(self.home / name for name in EXTRA_FOLDERS))


_active: Workspace | None = None


def apply_offline_environment() -> None:
    """Switch off the libraries' network calls; call before importing them."""
    os.environ.update(OFFLINE_ENVIRONMENT)


def activate(home: str | Path | None = None, database_uri: str | None = None) -> Workspace:
    """Make this process use the given workspace; call before FiftyOne is imported."""
    global _active
    workspace = Workspace.resolve(home, database_uri)
    if _active is not None and _active != workspace and "fiftyone" in sys.modules:
        raise InputError(f"this process already uses the workspace {_active.home}; FiftyOne "
                         f"cannot switch to {workspace.home} (run a separate process)")
    workspace.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    make_private(workspace.own_folders())
    apply_offline_environment()
    os.environ.pop("FIFTYONE_DATABASE_URI", None)  # set by store.fiftyone(), never inherited
    os.environ["FIFTYONE_CONFIG_PATH"] = str(workspace.home / "fiftyone-config.json")
    # Matplotlib's font cache goes into the workspace, not ~/.cache (unless the user chose one).
    os.environ.setdefault("MPLCONFIGDIR", str(workspace.cache_dir / "matplotlib"))
    _active = workspace
    return workspace


def make_private(folders) -> None:
    """Take group and other access away from these folders (those that exist and are ours);
    with the workspace folder at 0700, nothing below it is reachable by another user, whatever
    older files' own modes say. The user's home folder is never changed (a workspace at ~)."""
    user_home = Path.home().resolve()
    for folder in folders:
        try:
            status = folder.stat()
            if status.st_mode & 0o077 and status.st_uid == os.getuid() and folder != user_home:
                folder.chmod(status.st_mode & 0o700)
        except OSError:  # missing, or a filesystem without modes: nothing to take away
            continue


def private_umask():
    """Set umask 077 for this process (the `shotlab` command); returns the call that restores
    the previous one. A umask, not chmod after writing: it also covers what libraries write
    (MLflow's SQLite file, torch.save, matplotlib, mongod's logs) and leaves no moment at which
    a new file is readable by others."""
    previous = os.umask(PRIVATE_UMASK)
    return lambda: os.umask(previous)


def current() -> Workspace:
    """The active workspace, activating the default one on first use."""
    return _active or activate()
