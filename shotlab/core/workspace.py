"""Where shotlab keeps its data, and the offline settings it applies before loading libraries.

A workspace is one folder (`--workspace`, else `$SHOTLAB_HOME`, else `~/.shotlab`):

    db/         the workspace's MongoDB data (unless a database URI points elsewhere);
                its server runs while shotlab processes use it (see core/database.py)
    media/      images extracted from imported zip files (the user's zip is never touched)
    downloads/  Roboflow pulls
    cache/      embeddings, keyed by backbone, weights, preprocessing and image sha256
    runs/       training runs (checkpoint, manifest, metrics, plots)

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
    def downloads_dir(self) -> Path:
        return self.home / "downloads"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"



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
    workspace.home.mkdir(parents=True, exist_ok=True)
    apply_offline_environment()
    os.environ.pop("FIFTYONE_DATABASE_URI", None)  # set by store.fiftyone(), never inherited
    os.environ["FIFTYONE_CONFIG_PATH"] = str(workspace.home / "fiftyone-config.json")
    _active = workspace
    return workspace


def current() -> Workspace:
    """The active workspace, activating the default one on first use."""
    return _active or activate()
