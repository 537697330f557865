"""A real `shotlab serve` subprocess on a free loopback port, and images to send it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.train.trainsets import write_colour_tree

STARTUP_S = 60  # a cold start on a loaded 2-core CI machine; it is about a second when idle
READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class Server:
    """`python -m shotlab serve BUNDLE --port 0 ...`; the port is read from uvicorn's log line
    (`ready`: the pattern of the line that gives it; `port`: the port to ask for)."""

    ready = READY
    port = 0
    startup_s = STARTUP_S

    def __init__(self, bundle, store: Path, *args, env=None):
        self.bundle, self.store, self.args = bundle, store, [str(a) for a in args]
        self.env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), **(env or {})}
        self.process = None
        self.url = None
        self.log: list[str] = []

    def start(self) -> "Server":
        command = [sys.executable, "-m", "shotlab", "serve", str(self.bundle), "--port",
                   str(self.port),
                   "--store", str(self.store), *self.args]
        self.process = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        port = self.read_port()
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.drain, daemon=True).start()  # keep the pipe from filling
        self.wait_ready()
        return self

    def read_port(self) -> int:
        deadline = time.monotonic() + self.startup_s
        for line in self.process.stderr:
            self.log.append(line)
            if found := self.ready.search(line):
                return int(found.group(1))
            if time.monotonic() > deadline:
                break
        self.stop()
        raise AssertionError("the server did not start:\n" + "".join(self.log))

    def drain(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_s
        while time.monotonic() < deadline:
            if httpx.get(self.url + "/v2/health/ready").status_code == 200:
                return
            time.sleep(0.05)
        raise AssertionError("the server never became ready:\n" + "".join(self.log))

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as when the machine loses the process."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    stop_s = 15  # SIGTERM to exit; then SIGKILL (its return code -9 says so)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_s)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Distinct colour images the tiny model knows (red is the unsafe class): 6 per class."""
    root = write_colour_tree(tmp_path_factory.mktemp("serve-images") / "inbox",
                             counts={"new": 6}, seed=11)
    return sorted(root.rglob("*.png"))


@pytest.fixture
def start_server(tmp_path):
    """start_server(bundle, *args, store=...) -> a started Server, stopped after the test."""
    servers = []

    def start(bundle, *args, store=None, env=None):
        server = Server(bundle, store or tmp_path / "store", *args, env=env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def mongo_uri():
    """A fresh database on the test workspace's mongod; dropped afterwards."""
    from pymongo import MongoClient

    from shotlab.core import database, workspace

    server = database.connect(workspace.current())
    name = f"t-serve-{uuid.uuid4().hex[:8]}"
    yield database.with_timeouts(f"{server}{name}")
    MongoClient(server).drop_database(name)


