"""The page's work without a browser: the decision is predict's, the maps and scores are
explain's, a stored decision is read read-only, and the command refuses bad input up front."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.errors import BadImageError, InputError
from shotlab.page.deciding import bars, decide
from shotlab.page.explaining import explain_decided
from shotlab.page.launch import flag_options
from shotlab.page.model import bundle_path, open_model
from shotlab.page.panels import PANELS, panels_for, report_samples
from shotlab.page.stored import stored_decision


@pytest.fixture(scope="module")
def model(exported, predicted):
    return open_model(exported.path, store=predicted["store"])


def red(inbox):
    return sorted((inbox / "new" / "red").glob("*.png"))[0]


def test_decision_is_predicts_record(model, inbox, predicted):
    for path in sorted(inbox.rglob("*.png")):
        decided = decide(model, path.name, path.read_bytes(), path)
        expected = predicted["decisions"][path.name]
        got = decided.record
        for key in ("labels", "flagged", "needs_review", "sha256", "path", "model_sha256",
                    "policy_version", "runtime", "bundle"):
            assert got[key] == expected[key], key
        assert got["scores"] == pytest.approx(expected["scores"], abs=1e-6)
        assert got["decision_id"] != expected["decision_id"]  # a new decision, not a lookup


def test_bars_carry_threshold_and_band(model, inbox):
    decided = decide(model, "red.png", red(inbox).read_bytes())
    rows = bars(model.bundle, decided.record)
    assert [r["class"] for r in rows][0] == "red"  # the policy category first
    first = rows[0]
    policy = model.bundle.thresholds["red"]
    assert first["threshold"] == pytest.approx(policy["threshold"])
    assert first["band"] == pytest.approx(policy["review_band"])
    assert first["flagged"] == ("red" in decided.record["flagged"])
    assert all(r["band"] is None and r["threshold"] is None for r in rows[1:])


def test_corrupt_bytes_give_predicts_reason(model, inbox, predicted):
    with pytest.raises(BadImageError) as caught:
        decide(model, "corrupt.jpg", (inbox / "corrupt.jpg").read_bytes())
    assert str(caught.value) == f"corrupt.jpg: {predicted['bad']['corrupt.jpg']}"
    with pytest.raises(BadImageError, match="empty.png: empty"):
        decide(model, "empty.png", b"")


def test_gradcam_and_lime_with_scores_and_progress(model, inbox):
    decided = decide(model, "red.png", red(inbox).read_bytes())
    seen = []
    result = explain_decided(model, decided, ["gradcam", "lime"], score=True,
                             progress=lambda fraction, text: seen.append((fraction, text)))
    assert result["target"] == "red"
    assert set(result["maps"]) == {"gradcam", "lime"}
    for heatmap in result["maps"].values():
        assert heatmap.shape == decided.array.shape[1:] and 0 <= heatmap.min() <= heatmap.max() <= 1
    assert set(result["faithfulness"]) == {"gradcam", "lime"}
    assert {"deletion_auc", "random_deletion_auc", "insertion_auc"} <= set(
        result["faithfulness"]["lime"])
    assert set(result["sanity"]) == {"gradcam"} and "passed" in result["sanity"]["gradcam"]
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(text.startswith("lime: ") and "/1000 model runs" in text for _, text in seen)


def test_same_maps_as_explain_cli(model, inbox, exported):
    """The page's Grad-CAM is the map `shotlab explain BUNDLE IMAGE` computes for that class."""
    from shotlab.explain.report import compute_maps
    from shotlab.explain.sources import load_inputs, open_source

    path = red(inbox)
    page = explain_decided(model, decide(model, path.name, path.read_bytes()), ["gradcam"])
    source = open_source(exported.path)
    _, arrays, _ = load_inputs(source, [path])
    maps, _ = compute_maps(source, np.stack(arrays), [source.target_index(page["target"])],
                           ["gradcam"], None)
    assert np.allclose(page["maps"]["gradcam"], maps["gradcam"][0], atol=1e-5)


def test_stored_decision_read_only(model, predicted):
    flagged = [r for r in predicted["decisions"].values() if r["flagged"]]
    assert flagged, "the tiny model flags its red images"
    before = predicted["store"].read_bytes()
    shown = stored_decision(model.store, flagged[0]["decision_id"])
    assert [e.method for e in shown.explanations] == ["gradcam"]
    assert shown.decision["sha256"] == flagged[0]["sha256"]
    assert shown.backdrop.dtype == np.uint8 and shown.backdrop.shape[2] == 3
    assert predicted["store"].read_bytes() == before
    with pytest.raises(InputError, match="nothing stored"):
        stored_decision(model.store, "0" * 32)
    with pytest.raises(InputError, match="expected the decision_id"):
        stored_decision(model.store, " ")
    with pytest.raises(InputError, match="--store"):
        stored_decision(None, flagged[0]["decision_id"])


