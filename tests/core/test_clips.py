"""Clip probing, sampling and guarded decoding on clips PyAV encodes here."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pytest

from shotlab.core.clips import (DEFAULT_MAX_FRAMES, BadClipError, ClipReader, DeadlinePassed,
                                Sampling, drop_near_identical, sample_clip)
from shotlab.core.errors import InputError
from tests.clipmaking import (damage_packets, growing_stream, unknown_codec, write_audio_only,
                              write_clip, write_with_cover, truncated_mp4, cut_inside_frame)


def test_probe_reports_duration_fps_codec_and_hash(tmp_path):
    path = write_clip(tmp_path / "a.mp4", frames=20, fps=10, size=(64, 48))
    with ClipReader(path) as clip:
        facts = clip.facts
    assert (facts.frames, facts.fps, facts.width, facts.height) == (20, 10.0, 64, 48)
    assert facts.duration == pytest.approx(2.0)
    assert (facts.codec, facts.variable_frame_rate, facts.rotation) == ("h264", False, 0)
    assert facts.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_rotation_metadata_turns_size_and_pixels(tmp_path):
    path = write_clip(tmp_path / "r.mp4", frames=12, size=(64, 48), rotation=90)
    facts, frames, _ = sample_clip(path, "uniform:2", dedupe=False)
    assert (facts.rotation, facts.width, facts.height) == (90, 48, 64)
    pixels = frames[0].pixels
    assert pixels.shape == (64, 48, 3)
    # The red marker drawn top-left is bottom-left once turned 90 degrees counterclockwise.
    assert pixels[-3, 2, 0] > 200 and pixels[-3, 2, 1] < 60
    assert pixels[2, 2, 0] < 100


def test_variable_frame_rate_timestamps_come_from_the_frames(tmp_path):
    times = [0, 100, 150, 250, 300, 400, 450, 550, 600, 700, 750, 850]
    path = write_clip(tmp_path / "v.mp4", frames=len(times), times_ms=times)
    facts, frames, _ = sample_clip(path, "fps:20", dedupe=False)
    assert facts.variable_frame_rate
    assert [round(f.timestamp, 3) for f in frames] == [t / 1000 for t in times]


@pytest.mark.parametrize("spec, expected", [
    ("uniform:5", [0.0, 0.5, 1.0, 1.4, 1.9]),  # both ends included: 0 and the last frame
    ("fps:2", [0.0, 0.5, 1.0, 1.5]),
    ("keyframes", None),  # where the encoder put them, read here straight from the packets
])
def test_sampling_returns_the_requested_timestamps_within_one_frame(tmp_path, spec, expected):
    path = write_clip(tmp_path / "s.mp4", frames=20, fps=10, gop=5)
    _, frames, gaps = sample_clip(path, spec, dedupe=False)
    got = [f.timestamp for f in frames]
    expected = expected or keyframe_times(path)
    assert len(got) == len(expected) and gaps == []
    assert np.allclose(got, expected, atol=0.1 + 1e-9)  # one frame at 10 fps


def keyframe_times(path) -> list[float]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(float(p.pts * stream.time_base) for p in container.demux(stream)
                      if p.size and p.is_keyframe)


def test_keyframes_decode_only_keyframes_and_uniform_skips_most_frames(tmp_path):
    path = write_clip(tmp_path / "k.mp4", frames=60, fps=10, gop=10)
    with ClipReader(path) as clip:
        frames = list(clip.frames_at(Sampling.parse("keyframes").times(clip)))
        assert clip.decoded == len(frames) == len(keyframe_times(path)) < 60
    with ClipReader(path) as clip:
        frames = list(clip.frames_at(Sampling.parse("uniform:3").times(clip)))
        assert len(frames) == 3 and clip.decoded < 60


def test_near_identical_neighbours_are_dropped(tmp_path):
    still = np.full((48, 64, 3), 90, np.uint8)
    still[10:30, 10:40] = 250

    def pixels(i):  # five identical frames, then a different picture
        return still if i < 5 else np.ascontiguousarray(still[::-1, ::-1])
    path = write_clip(tmp_path / "still.mp4", frames=10, pixels=pixels)
    _, all_frames, _ = sample_clip(path, "fps:10", dedupe=False)
    kept = drop_near_identical(all_frames)
    assert len(all_frames) == 10 and [f.timestamp for f in kept] == [0.0, 0.5]


def test_partly_undecodable_stream_keeps_good_frames_and_reports_the_gap(tmp_path):
    path = write_clip(tmp_path / "p.mkv", frames=20, codec="mjpeg")
    damage_packets(path, [8, 9, 10])
    _, frames, gaps = sample_clip(path, "fps:10", dedupe=False)
    assert len(frames) == 17
    assert [(g.start, g.end) for g in gaps] == [(pytest.approx(0.8), pytest.approx(1.0))]
    assert "failed to decode" in gaps[0].reason


@pytest.mark.parametrize("case, reason", [
    ("zero-byte", "empty file (0 bytes)"),
    ("text", "not a video FFmpeg can read"),
    # read again and again until 'Too many open files' (a playlist would read other files)
    ("concat-list", "not a video FFmpeg can read (Invalid argument)"),
    ("truncated", "truncated clip: the container's index (moov atom) is missing"),
    ("audio-only", "no video stream (audio only)"),
    ("unknown-codec", "a video codec this FFmpeg cannot decode"),
    ("one-frame", "a single frame, not a clip"),
    ("huge-frames", "frame size too large: 64x48 pixels is over the 1,000-pixel limit"),
])
def test_bad_clips_raise_with_the_reason(tmp_path, case, reason):
    path = make_bad_clip(tmp_path, case)
    before = path.read_bytes()
    with pytest.raises(BadClipError) as caught:
        sample_clip(path, max_pixels=1000 if case == "huge-frames" else 7680 * 4320)
    assert reason in caught.value.reason and caught.value.path == str(path)
    assert path.read_bytes() == before


def make_bad_clip(folder, case: str):
    """The bad clip named `case`, as the importer's tests use too."""
    path = folder / f"{case}.mp4"
    if case == "zero-byte":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is a text file named like a video\n" * 20)
    elif case == "concat-list":
        path.write_text(f"ffconcat version 1.0\nfile {path.name}\n")
    elif case == "truncated":
        truncated_mp4(write_clip(folder / "whole" / "w.mp4"), path)
    elif case == "audio-only":
        write_audio_only(path)
    elif case == "unknown-codec":
        path = unknown_codec(write_clip(folder / f"{case}.avi"))
    elif case == "one-frame":
        write_clip(path, frames=1)
    elif case == "huge-frames":
        write_clip(path, frames=4)
    elif case == "partly-undecodable":
        path = damage_packets(write_clip(folder / f"{case}.mkv", frames=20, codec="mjpeg"),
                              [8, 9, 10])
    return path


