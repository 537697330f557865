"""Predict on clips: pooled scores through the one decision rule, segments, early exit, and the
command end to end (decisions, review queue, --dataset, --explain), on the shared colour bundle
(blue, green, red; red unsafe)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.export.predict_clips import clip_contract, clip_thresholds, predict_clips
from shotlab.runtime.bundle import load_bundle
from shotlab.runtime.decide import decide
from shotlab.runtime.kinds import KINDS
from shotlab.runtime.runners import OnnxRunner
from tests.clipmaking import write_clip
from tests.train.trainsets import COLOURS, noisy_colour

FPS = 8


def colour_clip(path, colours: list[str], seed: int = 0):
    """One second per entry of `colours`, each frame that colour with fresh noise."""
    rng = np.random.default_rng(seed)
    names = [c for c in colours for _ in range(FPS)]
    return write_clip(path, frames=len(names), fps=FPS, size=(48, 48), gop=FPS,
                      pixels=lambda i: noisy_colour(COLOURS[names[i]], rng, 48))


@pytest.fixture
def clips(tmp_path):
    folder = tmp_path / "clips"
    return {"violent": colour_clip(folder / "violent.mp4", ["green", "green", "red", "green"]),
            "calm": colour_clip(folder / "calm.mp4", ["blue"] * 3, seed=1),
            "early": colour_clip(folder / "early.mp4", ["red"] + ["green"] * 5, seed=2)}


def test_pooled_scores_follow_the_runner_and_the_rule(exported, clips):
    bundle = load_bundle(exported.path)
    contract = clip_contract(bundle, sampling="fps:4")
    assert contract.aggregation == {"blue": "mean", "green": "mean", "red": "max"}
    result = predict_clips(bundle, [clips["violent"], clips["calm"]], contract=contract)
    violent, calm = result.decisions
    inputs = KINDS["clip"].load([clips["violent"]], bundle.preprocessing, sampling="fps:4",
                                progress=False)
    frame_probs = OnnxRunner(bundle)(inputs.arrays)
    expected = [frame_probs[:, 0].mean(), frame_probs[:, 1].mean(), frame_probs[:, 2].max()]
    np.testing.assert_allclose([violent["scores"][c] for c in bundle.classes], expected,
                               atol=1e-6)
    (rule,) = decide(np.array([expected]), bundle.classes, task="multiclass",
                     thresholds=clip_thresholds(bundle), pooled=True)
    assert {k: violent[k] for k in ("labels", "flagged", "needs_review")} == \
        {k: rule[k] for k in ("labels", "flagged", "needs_review")}
    assert violent["flagged"] == ["red"] and violent["kind"] == "clip"
    assert violent["frames"] == [round(t, 3) for _, t in inputs.frames]
    assert calm["labels"] == ["blue"] and calm["flagged"] == [] and calm["segments"] == []


def test_segments_cover_the_seconds_the_subject_is_seen(exported, clips):
    bundle = load_bundle(exported.path)
    (decision,) = predict_clips(bundle, [clips["violent"]],
                                contract=clip_contract(bundle, sampling="fps:4")).decisions
    flagged = [s for s in decision["segments"] if s["flagged"]]
    assert len(flagged) == 1 and flagged[0]["class"] == "red"
    # red is on screen from 2.0 s to 2.875 s; fps:4 samples it at 2.0, 2.25, 2.5 and 2.75 s,
    # and the segment runs halfway to the samples either side (1.75 and 3.0 s)
    assert (flagged[0]["start"], flagged[0]["end"]) == (1.875, 2.875)
    assert decision["duration"] == pytest.approx(4.0)


def test_a_still_shot_is_covered_to_its_end_though_its_repeats_go_unscored(exported, tmp_path):
    """Near-identical repeats of a sampled frame are dropped unscored; the segment ended halfway
    from the first red sample to the next different picture, and a reviewer told to watch
    1.7-4.6 s missed the rest of a still red shot on screen until 6 s."""
    bundle = load_bundle(exported.path)
    still = noisy_colour(COLOURS["red"], np.random.default_rng(7), 48)  # one picture, held
    rng = np.random.default_rng(8)
    names = ["green"] * 2 + ["red"] * 4 + ["green"] * 2  # a second each
    path = write_clip(tmp_path / "still.mp4", frames=len(names) * FPS, fps=FPS, size=(48, 48),
                      gop=FPS, pixels=lambda i: still if names[i // FPS] == "red"
                      else noisy_colour(COLOURS["green"], rng, 48))
    (decision,) = predict_clips(bundle, [path], contract=clip_contract(
        bundle, sampling="uniform:8")).decisions
    red = [t for t in decision["frames"] if 2.0 <= t < 6.0]
    assert len(red) == 1  # the later red samples were repeats, dropped before scoring
    (flagged,) = [s for s in decision["segments"] if s["flagged"]]
    after = min(t for t in decision["frames"] if t >= 6.0)
    last_red_sample = max(t for t in np.linspace(0, decision["duration"], 8) if t < 6.0)
    assert flagged["start"] < 2.0 + 1 / FPS
    assert flagged["end"] == pytest.approx((last_red_sample + after) / 2, abs=0.15)
    assert flagged["end"] > 6.0


def test_early_exit_stops_decoding_on_a_clear_flag(exported, clips):
    bundle = load_bundle(exported.path)
    contract = clip_contract(bundle, sampling="fps:4", margin=0.0)
    (full,) = predict_clips(bundle, [clips["early"]], contract=contract).decisions
    (early,) = predict_clips(bundle, [clips["early"]], contract=contract,
                             early_exit=True).decisions
    assert full["flagged"] == early["flagged"] == ["red"]
    assert full["early_exit"] is None and early["early_exit"] == {"class": "red", "at": 0.0}
    assert early["frames"] == [0.0] and len(full["frames"]) > 10
    assert early["frames_decoded"] < full["frames_decoded"] / 4
    # the flag's stretch runs halfway to the next planned sample (0.25 s at fps:4): it was the
    # instant 0.0-0.0; and the frames decoded no longer count a probe of the first frame
    flagged = [s for s in early["segments"] if s["flagged"]]
    assert [(s["start"], s["end"]) for s in flagged] == [(0.0, 0.125)]
    assert early["frames_decoded"] == 1, early["frames_decoded"]
    (calm,) = predict_clips(bundle, [clips["calm"]], contract=contract, early_exit=True).decisions
    assert calm["early_exit"] is None and len(calm["frames"]) >= 10  # nothing to stop on


def test_bad_clips_are_listed_not_raised(exported, clips, tmp_path):
    bundle = load_bundle(exported.path)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a clip")
    result = predict_clips(bundle, [bad, clips["calm"]])
    assert len(result.decisions) == 1
    assert result.bad == [(str(bad), "not a video FFmpeg can read (Invalid data found when "
                                     "processing input)")]


@pytest.mark.fiftyone
def test_predict_command_on_clips_end_to_end(exported, clips, tmp_path, dataset_name):
    out = tmp_path / "out" / "decisions.jsonl"
    (tmp_path / "clips" / "notes.mp4").write_text("not a clip")
    result = CliRunner().invoke(cli, [
        "predict", str(exported.path), str(tmp_path / "clips"), "--out", str(out),
        "--sampling", "fps:4", "--aggregate", "red=topk:2", "--dataset", dataset_name,
        "--explain", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["clips"], summary["images"], summary["bad"]) == (3, 0, 1)
    decisions = {json.loads(line)["path"].split("/")[-1]: json.loads(line)
                 for line in out.read_text().splitlines()}
    assert decisions["violent.mp4"]["clip"]["aggregation"]["red"] == "topk:2"
    queue = [json.loads(line) for line in (out.parent / "review_queue.jsonl").read_text()
             .splitlines()]
    assert {q["path"].split("/")[-1] for q in queue} >= {"violent.mp4", "early.mp4"}
    assert all(q["segments"] for q in queue)
    (explained,) = decisions["violent.mp4"]["explained_frames"]
    assert explained["class"] == "red" and 2.0 <= explained["timestamp"] <= 2.75
    assert summary["explanations"]["stored"] == sum(len(q["explained_frames"]) for q in queue)
    from shotlab.explain.store import ExplanationStore

    with ExplanationStore(out.parent / "explanations.sqlite") as stored:
        (cam,) = stored.explanations(decisions["violent.mp4"]["decision_id"])
    assert (cam.target, cam.params["timestamp"]) == ("red", explained["timestamp"])
    from shotlab.core import store

    dataset = store.load(dataset_name)
    assert dataset.media_type == "video" and len(dataset) == 3
    sample = dataset.match({"filepath": decisions["violent.mp4"]["path"]}).first()
    assert sample.flagged == ["red"] and sample.segments[0]["class"] == "red"
    # a corrupt image among the clips is a bad file: the video dataset still takes the clips
    # (it was refused before deciding, as if the run held images)
    (tmp_path / "clips" / "thumb.jpg").write_bytes(b"\xff\xd8 cut short")
    again = CliRunner().invoke(cli, ["predict", str(exported.path), str(tmp_path / "clips"),
                                     "--dataset", dataset_name, "--out",
                                     str(tmp_path / "again.jsonl"), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["bad"] == 2 and len(store.load(dataset_name)) == 3


def test_predict_command_refuses_a_bad_aggregation(exported, clips):
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(clips["calm"]),
                                      "--aggregate", "red=median"])
    assert result.exit_code == 2
    assert "aggregation 'median' is not one shotlab knows; use mean, max or topk:K" in \
        result.output


def test_predict_command_prints_the_seconds_to_watch(exported, clips, tmp_path):
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(clips["violent"]),
                                      str(clips["calm"]), "--sampling", "fps:4", "--out",
                                      str(out)])
    assert result.exit_code == 0, result.output
    assert "2 clips predicted" in result.stdout and "images" not in result.stdout.split(";")[0]
    assert f"  {clips['violent']}: watch red 1.9-2.9 s" in result.stdout
    assert str(clips["calm"]) not in result.stdout  # nothing to watch there
    assert "sampled up to" not in result.stderr  # 0.25 s apart


def test_predict_notes_when_frames_are_sampled_far_apart(exported, tmp_path):
    """uniform:8 on a 29 s clip samples every 4.1 s: a 2 s scene can fall between two samples,
    and nothing said so."""
    long = colour_clip(tmp_path / "long.mp4", ["green"] * 29, seed=3)
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(long), "--json",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (decision,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert data["sampling_step"] == decision["sampling_step"]
    assert 3.9 < data["sampling_step"] < 4.3 and data["sampling_step_clip"] == str(long)
    shown = CliRunner().invoke(cli, ["predict", str(exported.path), str(long), "--out", str(out)])
    assert f"note: frames were sampled up to {data['sampling_step']:.1f} s apart" in shown.stderr
    assert "--sampling fps:1" in shown.stderr


def test_a_still_shot_sampled_every_second_is_not_called_sampled_far_apart(exported, tmp_path):
    """The note measured the gaps between *scored* frames; a still shot's repeats are sampled
    (and on screen) but not scored, so `--sampling fps:1` on it said "sampled up to 8.0 s
    apart ... --sampling fps:1 samples every second"."""
    held = noisy_colour(COLOURS["green"], np.random.default_rng(7), 48)  # one picture, held
    still = write_clip(tmp_path / "still.mp4", frames=8 * FPS, fps=FPS, size=(48, 48), gop=FPS,
                       pixels=lambda i: held)
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(still), "--sampling",
                                      "fps:1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (decision,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(decision["frames"]) < 4 and decision["sampling_step"] <= 1.01
    assert "sampled up to" not in result.stderr


