"""`shotlab serve` over real HTTP on loopback: one shared server (API key, small limits) for the
endpoints, bad inputs and batching; decisions compared with `shotlab predict`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from shotlab.cli import cli
from tests.imaging import png_header_only, truncate, write_image
from tests.serve.conftest import Server

KEY = "s3cret-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PNG = {"Content-Type": "image/png"}
MAX_BODY_MB = 1


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-shared")
    (root / "key.txt").write_text(KEY + "\n")
    server = Server(exported.path, root / "store", "--api-key-file", root / "key.txt",
                    "--max-body-mb", MAX_BODY_MB, "--max-items", 8,
                    "--max-pixels", 1_000_000).start()
    yield server
    server.stop()


def post(server, body: bytes, headers=PNG, path="/v1/moderate"):
    return httpx.post(server.url + path, content=body, headers={**AUTH, **headers}, timeout=30)


def wait_for(check, timeout=180.0):
    """Poll `check()` until it returns a true value; bounded (tier-1 imports torch first, at a
    lower priority). A request of `check` that times out on a busy machine is polled again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except httpx.TimeoutException:
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def test_raw_bytes_and_multipart_give_one_decision(server, images):
    body = images[0].read_bytes()
    raw = post(server, body)
    assert raw.status_code == 200, raw.text
    decision = raw.json()
    assert set(decision) >= {"decision_id", "sha256", "scores", "labels", "flagged",
                             "needs_review", "model_sha256", "policy_version", "latency_ms",
                             "explanation"}
    assert decision["cached"] is False and decision["latency_ms"] > 0
    again = httpx.post(server.url + "/v1/moderate", headers=AUTH, timeout=30,
                       files={"file": ("a.png", body, "image/png")}).json()
    assert again["cached"] is True and again["decision_id"] == decision["decision_id"]
    assert again["scores"] == decision["scores"]


def test_form_fields_past_the_limit_are_refused_as_fields_not_items(server, images):
    """One image with 100 form fields the service does not read was refused as "more than 64
    items in one request"."""
    image = ("file", ("a.png", images[0].read_bytes(), "image/png"))
    some = httpx.post(server.url + "/v1/moderate", headers=AUTH, timeout=30,
                      files=[image] + [(f"f{i}", (None, "x")) for i in range(10)])
    assert some.status_code == 200, some.text
    many = httpx.post(server.url + "/v1/moderate", headers=AUTH, timeout=30,
                      files=[image] + [(f"f{i}", (None, "x")) for i in range(100)])
    assert many.status_code == 413, many.text
    detail = many.json()["detail"]
    assert "form fields in one request" in detail and "items in one request" not in detail


def test_same_decisions_as_predict(server, exported, images, tmp_path):
    result = CliRunner().invoke(cli, ["predict", str(exported.path), *map(str, images),
                                      "--out", str(tmp_path / "decisions.jsonl")])
    assert result.exit_code == 0, result.output
    offline = {d["sha256"]: d for d in map(json.loads, open(tmp_path / "decisions.jsonl"))}
    served = [post(server, path.read_bytes()).json() for path in images]
    assert {d["sha256"] for d in served} == set(offline)
    assert {tuple(d["labels"]) for d in served} == {("red",), ("green",), ("blue",)}
    assert_same_decisions(served, offline, atol=1e-6)


def assert_same_decisions(served: list[dict], offline: dict, *, atol: float) -> None:
    """Each served decision is `shotlab predict`'s for the same sha256 (`offline`): labels,
    flags, model, policy and runtime equal, scores within `atol`."""
    for got in served:
        want = offline[got["sha256"]]
        for key in ("labels", "flagged", "needs_review", "review_classes", "model_sha256",
                    "policy_version", "runtime"):
            assert got[key] == want[key], key
        np.testing.assert_allclose([got["scores"][c] for c in want["scores"]],
                                   list(want["scores"].values()), atol=atol)


def test_batch_endpoint_one_result_per_part(server, images, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    parts = [("files", (p.name, p.read_bytes(), "image/png")) for p in (images[1], bad, images[2])]
    response = httpx.post(server.url + "/v1/moderate/batch", headers=AUTH, files=parts, timeout=30)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 422, 200]
    assert results[1]["detail"].startswith("not an image")
    assert results[0]["sha256"] != results[2]["sha256"]


