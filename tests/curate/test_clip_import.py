"""Importing clips into the real store: a clip dataset, its frames dataset, bad clips by name,
the frame cache, --max-seconds, and splits that keep a clip's frames together."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli as main
from shotlab.core import store, workspace
from shotlab.core.errors import InputError
from shotlab.curate.importer import import_path
from shotlab.curate.splits import split_dataset
from tests.clipmaking import write_clip
from tests.core.test_clips import make_bad_clip

pytestmark = pytest.mark.fiftyone

BAD_CASES = {"zero-byte": "empty file (0 bytes)",
             "text": "not a video FFmpeg can read",
             "truncated": "truncated clip: the container's index (moov atom) is missing",
             "audio-only": "no video stream (audio only)",
             "unknown-codec": "a video codec this FFmpeg cannot decode",
             "one-frame": "a single frame, not a clip"}


def fingerprint(folder: Path) -> dict[str, tuple]:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def clip_tree(root: Path, per_class: int = 2, *, split: str | None = None, seed: int = 0):
    base = root / split if split else root
    for c, name in enumerate(("cooking", "sports")):
        for i in range(per_class):
            colour = [(200, 60 + 40 * c, 30 * i + seed)] * 12
            write_clip(base / name / f"{name}_{i}.mp4", frames=12, fps=6, colours=colour)
    return root


def frames_frame(name: str):
    return store.load(f"{name}-frames")


def test_class_folders_of_clips_make_a_clip_and_a_frames_dataset(tmp_path, dataset_name):
    root = clip_tree(tmp_path / "src")
    report = import_path(root, dataset_name, progress=False, sampling="uniform:4")
    assert (report.added, report.skipped, report.frames_dataset) == \
        (4, [], f"{dataset_name}-frames")
    assert (report.frames_added, report.frames_decoded > 0, report.sampling) == \
        (16, True, "uniform:4")
    clips = store.load(dataset_name)
    assert clips.media_type == "video" and store.media_of(clips) == "video"
    clip = clips.match({"filepath": str((root / "sports" / "sports_1.mp4").resolve())}).first()
    assert clip.ground_truth.label == "sports" and clip.metadata.frame_width == 64
    assert (clip.metadata.total_frame_count, clip.fps, clip.codec, clip.sampled_frames) == \
        (12, 6.0, "h264", 4)
    assert clip.duration == pytest.approx(2.0)
    frames = frames_frame(dataset_name).match({"clip_id": clip.id})
    assert [round(t, 2) for t in frames.values("timestamp")] == [0.0, 0.67, 1.17, 1.83]
    assert set(frames.values("ground_truth.label")) == {"sports"}
    media = workspace.current().media_dir
    assert all(Path(f).is_relative_to(media) and f.endswith(".png")
               for f in frames.values("filepath"))
    assert clips.info["shotlab"]["frames_dataset"] == f"{dataset_name}-frames"
    assert frames_frame(dataset_name).info["shotlab"]["clip_dataset"] == dataset_name


def test_every_bad_clip_is_skipped_by_name_and_left_unchanged(tmp_path, dataset_name):
    root = clip_tree(tmp_path / "src", per_class=1)
    bad_folder = root / "cooking"
    bad = {case: make_bad_clip(bad_folder, case) for case in (*BAD_CASES, "partly-undecodable")}
    for extra in bad_folder.glob("whole"):  # the helper's source for the truncated clip
        for f in extra.iterdir():
            f.unlink()
        extra.rmdir()
    before = fingerprint(root)
    report = import_path(root, dataset_name, progress=False, sampling="fps:10")
    reasons = {Path(s.path).stem: s.reason for s in report.skipped}
    assert set(reasons) == set(BAD_CASES)
    for case, reason in BAD_CASES.items():
        assert reason in reasons[case], case
    assert report.added == 3  # two good clips and the partly undecodable one
    partial = store.load(dataset_name).match({"filepath": str(bad["partly-undecodable"])}).first()
    assert 0 < partial.sampled_frames <= 17  # 17 decode; near-identical neighbours dropped
    assert len(frames_frame(dataset_name).match({"clip_id": partial.id})) == partial.sampled_frames
    assert [(g["start"], g["end"]) for g in partial.gaps] == [(0.8, 1.0)]
    assert fingerprint(root) == before


def test_absurd_frame_sizes_are_refused_by_the_pixel_guard(tmp_path, dataset_name):
    root = clip_tree(tmp_path / "src", per_class=1)
    report = import_path(root, dataset_name, progress=False, max_pixels=1000, allow_empty=True)
    assert report.added == 0
    assert all("frame size too large: 64x48 pixels is over the 1,000-pixel limit" in s.reason
               for s in report.skipped) and len(report.skipped) == 2


def test_frames_are_cached_by_clip_and_sampling(tmp_path, dataset_name):
    root = clip_tree(tmp_path / "src", per_class=1)
    first = import_path(root, dataset_name, progress=False, sampling="uniform:3")
    other = f"{dataset_name}-b"
    try:
        second = import_path(root, other, progress=False, sampling="uniform:3")
        assert first.frames_decoded > 0 and second.frames_decoded == 0
        assert second.frames_added == first.frames_added == 6
        assert sorted(frames_frame(other).values("filepath")) == \
            sorted(frames_frame(dataset_name).values("filepath"))
        third = f"{dataset_name}-c"
        again = import_path(root, third, progress=False, sampling="uniform:2")
        assert again.frames_decoded > 0  # other settings: another cache entry
    finally:
        for name in (other, f"{other}-frames", f"{dataset_name}-c", f"{dataset_name}-c-frames"):
            if name in store.list_datasets():
                store.delete(name)
        store.delete(f"{dataset_name}-frames")


def test_long_clips_are_imported_with_a_warning(tmp_path, dataset_name):
    root = clip_tree(tmp_path / "src", per_class=1)
    report = import_path(root, dataset_name, progress=False, max_seconds=1.5)
    assert report.added == 2 and len(report.warnings) == 2
    assert "2.0 s is longer than --max-seconds 1.5; imported anyway" in report.warnings[0]


def test_csv_one_hot_tags_and_split_folders(tmp_path, dataset_name):
    root = tmp_path / "src"
    for i in range(3):
        write_clip(root / "clips" / f"c{i}.mkv", frames=8, fps=4)
    (root / "tags.csv").write_text("filepath,concert,sports,split\nclips/c0.mkv,1,0,train\n"
                                   "clips/c1.mkv,1,1,val\nclips/c2.mkv,0,0,test\n")
    report = import_path(root / "tags.csv", dataset_name, progress=False, multilabel=True,
                         sampling="uniform:2")
    assert report.added == 3 and report.frames_added == 6
    frames = frames_frame(dataset_name)
    by_split = {s: sorted(set(map(tuple, frames.match({"split": s}).values(
        "ground_truth.classifications.label")))) for s in ("train", "val", "test")}
    assert by_split == {"train": [("concert",)], "val": [("concert", "sports")], "test": [()]}


def test_split_keeps_a_clips_frames_together_and_the_clips_follow(tmp_path, dataset_name):
    root = clip_tree(tmp_path / "src", per_class=6)
    import_path(root, dataset_name, progress=False, sampling="uniform:3")
    split_dataset(f"{dataset_name}-frames", val=0.25, test=0.25, seed=0)
    frames = frames_frame(dataset_name)
    per_clip = {}
    for clip_id, split in zip(frames.values("clip_id"), frames.values("split")):
        per_clip.setdefault(clip_id, set()).add(split)
    assert all(len(s) == 1 for s in per_clip.values()) and len(per_clip) == 12
    assert {next(iter(s)) for s in per_clip.values()} == {"train", "val", "test"}
    clips = store.load(dataset_name)
    assert {i: {s} for i, s in zip(clips.values("id"), clips.values("split"))} == per_clip


def test_split_of_clips_keeps_a_re_upload_with_its_original(tmp_path, dataset_name):
    """A re-encoded copy of a clip (other bytes, the same frames) is one duplicate cluster on
    the frames, but splitting the clip dataset grouped by the clips' own fields: in 4 of 8
    seeds the copy and its original landed in different splits."""
    root = clip_tree(tmp_path / "src", per_class=6)
    original = root / "cooking" / "cooking_0.mp4"
    copy = write_clip(root / "cooking" / "cooking_0_reupload.mp4", frames=12, fps=6,
                      colours=[(200, 60, 0)] * 12, gop=4)
    assert copy.read_bytes() != original.read_bytes()
    import_path(root, dataset_name, progress=False, sampling="uniform:3")
    clips, frames = store.load(dataset_name), frames_frame(dataset_name)
    ids = dict(zip((Path(p).name for p in clips.values("filepath")), clips.values("id")))
    pair = {ids["cooking_0.mp4"], ids["cooking_0_reupload.mp4"]}
    frames.set_values("duplicate_cluster", ["dup-1" if c in pair else None
                                            for c in frames.values("clip_id")])  # as curate check
    for seed in range(8):
        split_dataset(dataset_name, val=0.25, test=0.25, seed=seed, overwrite=True)
        by_clip = dict(zip(clips.values("id"), clips.values("split")))
        assert by_clip[ids["cooking_0.mp4"]] == by_clip[ids["cooking_0_reupload.mp4"]], seed


def test_clips_sampled_another_way_are_refused(tmp_path, dataset_name):
    """fps:4 clips joined a uniform:8 dataset in silence; the run's clip contract took one."""
    import_path(clip_tree(tmp_path / "a", per_class=1), dataset_name, progress=False,
                sampling="uniform:3")
    with pytest.raises(InputError, match=f"dataset '{dataset_name}' holds clips sampled with "
                                         f"uniform:3; import with --sampling uniform:3"):
        import_path(clip_tree(tmp_path / "b", per_class=1, seed=50), dataset_name,
                    progress=False, sampling="uniform:2")
    assert len(store.load(dataset_name)) == 2


