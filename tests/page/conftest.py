"""Images, a stored decision (`shotlab predict --explain`) and a real page process for the page's
tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.addresses import free_port
from tests.train.trainsets import write_colour_tree

HELD = Path(__file__).parent / "held"  # its sitecustomize.py holds a page's long explanations
STARTUP_S = 90  # a cold start (Streamlit, ONNX Runtime) on a loaded 2-core CI machine


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item (`item.failed_call`), so a fixture's teardown
    can tell a failed test and leave its evidence: the page server's log, the pages as seen."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.failed_call = True


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    """Two colour images per class the tiny model knows (red is the unsafe class) and a file
    named .jpg that is not an image."""
    root = write_colour_tree(tmp_path_factory.mktemp("page-images") / "inbox",
                             counts={"new": 2}, seed=21)
    (root / "corrupt.jpg").write_bytes(b"this is not an image\n" * 40)
    return root


def predict(*args) -> dict:
    """`shotlab predict ... --json`, as a user runs it; its summary."""
    result = CliRunner().invoke(cli, ["predict", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture(scope="module")
def predicted(exported, inbox, tmp_path_factory) -> dict:
    """{"decisions": {file name: record}, "store": explanations.sqlite, "bad": {name: reason}}
    from `shotlab predict BUNDLE INBOX --explain` (Grad-CAM stored for the flagged reds)."""
    out = tmp_path_factory.mktemp("page-predict") / "decisions.jsonl"
    summary = predict(exported.path, inbox, "--out", out, "--explain")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return {"decisions": {Path(r["path"]).name: r for r in records},
            "store": Path(summary["explanations"]["store"]),
            "bad": {Path(b["path"]).name: b["reason"] for b in summary["bad_files"]}}


def became_healthy(port: int, process) -> bool:
    """Whether the page on `port` answers its health check within STARTUP_S, before `process`
    (the page's) ends."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).text == "ok":
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


class PageServer:
    """`python -m shotlab explain app BUNDLE --port P ...` in a real subprocess."""

    def __init__(self, bundle, *args, home: Path, gate: Path | None = None):
        self.command = [sys.executable, "-m", "shotlab", "explain", "app", str(bundle),
                        *map(str, args)]
        self.env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]),
                    "HOME": str(home)}  # a HOME of its own: the test checks nothing lands there
        if gate is not None:  # while `gate` exists, long explanations wait (held/sitecustomize.py)
            self.env.update(PYTHONPATH=os.pathsep.join([str(HELD), self.env["PYTHONPATH"]]),
                            SHOTLAB_TEST_FORWARD_GATE=str(gate))
        self.process = None
        self.log: list[str] = []
        self.url = None

    def start(self) -> "PageServer":
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([*self.command, "--port", str(port)], env=self.env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        threading.Thread(target=self.drain, daemon=True).start()
        if became_healthy(port, self.process):
            return self
        self.stop()
        raise AssertionError("the page did not start:\n" + "".join(self.log))

    def drain(self) -> None:
        for line in self.process.stdout:
            self.log.append(line)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def write_comments_csv(path: Path, texts) -> Path:
    """A comments CSV (`text` and `id` columns) as a user gives `shotlab predict`."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "id"])
        writer.writerows([t, i] for i, t in enumerate(texts))
    return path
