"""A stand-in for api.roboflow.com on 127.0.0.1, for tests that run the real Roboflow SDK.

Point the SDK at it with `API_URL=server.url` (read when `roboflow` is imported). It answers the
requests roboflow 1.7.3 makes to download a version, in the shapes the SDK reads (taken from
`roboflow/__init__.py`, `core/{workspace,project,version}.py` and `adapters/rfapi.py`):

    POST /?api_key=K                        {"welcome", "instructions", "docs", "workspace"}
    GET  /WS?api_key=K                      {"workspace": {"name", "url", "members", "projects"}}
    GET  /WS/PROJECT?api_key=K              {"workspace", "project": {...}, "versions": [...]}
    GET  /WS/PROJECT/V?api_key=K&nocache=.. {"workspace", "project", "version": {"generating", ...}}
    GET  /WS/PROJECT/V/FORMAT?api_key=K&..  {"export": {"format", "link", "size"}}
    GET  /ds/<token>?key=<signed>           the export zip (the link above; no API key in it)

A wrong or missing key gets 401 with Roboflow's error body, which echoes the key back, as the
real API does. Exports are the real Roboflow classification layouts (see `FOLDER`, `MULTICLASS`).
Every request is recorded in `requests`. It serves on loopback only, in a daemon thread, until
`stop()` (or the end of its `with` block).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.imaging import write_image

CLASSES = ("Sports car", "Truck")
# folder export: split -> class -> how many images
FOLDER = {"train": {"Sports car": 3, "Truck": 2}, "valid": {"Sports car": 1, "Truck": 1},
          "test": {"Sports car": 1, "Truck": 1}}
# multiclass export: split -> one-hot rows over CLASSES (an all-zero row is an unlabeled image)
MULTICLASS = {"train": [(1, 0), (0, 1), (1, 1), (0, 0)], "valid": [(1, 0), (0, 1)],
              "test": [(1, 1)]}
CREATED = 1714557600.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]


@dataclass(frozen=True)
class ExportFile:
    """One image of an export: its path in the zip, class names and split (as Roboflow names it)."""

    path: str
    labels: tuple[str, ...]
    split: str


def rf_name(stem: str, seed: int) -> str:
    """Roboflow's export file name: `<stem>_jpg.rf.<32 hex>.jpg`."""
    return f"{stem}_jpg.rf.{hashlib.md5(f'{stem}-{seed}'.encode()).hexdigest()}.jpg"


def folder_files() -> list[ExportFile]:
    files = []
    for split, counts in FOLDER.items():
        for name, count in counts.items():
            stems = [f"{split}_{name}_{i}" for i in range(count)]
            files += [ExportFile(f"{split}/{name}/{rf_name(stem, i)}", (name,), split)
                      for i, stem in enumerate(stems)]
    return files


def multiclass_files() -> list[ExportFile]:
    return [ExportFile(f"{split}/{rf_name(f'{split}_{i}', i)}",
                       tuple(c for c, on in zip(CLASSES, row) if on), split)
            for split, rows in MULTICLASS.items() for i, row in enumerate(rows)]


EXPORTS = {"folder": folder_files, "multiclass": multiclass_files}


def classes_csv(files: list[ExportFile]) -> str:
    """Roboflow's `_classes.csv`: `filename, Sports car, Truck` and 0/1 rows, ', ' separated."""
    lines = [", ".join(("filename",) + CLASSES)]
    lines += [", ".join([Path(f.path).name] + [str(int(c in f.labels)) for c in CLASSES])
              for f in files]
    return "\n".join(lines) + "\n"


def readmes(project: str, version: int, fmt: str, count: int) -> dict[str, str]:
    return {
        "README.dataset.txt": f"# {project} > raw\nhttps://universe.roboflow.com/{project}\n\n"
                              f"Provided by a Roboflow user\nLicense: CC BY 4.0\n",
        "README.roboflow.txt": f"\n{project} - v{version} raw\n==============================\n\n"
                               f"This dataset was exported via roboflow.com on May 1, 2024 at "
                               f"10:00 AM GMT\n\nThe dataset includes {count} images.\n"
                               f"Vehicles are annotated in {fmt} format.\n",
    }


def build_zip(fmt: str, project: str, version: int, scratch: Path) -> bytes:
    """The export zip, with real small JPEGs (distinct pixels per file)."""
    files = EXPORTS[fmt]()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in readmes(project, version, fmt, len(files)).items():
            archive.writestr(name, text)
        for seed, f in enumerate(files):
            archive.write(write_image(scratch / fmt / f.path, seed=seed, fmt="JPEG"), f.path)
        if fmt == "multiclass":
            for split in MULTICLASS:
                archive.writestr(f"{split}/_classes.csv",
                                 classes_csv([f for f in files if f.split == split]))
    return buffer.getvalue()


