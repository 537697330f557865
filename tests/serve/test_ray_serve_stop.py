"""`shotlab serve --ray --address`: stopped while its replicas are still starting (one of them can
never be placed), it removes its application from the cluster; the replicas already up used to
go on answering after the command had exited."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.ray_cluster import RAY_CPUS, start_ray

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def ray_address():
    yield from start_ray()


def test_a_server_stopped_while_its_replicas_start_leaves_nothing_serving(ray_address, exported,
                                                                           tmp_path):
    from ray import serve

    from shotlab.core.addresses import free_port
    from shotlab.serve.ray_serve import APP_NAME

    port, replicas = free_port(), RAY_CPUS + 1  # one replica more than the cluster can place
    process = subprocess.Popen(
        [sys.executable, "-m", "shotlab", "serve", str(exported.path), "--ray", "--address",
         ray_address, "--replicas", str(replicas), "--port", str(port), "--no-explain",
         "--store", str(tmp_path / "store")],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True)
    try:
        log = []
        for line in process.stderr:  # Ray's own lines come first
            log.append(line)
            if "shotlab serve: starting" in line:
                break
        assert re.search(rf"starting {replicas} replicas .* 1 will wait until CPUs", log[-1]), \
            "".join(log)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # the replicas that fit come up and answer
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("no replica ever answered")
        process.terminate()  # SIGTERM while serve.run still waits for the third replica
        assert process.wait(120) == 0, process.stderr.read()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
    assert APP_NAME not in serve.status().applications
