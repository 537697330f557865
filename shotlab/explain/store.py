"""The explanation store: one SQLite file beside the decisions, keyed by decision id.

Tables (all looked up by `decision_id`, which is indexed):
    decisions      what `shotlab predict` decided for a stored image: path, sha256, bundle,
                   scores, labels, flagged, needs_review, model hash (so an appeal needs only the id)
    explanations   one row per (decision, method): parameters (JSON), the target class, the map
                   (float16, zlib-compressed: ~3 KB for 224 x 224 instead of 200 KB of float32),
                   faithfulness scores (JSON), model and input hashes, time
    pending        appeals waiting for a deeper explanation: decision id, image path, bundle path,
                   methods requested, requested time, status (queued / done / failed), error
    failures       tier-1 explanations `shotlab serve` could not compute: decision id, error,
                   time (removed once one is stored), so `explain show` says why there is none;
                   a store made before it gets it when next opened for writing

    with ExplanationStore(path) as store:
        store.put(decision_id, "gradcam", heatmap, target="red", params={...})
        store.explanations(decision_id)          # -> [Explanation(..., map=float32 (H, W))]
    with ExplanationStore(path, readonly=True) as store:   # reads only: the file is not touched
        ...
    with store.transaction():                    # every write inside is stored, or none
        ...

A damaged store (a page SQLite cannot read, a row whose JSON or map does not decode) raises an
InputError naming the file and, for a row, its table and rowid; nothing is skipped silently.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotlab.core.clock import utc_now
from shotlab.core.errors import InputError, one_line

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
CREATE TABLE IF NOT EXISTS failures (
    decision_id TEXT PRIMARY KEY, error TEXT, finished TEXT);
"""
TABLES = ("decisions", "explanations", "pending", "failures")
ROW_ERRORS = (ValueError, TypeError, KeyError, zlib.error)  # JSON, map or column that won't decode


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


# Why not skip a damaged row and show the rest: SQLite cannot say which other rows the damage
# reached, and an appeal answered from a partly read store would look complete (docs/explain.md).
DAMAGED_FIX = ("restore it from a backup, or move it aside (the next `shotlab predict --explain` "
               "starts a new one) and copy what is readable with `sqlite3 STORE .recover`")


def encode_map(heatmap) -> tuple[bytes, int, int]:
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise InputError(f"an explanation map must be 2-D (H, W); got shape {heatmap.shape}")
    return zlib.compress(heatmap.astype("<f2").tobytes(), 6), *heatmap.shape


def decode_map(blob: bytes, height: int, width: int) -> np.ndarray:
    flat = np.frombuffer(zlib.decompress(blob), dtype="<f2")
    return flat.reshape(height, width).astype(np.float32)


# What to do about a file that is not a store: where it is read (explain show, appeal), the
# right file; where predict --explain would write one beside --out, another place.
NOT_A_STORE_FIX = ("give the explanations.sqlite that `shotlab predict --explain` wrote, or, "
                   "where predict --explain would write its store beside --out, move this file "
                   "away or choose another --out")