class FakeRoboflow:
    """The fake API for one workspace/project/version of a classification project."""

    def __init__(self, api_key: str, scratch: Path, *, workspace: str = "my-team",
                 project: str = "vehicles", version: int = 3, project_type: str = "classification"):
        self.api_key, self.scratch = api_key, scratch
        self.workspace, self.project, self.version = workspace, project, version
        self.project_type = project_type
        self.exports = ["folder"]  # generated so far; a multiclass request generates it
        self.requests: list[Request] = []
        self._zips: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeRoboflow":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeRoboflow":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def downloads(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith("/ds/")]

    def files(self, fmt: str) -> list[ExportFile]:
        return EXPORTS[fmt]()

    def zip_bytes(self, fmt: str) -> bytes:
        with self._lock:
            if fmt not in self._zips:
                self._zips[fmt] = build_zip(fmt, self.project, self.version, self.scratch)
            return self._zips[fmt]

    # --- JSON bodies, in the real API's shapes -------------------------------------------------

    def workspace_json(self) -> dict:
        return {"name": self.workspace.replace("-", " ").title(), "url": self.workspace,
                "members": 1}

    def project_json(self) -> dict:
        splits = {s: sum(FOLDER[s].values()) for s in FOLDER}
        return {"id": f"{self.workspace}/{self.project}", "type": self.project_type,
                "name": self.project.title(), "created": CREATED, "updated": CREATED + 60,
                "images": sum(splits.values()), "unannotated": 0, "annotation": "vehicles",
                "versions": 1, "public": False, "splits": splits,
                "colors": {"Sports car": "#C7FC00", "Truck": "#8622FF"},
                "classes": {c: sum(FOLDER[s][c] for s in FOLDER) for c in CLASSES}}

    def version_json(self) -> dict:
        project = self.project_json()
        return {"id": f"{self.workspace}/{self.project}/{self.version}", "name": "raw",
                "version": str(self.version), "created": CREATED + 120,
                "images": project["images"], "splits": project["splits"],
                "preprocessing": {"auto-orient": {"enabled": True}}, "augmentation": {},
                "exports": list(self.exports), "generating": False, "progress": 1.0}

    def route(self, method: str, parts: list[str]) -> tuple[int, dict]:
        """(status, JSON body) for an API request with a good key."""
        ws, proj, ver = self.workspace, self.project, str(self.version)
        if method == "POST" and parts == []:
            return 200, {"welcome": "Welcome to the Roboflow API.",
                         "instructions": "You are successfully authenticated.",
                         "docs": "https://docs.roboflow.com", "workspace": ws}
        if method != "GET" or not parts or parts[0] != ws:
            return not_found(f"/{'/'.join(parts)}")
        if parts == [ws]:
            return 200, {"workspace": {**self.workspace_json(), "projects": [self.project_json()]}}
        if parts == [ws, proj]:
            return 200, {"workspace": self.workspace_json(), "project": self.project_json(),
                         "versions": [self.version_json()]}
        if parts == [ws, proj, ver]:
            return 200, {"workspace": self.workspace_json(), "project": self.project_json(),
                         "version": self.version_json()}
        if len(parts) == 4 and parts[:3] == [ws, proj, ver] and parts[3] in EXPORTS:
            return 200, self.export_json(parts[3])
        return not_found(f"/{'/'.join(parts)}")

    def export_json(self, fmt: str) -> dict:
        if fmt not in self.exports:
            self.exports.append(fmt)
        size = len(self.zip_bytes(fmt)) / 1e6
        link = f"{self.url}/ds/{fmt}-{self.version}?key=signed-download-token"
        return {"workspace": self.workspace_json(), "project": self.project_json(),
                "version": self.version_json(),
                "export": {"format": fmt, "link": link, "size": size}}


def unauthorized(key: str | None) -> tuple[int, dict]:
    return 401, {"error": {"message": "This API key does not exist (or has been revoked).",
                           "status": 401, "type": "OAuthException",
                           "hint": "You may retrieve your API key via the Roboflow Dashboard. "
                                   "Go to Account > Roboflow Keys to retrieve yours.",
                           "key": key}}


def not_found(path: str) -> tuple[int, dict]:
    return 404, {"error": {"message": f"Unsupported get request. {path} does not exist.",
                           "status": 404, "type": "GraphMethodException"}}


def make_handler(api: FakeRoboflow) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.answer("GET")

        def do_POST(self) -> None:
            self.answer("POST")

        def answer(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            api.requests.append(Request(method, url.path, query))
            if url.path.startswith("/ds/"):
                return self.send_zip(url.path.removeprefix("/ds/").split("-")[0], query)
            if query.get("api_key") != api.api_key:
                return self.send_json(*unauthorized(query.get("api_key")))
            self.send_json(*api.route(method, [p for p in url.path.split("/") if p]))

        def send_zip(self, fmt: str, query: dict[str, str]) -> None:
            if fmt not in api.exports or query.get("key") != "signed-download-token":
                return self.send_json(403, {"error": "Signature does not match."})
            self.send_body(200, api.zip_bytes(fmt), "application/zip")

        def send_json(self, status: int, body: dict) -> None:
            self.send_body(status, json.dumps(body).encode(), "application/json")

        def send_body(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format, *args) -> None:  # quiet: request lines carry the key
            pass

    return Handler
