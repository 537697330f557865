"""Image quality: blurred, darkened, blank and oddly shaped images planted among normal ones."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter

from shotlab.core.errors import InputError
from shotlab.curate.checks.image_stats import image_stats
from shotlab.curate.checks.quality import find_quality_issues


def photo_like(seed: int, size=(96, 72)) -> Image.Image:
    """Smooth colour blobs plus edges and fine grain: sharp, mid-bright, colourful."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 215, (6, 8, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(base).resize(size, Image.Resampling.NEAREST), np.float32)
    image += rng.normal(0, 12, image.shape)
    return Image.fromarray(image.clip(0, 255).astype(np.uint8))


@pytest.fixture
def planted(tmp_path):
    """30 normal images; 3 blurred, 4 darkened, 5 blank, 6 tiny, 7 a 5:1 strip, 8 grayscale."""
    paths = []
    for i in range(30):
        image = photo_like(i)
        if i == 3:
            image = image.filter(ImageFilter.GaussianBlur(4))
        if i == 4:
            image = ImageEnhance.Brightness(image).enhance(0.08)
        if i == 5:
            image = Image.new("RGB", image.size, (200, 200, 200))
        if i == 6:
            image = image.resize((12, 9))
        if i == 7:
            image = photo_like(i, size=(200, 40))
        if i == 8:
            image = image.convert("L")
        path = tmp_path / f"{i:02d}.png"
        image.save(path)
        paths.append(str(path))
    return paths


def by_type(results):
    return {r.name: np.flatnonzero(r.issues).tolist() for r in results}


def test_planted_problems_are_flagged_by_type(planted):
    results = find_quality_issues(image_stats(planted, progress=False))
    found = by_type(results)
    assert 3 in found["blurry"]
    assert found["dark"] == [4]
    assert 5 in found["low_information"]
    assert 6 in found["odd_size"]
    assert found["odd_aspect_ratio"] == [7]
    assert found["grayscale"] == [5, 8]  # a blank grey card has no colour either
    assert set(found["quality"]) == {3, 4, 5, 6, 7, 8}
    summary = results[0]
    assert summary.fields["quality_issues"][4] == ["dark"]
    assert summary.fields["quality_issues"][0] is None
    assert summary.scores[4] > summary.scores[0]


def test_a_cut_can_be_overridden(planted):
    stats = image_stats(planted, progress=False)
    results = find_quality_issues(stats, thresholds={"dark": 0.0})
    assert by_type(results)["dark"] == []
    assert results[2].details == {**results[2].details, "cut": 0.0, "adaptive": False}


def test_an_unknown_threshold_is_refused(planted):
    with pytest.raises(InputError, match="unknown threshold; known: blurry"):
        find_quality_issues(image_stats(planted[:3], progress=False), thresholds={"blury": 1})


def test_an_unreadable_file_is_flagged_not_fatal(planted, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    stats = image_stats([*planted[:10], str(broken)], progress=False)
    summary = find_quality_issues(stats)[0]
    assert stats.unreadable == {10: "not an image (format not recognised)"}
    assert summary.fields["quality_issues"][10] == ["unreadable"]
