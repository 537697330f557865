"""The explanation store: one SQLite file beside the decisions, keyed by decision id.

Tables (all looked up by `decision_id`, which is indexed):
    decisions      what `shotlab predict` decided for a stored image: path, sha256, bundle,
                   scores, labels, flagged, needs_review, model hash (so an appeal needs only the id)
    explanations   one row per (decision, method): parameters (JSON), the target class, the map
                   (float16, zlib-compressed: ~3 KB for 224 x 224 instead of 200 KB of float32),
                   faithfulness scores (JSON), model and input hashes, time
    pending        appeals waiting for a deeper explanation: decision id, image path, bundle path,
                   methods requested, requested time, status (queued / done / failed), error

    with ExplanationStore(path) as store:
        store.put(decision_id, "gradcam", heatmap, target="red", params={...})
        store.explanations(decision_id)          # -> [Explanation(..., map=float32 (H, W))]
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY, path TEXT, sha256 TEXT, bundle TEXT, scores TEXT,
    labels TEXT, flagged TEXT, needs_review INTEGER, model_sha256 TEXT, created TEXT);
CREATE TABLE IF NOT EXISTS explanations (
    id INTEGER PRIMARY KEY, decision_id TEXT NOT NULL, method TEXT NOT NULL, target TEXT,
    params TEXT, height INTEGER, width INTEGER, map BLOB, scores TEXT, model_sha256 TEXT,
    input_sha256 TEXT, created TEXT);
CREATE INDEX IF NOT EXISTS explanations_by_decision ON explanations (decision_id);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY, decision_id TEXT NOT NULL, image_path TEXT, bundle_path TEXT,
    methods TEXT, requested TEXT, status TEXT NOT NULL DEFAULT 'queued', error TEXT,
    finished TEXT);
CREATE INDEX IF NOT EXISTS pending_by_status ON pending (status);
CREATE INDEX IF NOT EXISTS pending_by_decision ON pending (decision_id);
"""


@dataclass
class Explanation:
    decision_id: str
    method: str
    target: str | None
    params: dict
    map: np.ndarray  # float32 (H, W) in [0, 1]
    scores: dict
    model_sha256: str | None
    input_sha256: str | None
    created: str


@dataclass
class Appeal:
    id: int
    decision_id: str
    image_path: str | None
    bundle_path: str | None
    methods: list[str]
    requested: str
    status: str
    error: str | None = None


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def encode_map(heatmap) -> tuple[bytes, int, int]:
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise InputError(f"an explanation map must be 2-D (H, W); got shape {heatmap.shape}")
    return zlib.compress(heatmap.astype("<f2").tobytes(), 6), *heatmap.shape


def decode_map(blob: bytes, height: int, width: int) -> np.ndarray:
    flat = np.frombuffer(zlib.decompress(blob), dtype="<f2")
    return flat.reshape(height, width).astype(np.float32)


class ExplanationStore:
    """The SQLite store at `path` (created with its tables when missing)."""

    def __init__(self, path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise InputError(f"{self.path}: no explanation store there (it is written by "
                             f"`shotlab predict --explain`, as explanations.sqlite beside the "
                             f"decisions)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path)
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not an explanation store ({exc})") from None
        self.db.row_factory = sqlite3.Row

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        self.db.close()

    # decisions ----------------------------------------------------------------------------------
    def add_decision(self, decision: dict, bundle_path=None) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (decision["decision_id"], decision.get("path"), decision.get("sha256"),
                 str(bundle_path or decision.get("bundle") or "") or None,
                 json.dumps(decision.get("scores") or {}), json.dumps(decision.get("labels", [])),
                 json.dumps(decision.get("flagged", [])), int(bool(decision.get("needs_review"))),
                 decision.get("model_sha256"), decision.get("time") or now()))

    def decision(self, decision_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM decisions WHERE decision_id = ?",
                              (decision_id,)).fetchone()
        if row is None:
            return None
        data = dict(row)
        for key in ("scores", "labels", "flagged"):
            data[key] = json.loads(data[key])
        data["needs_review"] = bool(data["needs_review"])
        return data

    # explanations -------------------------------------------------------------------------------
    def put(self, decision_id: str, method: str, heatmap, *, target: str | None = None,
            params: dict | None = None, scores: dict | None = None,
            model_sha256: str | None = None, input_sha256: str | None = None) -> int:
        blob, height, width = encode_map(heatmap)
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO explanations (decision_id, method, target, params, height, width, "
                "map, scores, model_sha256, input_sha256, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (decision_id, method, target, json.dumps(params or {}), height, width, blob,
                 json.dumps(scores or {}), model_sha256, input_sha256, now()))
        return int(cursor.lastrowid)

    def explanations(self, decision_id: str, method: str | None = None) -> list[Explanation]:
        query = "SELECT * FROM explanations WHERE decision_id = ?"
        args: tuple = (decision_id,)
        if method:
            query, args = query + " AND method = ?", (decision_id, method)
        rows = self.db.execute(query + " ORDER BY id", args).fetchall()
        return [Explanation(r["decision_id"], r["method"], r["target"], json.loads(r["params"]),
                            decode_map(r["map"], r["height"], r["width"]), json.loads(r["scores"]),
                            r["model_sha256"], r["input_sha256"], r["created"]) for r in rows]

    def count(self, table: str = "explanations") -> int:
        if table not in ("explanations", "decisions", "pending"):
            raise ValueError(table)
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # appeals ------------------------------------------------------------------------------------
    def queue(self, decision_id: str, methods, *, image_path=None, bundle_path=None) -> int:
        """Queue an appeal; the image and bundle come from the stored decision unless given."""
        known = self.decision(decision_id) or {}
        image_path = image_path or known.get("path")
        bundle_path = bundle_path or known.get("bundle")
        if not image_path or not bundle_path:
            raise InputError(f"decision {decision_id} is not in {self.path}; give its image and "
                             f"bundle (--image, --bundle) to queue it")
        with self.db:
            cursor = self.db.execute(
                "INSERT INTO pending (decision_id, image_path, bundle_path, methods, requested) "
                "VALUES (?, ?, ?, ?, ?)",
                (decision_id, str(image_path), str(bundle_path), ",".join(methods), now()))
        return int(cursor.lastrowid)

    def appeals(self, status: str | None = "queued", limit: int | None = None) -> list[Appeal]:
        query, args = "SELECT * FROM pending", ()
        if status:
            query, args = query + " WHERE status = ?", (status,)
        query += " ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
        return [Appeal(r["id"], r["decision_id"], r["image_path"], r["bundle_path"],
                       [m for m in (r["methods"] or "").split(",") if m], r["requested"],
                       r["status"], r["error"]) for r in self.db.execute(query, args)]

    def finish(self, appeal_id: int, *, error: str | None = None) -> None:
        with self.db:
            self.db.execute("UPDATE pending SET status = ?, error = ?, finished = ? WHERE id = ?",
                            ("failed" if error else "done", error, now(), appeal_id))