def test_flagged_decision_is_stored_and_explained_in_the_background(server, images):
    red = next(p for p in images if p.parent.name == "red")
    decision = post(server, red.read_bytes()).json()
    assert decision["flagged"] == ["red"]
    assert decision["explanation"] in ("pending", "done")  # done: an earlier test sent it
    url = f"{server.url}/v1/decisions/{decision['decision_id']}"

    def explained():
        stored = httpx.get(url, headers=AUTH).json()
        return stored if stored["explanation"]["status"] == "done" else None

    stored = wait_for(explained)
    assert stored["decision_id"] == decision["decision_id"] and stored["scores"] == \
        decision["scores"]
    assert [m["method"] for m in stored["explanation"]["maps"]] == ["gradcam"]
    assert stored["explanation"]["maps"][0]["target"] == "red"
    assert "timestamp" not in stored["explanation"]["maps"][0] and "explained_frames" not in \
        decision  # an image's
    missing = httpx.get(f"{server.url}/v1/decisions/{'0' * 32}", headers=AUTH)
    assert missing.status_code == 404 and "no decision" in missing.json()["detail"]


def test_health_and_metrics(server):
    assert httpx.get(server.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(server.url + "/v2/health/ready").json() == {"ready": True}
    text = httpx.get(server.url + "/metrics", headers=AUTH).text
    for name in ("shotlab_requests_total", "shotlab_request_seconds_bucket",
                 "shotlab_batch_size_bucket", "shotlab_queue_depth", "shotlab_flagged_total",
                 "shotlab_needs_review_total", "shotlab_rejections_total",
                 "shotlab_explanations_pending"):
        assert name in text, name
    assert httpx.get(server.url + "/openapi.json").json()["paths"]["/v1/moderate"]
    # FastAPI's /docs and /redoc pages load Swagger UI and ReDoc from cdn.jsdelivr.net: an
    # outbound request from an offline tool's reviewer, and a blank page where there is none
    for page in ("/docs", "/redoc"):
        assert httpx.get(server.url + page, headers=AUTH).status_code == 404


@pytest.mark.parametrize("case", ["empty", "not-an-image", "truncated", "bomb", "too-many-pixels",
                                  "media-type", "too-large", "two-files", "bad-multipart",
                                  "too-many-parts"])
def test_bad_input_gets_a_status_and_a_one_line_reason(server, images, tmp_path, case):
    good = images[3].read_bytes()
    body, headers, status, reason = {
        "empty": (b"", PNG, 422, "empty"),
        "not-an-image": (b"hello, world", PNG, 422,
                         "not an image (format not recognised): send an image this server"),
        "truncated": (truncate(write_image(tmp_path / "t.png", size=(64, 64)), 0.5).read_bytes(),
                      PNG, 422, "truncated or corrupt"),
        "bomb": (png_header_only(tmp_path / "bomb.png", 60_000, 60_000).read_bytes(), PNG, 422,
                 "decompression bomb"),
        "too-many-pixels": (image_bytes(1200, 1000), PNG, 422, "1,000,000-pixel limit"),
        "media-type": (good, {"Content-Type": "text/plain"}, 415, "text/plain is not accepted"),
        "too-large": (b"\0" * (MAX_BODY_MB * 1024 * 1024 + 1), PNG, 413, "byte limit"),
        "two-files": (None, None, 422, "2 items sent to /v1/moderate"),
        "bad-multipart": (b"garbage", {"Content-Type": "multipart/form-data; boundary=xyz"}, 422,
                          "multipart body refused"),
        "too-many-parts": (None, None, 413, "items in one request (--max-items); send at most 8"),
    }[case]
    if case in ("two-files", "too-many-parts"):
        path, count = ("/v1/moderate", 2) if case == "two-files" else ("/v1/moderate/batch", 9)
        response = httpx.post(server.url + path, headers=AUTH, timeout=30,
                              files=[("file", (f"{i}.png", good)) for i in range(count)])
    else:
        response = post(server, body, headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert reason in detail and "\n" not in detail
    assert httpx.get(server.url + "/v2/health/live").status_code == 200  # still up


def image_bytes(width: int, height: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", f"Basic {KEY}", "Bearer"])
def test_api_key_required(server, images, header):
    headers = {**PNG, **({"Authorization": header} if header else {})}
    for method, path in (("POST", "/v1/moderate"), ("GET", "/metrics"),
                         ("GET", f"/v1/decisions/{'0' * 32}")):
        response = httpx.request(method, server.url + path, headers=headers,
                                 content=images[0].read_bytes() if method == "POST" else None)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "API key" in response.json()["detail"] and KEY not in response.text
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200  # probes need no key
    assert KEY not in "".join(server.log)


def test_concurrent_requests_share_model_runs(server, tmp_path):
    """64 distinct images at once: the batcher runs them in batches larger than one."""
    bodies = [write_image(tmp_path / f"{i}.png", seed=100 + i, size=(48, 48)).read_bytes()
              for i in range(64)]
    before = httpx.get(server.url + "/metrics", headers=AUTH).text

    async def flood():
        async with httpx.AsyncClient(headers={**AUTH, **PNG}, timeout=60,
                                     limits=httpx.Limits(max_connections=32)) as client:
            return await asyncio.gather(*(client.post(server.url + "/v1/moderate", content=b)
                                          for b in bodies))

    responses = asyncio.run(flood())
    assert [r.status_code for r in responses] == [200] * 64
    after = httpx.get(server.url + "/metrics", headers=AUTH).text
    runs = metric(after, "shotlab_batch_size_count") - metric(before, "shotlab_batch_size_count")
    rows = metric(after, "shotlab_batch_size_sum") - metric(before, "shotlab_batch_size_sum")
    assert rows == 64 and runs < 64, (rows, runs)  # some run held more than one request
    store = sqlite3.connect(server.store / "decisions.sqlite")
    stored = {row[0] for row in store.execute("SELECT decision_id FROM decisions")}
    assert {r.json()["decision_id"] for r in responses} <= stored


def test_identical_uploads_at_once_are_decided_once(server, tmp_path):
    """The same new bytes sent at once (three parts of one batch, six requests) all ran through
    the model, each answered `cached: false` under one decision id, and the metrics counted
    some as neither decisions nor cache hits. Now one is decided; the others wait for it and
    are answered from it as cached."""
    body = write_image(tmp_path / "same.png", seed=4242, size=(48, 48)).read_bytes()
    before = httpx.get(server.url + "/metrics", headers=AUTH).text
    parts = [("files", (f"{i}.png", body, "image/png")) for i in range(3)]

    async def batch_then_at_once():
        """The batch's three parts are always in flight together (tests/serve/test_in_flight.py
        orders requests that overlap); the six after it are answered from the store."""
        async with httpx.AsyncClient(headers=AUTH, timeout=60) as client:
            batch = await client.post(server.url + "/v1/moderate/batch", files=parts)
            singles = [client.post(server.url + "/v1/moderate", content=body, headers=PNG)
                       for _ in range(6)]
            return [batch, *await asyncio.gather(*singles)]

    batch, *singles = asyncio.run(batch_then_at_once())
    answers = [*batch.json()["results"], *(r.json() for r in singles)]
    assert {a["decision_id"] for a in answers} == {answers[0]["decision_id"]}
    assert [a["cached"] for a in answers].count(False) == 1, [a["cached"] for a in answers]
    after = httpx.get(server.url + "/metrics", headers=AUTH).text

    def grew(name):
        return metric(after, name) - metric(before, name)

    assert grew("shotlab_batch_size_sum") == 1  # one row through the model
    assert grew("shotlab_decisions_total") == 1 and grew("shotlab_cache_hits_total") == 8


def test_a_clip_is_held_to_the_servers_pixel_limit_per_frame(server, tmp_path):
    """--max-pixels applied to images only: a clip's frames got the reader's 33-megapixel
    default whatever the server was started with (this one: 1,000,000)."""
    from tests.clipmaking import write_clip

    clip = write_clip(tmp_path / "large.mp4", frames=4, size=(1280, 800))  # 1,024,000 pixels
    answer = post(server, clip.read_bytes(), headers={"Content-Type": "video/mp4"})
    assert answer.status_code == 422, answer.text
    assert "1280x800 pixels is over the 1,000,000-pixel limit per frame" in answer.text


def test_a_clip_gets_predicts_clip_decision_with_its_segments(server, exported, tmp_path):
    """An image bundle serves clips as `shotlab predict` decides them: raw video/mp4 or a
    multipart part, pooled scores, the segments to watch, and Grad-CAM on the top frame."""
    from tests.export.test_predict_clips import colour_clip

    clip = colour_clip(tmp_path / "violent.mp4", ["green", "green", "red", "green"])
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(clip),
                                      "--out", str(tmp_path / "decisions.jsonl")])
    assert result.exit_code == 0, result.output
    (offline,) = map(json.loads, open(tmp_path / "decisions.jsonl"))
    served = post(server, clip.read_bytes(), headers={"Content-Type": "video/mp4"})
    assert served.status_code == 200, served.text
    got = served.json()
    for key in ("kind", "labels", "flagged", "needs_review", "sha256", "segments", "frames",
                "duration"):
        assert got[key] == offline[key], key
    np.testing.assert_allclose([got["scores"][c] for c in offline["scores"]],
                               list(offline["scores"].values()), atol=1e-6)
    assert got["flagged"] == ["red"] and got["segments"][0]["class"] == "red"
    calm = colour_clip(tmp_path / "calm.mp4", ["blue"] * 3, seed=1)
    parts = [("files", ("calm.mp4", calm.read_bytes(), "application/octet-stream")),
             ("files", ("broken.mp4", b"\x00" * 300, "video/mp4"))]
    batch = httpx.post(server.url + "/v1/moderate/batch", headers=AUTH, files=parts,
                       timeout=60).json()["results"]
    assert [r["status"] for r in batch] == [200, 422]
    assert batch[0]["kind"] == "clip" and batch[0]["labels"] == ["blue"]
    assert "send a clip" in batch[1]["detail"]
    url = f"{server.url}/v1/decisions/{got['decision_id']}"
    stored = wait_for(lambda: (s := httpx.get(url, headers=AUTH).json())["explanation"]
                      ["status"] == "done" and s)
    # the frame explained is a red one (the third second), its time listed and stored as
    # `predict --explain` lists and stores it
    (frame,) = got["explained_frames"]
    assert frame["class"] == "red" and 2 <= frame["timestamp"] < 3, frame
    (explained,) = stored["explanation"]["maps"]
    assert explained["target"] == "red" and explained["timestamp"] == frame["timestamp"]
    refused = post(server, b"x", headers={"Content-Type": "audio/mpeg"})
    assert refused.status_code == 415 and "image/*, video/*" in refused.json()["detail"]
    untyped = post(server, clip.read_bytes(), headers={"Content-Type": "application/octet-stream"})
    assert untyped.status_code == 422 and "a clip: send it as video/*" in untyped.text


def test_an_animated_gif_sent_as_an_image_is_decided_as_a_clip(server, tmp_path):
    """Its first frame (green) decided it, and that cached decision then answered the same
    bytes sent as video: a red animation passed as green either way. Every frame is scored now,
    and a decision is cached under the kind it was decided as."""
    from tests.export.test_predict_clips import animated_gif

    gif = animated_gif(tmp_path / "anim.gif", ["green"] + ["red"] * 7, seed=3).read_bytes()
    as_image = post(server, gif, headers={"Content-Type": "image/gif"})
    assert as_image.status_code == 200, as_image.text
    assert as_image.json()["kind"] == "clip" and as_image.json()["flagged"] == ["red"]
    as_video = post(server, gif, headers={"Content-Type": "video/mp4"}).json()
    assert as_video["cached"] and as_video["decision_id"] == as_image.json()["decision_id"]
    still = write_image(tmp_path / "still.png", seed=5)
    first = post(server, still.read_bytes())
    assert first.status_code == 200 and "kind" not in first.json()
    again = post(server, still.read_bytes(), headers={"Content-Type": "video/mp4"})
    # not cached; a still image is no clip container (FFmpeg's image demuxers are not tried)
    assert again.status_code == 422 and "not a video FFmpeg can read" in again.text
