"""Overload and crashes: a flood on a tiny queue gets 429 without a crash; a server killed with
SIGKILL mid-load loses no acknowledged decision, and its queued explanations finish after a
restart."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import httpx

from tests.imaging import write_image
from tests.serve.test_service import wait_for

PNG = {"Content-Type": "image/png"}


def distinct_bodies(folder, count: int, *, red: bool = False) -> list[bytes]:
    """Distinct images (so the cache answers none of them); `red` ones are flagged."""
    from PIL import Image

    bodies = []
    for i in range(count):
        path = folder / f"{i}.png"
        if red:  # red, one pixel apart: distinct bytes, the same decision
            image = Image.new("RGB", (48, 48), (230, 20, 20))
            image.putpixel((i % 48, i // 48 % 48), (200 + i % 50, 10, 10))
            image.save(path)
        else:
            write_image(path, seed=500 + i, size=(48, 48))
        bodies.append(path.read_bytes())
    return bodies


def test_flood_on_a_tiny_queue_gets_429_and_the_server_survives(exported, start_server,
                                                                  tmp_path):
    server = start_server(exported.path, "--queue-size", 2, "--max-batch", 1, "--no-explain",
                          "--no-cache")
    bodies = distinct_bodies(tmp_path, 48)

    async def flood():
        async with httpx.AsyncClient(headers=PNG, timeout=60,
                                     limits=httpx.Limits(max_connections=48)) as client:
            return await asyncio.gather(*(client.post(server.url + "/v1/moderate", content=b)
                                          for b in bodies))

    responses = asyncio.run(flood())
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 429} and codes.count(429) >= 1, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1" and "queue is full" in refused.json()["detail"]
    # it said "(1 items waiting, room for 2)" for a batch that did not fit: what is taken, of
    # how many, against what the request needs
    assert "of its 2 places taken, and this request needs 1" in refused.json()["detail"]
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    assert httpx.post(server.url + "/v1/moderate", content=bodies[0], headers=PNG,
                      timeout=30).status_code == 200
    metrics = httpx.get(server.url + "/metrics").text
    assert 'shotlab_rejections_total{reason="queue_full"}' in metrics
    store = sqlite3.connect(server.store / "decisions.sqlite")
    stored = {row[0] for row in store.execute("SELECT decision_id FROM decisions")}
    assert {r.json()["decision_id"] for r in responses if r.status_code == 200} <= stored


def test_request_timeout_answers_503(exported, start_server, tmp_path):
    server = start_server(exported.path, "--timeout-ms", 1, "--max-batch", 1, "--no-explain",
                          "--no-cache")
    bodies = distinct_bodies(tmp_path, 16)

    async def burst():
        async with httpx.AsyncClient(headers=PNG, timeout=60) as client:
            return await asyncio.gather(*(client.post(server.url + "/v1/moderate", content=b)
                                          for b in bodies))

    responses = asyncio.run(burst())
    timed_out = [r for r in responses if r.status_code == 503]
    assert timed_out and {r.status_code for r in responses} <= {200, 503}
    assert "no decision within 1 ms" in timed_out[0].json()["detail"]
    assert httpx.get(server.url + "/v2/health/live").status_code == 200


def test_sigkill_mid_load_loses_no_acknowledged_decision(exported, start_server, tmp_path):
    store = tmp_path / "store"
    server = start_server(exported.path, store=store)
    bodies = distinct_bodies(tmp_path, 400, red=True)  # all flagged: each queues a Grad-CAM
    acknowledged, stop = [], threading.Event()

    def client(first: int):
        with httpx.Client(headers=PNG, timeout=30) as http:
            for body in bodies[first::8]:
                if stop.is_set():
                    return
                try:
                    response = http.post(server.url + "/v1/moderate", content=body)
                except httpx.HTTPError:  # the server died under this request: not acknowledged
                    return
                if response.status_code == 200:
                    acknowledged.append(response.json()["decision_id"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(acknowledged) >= 40, timeout=60)
    server.kill()  # mid-load: requests are in flight
    stop.set()
    for thread in threads:
        thread.join(30)

    db = sqlite3.connect(store / "decisions.sqlite")
    stored = {row[0] for row in db.execute("SELECT decision_id FROM decisions")}
    pending = db.execute("SELECT COUNT(*) FROM explain_queue "  # 'running': taken by the worker
                         "WHERE status IN ('pending', 'running')").fetchone()
    db.close()
    assert set(acknowledged) <= stored
    assert pending[0] > 0  # the kill left explanations queued or taken: the restart finishes them

    again = start_server(exported.path, store=store)
    for decision_id in acknowledged[:5]:
        response = httpx.get(f"{again.url}/v1/decisions/{decision_id}")
        assert response.status_code == 200 and response.json()["flagged"] == ["red"]

    def queue_drained():
        text = httpx.get(again.url + "/metrics").text
        return "shotlab_explanations_pending 0.0" in text

    wait_for(queue_drained, timeout=180)
    db = sqlite3.connect(store / "decisions.sqlite")
    statuses = dict(db.execute("SELECT status, COUNT(*) FROM explain_queue GROUP BY status"))
    assert set(statuses) == {"done"} and statuses["done"] == len(stored), statuses
    explained = sqlite3.connect(store / "explanations.sqlite")
    assert {row[0] for row in explained.execute("SELECT decision_id FROM explanations")} \
        == stored


def test_a_flag_decided_without_explanations_gets_one_when_sent_again(exported, start_server,
                                                                      tmp_path):
    """Decided under --no-explain, a flagged image stayed unexplained for good: the cache
    answered every later request with it and queued nothing. Sent again to a server that
    explains, the stored decision (same id) is queued and explained."""
    (body,) = distinct_bodies(tmp_path, 1, red=True)
    quiet = start_server(exported.path, "--no-explain", store=tmp_path / "store")
    first = httpx.post(quiet.url + "/v1/moderate", content=body, headers=PNG, timeout=60).json()
    assert first["flagged"] and first["explanation"] == "none"
    quiet.stop()
    server = start_server(exported.path, store=tmp_path / "store")
    again = httpx.post(server.url + "/v1/moderate", content=body, headers=PNG, timeout=60).json()
    assert again["decision_id"] == first["decision_id"] and again["explanation"] == "pending"
    url = f"{server.url}/v1/decisions/{first['decision_id']}"
    stored = wait_for(lambda: (s := httpx.get(url).json())["explanation"]["status"] in
                      ("done", "failed") and s)
    assert stored["explanation"]["status"] == "done" and stored["explanation"]["maps"]
    third = httpx.post(server.url + "/v1/moderate", content=body, headers=PNG, timeout=60).json()
    assert third["cached"] and third["explanation"] == "done"