def test_seconds_the_model_never_saw_are_said_not_only_stored(exported, tmp_path):
    """A clip with frames that would not decode was decided on the rest, and the summary said
    nothing ('0 flagged, 0 need review, 0 bad files'): the gaps were only in the JSON."""
    from tests.clipmaking import damage_packets

    path = write_clip(tmp_path / "in" / "p.mkv", frames=20, codec="mjpeg")
    damage_packets(path, [8, 9, 10, 11, 12])
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(path), "--sampling",
                                      "fps:10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (decision,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert decision["gaps"]
    assert f"note: {path}: 0.4 s the model never saw (" in result.stderr
    assert "failed to decode" in result.stderr


def test_predict_help_lists_the_clip_options():
    text = CliRunner().invoke(cli, ["predict", "--help"]).output
    for option in ("--sampling", "--aggregate", "--early-exit", "--margin"):
        assert option in text


def test_predict_holds_images_and_clip_frames_to_max_pixels(exported, clips, tmp_path):
    """predict had no --max-pixels: an image or clip over the default limit could be imported
    (curate import --max-pixels) and served, but never decided by predict."""
    from PIL import Image

    folder = tmp_path / "inbox"
    folder.mkdir()
    Image.new("RGB", (48, 40), (200, 30, 30)).save(folder / "photo.png")  # 1,920 pixels
    clip = next(iter(clips.values()))  # 48 x 48 = 2,304 pixels a frame
    args = ["predict", str(exported.path), str(folder), str(clip), "--json"]
    held = CliRunner().invoke(cli, [*args, "--max-pixels", "1000", "--allow-empty",
                                    "--out", str(tmp_path / "held.jsonl")])
    assert held.exit_code == 0, held.output
    reasons = {b["path"].rsplit("/", 1)[-1]: b["reason"] for b in json.loads(held.output)["bad_files"]}
    assert "over the 1,000-pixel limit" in reasons["photo.png"]
    assert "over the 1,000-pixel limit per frame" in reasons[clip.name]
    let_through = CliRunner().invoke(cli, [*args, "--max-pixels", "3072",
                                           "--out", str(tmp_path / "all.jsonl")])
    assert let_through.exit_code == 0 and json.loads(let_through.output)["bad"] == 0