def test_a_map_is_not_drawn_over_a_changed_image_and_a_zip_is_unpacked_once(model, predicted,
                                                                          exported):
    """A stored map was drawn over whatever image now sat at the path; and every page
    interaction unpacked the decision's zipped bundle again into /tmp."""
    import tempfile

    from shotlab.explain.show import backdrop, image_decided

    flagged = next(r for r in predicted["decisions"].values() if r["flagged"])
    calm = next(r for r in predicted["decisions"].values() if not r["flagged"])
    path, original = Path(flagged["path"]), Path(flagged["path"]).read_bytes()
    try:
        path.write_bytes(Path(calm["path"]).read_bytes())
        shown = stored_decision(model.store, flagged["decision_id"])
        assert (shown.backdrop == 128).all() and "no longer the image decided" in shown.note
    finally:
        path.write_bytes(original)
    shown = stored_decision(model.store, flagged["decision_id"])
    assert shown.note is None and not (shown.backdrop == 128).all()
    unpacked = lambda: set(Path(tempfile.gettempdir()).glob("shotlab-bundle-*"))  # noqa: E731
    before = unpacked()
    pictures = [backdrop(image_decided(path, flagged["sha256"]), exported.zip_path, (64, 64))
                for _ in range(3)]
    assert len(unpacked() - before) <= 1 and all((p == pictures[0]).all() for p in pictures)


def test_report_samples_are_the_reports_images(model):
    samples = report_samples(model.bundle)
    assert samples and all(p.is_file() for p in samples)


def test_run_folder_means_its_bundle(trained_run, tmp_path):
    run = shutil.copytree(trained_run, tmp_path / "run", ignore=shutil.ignore_patterns("bundle"))
    with pytest.raises(InputError, match="shotlab export"):
        bundle_path(run)
    (run / "bundle").mkdir()
    assert bundle_path(run) == run / "bundle"


def test_unknown_kind_has_no_panel():
    with pytest.raises(InputError, match="no view for input kind 'hologram'"):
        panels_for("hologram")


def test_an_image_model_offers_the_image_and_the_clip_panel():
    assert [p.kind for p in panels_for("image")] == ["image", "clip"]


def test_clip_decision_is_predicts_record_with_its_timeline(model, tmp_path):
    from shotlab.export.predict_clips import predict_clips
    from shotlab.page.panels import timeline_figure
    from tests.export.test_predict_clips import colour_clip

    clip = colour_clip(tmp_path / "violent.mp4", ["green", "green", "red", "green"])
    decided = PANELS["clip"].decide(model, clip.name, clip.read_bytes(), clip)
    (expected,) = predict_clips(model.bundle, [clip]).decisions
    for key in ("labels", "flagged", "needs_review", "sha256", "path", "segments", "frames",
                "duration", "kind", "model_sha256"):
        assert decided.record[key] == expected[key], key
    assert decided.record["scores"] == pytest.approx(expected["scores"], abs=1e-6)
    times, probs = decided.timeline
    assert times == pytest.approx(expected["frames"], abs=1e-3) and probs.shape[0] == len(times)
    red_index = model.bundle.classes.index("red")
    top = int(probs[:, red_index].argmax())
    np.testing.assert_allclose(model.runner(decided.array[None])[0], probs[top], atol=1e-6)
    figure = timeline_figure(model.bundle.classes, model.bundle.thresholds, decided.record,
                             times, probs)
    assert len(figure.axes[0].lines) >= len(model.bundle.classes)
    assert not list(tmp_path.glob("upload*"))  # the temporary file is not left beside the clip


# The contract of a run on clips (train/clip_eval.py writes it as clip.json): thresholds chosen
# on validation clips, here far from the frame ones.
CLIP_CONTRACT = {"sampling": "uniform:4", "aggregation": {"red": "max"},
                 "thresholds": {"red": {"threshold": 0.995, "review_band": [0.99, 0.998]}}}


@pytest.fixture(scope="module")
def clip_model(trained_run, tmp_path_factory):
    """The shared run as if trained on clips (its clip.json beside it), exported: a bundle
    whose clips are decided under other thresholds than its frames."""
    import json

    from shotlab.export.exporter import export_run

    root = tmp_path_factory.mktemp("clip-run")
    run_dir = Path(shutil.copytree(trained_run, root / "run"))
    (run_dir / "clip.json").write_text(json.dumps(CLIP_CONTRACT))
    exported = export_run(run_dir, out=root / "bundle", explain=False, progress=False)
    return open_model(exported.path)


def test_a_clips_bars_carry_the_thresholds_it_was_decided_under(clip_model, tmp_path):
    """The bars drew the frame thresholds while the decision, the Watch line and the timeline
    used the clip contract's: a score under its bar's tick could read as flagged."""
    from shotlab.export.predict_clips import clip_thresholds
    from tests.export.test_predict_clips import colour_clip

    bundle = clip_model.bundle
    assert clip_thresholds(bundle) == CLIP_CONTRACT["thresholds"] != bundle.thresholds
    clip = colour_clip(tmp_path / "violent.mp4", ["green", "green", "red", "green"])
    decided = PANELS["clip"].decide(clip_model, clip.name, clip.read_bytes(), clip)
    red_row = next(r for r in bars(bundle, decided.record) if r["class"] == "red")
    assert red_row["threshold"] == pytest.approx(0.995)
    assert red_row["band"] == pytest.approx([0.99, 0.998])
    assert red_row["flagged"] == ("red" in decided.record["flagged"])
    image = decide(clip_model, "red.png", write_red(tmp_path / "red.png"))  # a frame's: its own
    frame_row = next(r for r in bars(bundle, image.record) if r["class"] == "red")
    assert frame_row["threshold"] == pytest.approx(bundle.thresholds["red"]["threshold"])


