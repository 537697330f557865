"""`shotlab serve` on a post bundle (picture + caption) over real HTTP: multipart `image` and
`text` parts, decided as `shotlab predict posts.csv` decides them, several posts batched, the
modality split, Grad-CAM and caption IG stored in the background, bad posts refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from tests.serve.conftest import Server
from tests.serve.test_service import metric, wait_for

pytestmark = pytest.mark.fiftyone


@pytest.fixture(scope="module")
def post_bundle(post_run):
    """(bundle folder, posts folder, rows) of the shared post run (tests/conftest.py)."""
    _, exported, folder, rows = post_run
    return exported.path, folder, rows


@pytest.fixture(scope="module")
def server(post_bundle, tmp_path_factory):
    server = Server(post_bundle[0], tmp_path_factory.mktemp("serve-posts-store") / "store",
                    "--max-wait-ms", 50).start()
    yield server
    server.stop()


def parts(folder: Path, posts: list[dict]) -> list[tuple]:
    """Multipart parts of `posts` ({image_path, text}): an image part, then its caption."""
    return [part for post in posts for part in (
        ("image", (Path(post["image_path"]).name, (folder / post["image_path"]).read_bytes(),
                   "image/png" if post["image_path"].endswith(".png") else "image/jpeg")),
        ("text", (None, post["text"])))]


def test_posts_get_predicts_decisions_batched_and_explained(server, post_bundle, tmp_path):
    from shotlab.explain.store import ExplanationStore

    bundle, folder, rows = post_bundle
    tests = [r for r in rows if r["split"] == "test"]
    path = tmp_path / "posts.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["image_path", "text"],
                                 *([str(folder / r["image_path"]), r["text"]] for r in tests)])
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(bundle), str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    offline = [json.loads(line) for line in out.read_text().splitlines()]

    before = httpx.get(server.url + "/metrics").text
    one = httpx.post(server.url + "/v1/moderate", files=parts(folder, tests[:1]), timeout=60)
    assert one.status_code == 200, one.text
    response = httpx.post(server.url + "/v1/moderate/batch", files=parts(folder, tests[1:]),
                          timeout=60)
    assert response.status_code == 200, response.text
    served = [one.json(), *response.json()["results"]]
    after = httpx.get(server.url + "/metrics").text
    runs = metric(after, "shotlab_batch_size_count") - metric(before, "shotlab_batch_size_count")
    assert runs < len(served)  # the batch's posts ran together: image and padded captions

    assert len(served) == len(offline)
    for got, want in zip(served, offline):
        assert got["kind"] == "post" and got["text"] == want["text"]
        for key in ("sha256", "text_sha256", "labels", "flagged", "needs_review",
                    "model_sha256", "policy_version"):
            assert got[key] == want[key], key
        np.testing.assert_allclose([got["scores"][c] for c in want["scores"]],
                                   list(want["scores"].values()), atol=1e-5)
    attention = [d for d in served if d["flagged"] or d["needs_review"]]
    assert attention and all(d["explanation"] == "pending" for d in attention)
    for decision in attention:
        url = f"{server.url}/v1/decisions/{decision['decision_id']}"
        stored = wait_for(lambda: (s := httpx.get(url).json())["explanation"]["status"] in
                          ("done", "failed") and s, timeout=180)
        assert stored["explanation"]["status"] == "done", stored["explanation"]
        assert {m["method"] for m in stored["explanation"]["maps"]} == \
            {"modality_split", "gradcam", "ig"}
    with ExplanationStore(Path(server.store) / "explanations.sqlite", readonly=True) as store:
        split = next(r for r in store.explanations(attention[0]["decision_id"])
                     if r.method == "modality_split")
    assert split.scores["both"] == pytest.approx(attention[0]["scores"][split.target], abs=1e-5)


@pytest.mark.parametrize("case", ["no_caption", "field_not_caption", "no_image",
                                  "empty_caption", "raw_body", "animated"])
def test_bad_posts_get_a_status_and_a_one_line_reason(server, post_bundle, case, tmp_path):
    from tests.export.test_post_predict import animated_picture

    _, folder, rows = post_bundle
    image = ("image", ("p.png", (folder / rows[0]["image_path"]).read_bytes(), "image/png"))
    gif = open(animated_picture(tmp_path / "anim.gif"), "rb").read()
    sent, status, reason = {
        "animated": ({"files": [("image", ("a.gif", gif, "image/gif")), ("text", (None, "hi"))]},
                     422, "an animated picture (several frames)"),
        "no_caption": ({"files": [image]}, 422, "got 1 image and 0 caption part(s)"),
        # a client's own form field is no caption (it was taken for one)
        "field_not_caption": ({"files": [image, ("user_id", (None, "12345"))]}, 422,
                              "got 1 image and 0 caption part(s)"),
        "no_image": ({"files": [("text", (None, "a caption"))]}, 422,
                     "got 0 image and 1 caption part(s)"),
        "empty_caption": ({"files": [image, ("text", (None, " "))]}, 422, "the text is empty"),
        "raw_body": ({"content": image[1][1], "headers": {"Content-Type": "image/png"}}, 415,
                     "send multipart/form-data"),
    }[case]
    response = httpx.post(server.url + "/v1/moderate", timeout=60, **sent)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert reason in detail and "\n" not in detail


def test_form_fields_of_other_names_are_not_read(server, post_bundle):
    """A `user_id` field beside a post's parts was counted as a second caption (422: 'got 1
    image and 2 caption part(s)')."""
    _, folder, rows = post_bundle
    sent = parts(folder, rows[:1]) + [("user_id", (None, "12345"))]
    response = httpx.post(server.url + "/v1/moderate", files=sent, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["text"] == rows[0]["text"]


def test_max_items_counts_posts_not_parts(post_bundle, start_server):
    """A post is two parts: with --max-items 2, two posts with their captions as files (4 file
    parts) were refused as too many; three posts are over the limit."""
    bundle, folder, rows = post_bundle
    server = start_server(bundle, "--max-items", 2, "--queue-size", 2, "--no-explain")
    posts = [(name, ("caption.txt", value[1].encode(), "text/plain") if name == "text"
              else value) for name, value in parts(folder, rows[:3])]
    within = httpx.post(server.url + "/v1/moderate/batch", files=posts[:4], timeout=60)
    assert within.status_code == 200, within.text
    assert [r["status"] for r in within.json()["results"]] == [200, 200]
    over = httpx.post(server.url + "/v1/moderate/batch", files=posts, timeout=60)
    assert over.status_code == 413, over.text
    assert over.json()["detail"] == ("more than 2 items in one request (--max-items); send "
                                     "at most 2 a request")