class ExplanationStore:
    """The SQLite store at `path`: created with its tables when missing (`create`), or an
    existing one; `readonly` opens it without writing anything (no table, journal or folder)."""

    def __init__(self, path, *, create: bool = True, readonly: bool = False):
        self.path = Path(path)
        self.depth = 0  # nesting of transaction()
        create = create and not readonly
        if not create and not self.path.is_file():
            raise InputError(f"{self.path}: no explanation store there (it is written by "
                             f"`shotlab predict --explain`, as explanations.sqlite beside the "
                             f"decisions)")
        with self.guard(opening=True):
            self.db = self.connect(readonly)
            try:
                self.db.row_factory = sqlite3.Row
                if not create:
                    self.check_tables()
                if not readonly:
                    self.db.executescript(SCHEMA)
            except BaseException:
                self.db.close()
                raise

    def connect(self, readonly: bool) -> sqlite3.Connection:
        if readonly:  # mode=ro: SQLite neither creates nor changes the file, nor a journal
            return sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(self.path)

    def check_tables(self) -> None:
        found = {row[0] for row in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [table for table in TABLES[:2] if table not in found]
        if missing:
            raise InputError(f"{self.path}: not an explanation store (no {' or '.join(missing)} "
                             f"table{'s' if len(missing) > 1 else ''}); {NOT_A_STORE_FIX}")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def guard(self, opening: bool = False):
        """SQLite's errors on a foreign, damaged or read-only file as one InputError naming it."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if opening and "not a database" in str(exc):
                raise InputError(f"{self.path}: not an explanation store ({one_line(exc)}); "
                                 f"{NOT_A_STORE_FIX}") from None
            raise InputError(f"{self.path}: the explanation store cannot be read or written "
                             f"({one_line(exc)}); {DAMAGED_FIX}") from None

    @contextmanager
    def transaction(self):
        """Every write inside is stored together, or none is (blocks nested in it join it)."""
        if self.depth:
            yield self
            return
        self.depth += 1
        try:
            with self.guard(), self.db:
                yield self
        finally:
            self.depth -= 1

    def rows(self, query: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self.guard():
            return self.db.execute(query, args).fetchall()

    def row_error(self, table: str, row, exc: Exception) -> InputError:
        return InputError(f"{self.path}: row {row['_rowid']} of table {table} (decision "
                          f"{row['decision_id']}) is damaged ({one_line(exc)}); {DAMAGED_FIX}")

    # decisions ----------------------------------------------------------------------------------
    def add_decision(self, decision: dict, bundle_path=None) -> None:
        """Store a decision and the bundle that made it (its absolute path: an appeal may be
        processed from another folder)."""
        bundle = bundle_path or decision.get("bundle")
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (decision["decision_id"], decision.get("path"), decision.get("sha256"),
                 str(Path(bundle).absolute()) if bundle else None,
                 json.dumps(decision.get("scores") or {}), json.dumps(decision.get("labels", [])),
                 json.dumps(decision.get("flagged", [])), int(bool(decision.get("needs_review"))),
                 decision.get("model_sha256"), decision.get("time") or utc_now()))

    def decision(self, decision_id: str) -> dict | None:
        rows = self.rows("SELECT rowid AS _rowid, * FROM decisions WHERE decision_id = ?",
                         (decision_id,))
        if not rows:
            return None
        data = dict(rows[0])
        try:
            for key in ("scores", "labels", "flagged"):
                data[key] = json.loads(data[key])
        except ROW_ERRORS as exc:
            raise self.row_error("decisions", rows[0], exc) from None
        data["needs_review"] = bool(data["needs_review"])
        del data["_rowid"]
        return data

    # explanations -------------------------------------------------------------------------------
    def put(self, decision_id: str, method: str, heatmap, *, target: str | None = None,
            params: dict | None = None, scores: dict | None = None,
            model_sha256: str | None = None, input_sha256: str | None = None) -> int:
        blob, height, width = encode_map(heatmap)
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO explanations (decision_id, method, target, params, height, width, "
                "map, scores, model_sha256, input_sha256, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (decision_id, method, target, json.dumps(params or {}), height, width, blob,
                 json.dumps(scores or {}), model_sha256, input_sha256, utc_now()))
        return int(cursor.lastrowid)

    def explanations(self, decision_id: str, method: str | None = None) -> list[Explanation]:
        query = "SELECT rowid AS _rowid, * FROM explanations WHERE decision_id = ?"
        args: tuple = (decision_id,)
        if method:
            query, args = query + " AND method = ?", (decision_id, method)
        return [self.explanation(row) for row in self.rows(query + " ORDER BY id", args)]

    def explanation(self, r: sqlite3.Row) -> Explanation:
        try:
            return Explanation(r["decision_id"], r["method"], r["target"], json.loads(r["params"]),
                               decode_map(r["map"], r["height"], r["width"]),
                               json.loads(r["scores"]), r["model_sha256"], r["input_sha256"],
                               r["created"])
        except ROW_ERRORS as exc:
            raise self.row_error("explanations", r, exc) from None

    def has_text(self, decision_id: str) -> bool:
        """Whether a comment's explanation (which holds its text) is stored for the decision."""
        return bool(self.rows("SELECT 1 FROM explanations WHERE decision_id = ? AND params LIKE "
                              "'%\"kind\": \"text\"%' LIMIT 1", (decision_id,)))

    def has_frames(self, decision_id: str) -> bool:
        """Whether a clip's explanation (a map of one of its frames, with its timestamp) is
        stored for the decision."""
        return bool(self.rows("SELECT 1 FROM explanations WHERE decision_id = ? AND params LIKE "
                              "'%\"timestamp\": %' LIMIT 1", (decision_id,)))

    def count(self, table: str = "explanations") -> int:
        if table not in TABLES:
            raise ValueError(table)
        return int(self.rows(f"SELECT COUNT(*) FROM {table}")[0][0])

    # tier-1 failures (the service's) ------------------------------------------------------------
    def fail(self, decision: dict, error: str, bundle_path=None) -> None:
        """Record that the decision's tier-1 explanation failed, and why (with the decision, so
        an appeal needs only its image)."""
        with self.transaction():
            self.add_decision(decision, bundle_path)
            self.db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?)",
                            (decision["decision_id"], error, utc_now()))

    def clear_failures(self, decision_ids) -> None:
        """Forget the failures of decisions whose tier-1 explanation is now stored."""
        with self.transaction():
            self.db.executemany("DELETE FROM failures WHERE decision_id = ?",
                                [(decision_id,) for decision_id in decision_ids])

    def failure(self, decision_id: str) -> dict | None:
        """{error, finished} of the decision's failed tier-1 explanation, or None (also on a
        store opened read-only that predates the table)."""
        if not self.rows("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                         "name = 'failures'"):
            return None
        rows = self.rows("SELECT error, finished FROM failures WHERE decision_id = ?",
                         (decision_id,))
        return dict(rows[0]) if rows else None

    # appeals ------------------------------------------------------------------------------------
    def queue(self, decision_id: str, methods, *, image_path=None, bundle_path=None) -> int:
        """Queue an appeal; the image and bundle come from the stored decision unless given
        (a path given is stored absolute: the appeal may be processed from another folder).
        A comment's decision needs no image: its text is stored with its explanation."""
        known = self.decision(decision_id) or {}
        image_path = image_path or known.get("path")
        bundle_path = bundle_path or known.get("bundle")
        if not bundle_path or not (image_path or self.has_text(decision_id)):
            raise self.unqueueable(decision_id, known, bundle_path)
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO pending (decision_id, image_path, bundle_path, methods, requested) "
                "VALUES (?, ?, ?, ?, ?)",
                (decision_id, str(Path(image_path).absolute()) if image_path else None,
                 str(Path(bundle_path).absolute()),
                 ",".join(methods), utc_now()))
        return int(cursor.lastrowid)

    def already_queued(self, decision_id: str, methods) -> bool:
        """Whether an appeal on `decision_id` for the same methods waits in the queue already:
        queued twice, it ran twice, and the reviewer saw two maps of one method with
        different random baselines."""
        wanted = sorted(methods)
        return any(sorted(appeal.methods) == wanted for appeal in self.appeals()
                   if appeal.decision_id == decision_id)

    def unqueueable(self, decision_id: str, known: dict, bundle_path) -> InputError:
        """Why an appeal on `decision_id` cannot be queued from what is stored, and the fix."""
        if not known:
            return InputError(f"decision {decision_id} is not in {self.path}; give its image "
                              f"and bundle (--image, --bundle) to queue it")
        if not bundle_path:
            return InputError(f"decision {decision_id} in {self.path} names no bundle; give "
                              f"the bundle that decided it (--bundle) to queue it")
        return InputError(f"decision {decision_id} in {self.path} has no image path to explain "
                          f"(a decision `shotlab serve` stored keeps none); for an image, give "
                          f"the image it decided (--image) to queue it (for a comment: its text "
                          f"is stored with its tier-1 explanation, not stored yet)")

    def appeals(self, status: str | None = "queued", limit: int | None = None) -> list[Appeal]:
        query, args = "SELECT rowid AS _rowid, * FROM pending", ()
        if status:
            query, args = query + " WHERE status = ?", (status,)
        query += " ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
        return [self.appeal(row) for row in self.rows(query, args)]

    def appeal(self, r: sqlite3.Row) -> Appeal:
        try:
            return Appeal(int(r["id"]), r["decision_id"], r["image_path"], r["bundle_path"],
                          [m for m in (r["methods"] or "").split(",") if m], r["requested"],
                          r["status"], r["error"])
        except ROW_ERRORS + (AttributeError,) as exc:
            raise self.row_error("pending", r, exc) from None

    def finish(self, appeal_id: int, *, error: str | None = None) -> None:
        with self.transaction():
            self.db.execute("UPDATE pending SET status = ?, error = ?, finished = ? WHERE id = ?",
                            ("failed" if error else "done", error, utc_now(), appeal_id))