def write_red(path: Path) -> bytes:
    from PIL import Image

    from tests.train.trainsets import COLOURS, noisy_colour

    Image.fromarray(noisy_colour(COLOURS["red"], np.random.default_rng(0), 48)).save(path)
    return path.read_bytes()


def test_an_animated_gif_is_decided_in_the_clip_panel_as_predict_decides_it(model, tmp_path):
    """The image panel decided it on its first frame (green) where predict flags it (red)."""
    from tests.export.test_predict_clips import animated_gif

    gif = animated_gif(tmp_path / "anim.gif", ["green"] + ["red"] * 7)
    with pytest.raises(BadImageError, match="anim.gif: an animated image: .*clip panel"):
        decide(model, gif.name, gif.read_bytes())
    decided = PANELS["clip"].decide(model, gif.name, gif.read_bytes(), gif)
    assert decided.record["kind"] == "clip" and decided.record["flagged"] == ["red"]

def test_a_corrupt_clip_gives_predicts_reason(model, tmp_path):
    from shotlab.export.predict_clips import predict_clips

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    (name, reason), = predict_clips(model.bundle, [bad]).bad
    with pytest.raises(BadImageError) as caught:
        PANELS["clip"].decide(model, "broken.mp4", bad.read_bytes())
    assert caught.value.reason == reason and str(caught.value) == f"broken.mp4: {reason}"


def test_a_clip_over_the_frame_limit_is_refused_as_predict_refuses_it(model, tmp_path):
    """The page decodes uploads with predict's reader, so it is held to the same frame limit
    (18,000): refused with the reason before a frame is decoded."""
    from tests.core.test_clips import over_the_frame_limit

    clip = over_the_frame_limit(tmp_path / "long.mp4")
    with pytest.raises(BadImageError, match="more than 18,000 frames, the limit per clip"):
        PANELS["clip"].decide(model, "long.mp4", clip.read_bytes())


def test_safe_settings():
    flags = flag_options("127.0.0.1", 8501, 16)
    assert flags["server_address"] == "127.0.0.1" and flags["server_headless"] is True
    assert flags["browser_gatherUsageStats"] is False
    assert flags["server_maxUploadSize"] == 16 and flags["server_fileWatcherType"] == "none"
    # pinned, so a ~/.streamlit or project config.toml cannot turn them off
    assert flags["server_enableCORS"] is True and flags["server_enableXsrfProtection"] is True
    assert flags["server_enableAgentApi"] is False and flags["client_allowedOrigins"] == []
    assert "evil.example" not in flags["server_allowedHosts"]
    assert {"localhost", "127.0.0.1", "::1"} <= set(flags["server_allowedHosts"])
    assert flag_options("127.0.0.2", 8501, 16)["client_showErrorDetails"] == "type"  # loopback


def run(*args):
    return CliRunner().invoke(cli, ["explain", "app", *map(str, args)])


def test_cli_refuses_bad_input_before_serving(tmp_path, exported):
    assert "--max-upload-mb" in run("--help").output
    result = run(tmp_path / "nothing")
    assert result.exit_code == 2 and "no such run or bundle" in result.output
    result = run(tmp_path)
    assert result.exit_code == 2 and "not a shotlab bundle" in result.output
    result = run(exported.path, "--store", tmp_path / "missing.sqlite")
    assert result.exit_code == 2 and "--store" in result.output and "no such file" in result.output
    notes = tmp_path / "notes.sqlite"
    notes.write_text("not a store\n")  # it started, and was refused only at "Open decision"
    result = run(exported.path, "--store", notes)
    assert result.exit_code == 2 and "not an explanation store" in result.output
    assert notes.read_text() == "not a store\n"


def test_a_port_in_use_is_refused_before_any_url_is_printed(exported):
    """Streamlit logged 'Port N is not available' after the page had printed a URL that led
    to the other server."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(exported.path, "--port", port)
    assert result.exit_code == 2, result.output
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "Explanation page for" not in result.output


def test_a_clip_bundle_whose_frames_cannot_be_grouped_is_exported_with_clips_unchecked(
        clip_model):
    """The gate judges a clip bundle on its clips by grouping the split's frames per clip in the
    frames dataset; where that cannot be done (here an image run given a clip contract) the
    export crashed in FiftyOne ("no field 'clip_id'"). It ships, saying the clips went
    unchecked, as an unsafe class with no positives does."""
    import json

    report = json.loads((Path(clip_model.bundle.origin) / "report.json").read_text())
    assert report["clips"]["available"] is False
    assert any(u.startswith("clips not checked") for u in report["gate"]["unchecked"])
