"""Atomic writes: one process at a time writes a path, and a crash never leaves it locked."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.errors import InputError
from shotlab.core.files import atomic_path, write_text_atomic


def test_a_path_being_written_is_refused_to_a_second_writer_then_freed(tmp_path):
    target = tmp_path / "out.json"
    with atomic_path(target) as partial:
        partial.write_text("first")
        with pytest.raises(InputError, match="another shotlab process is writing it now"):
            write_text_atomic(target, "second")
        assert partial.read_text() == "first"  # the second writer cleared nothing
    assert target.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no lock file left
    write_text_atomic(target, "third")
    assert target.read_text() == "third"


def test_a_writer_killed_mid_write_leaves_the_path_free(tmp_path):
    target = tmp_path / "out.txt"
    code = ("import os, sys\nfrom shotlab.core.files import atomic_path\n"
            f"with atomic_path({str(target)!r}) as p:\n    p.write_text('half')\n"
            "    os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 9
    write_text_atomic(target, "whole")
    assert target.read_text() == "whole"


def test_an_export_into_an_out_another_export_is_writing_is_refused(trained_run, tmp_path):
    """Two exports into one --out shared one staging folder, each clearing the other's files:
    one shipped a bundle whose model.onnx was the other run's, its digest valid."""
    from shotlab.core.files import writing_lock

    out = tmp_path / "bundle"
    with writing_lock(out):  # what a running export holds
        result = CliRunner().invoke(cli, ["export", str(trained_run), "--out", str(out),
                                          "--no-explain"])
    assert result.exit_code == 2, result.output
    assert f"{out}: another shotlab process is writing it now" in result.output
    assert not out.exists()


def test_a_link_planted_at_the_lock_is_never_followed(tmp_path):
    """The lock file was opened with open(lock, "a+"), which followed a symlink planted at
    PATH.partial.lock and created its target: an empty file anywhere the user may write."""
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "created-through-the-link"
    (out / "decisions.jsonl.partial.lock").symlink_to(target)
    with pytest.raises(InputError, match="a symbolic link where shotlab keeps its lock"):
        write_text_atomic(out / "decisions.jsonl", "x")
    assert not target.exists() and not (out / "decisions.jsonl").exists()


def test_a_predict_into_an_out_another_predict_is_writing_is_refused(exported, tmp_path,
                                                                     monkeypatch):
    """Two predicts into one --out both reported success: each locked the decisions only
    while writing them, so the one that finished first lost its decisions to the other. A
    second process started while the first decides is now refused at once."""
    import json

    from shotlab.export import predict
    from tests.imaging import write_image

    first, second = write_image(tmp_path / "a.png", seed=1), write_image(tmp_path / "b.png",
                                                                         seed=2)
    out = tmp_path / "o" / "d.jsonl"
    real, seen = predict.predict_paths, []

    def deciding(*args, **kwargs):  # the first run is busy: a second process starts now
        seen.append(subprocess.run([sys.executable, "-m", "shotlab", "predict",
                                    str(exported.path), str(second), "--out", str(out)],
                                   capture_output=True, text=True, timeout=240))
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "predict_paths", deciding)
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(first), "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    (other,) = seen
    assert other.returncode == 2, other.stdout + other.stderr
    assert f"{out}: another shotlab process is writing it now" in other.stderr
    decided = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    assert decided == [str(first.resolve())]
    assert sorted(p.name for p in out.parent.iterdir()) == ["d.jsonl", "review_queue.jsonl"]