def animated_gif(path, colours: list[str], seed: int = 0, flat: bool = False, **options):
    """An animation (GIF, or the format `path`'s suffix names) of one frame per entry of
    `colours`, a quarter second each; `flat`: each frame one colour, no noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    frames = [Image.new("RGB", (48, 48), COLOURS[c]) if flat else
              Image.fromarray(noisy_colour(COLOURS[c], rng, 48)) for c in colours]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=250, loop=0,
                   **options)
    return path


def test_an_animated_gif_is_decided_as_a_clip_not_by_its_first_frame(exported, tmp_path):
    """A GIF whose first frame is green and the rest red was decided on its first frame alone:
    green, nothing flagged. It is scored frame by frame, as a clip, and flagged."""
    from PIL import Image

    gif = animated_gif(tmp_path / "in" / "anim.gif", ["green"] + ["red"] * 7)
    still = tmp_path / "in" / "still.gif"
    Image.open(gif).convert("RGB").save(still)  # its first frame alone
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(gif.parent),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    decided = {Path(d["path"]).name: d for d in map(json.loads, open(out))}
    assert decided["anim.gif"]["kind"] == "clip" and decided["anim.gif"]["flagged"] == ["red"]
    assert decided["anim.gif"]["segments"][0]["class"] == "red"
    assert decided["still.gif"].get("kind") is None and decided["still.gif"]["flagged"] == []


@pytest.mark.fiftyone
def test_an_animated_gif_among_images_is_refused_for_a_dataset_before_deciding(
        exported, tmp_path, dataset_name):
    """Images with an animated GIF among them (a clip, frame by frame) and `--dataset` failed
    with "images or clips, not both" after the whole run; it is refused before deciding, with
    the GIF named, and nothing is written."""
    from PIL import Image

    from shotlab.core import store

    gif = animated_gif(tmp_path / "in" / "anim.gif", ["green", "red"])
    Image.open(gif).convert("RGB").save(tmp_path / "in" / "still.png")
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(gif.parent),
                                      "--dataset", dataset_name, "--out", str(out)])
    assert result.exit_code == 2
    assert f"not both in one run (a FiftyOne dataset holds one media type; first clip: {gif}; " \
           f"an animated GIF or PNG is a clip" in " ".join(result.output.split())
    assert not out.exists() and dataset_name not in store.list_datasets()

    def predict(path):
        return CliRunner().invoke(cli, ["predict", str(exported.path), str(path), "--dataset",
                                        dataset_name, "--out", str(out)])

    (tmp_path / "in" / "anim.gif").rename(tmp_path / "anim.gif")
    (tmp_path / "in" / "upload.mp4").write_bytes(b"\0" * 64)  # a clip that never arrived
    images = predict(tmp_path / "in")  # an image dataset now: the bad clip skipped, named
    assert images.exit_code == 0 and "upload.mp4" in images.output
    gif = tmp_path / "anim.gif"
    out.unlink()
    into_images = predict(gif)
    assert into_images.exit_code == 2 and f"dataset '{dataset_name}' holds images, not clips" \
        in into_images.output and not out.exists()


def test_flat_recoloured_frames_are_not_dropped_as_repeats_and_stills_stay_stills(exported,
                                                                                 tmp_path):
    """pHash reads grey levels: a flat green frame turned red hashed the same and was dropped as
    a repeat, so the red animation passed. A phone JPEG's extra image (MPO) is no animation, and
    an animated WebP, which this FFmpeg cannot decode, is named with the reason."""
    from PIL import Image

    folder = tmp_path / "in"
    animated_gif(folder / "flat.png", ["green"] + ["red"] * 3, flat=True)  # an APNG
    animated_gif(folder / "anim.webp", ["green", "red"], flat=True)
    photo = Image.new("RGB", (48, 48), COLOURS["green"])
    photo.save(folder / "photo.jpg", "MPO", save_all=True, append_images=[photo.copy()])
    assert Image.open(folder / "photo.jpg").format == "MPO"
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(folder), "--out",
                                      str(out), "--json"])
    assert result.exit_code == 0, result.output
    decided = {Path(d["path"]).name: d for d in map(json.loads, open(out))}
    assert decided["flat.png"]["kind"] == "clip" and decided["flat.png"]["flagged"] == ["red"]
    assert decided["photo.jpg"].get("kind") is None
    (bad,) = json.loads(result.output)["bad_files"]
    assert bad["path"].endswith("anim.webp") and "an animated WebP" in bad["reason"]


def test_predict_holds_clips_to_the_frame_limit_and_can_raise_it(exported, clips, tmp_path):
    """A clip's frames were unbounded: 12,000 frames behind one keyframe cost 15 s of CPU. Over
    --max-clip-frames (default 18,000) a clip is skipped with the reason, nothing decoded."""
    clip = clips["violent"]  # 32 frames
    args = ["predict", str(exported.path), str(clip), "--json"]
    held = CliRunner().invoke(cli, [*args, "--max-clip-frames", "31", "--allow-empty",
                                    "--out", str(tmp_path / "held.jsonl")])
    assert held.exit_code == 0, held.output
    (bad,) = json.loads(held.output)["bad_files"]
    from shotlab.core.clips import RAISE_FRAMES

    assert bad["reason"] == f"more than 31 frames, the limit per clip ({RAISE_FRAMES})"
    raised = CliRunner().invoke(cli, [*args, "--max-clip-frames", "32",
                                      "--out", str(tmp_path / "all.jsonl")])
    assert raised.exit_code == 0 and json.loads(raised.output)["bad"] == 0, raised.output


def test_a_tiff_of_several_pages_is_a_bad_file_not_its_first_page(exported, tmp_path):
    """A green first page hid a red second one: predict decided the TIFF on its first page
    alone, so the red page passed unflagged. Now the file is named with the reason; a one-page
    red TIFF is still decided, and flagged."""
    from tests.security.test_formats import tiff_pages_file

    folder = tmp_path / "in"
    folder.mkdir()
    tiff_pages_file(folder / "pages.tif", [COLOURS["green"], COLOURS["red"]])
    tiff_pages_file(folder / "red.tif", [COLOURS["red"]])
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(folder), "--out",
                                      str(out), "--json"])
    assert result.exit_code == 0, result.output
    decided = {Path(d["path"]).name: d for d in map(json.loads, open(out))}
    assert list(decided) == ["red.tif"] and decided["red.tif"]["flagged"] == ["red"]
    (bad,) = json.loads(result.output)["bad_files"]
    assert bad["path"].endswith("pages.tif") and "a TIFF of 2 pages" in bad["reason"]