def test_cli_imports_clips_and_refuses_a_bad_sampling(tmp_path, dataset_name):
    root = clip_tree(tmp_path / "src", per_class=1)
    runner = CliRunner()
    result = runner.invoke(main, ["curate", "import", str(root), "--name", dataset_name,
                                  "--sampling", "every-frame"])
    assert result.exit_code == 2 and "sampling 'every-frame' is not one shotlab knows" in \
        result.output
    result = runner.invoke(main, ["curate", "import", str(root), "--name", dataset_name,
                                  "--sampling", "fps:2"])
    assert result.exit_code == 0, result.output
    frames = len(frames_frame(dataset_name))
    assert f"Frames (fps:2): {frames} frames added to '{dataset_name}-frames'" in result.output
    assert "Imported 2 new samples" in result.output and 2 <= frames <= 8
    assert "--sampling" in runner.invoke(main, ["curate", "import", "--help"]).output
    store.delete(f"{dataset_name}-frames")


@pytest.fixture
def frames_cleanup(dataset_name):
    yield
    if f"{dataset_name}-frames" in store.list_datasets():
        store.delete(f"{dataset_name}-frames")


def test_delete_of_a_clip_dataset_deletes_its_frames_too(tmp_path, dataset_name, frames_cleanup):
    root = clip_tree(tmp_path / "src", per_class=1, seed=13)
    import_path(root, dataset_name, progress=False, sampling="uniform:2")
    before = fingerprint(root)
    runner = CliRunner()
    declined = runner.invoke(main, ["curate", "delete", dataset_name], input="n\n")
    assert declined.exit_code == 1 and f"its frames dataset '{dataset_name}-frames'" in \
        declined.output
    result = runner.invoke(main, ["curate", "delete", dataset_name, "--yes"])
    assert result.exit_code == 0, result.output
    assert f"Deleted dataset '{dataset_name}' and its frames dataset '{dataset_name}-frames'" \
        in result.output
    assert {dataset_name, f"{dataset_name}-frames"}.isdisjoint(store.list_datasets())
    assert fingerprint(root) == before