@pytest.mark.parametrize("text", ["uniform:0", "uniform:x", "fps:0", "every:3", "keyframes:2"])
def test_bad_sampling_specs_name_the_choices(text):
    with pytest.raises(InputError, match="use uniform:N"):
        Sampling.parse(text)


def test_sampling_keys_are_stable():
    assert [Sampling.parse(t).key for t in ("uniform:8", "fps:1", "fps:0.5", "keyframes")] == \
        ["uniform:8", "fps:1", "fps:0.5", "keyframes"]


@pytest.mark.parametrize("sampling", ["fps:1", "uniform:4", "keyframes"])
def test_timestamps_years_apart_are_refused_under_every_sampling(tmp_path, sampling):
    """fps:1 over a frame 2**40 ms after the rest tried to allocate terabytes (a traceback
    that lost every other clip's decision); uniform:4 decided it and sent reviewers to second
    1,099,511,628."""
    times = [i * 100 for i in range(9)] + [2 ** 40]
    path = write_clip(tmp_path / "jump.mkv", frames=len(times), times_ms=times)
    with pytest.raises(BadClipError, match=r"timestamps jump 1,099,511,62\d s after 0.8 s"):
        sample_clip(path, sampling)


def test_a_long_clip_at_a_high_rate_is_refused_before_its_grid_is_built(tmp_path):
    """The fps grid's own limit, for timestamps that are sane one by one (50-minute steps)."""
    times = [i * 3_000_000 for i in range(30)]
    path = write_clip(tmp_path / "long.mkv", frames=len(times), times_ms=times)
    with pytest.raises(BadClipError, match="fps:240 would sample 20,880,001 points"):
        sample_clip(path, "fps:240")
    assert len(sample_clip(path, "uniform:4", dedupe=False).frames) == 4


