"""`shotlab serve --ray`: the same app on Ray Serve with two replicas, over real HTTP, against a
real local Ray; one replica killed mid-load while the other keeps answering."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading

import httpx
import pytest

from tests.serve.conftest import Server
from tests.serve.ray_cluster import start_ray
from tests.serve.test_durability import distinct_bodies
from tests.serve.test_service import wait_for

KEY = "ray-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PNG = {"Content-Type": "image/png", **AUTH}
pytestmark = pytest.mark.slow


class RayServer(Server):
    ready = re.compile(r"Ray Serve answering on http://127\.0\.0\.1:(\d+)")
    startup_s = 240  # Ray Serve's controller, proxy and two replicas on a busy 2-core machine
    # serve.delete waits for a replica still starting (the one replacing a killed replica) and
    # each replica's graceful shutdown (Ray's default 20 s): `serve --ray` stop's own test
    # allows 120 s
    stop_s = 120

    def __init__(self, *args, **kwargs):
        from shotlab.core.addresses import free_port

        super().__init__(*args, **kwargs)
        self.port = free_port()


@pytest.fixture(scope="module")
def ray_address():
    yield from start_ray()


@pytest.fixture(scope="module")
def ray_server(ray_address, exported, tmp_path_factory):
    """Two replicas of the zipped bundle: each unpacks its own copy, and a stop must remove
    them (a replica is killed without its exit handlers: each left a copy in /tmp)."""
    store = tmp_path_factory.mktemp("ray-store")
    before = unpacked_bundles()
    server = RayServer(exported.zip_path, store, "--ray", "--address", ray_address,
                       "--replicas", 2, "--no-cache", env={"SHOTLAB_API_KEY": KEY}).start()
    yield server
    server.stop()
    assert server.process.returncode == 0, "".join(server.log)
    # the replica killed below left its copy (no handler runs on SIGKILL): the next unpack
    # removes it; the others' went at the stop
    from shotlab.core.scratch import sweep
    from shotlab.runtime.bundle import UNPACKED_PREFIX

    sweep(UNPACKED_PREFIX)
    assert not held_by_ray(unpacked_bundles() - before)


def held_by_ray(folders: set) -> set:
    """The unpacked bundles whose process (named in the folder) is a live Ray worker: a replica
    that outlived the stop, or did not remove its copy. (Other shotlab processes on the machine,
    a predict with a zipped bundle, hold copies of their own while they run.)"""
    import psutil

    held = set()
    for folder in folders:
        try:
            process = psutil.Process(int(folder.name.split("-")[2]))
            seen = " ".join([process.name(), *process.cmdline()])
        except (psutil.Error, ValueError, IndexError):
            continue  # gone since (sweep removes its copy), or a name without a pid
        if "ray::" in seen or "default_worker.py" in seen:
            held.add(folder)
    return held


def unpacked_bundles() -> set:
    import tempfile
    from pathlib import Path

    return set(Path(tempfile.gettempdir()).glob("shotlab-bundle-*"))


def replica_pids() -> dict[str, int]:
    """{replica actor name: its process id}, asked of each replica actor itself."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if "SERVE_REPLICA" in a["name"] and "ShotlabService" in a["name"]]
    actors = {name: ray.get_actor(name, namespace="serve") for name in names}
    return {name: ray.get(actor.__ray_call__.remote(lambda self: os.getpid()), timeout=30)
            for name, actor in actors.items()}


def test_two_replicas_answer_the_same_api(ray_server, images):
    assert len(replica_pids()) == 2
    assert httpx.get(ray_server.url + "/v2/health/live").json() == {"live": True}
    answers = [httpx.post(ray_server.url + "/v1/moderate", content=path.read_bytes(),
                          headers=PNG, timeout=60) for path in images]
    assert {a.status_code for a in answers} == {200}
    red = [a.json() for a, path in zip(answers, images) if path.parent.name == "red"]
    assert red and all(d["flagged"] == ["red"] and d["explanation"] == "pending" for d in red)
    stored = httpx.get(f"{ray_server.url}/v1/decisions/{answers[0].json()['decision_id']}",
                       headers=AUTH)
    assert stored.status_code == 200 and stored.json()["sha256"] == answers[0].json()["sha256"]
    assert httpx.post(ray_server.url + "/v1/moderate", content=b"",
                      headers=PNG).status_code == 422
    assert "shotlab_batch_size_bucket" in httpx.get(ray_server.url + "/metrics",
                                                    headers=AUTH).text
    refused = httpx.post(ray_server.url + "/v1/moderate", content=images[0].read_bytes(),
                         headers={"Content-Type": "image/png"})
    assert refused.status_code == 401 and KEY not in refused.text

    # Both replicas' explanation workers drain the one queue; each job is taken by one of them.
    db = sqlite3.connect(ray_server.store / "decisions.sqlite")

    def drained():
        return db.execute("SELECT COUNT(*) FROM explain_queue "
                          "WHERE status IN ('pending', 'running')").fetchone()[0] == 0

    wait_for(drained, timeout=240)
    assert dict(db.execute("SELECT status, COUNT(*) FROM explain_queue GROUP BY status")) \
        == {"done": len(red)}
    explained = sqlite3.connect(ray_server.store / "explanations.sqlite")
    rows = [r[0] for r in explained.execute("SELECT decision_id FROM explanations")]
    assert sorted(rows) == sorted(d["decision_id"] for d in red)  # once each


def test_a_killed_replica_loses_no_acknowledged_decision(ray_server, tmp_path):
    bodies = distinct_bodies(tmp_path, 600)
    acknowledged, after_kill, killed, stop = [], [], threading.Event(), threading.Event()

    def client(first: int):
        with httpx.Client(headers=PNG, timeout=60) as http:
            for body in bodies[first::8]:
                if stop.is_set():
                    return
                try:
                    response = http.post(ray_server.url + "/v1/moderate", content=body)
                except httpx.HTTPError:  # the connection broke: not acknowledged
                    continue
                if response.status_code == 200:
                    acknowledged.append(response.json()["decision_id"])
                    if killed.is_set():
                        after_kill.append(response.json()["decision_id"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(acknowledged) >= 40, timeout=120)
        victim = next(iter(replica_pids().values()))
        os.kill(victim, signal.SIGKILL)  # mid-load: the replica dies with requests in flight
        killed.set()
        wait_for(lambda: len(after_kill) >= 60, timeout=120)  # the other one keeps answering
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    db = sqlite3.connect(ray_server.store / "decisions.sqlite")
    stored = {row[0] for row in db.execute("SELECT decision_id FROM decisions")}
    assert set(acknowledged) <= stored
    assert httpx.get(ray_server.url + "/v2/health/ready").status_code == 200
