"""The explanation store: maps round-trip compressed, lookups by decision id, the appeal queue."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from shotlab.core.errors import InputError
from shotlab.explain.store import ExplanationStore


def decision(decision_id="d1", path="/images/a.png"):
    return {"decision_id": decision_id, "path": path, "sha256": "ab" * 32,
            "scores": {"red": 0.9, "blue": 0.1}, "labels": ["red"], "flagged": ["red"],
            "needs_review": False, "model_sha256": "cd" * 32}


def test_a_map_round_trips_within_float16_precision(tmp_path):
    heatmap = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    with ExplanationStore(tmp_path / "e.sqlite") as store:
        store.put("d1", "gradcam", heatmap, target="red", params={"layer": "bn2"},
                  scores={"deletion_auc": 0.2}, model_sha256="m", input_sha256="i")
        store.put("d2", "gradcam", heatmap[::-1], target="blue")
    with ExplanationStore(tmp_path / "e.sqlite", create=False) as store:
        (got,) = store.explanations("d1")
        assert got.map.shape == (64, 48) and got.map.dtype == np.float32
        assert np.abs(got.map - heatmap).max() < 1e-3  # float16: 11 bits of mantissa
        assert (got.method, got.target, got.params, got.scores) == (
            "gradcam", "red", {"layer": "bn2"}, {"deletion_auc": 0.2})
        assert (got.model_sha256, got.input_sha256) == ("m", "i")
        assert store.explanations("d1", "lime") == [] and store.explanations("nope") == []
        blob = store.db.execute("SELECT map FROM explanations LIMIT 1").fetchone()[0]
    assert len(blob) < heatmap.nbytes / 2  # compressed below float16's own size


def test_lookup_by_decision_id_uses_an_index(tmp_path):
    with ExplanationStore(tmp_path / "e.sqlite") as store:
        plan = store.db.execute("EXPLAIN QUERY PLAN SELECT * FROM explanations WHERE "
                                "decision_id = ?", ("d1",)).fetchall()
    assert "explanations_by_decision" in " ".join(str(tuple(row)) for row in plan)


def test_decisions_and_appeals(tmp_path):
    with ExplanationStore(tmp_path / "e.sqlite") as store:
        store.add_decision(decision(), bundle_path="/bundles/b1")
        assert store.decision("d1")["flagged"] == ["red"]
        assert store.decision("d1")["bundle"] == "/bundles/b1"
        first = store.queue("d1", ["lime", "shap"])
        second = store.queue("d9", ["lime"], image_path="/x.png", bundle_path="/bundles/b2")
        queued = store.appeals()
        assert [(a.id, a.image_path, a.bundle_path, a.methods) for a in queued] == [
            (first, "/images/a.png", "/bundles/b1", ["lime", "shap"]),
            (second, "/x.png", "/bundles/b2", ["lime"])]
        store.finish(first)
        store.finish(second, error="/x.png: file not found")
        assert store.appeals() == []
        statuses = {a.decision_id: (a.status, a.error) for a in store.appeals(status=None)}
        assert statuses == {"d1": ("done", None), "d9": ("failed", "/x.png: file not found")}
        with pytest.raises(InputError, match="decision d7 is not in .*--image, --bundle"):
            store.queue("d7", ["lime"])


def test_paths_typed_relative_are_stored_absolute(tmp_path, monkeypatch):
    """`predict out/bundle ... --explain` stored 'out/bundle' as typed: an appeal processed
    from any other folder failed with "no such run or bundle"."""
    monkeypatch.chdir(tmp_path)
    with ExplanationStore(tmp_path / "e.sqlite") as store:
        store.add_decision(decision(), bundle_path="runs/r1/bundle")
        assert store.decision("d1")["bundle"] == str(tmp_path / "runs/r1/bundle")
        store.queue("d9", ["lime"], image_path="in/x.png", bundle_path="b.zip")
        (appeal,) = [a for a in store.appeals() if a.decision_id == "d9"]
        assert (appeal.image_path, appeal.bundle_path) == (str(tmp_path / "in/x.png"),
                                                           str(tmp_path / "b.zip"))

def test_a_served_decision_without_an_image_path_says_so(tmp_path):
    """A decision `shotlab serve` stored (bundle, no path) was reported as not in the store."""
    with ExplanationStore(tmp_path / "e.sqlite") as store:
        store.add_decision(decision("s1", path=None), bundle_path="/bundles/b1")
        store.add_decision(decision("s2"))
        with pytest.raises(InputError, match=r"decision s1 in .* has no image path to explain "
                                             r"\(a decision `shotlab serve` stored keeps none\); "
                                             r"for an image, give the image it decided \(--image\)"):
            store.queue("s1", ["lime"])
        with pytest.raises(InputError, match=r"decision s2 in .* names no bundle; .*--bundle"):
            store.queue("s2", ["lime"])
        store.queue("s1", ["lime"], image_path="/images/s1.png")
        assert [a.image_path for a in store.appeals()] == ["/images/s1.png"]


def test_missing_or_foreign_store_files_are_named(tmp_path):
    with pytest.raises(InputError, match="no explanation store there"):
        ExplanationStore(tmp_path / "none.sqlite", create=False)
    (tmp_path / "text.sqlite").write_text("not a database at all " * 100)
    with pytest.raises(InputError, match="not an explanation store"):
        ExplanationStore(tmp_path / "text.sqlite")
    with pytest.raises(InputError, match="must be 2-D"):
        ExplanationStore(tmp_path / "e.sqlite").put("d", "gradcam", np.zeros((1, 4, 4)))
    assert isinstance(sqlite3.connect(tmp_path / "e.sqlite"), sqlite3.Connection)
