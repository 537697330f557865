"""The page's post panel without a browser, on a post bundle trained as the #15 tests train one
(`post_run` in tests/conftest.py): the decision is `shotlab predict`'s record for the same
image and caption, a bad caption or image gets predict's reason, and the explanation is what
`predict --explain` stores for a post (modality split, Grad-CAM, caption IG)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from shotlab.core.errors import BadImageError, InputError
from shotlab.page.model import open_model
from shotlab.page.panels import PANELS, panels_for
from tests.page.conftest import predict

pytestmark = pytest.mark.fiftyone


@pytest.fixture(scope="module")
def post_model(post_run):
    return open_model(post_run[1].path)


@pytest.fixture(scope="module")
def post_predicted(post_run, tmp_path_factory):
    """(the test posts [(image path, caption)], {image path: record}) from `shotlab predict`."""
    _, exported, folder, rows = post_run
    posts = [(Path(folder) / r["image_path"], r["text"]) for r in rows if r["split"] == "test"]
    path = tmp_path_factory.mktemp("page-posts") / "posts.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_path", "text"])
        writer.writerows([str(image), text] for image, text in posts)
    out = path.parent / "decisions.jsonl"
    predict(exported.path, path, "--out", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return posts, {r["path"]: r for r in records}


def test_a_post_bundle_gets_the_post_panel(post_model):
    assert [p.kind for p in panels_for(post_model.kind)] == ["post"]


def test_post_decision_is_predicts_record(post_model, post_predicted):
    posts, expected = post_predicted
    for image, caption in posts:
        decided = PANELS["post"].decide(post_model, image.name, (image.read_bytes(), caption))
        want = expected[str(image.resolve())]
        for key in ("labels", "flagged", "needs_review", "sha256", "text", "text_sha256",
                    "kind", "model_sha256", "policy_version"):
            assert decided.record[key] == want[key], key
        assert decided.record["scores"] == pytest.approx(want["scores"], abs=1e-5)


def test_bad_posts_get_predicts_reasons(post_model, post_predicted):
    (image, _), *_ = post_predicted[0]
    with pytest.raises(InputError) as caught:
        PANELS["post"].decide(post_model, image.name, (image.read_bytes(), "   "))
    assert str(caught.value) == (f"{image.name} caption: the text is empty; fill it in or leave "
                                 f"it out")
    with pytest.raises(BadImageError) as caught:
        PANELS["post"].decide(post_model, "broken.png", (b"not an image" * 20, "for sale"))
    assert str(caught.value).startswith("broken.png: ")


def test_post_explanation_is_the_split_gradcam_and_caption_words(post_model, post_predicted):
    (image, caption), *_ = post_predicted[0]
    decided = PANELS["post"].decide(post_model, image.name, (image.read_bytes(), caption))
    result = PANELS["post"].explain(post_model, decided, ["gradcam", "ig"], score=False)
    split = result["split"]
    assert split["target"] == result["target"]
    assert split["both"] == pytest.approx(decided.record["scores"][split["target"]], abs=1e-5)
    assert split["phi_image"] + split["phi_text"] == pytest.approx(
        split["both"] - split["neither"], abs=1e-9)
    heatmap = result["maps"]["gradcam"]
    assert heatmap.shape == decided.array["image"].shape[2:] and np.isfinite(heatmap).all()
    words = result["words"]["ig"]
    assert words.comment.text == caption and words.faithfulness