def test_import_refuses_frames_left_by_a_deleted_clip_dataset(tmp_path, dataset_name,
                                                               frames_cleanup):
    """Frames left behind (deleted before `curate delete` took them, or by hand) would be taken
    for the new clips': 'same bytes' warnings, clip_ids of clips that are gone."""
    root = clip_tree(tmp_path / "src", per_class=1, seed=17)
    import_path(root, dataset_name, progress=False, sampling="uniform:2")
    store.delete(dataset_name)  # the clip dataset only
    runner = CliRunner()
    args = ["curate", "import", str(root), "--name", dataset_name, "--sampling", "uniform:2"]
    result = runner.invoke(main, args)
    assert result.exit_code != 0 and dataset_name not in store.list_datasets()
    assert f"'{dataset_name}-frames' holds frames of clips that are not in '{dataset_name}'" \
        in result.output
    assert f"`shotlab curate delete {dataset_name}-frames`" in result.output
    assert "Traceback" not in result.output

    assert runner.invoke(main, ["curate", "delete", f"{dataset_name}-frames", "--yes"]) \
        .exit_code == 0
    result = runner.invoke(main, args)
    assert result.exit_code == 0 and "same bytes" not in result.output, result.output
    clips, frames = store.load(dataset_name), frames_frame(dataset_name)
    assert set(frames.values("clip_id")) == set(clips.values("id")) and len(frames) == 4


