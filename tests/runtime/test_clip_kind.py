"""The `clip` entry of the KINDS table: frames sampled and preprocessed as images."""

from __future__ import annotations

import numpy as np

from shotlab.core.clips import CLIP_EXTENSIONS
from shotlab.runtime.contract import Preprocessing
from shotlab.runtime.kinds import KINDS, get_kind
from tests.clipmaking import write_clip

PREP = Preprocessing(input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                     class_names=("a", "b"), kind="clip")


def test_clip_kind_is_a_frame_model_with_clip_suffixes():
    kind = get_kind("clip")
    assert kind.sample_shape(PREP) == (3, 32, 32) == PREP.sample_shape
    assert kind.extensions == CLIP_EXTENSIONS and {".mp4", ".mpg", ".webm"} <= kind.extensions
    assert Preprocessing.from_dict(PREP.to_dict()).kind == "clip"


def test_load_samples_frames_and_skips_bad_clips(tmp_path):
    good = write_clip(tmp_path / "a.mp4", frames=20, fps=10)
    other = write_clip(tmp_path / "b.avi", frames=10, fps=5)
    (tmp_path / "bad.mp4").write_text("not a clip")
    inputs = KINDS["clip"].load([good, tmp_path / "bad.mp4", other], PREP, progress=False,
                                sampling="uniform:3")
    assert inputs.arrays.shape == (6, 3, 32, 32) and inputs.arrays.dtype == np.float32
    assert inputs.kept == [0, 2]
    assert [i for i, _ in inputs.frames] == [0, 0, 0, 2, 2, 2]
    assert [round(t, 2) for _, t in inputs.frames] == [0.0, 0.9, 1.9, 0.0, 0.8, 1.8]  # a tie goes to the earlier frame
    assert inputs.bad == [(str(tmp_path / "bad.mp4"),
                           "not a video FFmpeg can read (Invalid data found when processing "
                           "input)")]
