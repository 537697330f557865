"""`shotlab predict --ray`: Ray Data on a real local Ray (joined with --address by a separate
driver process) writes the same decisions and review queue as the single-process path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from tests.serve.ray_cluster import start_ray

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]
# What differs between two runs over the same images: a fresh id and the time of the run.
PER_RUN = ("decision_id", "time")


@pytest.fixture(scope="module")
def ray_address():
    yield from start_ray()


def same_decision(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in PER_RUN}


def read(path: Path) -> list[dict]:
    return [same_decision(json.loads(line)) for line in path.read_text().splitlines()]


def test_ray_data_decisions_are_predicts(ray_address, exported, images, tmp_path):
    folder = tmp_path / "library"
    folder.mkdir()
    for i, path in enumerate(images * 3):  # 54 images: several batches of 8 over two actors
        (folder / f"{i:03d}-{path.name}").write_bytes(path.read_bytes())
    (folder / "broken.png").write_bytes(b"not an image")

    single = CliRunner().invoke(cli, ["predict", str(exported.path), str(folder), "--out",
                                      str(tmp_path / "one" / "decisions.jsonl"), "--json",
                                      "--batch-size", "8"])
    assert single.exit_code == 0, single.output
    (tmp_path / "ray").mkdir()
    # Relative paths from a folder that is not the cluster's: they reached the workers as given
    # and named other files (or none) under the workers' working folder.
    command = [sys.executable, "-m", "shotlab", "predict", os.path.relpath(exported.path, tmp_path),
               "library", "--ray", "--address", ray_address, "--batch-size", "8", "--json",
               "--out", "ray/decisions.jsonl"]
    assert Path.cwd() != tmp_path
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["images"] == 54 and summary["bad"] == 1
    assert summary["bad_files"][0]["path"].endswith("broken.png")
    given = ("decisions", "review_queue", "bad_files")  # named as given: relative here
    assert {k: v for k, v in summary.items() if k not in given} \
        == {k: v for k, v in json.loads(single.output).items() if k not in given}

    on_ray, alone = read(tmp_path / "ray" / "decisions.jsonl"), \
        read(tmp_path / "one" / "decisions.jsonl")
    assert len(on_ray) == 54 and on_ray == alone  # same order, same decisions, same records
    assert read(tmp_path / "ray" / "review_queue.jsonl") \
        == read(tmp_path / "one" / "review_queue.jsonl") != []


def test_explain_with_ray_is_refused_before_anything_runs(exported, images, tmp_path):
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(images[0]), "--ray",
                                      "--explain", "--out", str(tmp_path / "d.jsonl")])
    assert result.exit_code == 2 and "explain pending" in result.output
    assert not (tmp_path / "d.jsonl").exists()


@pytest.mark.parametrize("command", [["serve", "--replicas", "2"], ["serve", "--address", "h:1"],
                                     ["predict", "--address", "h:1"]])
def test_ray_options_without_ray_are_refused(command, exported, images, tmp_path):
    name, *options = command
    args = [name, str(exported.path), *([str(images[0])] if name == "predict" else []),
            *options, *(["--out", str(tmp_path / "d.jsonl")] if name == "predict" else [])]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "add --ray" in result.output, result.output


def test_any_port_with_ray_is_refused_before_ray_starts(exported):
    """`serve --ray --port 0` printed 'answering on http://127.0.0.1:0' while the proxy had
    picked another port and nothing said which."""
    result = CliRunner().invoke(cli, ["serve", str(exported.path), "--ray", "--port", "0"])
    assert result.exit_code == 2 and "cannot be used with --ray" in result.output


def test_more_replicas_than_memory_holds_are_refused_in_one_line(exported):
    """A local Ray would start every replica (a process each) and let its memory monitor kill
    them; the shortfall is named instead, with how many fit (or that none does)."""
    import psutil

    replicas = psutil.virtual_memory().total // (300 * 2**20) + 1
    result = CliRunner().invoke(cli, ["serve", str(exported.path), "--ray",
                                      "--replicas", str(replicas)])
    assert result.exit_code == 1, result.output
    assert f"--replicas {replicas}: a local Ray would need about" in result.output
    assert "a replica with explanations" in result.output and "add --no-explain" in result.output
    assert ("ask for at most" in result.output or "free memory" in result.output)
    assert len(result.output.splitlines()) == 1


def test_the_workspace_mongodb_is_refused_for_a_cluster_elsewhere(exported, monkeypatch):
    """Replicas on other machines were handed mongodb://127.0.0.1:PORT: each node's own
    loopback, where no store listens."""
    monkeypatch.delenv("SHOTLAB_DATABASE_URI", raising=False)
    result = CliRunner().invoke(cli, ["serve", str(exported.path), "--ray", "--address",
                                      "10.1.2.3:6379", "--decision-store", "mongodb"])
    assert result.exit_code == 2 and "cannot reach; give a server every node" in \
        " ".join(result.output.split())