def test_import_refuses_a_frames_dataset_of_something_else(tmp_path, dataset_name,
                                                           frames_cleanup):
    store.create(f"{dataset_name}-frames", "multiclass").add_sample(
        store.fiftyone().Sample(filepath=str(tmp_path / "other.jpg")))
    root = clip_tree(tmp_path / "src", per_class=1, seed=19)
    with pytest.raises(InputError, match=f"'{dataset_name}-frames' exists but is not the "
                                         f"frames dataset of '{dataset_name}'; delete it"):
        import_path(root, dataset_name, progress=False, sampling="uniform:2")
    assert len(frames_frame(dataset_name)) == 1


def test_a_clip_follows_its_active_frames_split_not_an_excluded_frames(tmp_path, dataset_name,
                                                                        frames_cleanup):
    """`curate split` leaves excluded frames as they were: a clip whose last frame is excluded
    with a stale split took that split."""
    root = clip_tree(tmp_path / "src", per_class=3, seed=23)
    import_path(root, dataset_name, progress=False, sampling="uniform:3")
    frames_name = f"{dataset_name}-frames"
    split_dataset(frames_name, val=0.34, test=0.34, seed=0)
    frames, clips = frames_frame(dataset_name), store.load(dataset_name)
    clip_id = clips.first().id
    mine = frames.match({"clip_id": clip_id})
    split = mine.first()["split"]
    stale = next(s for s in ("train", "val", "test") if s != split)
    last = frames[mine.values("filepath")[-1]]
    last.tags.append("exclude")
    last["split"] = stale
    last.save()
    split_dataset(frames_name, val=0.34, test=0.34, seed=0)  # keeps the splits; clips follow
    assert store.load(dataset_name)[clips.first().filepath]["split"] == split


