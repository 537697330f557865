"""datasets/clips.py: the synthetic clips (camera moves, filler, cuts) and the footage cutter."""

from __future__ import annotations

import csv

import numpy as np

from shotlab.core.clips import sample_clip
from tests.clipmaking import write_clip
from tests.datasets.test_recipes import ROOT, load_recipe


def test_each_kind_of_synthetic_clip_is_six_seconds_of_moving_frames(tmp_path):
    recipe = load_recipe("clips")
    image = sorted((ROOT / "datasets" / "sample" / "train" / "boat").glob("*.png"))[0]
    subject = recipe.subject_canvas(image)
    for kind in recipe.KINDS:
        frames = recipe.clip_frames(kind, [subject, subject], recipe.filler_texture(0),
                                    np.random.default_rng(0))
        path = tmp_path / f"{kind}.mp4"
        recipe.write_mp4(path, frames)
        facts, sampled, _ = sample_clip(path, "fps:1", dedupe=False)
        assert (facts.width, facts.height, facts.fps) == (160, 120, 12.0)
        assert facts.duration == 6.0 and facts.keyframes >= 6  # a keyframe a second
        white = [float((f.pixels > 240).all(axis=2).mean()) for f in sampled]
        seen = sum(w > 0.3 for w in white)  # the subject sits on a white canvas; filler is not
        assert seen == {"full": 6, "partial": 2, "cuts": 4}[kind], (kind, white)


def test_footage_is_cut_under_the_clip_length_with_tags(tmp_path, monkeypatch):
    recipe = load_recipe("clips")
    source = write_clip(tmp_path / "src" / "long.mp4", frames=125, fps=5, size=(64, 48))
    monkeypatch.setattr(recipe, "FOOTAGE", (("opencv", "long.mp4", ("street",), "test", "-"),))
    monkeypatch.setattr(recipe, "find_source", lambda where, name: source)
    written = recipe.build_footage(tmp_path / "out")
    assert [p.name for p in written] == ["long_00.mp4", "long_01.mp4", "long_02.mp4"]
    assert [round(sample_clip(p, "uniform:2").facts.duration) for p in written] == [10, 10, 5]
    with open(tmp_path / "out" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["street"] for r in rows] == ["1", "1", "1"] and {r["split"] for r in rows} == {"test"}
