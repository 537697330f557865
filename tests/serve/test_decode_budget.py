"""The service's decode budget, over real HTTP: bodies decoded at once across the server
(--decode-slots), the pixels one request's images may promise (--max-request-pixels), a clip's
frames (--max-clip-frames) and its decoding stopped at the request's deadline (--timeout-ms).
Each is checked by counting (decodes at once, decodes started, frames decoded), not by time."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from PIL import Image

from tests.core.test_clips import over_the_frame_limit
from tests.imaging import write_image
from tests.serve.conftest import Server
from tests.serve.test_service import metric

MP4 = {"Content-Type": "video/mp4"}
CLIP_FRAMES = 600  # one keyframe: sampling 8 frames decodes hundreds


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-budget")
    server = Server(exported.path, root / "store", "--decode-slots", 1, "--max-request-pixels",
                    200_000, "--max-clip-frames", CLIP_FRAMES, "--no-explain",
                    "--no-cache").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def one_key_clip(tmp_path_factory):
    return over_the_frame_limit(tmp_path_factory.mktemp("clips") / "one-key.mp4",
                                frames=CLIP_FRAMES)


def metrics(server) -> str:
    return httpx.get(server.url + "/metrics").text


def test_no_more_bodies_are_decoded_at_once_than_the_decode_slots(server, tmp_path):
    """Every item of every request was decoded at once (up to 40 threads): eight 10 KB PNGs of
    88 Mpx each took 4.2 GB. A batch and single requests at the same time now share one slot."""
    bodies = [write_image(tmp_path / f"{i}.png", seed=200 + i, size=(100, 100)).read_bytes()
              for i in range(12)]
    files = [("files", (f"{i}.png", b, "image/png")) for i, b in enumerate(bodies[:8])]

    async def together():
        async with httpx.AsyncClient(timeout=60) as client:
            batch = client.post(server.url + "/v1/moderate/batch", files=files)
            singles = [client.post(server.url + "/v1/moderate", content=b,
                                   headers={"Content-Type": "image/png"}) for b in bodies[8:]]
            return await asyncio.gather(batch, *singles)

    batch, *singles = asyncio.run(together())
    assert [r["status"] for r in batch.json()["results"]] == [200] * 8, batch.text
    assert [r.status_code for r in singles] == [200] * 4
    text = metrics(server)
    assert metric(text, "shotlab_decodes_total") >= 12
    assert metric(text, "shotlab_decodes_in_flight_peak") == 1
    assert metric(text, "shotlab_decodes_in_flight") == 0


def one_bit_png(side: int, seed: int) -> bytes:
    """A 1-bit PNG, a few hundred bytes for side x side pixels: a small pixel bomb."""
    image = Image.new("1", (side, side))
    image.putpixel((seed, seed), 1)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_a_request_over_the_pixel_budget_is_refused_before_any_decoding(server):
    """The pixels its images' headers promise, summed, refused in one line (413) naming the
    limit and the option; nothing of it is decoded."""
    before = metrics(server)
    files = [("files", (f"{i}.png", one_bit_png(300, i), "image/png")) for i in range(3)]
    refused = httpx.post(server.url + "/v1/moderate/batch", files=files, timeout=60)
    assert refused.status_code == 413, refused.text
    assert refused.json()["detail"] == (
        "the images in this request have 270,000 pixels together, over the limit of 200,000 a "
        "request (--max-request-pixels); send fewer or smaller images a request")
    assert metric(metrics(server), "shotlab_decodes_total") == \
        metric(before, "shotlab_decodes_total")
    files = files[:2]  # 180,000: within it
    answered = httpx.post(server.url + "/v1/moderate/batch", files=files, timeout=60)
    assert [r["status"] for r in answered.json()["results"]] == [200, 200], answered.text


def test_a_clip_over_the_frame_limit_is_refused_before_decoding(server, tmp_path, one_key_clip):
    before = metric(metrics(server), "shotlab_clip_frames_decoded_total")
    longer = over_the_frame_limit(tmp_path / "longer.mp4", frames=CLIP_FRAMES + 1)
    refused = httpx.post(server.url + "/v1/moderate", content=longer.read_bytes(), headers=MP4,
                         timeout=60)
    assert refused.status_code == 422, refused.text
    from shotlab.core.clips import RAISE_FRAMES

    assert f"more than {CLIP_FRAMES} frames, the limit per clip ({RAISE_FRAMES})" in \
        refused.json()["detail"]
    assert metric(metrics(server), "shotlab_clip_frames_decoded_total") == before
    answered = httpx.post(server.url + "/v1/moderate", content=one_key_clip.read_bytes(),
                          headers=MP4, timeout=60)
    assert answered.status_code == 200, answered.text
    assert metric(metrics(server), "shotlab_clip_frames_decoded_total") - before > 100


def test_a_clips_decoding_stops_at_the_requests_deadline(exported, start_server, one_key_clip):
    """--timeout-ms started after decoding, and decoding went on after the client left: two
    requests of a 205 KB clip whose clients gave up cost 33 CPU-seconds. The deadline now runs
    from the request's arrival and the clip reader stops between frames at it."""
    server = start_server(exported.path, "--timeout-ms", 1, "--no-explain", "--no-cache")
    answered = httpx.post(server.url + "/v1/moderate", content=one_key_clip.read_bytes(),
                          headers=MP4, timeout=60)
    assert answered.status_code == 503, answered.text
    assert answered.json()["detail"].startswith("no decision within 1 ms (--timeout-ms)")
    text = metrics(server)
    assert "shotlab_clip_frames_decoded_total" in text
    assert metric(text, "shotlab_clip_frames_decoded_total") < 100  # of hundreds
    assert httpx.get(server.url + "/v2/health/live").status_code == 200


def test_a_killed_servers_upload_folders_are_swept_by_the_next_upload(exported, start_server,
                                                                      tmp_path, one_key_clip):
    """A clip body is decoded from a temporary folder; a server killed meanwhile left it in
    /tmp for good (unpacked bundles were swept, uploads not). Its name holds the pid now, and
    the next upload folder made removes those of processes that are gone."""
    import os
    import subprocess
    import sys

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = scratch / f"shotlab-clip-{gone}-abc123"  # what a killed server leaves
    live = scratch / f"shotlab-clip-{os.getpid()}-def456"  # a running process's: kept
    older = scratch / "shotlab-clip-q1w2e3r4"  # an older shotlab's name, no pid: kept
    for folder in (left, live, older):
        folder.mkdir()
        (folder / "upload.mp4").write_bytes(b"someone's clip")
    server = start_server(exported.path, "--no-explain", env={"TMPDIR": str(scratch)})
    answered = httpx.post(server.url + "/v1/moderate", content=one_key_clip.read_bytes(),
                          headers=MP4, timeout=60)
    assert answered.status_code == 200, answered.text
    uploads = sorted(p.name for p in scratch.glob("shotlab-clip-*"))  # the server's own copy
    assert uploads == sorted([live.name, older.name])  # of the bundle is there too, alive


def test_a_flagged_clip_names_no_explained_frame_where_none_is_explained(server, tmp_path):
    """Under --no-explain no map is made: the answer named the top frame as explained."""
    from tests.export.test_predict_clips import colour_clip

    clip = colour_clip(tmp_path / "violent.mp4", ["green", "red", "green"])
    answer = httpx.post(server.url + "/v1/moderate", content=clip.read_bytes(), headers=MP4,
                        timeout=60).json()
    assert answer["flagged"] == ["red"] and answer["explanation"] == "none", answer
    assert "explained_frames" not in answer