def test_check_of_a_clip_dataset_checks_its_frames(tmp_path, dataset_name, frames_cleanup):
    """`curate check CLIPS` gave the clip files to the image checks and blamed the user ("the
    file changed or went missing since import"); it checks the frames dataset, and says so."""
    root = clip_tree(tmp_path / "src", per_class=2, seed=21)
    import_path(root, dataset_name, progress=False, sampling="uniform:2")
    before = fingerprint(root)
    result = CliRunner().invoke(main, ["curate", "check", dataset_name, "--checks",
                                       "quality,duplicates", "--report",
                                       str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert f"'{dataset_name}' holds clips: checking its frames, dataset " \
           f"'{dataset_name}-frames'" in result.stderr
    assert f"of '{dataset_name}-frames'" in result.stdout and "changed" not in result.output
    # a frame is named by its clip and time, not frame_000001.jpg
    assert "at 0.0 s" in result.stdout and "frame_0" not in result.stdout
    report = (tmp_path / "r.html").read_text()  # the report's cards too
    assert " at 0.0 s" in report and "frame_0" not in report
    assert fingerprint(root) == before


def test_frames_are_stored_with_the_pixels_predict_decodes(tmp_path, dataset_name):
    """Frames were stored as JPEG (quality 92): the model was trained, its clip thresholds chosen
    and its bundle gated on pixels `predict` and `serve` never see (a small bird's score 0.231
    stored, 0.316 decoded), so the report's clip recall was not the bundle's."""
    import numpy as np
    from PIL import Image

    from shotlab.core.clips import sample_clip

    texture = np.random.default_rng(3).integers(0, 256, (48, 128, 3), np.uint8)
    root = tmp_path / "src"
    for name in ("a", "b"):
        write_clip(root / name / f"{name}.mp4", frames=12, fps=6,
                   pixels=lambda i: np.ascontiguousarray(np.roll(texture, 3 * i, 1)[:, :64]))
    import_path(root, dataset_name, progress=False, sampling="uniform:4")
    frames = frames_frame(dataset_name)
    decoded = {round(f.timestamp, 6): f.pixels for f in
               sample_clip(root / "a" / "a.mp4", "uniform:4").frames}
    stored = [(round(t, 6), p) for t, p, c in zip(frames.values("timestamp"),
                                                   frames.values("filepath"),
                                                   frames.values("clip_path"))
              if c.endswith("a.mp4")]
    assert len(stored) == len(decoded) == 4
    assert set(frames.values("metadata.mime_type")) == {"image/png"}  # it said image/jpeg
    for timestamp, path in stored:
        assert path.endswith(".png")
        np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")),
                                      decoded[timestamp])


def test_clips_added_to_a_dataset_of_jpeg_frames_get_jpeg_frames_and_a_warning(tmp_path,
                                                                               dataset_name):
    """A clip dataset imported before frames were lossless holds JPEG frames: clips added to it
    got PNG frames beside them, without a word, and a byte copy of a clip already there got
    frames of its own (its new cache path matched no old one)."""
    from PIL import Image

    first = clip_tree(tmp_path / "src", per_class=1)
    import_path(first, dataset_name, progress=False, sampling="uniform:4")
    frames = frames_frame(dataset_name)
    for sample in frames.iter_samples(autosave=True):  # as an import before 2026-12-02 left it
        old = Path(sample.filepath)  # .../uniform-4-png/frame_000000.png
        jpeg = old.parent.with_name(old.parent.name.removesuffix("-png")) / old.with_suffix(
            ".jpg").name
        jpeg.parent.mkdir(parents=True, exist_ok=True)
        Image.open(old).convert("RGB").save(jpeg, quality=92)
        sample.filepath = str(jpeg)
    more = clip_tree(tmp_path / "more", per_class=1, seed=40)
    report = import_path(more, dataset_name, progress=False, sampling="uniform:4")
    assert report.frames_added == 8
    paths = frames_frame(dataset_name).values("filepath")
    assert paths and all(p.endswith(".jpg") for p in paths)  # one kind of pixels
    assert any("holds JPEG frames (imported before 2026-12-02" in w for w in report.warnings)
    added = frames_frame(dataset_name).match({"$expr": {"$regexMatch": {
        "input": "$clip_path", "regex": "/more/"}}})
    assert set(added.values("metadata.mime_type")) == {"image/jpeg"}