def test_a_cut_off_upload_with_its_index_first_reports_the_missing_seconds(tmp_path):
    """FFmpeg reads a faststart MP4 cut in half to its end without an error: the clip looked
    whole and shorter, and the seconds never seen were in no gap."""
    whole = write_clip(tmp_path / "w.mp4", frames=40, fps=20, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 4])
    facts, frames, gaps = sample_clip(cut, "uniform:4")
    missing = [g for g in gaps if g.reason.startswith("truncated clip")]
    assert len(missing) == 1 and missing[0].end == pytest.approx(2.0)
    assert frames[-1].timestamp < missing[0].start < 2.0
    assert "of 40 frames are not in the file" in missing[0].reason
    assert sample_clip(whole, "uniform:4").gaps == []


@pytest.mark.parametrize("gop", [10, 40], ids=["groups", "one-group"])
def test_a_cut_off_upload_is_not_read_as_variable_frame_rate(tmp_path, gop):
    """The B-frames the cut took left holes among the last frames' times: a constant-rate clip
    cut at 3/4 was imported as variable-rate at 17.9 fps (16.5 in a clip of one group)."""
    whole = write_clip(tmp_path / "w.mp4", frames=40, fps=20, gop=gop, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 4])
    with ClipReader(cut) as clip:
        assert clip.truncated and 0.05 * 1.5 < np.diff(clip.frame_times).max()  # the holes
        facts = clip.facts
    assert not facts.variable_frame_rate and facts.fps == pytest.approx(20.0)


def test_the_clip_stream_is_chosen_over_a_cover_picture(tmp_path):
    """The first video stream was used blindly: a cover picture first made the clip 'a single
    frame'."""
    facts, frames, _ = sample_clip(write_with_cover(tmp_path / "c.mkv"), "uniform:4",
                                   dedupe=False)
    assert (facts.frames, facts.width, facts.height) == (20, 64, 48) and len(frames) == 4


def test_frames_larger_than_the_header_said_are_held_to_the_pixel_limit(tmp_path):
    """Only the header's size was checked: a stream that grows midway decoded frames over the
    limit (a decompression bomb in a clip)."""
    path = growing_stream(tmp_path / "grows.mpg")
    frames = sample_clip(path, "fps:100", dedupe=False).frames  # no limit: the larger decode
    assert (96, 128, 3) in {f.pixels.shape for f in frames}
    with pytest.raises(BadClipError, match="over the 4,000-pixel limit"):
        sample_clip(path, "fps:100", max_pixels=4000)  # 64 x 48 passes, 128 x 96 does not


def test_a_pipe_named_like_a_clip_is_named_as_a_pipe(tmp_path):
    import os

    os.mkfifo(tmp_path / "p.mp4")
    with pytest.raises(BadClipError, match="not a regular file"):
        sample_clip(tmp_path / "p.mp4")  # it was "empty file (0 bytes)"


@pytest.mark.parametrize("sampling", ["keyframes", "uniform:8", "fps:12"])
def test_a_cut_off_upload_keeps_every_frame_before_the_cut(tmp_path, sampling):
    """An upload cut inside the frame at 7 s: when that frame failed, the frames still held in
    the decoder were lost (keyframes only: 5 and 6 s 'never decoded'; every frame: 6.83 and
    6.92 s), so a subject on screen there was never scored."""
    # a texture panning a pixel a frame: no scene cut, so the keyframes fall on every second
    texture = np.random.default_rng(0).integers(0, 256, (48, 128, 3), np.uint8)
    whole = write_clip(tmp_path / "w.mp4", frames=144, fps=12, gop=12, faststart=True,
                       pixels=lambda i: np.ascontiguousarray(np.roll(texture, i, 1)[:, :64]))
    cut = cut_inside_frame(whole, tmp_path / "cut.mp4", 7.0)
    with ClipReader(cut) as clip:
        planned = Sampling.parse(sampling).times(clip)
    _, frames, gaps = sample_clip(cut, sampling, dedupe=False)
    before = [t for t in planned if t < 7.0]
    assert [f.timestamp for f in frames] == pytest.approx(before) and before[-1] >= 6.0
    assert [g.start for g in gaps if g.start < 7.05] == [pytest.approx(7.0)] * (7.0 in planned)
    assert [g.reason for g in gaps if g.start > 7.05] == [
        "truncated clip: 59 of 144 frames are not in the file"]


def test_uniform_one_samples_the_middle_frame(tmp_path):
    """uniform:1 took t = 0 alone for the whole clip ("both ends included" cannot hold for one
    frame); the middle frame stands for it now."""
    path = write_clip(tmp_path / "m.mp4", frames=21, fps=10)
    _, frames, _ = sample_clip(path, "uniform:1", dedupe=False)
    assert [f.timestamp for f in frames] == [pytest.approx(1.0)]


def over_the_frame_limit(path, frames: int = DEFAULT_MAX_FRAMES + 1):
    """A clip of `frames` black 16x16 frames and one keyframe: a few hundred KB, and every frame
    up to the last sample must be decoded (the tester's 12,000-frame clip, made small)."""
    return write_clip(path, frames=frames, fps=60, size=(16, 16), gop=frames,
                      pixels=lambda i: np.zeros((16, 16, 3), np.uint8))


def test_a_clip_over_the_frame_limit_is_refused_before_any_frame_is_decoded(tmp_path):
    """Nothing bounded a clip's frames: 12,000 static frames behind one keyframe (205 KB) took
    15 s of CPU to sample, every frame decoded, the whole packet index held in memory."""
    path = over_the_frame_limit(tmp_path / "long.mp4")
    with pytest.raises(BadClipError, match=re.escape(
            f"more than {DEFAULT_MAX_FRAMES:,} frames, the limit per clip (predict and serve "
            f"take --max-clip-frames to raise it; curate import and the page keep it: cut the "
            f"clip into shorter ones)")):
        sample_clip(path)
    reader = ClipReader(path, max_frames=DEFAULT_MAX_FRAMES + 1)
    with reader as clip:  # raised, it opens; no frame was decoded to find out
        assert len(clip.packets) == DEFAULT_MAX_FRAMES + 1 and clip.decoded == 0
    short = write_clip(tmp_path / "short.mp4", frames=30, gop=30)
    with pytest.raises(BadClipError, match="more than 29 frames"):
        ClipReader(short, max_frames=29).__enter__()


def test_a_deadline_stops_decoding_between_frames(tmp_path):
    """A clip with one keyframe decodes every frame to its last sample; a reader whose deadline
    has passed decodes none and says so (the service answers its timeout)."""
    path = over_the_frame_limit(tmp_path / "one-key.mp4", frames=600)
    with ClipReader(path) as clip:
        assert len(list(clip.frames_at(Sampling.parse("uniform:8").times(clip)))) >= 1
        full = clip.decoded  # hundreds for 8 samples: what the deadline saves
    assert full > 100
    with ClipReader(path, deadline=time.monotonic() - 1) as clip:
        with pytest.raises(DeadlinePassed, match="after 0 frames"):
            list(clip.frames_at(Sampling.parse("uniform:8").times(clip)))
        assert clip.decoded == 0
    with ClipReader(path, deadline=time.monotonic() + 3600) as clip:  # far: no effect
        list(clip.frames_at(Sampling.parse("uniform:8").times(clip)))
        assert clip.decoded == full


def test_a_small_object_appearing_in_a_still_shot_is_a_new_frame():
    """pHash reads coarse layout: a 20-pixel bird pasted beside a photo on a 160x120 shot moved
    it by 4 bits, so the frame passed as a repeat and the bird was never scored (a tester's
    clip, rebuilt from the sample set's images)."""
    from PIL import Image

    from shotlab.core.clips import (NEAR_IDENTICAL_BITS, NEAR_IDENTICAL_COLOUR, NearIdentical,
                                    perceptual_hash)

    sample = Path(__file__).parents[2] / "datasets" / "sample" / "test"
    shot = Image.new("RGB", (160, 120), "white")
    photo = Image.open(sample / "fruit" / "apple.png").convert("RGB")
    photo.thumbnail((160, 120))
    shot.paste(photo, (0, 0))
    bird = Image.open(sample / "bird" / "cigno_architetto_frances_01.png").convert("RGB")
    bird.thumbnail((20, 20))
    later = shot.copy()
    later.paste(bird, (132, 4))
    shot, later = np.asarray(shot), np.asarray(later)
    assert perceptual_hash(later) - perceptual_hash(shot) <= NEAR_IDENTICAL_BITS  # the old rule
    assert np.abs(later.mean(axis=(0, 1)) - shot.mean(axis=(0, 1))).max() < NEAR_IDENTICAL_COLOUR
    seen = NearIdentical()
    assert seen.is_new(shot) and not seen.is_new(shot.copy())  # a true repeat still drops
    assert seen.is_new(later)


def test_a_frame_of_another_size_is_a_new_frame_not_a_crash():
    """The grid of cell means is at most 32 x 32: a frame under 32 pixels on a side after one
    of another size could not be compared (a ValueError)."""
    from shotlab.core.clips import NearIdentical

    seen = NearIdentical()
    assert seen.is_new(np.full((10, 20, 3), 128, np.uint8))
    assert seen.is_new(np.full((40, 40, 3), 128, np.uint8))
