"""`shotlab explain`: --help, success and bad input for run, show, appeal and --pending."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.explain.store import ExplanationStore


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("args", [["explain"], ["explain", "run"], ["explain", "show"],
                                  ["explain", "appeal"], ["explain", "pending"]])
def test_help(args):
    result = run(*args, "--help")
    assert result.exit_code == 0 and f"Usage: cli {' '.join(args)}" in result.output


def test_explain_a_run_writes_overlays_and_scores(trained_run, colour_images, tmp_path):
    red = next(p for p in colour_images if p.parent.name == "red")
    out = tmp_path / "why"
    result = run("explain", trained_run, red, "--method", "gradcam,lime", "--out", out,
                 "--score", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (entry,) = data["images"]
    assert entry["target"] == entry["predicted"] and data["kind"] == "run"
    assert set(entry["files"]) == {"gradcam", "lime", "lime_superpixels", "figure"}
    assert all((out / f"{red.stem}.{m}.png").is_file() for m in ("gradcam", "lime", "methods"))
    assert {"deletion_auc", "random_deletion_auc"} <= set(entry["faithfulness"]["lime"])
    assert set(data["sanity"]) == {"gradcam"}


def test_images_sharing_a_name_get_their_own_pictures(trained_run, colour_images, tmp_path):
    import shutil

    first, second = colour_images[:2]
    for folder, image in (("a", first), ("b", second)):
        (tmp_path / folder).mkdir()
        shutil.copy(image, tmp_path / folder / "same.png")
    out = tmp_path / "why"
    result = run("explain", trained_run, tmp_path / "a" / "same.png", tmp_path / "b" / "same.png",
                 "--out", out, "--json")
    assert result.exit_code == 0, result.output
    figures = [entry["files"]["figure"] for entry in json.loads(result.stdout)["images"]]
    assert figures == [str(out / "same.methods.png"), str(out / "same-2.methods.png")]
    assert all(Path(f).is_file() for f in figures)


def test_picture_stems_never_repeat():
    from shotlab.explain.report import picture_stems

    paths = [Path("a/cat.jpg"), Path("b/cat.jpg"), Path("cat-2.png"), Path("c/Cat.png")]
    assert picture_stems(paths) == ["cat", "cat-3", "cat-2", "Cat-4"]
    assert picture_stems([Path("x/dog.jpg"), Path("y/bird.jpg")]) == ["dog", "bird"]


def no_maps(monkeypatch):
    """Fail the test if a map is computed: a refusal must come before the work."""
    def computed(*args, **kwargs):
        raise AssertionError("a map was computed before --out was checked")

    monkeypatch.setattr("shotlab.explain.report.compute_maps", computed)


def test_out_replaces_only_pictures_explain_wrote(explain_bundle, colour_images, tmp_path,
                                                  monkeypatch):
    """`explain B fish.png --out mine` overwrote the user's mine/fish.gradcam.png, exit 0."""
    image = colour_images[0]
    out = tmp_path / "mine"
    result = run("explain", explain_bundle, image, "--method", "gradcam,lime", "--out", out)
    assert result.exit_code == 0, result.output
    again = run("explain", explain_bundle, image, "--method", "gradcam,lime", "--out", out)
    assert again.exit_code == 0, again.output  # its own pictures, overlays too, are replaced
    for name in (f"{image.stem}.gradcam.png", f"{image.stem}.lime-superpixels.png",
                 f"{image.stem}.methods.png"):
        victim = out / name
        kept = victim.read_bytes()
        victim.write_text("my precious")
        no_maps(monkeypatch)
        result = run("explain", explain_bundle, image, "--method", "gradcam,lime", "--out", out)
        monkeypatch.undo()
        assert result.exit_code == 2, result.output
        line = result.output.strip().splitlines()[-1]
        assert f"{victim} exists and is not a picture `shotlab explain` wrote" in line, line
        assert "choose another --out" in line and "Traceback" not in result.output
        assert victim.read_text() == "my precious"
        victim.write_bytes(kept)


def test_out_a_folder_that_refuses_files_is_refused_before_any_map(explain_bundle,
                                                                   colour_images, tmp_path,
                                                                   monkeypatch):
    """Into a read-only folder it crashed with `OSError: [Errno 30]` after every map. As root
    a chmod does not stop a write, so the folder's refusal is the probe's (as a read-only
    mount answers it)."""
    import errno
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    out = tmp_path / "ro"
    out.mkdir()
    no_maps(monkeypatch)
    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    result = run("explain", explain_bundle, colour_images[0], "--out", out)
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert f"cannot write in {out} (Read-only file system); choose another --out" in line, line
    assert list(out.iterdir()) == []


def test_explain_a_bundle_with_a_named_target(explain_bundle, colour_images):
    result = run("explain", explain_bundle, *colour_images[:2], "--method", "shap,gradcam",
                 "--target", "blue")
    assert result.exit_code == 0, result.output
    assert result.output.count("explaining blue") == 2


def bundle_with_thresholds(explain_bundle, folder: Path, thresholds: dict) -> Path:
    """A copy of the bundle whose policy holds `thresholds` (a real, verified manifest)."""
    import shutil

    from shotlab.runtime.bundle import MANIFEST_FILE, write_manifest

    shutil.copytree(explain_bundle, folder)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).unlink()
    policy = {**manifest["policy"], "thresholds": thresholds}
    write_manifest(folder, {k: v for k, v in manifest.items() if k not in ("files", "digest")}
                   | {"policy": policy})
    return folder


def test_explain_a_bundle_uses_its_thresholds(explain_bundle, colour_images, tmp_path):
    """`explain` said 'predicted' the argmax and explained it, where `predict` flags the class
    over its threshold: a reviewer saw why the model said what it never decided."""
    import numpy as np

    from shotlab.core.images import load_rgb
    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.runners import OnnxRunner

    bundle = load_bundle(explain_bundle)
    image = colour_images[0]
    (probs,) = OnnxRunner(bundle)(bundle.preprocessing.to_array(load_rgb(image))[None])
    second = bundle.classes[int(np.argsort(probs)[-2])]
    cut = float(probs[bundle.classes.index(second)]) * 0.9  # under it: decided, not the top
    flagged = bundle_with_thresholds(explain_bundle, tmp_path / "b",
                                     {second: {"threshold": cut}})
    result = run("explain", flagged, image, "--method", "gradcam")
    assert result.exit_code == 0, result.output
    assert f"predicted {second} " in result.output and f"explaining {second} " in result.output
    plain = run("explain", explain_bundle, image, "--method", "gradcam")  # no thresholds: top
    top = bundle.classes[int(np.argmax(probs))]
    assert f"predicted {top} " in plain.output and f"explaining {top} " in plain.output


def test_a_multilabel_source_explains_its_top_flagged_class_else_its_top_predicted():
    from shotlab.explain.sources import Source

    source = Source(Path("b"), "bundle", None, ["safe", "nsfw", "gore"], "multilabel", None,
                    None, thresholds={"nsfw": {"threshold": 0.3}, "gore": {"threshold": 0.9}})
    probs = [[0.45, 0.4, 0.8],  # nsfw over its 0.3, gore under its 0.9: nsfw, not the top
             [0.6, 0.2, 0.5],  # safe over the 0.5 default
             [0.4, 0.1, 0.2],  # none predicted: the top score
             [0.9, 0.6, 0.1]]  # safe predicted higher, nsfw flagged: nsfw, as tier 1 explains
    assert source.decided(probs) == [1, 0, 0, 1]


def test_unknown_method_lists_the_methods(trained_run, colour_images):
    result = run("explain", trained_run, colour_images[0], "--method", "gradcam,occlusion")
    assert result.exit_code == 2
    assert "unknown method occlusion; methods: gradcam, gradcampp, ig, lime, shap" in result.output


def test_bad_images_are_named(trained_run, colour_images, tmp_path):
    missing = tmp_path / "missing.png"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    partly = run("explain", trained_run, colour_images[0], missing)
    assert partly.exit_code == 0 and f"skipped {missing}: file not found" in partly.output
    none = run("explain", trained_run, missing, broken)
    assert none.exit_code == 2
    assert f"{missing}: file not found" in none.output and f"{broken}: not an image" in none.output


def test_unknown_target_and_source_are_named(trained_run, colour_images, tmp_path):
    result = run("explain", trained_run, colour_images[0], "--target", "purple")
    assert result.exit_code == 2 and "--target purple: not a class" in result.output
    result = run("explain", tmp_path / "nowhere", colour_images[0])
    assert result.exit_code == 2 and "no such run or bundle" in result.output


def stored_decision(store_path, image, bundle):
    import numpy as np

    from shotlab.core.images import sha256_file

    with ExplanationStore(store_path) as store:
        store.add_decision({"decision_id": "d1", "path": str(image), "sha256": sha256_file(image),
                            "scores": {"red": 0.8, "green": 0.1, "blue": 0.1},
                            "labels": ["red"], "flagged": ["red"], "needs_review": True,
                            "time": "2026-12-02T08:00:00Z"}, bundle_path=bundle)
        store.put("d1", "gradcam", np.full((64, 64), 0.5, np.float32), target="red")


def test_show_renders_what_is_stored(explain_bundle, colour_images, tmp_path):
    store = tmp_path / "explanations.sqlite"
    stored_decision(store, colour_images[0], explain_bundle)
    result = run("explain", "show", "d1", "--store", store, "--out", tmp_path / "d1.png")
    assert result.exit_code == 0, result.output
    assert "gradcam: target red" in result.output
    # what the reviewer is asked about (only path and maps were shown)
    assert "labels red; FLAGGED red; needs review; decided 2026-12-02T08:00:00Z" in result.output
    assert (tmp_path / "d1.png").read_bytes().startswith(b"\x89PNG")
    unknown = run("explain", "show", "d404", "--store", store)
    assert unknown.exit_code == 2 and "decision d404: nothing stored" in unknown.output
    missing = run("explain", "show", "d1", "--store", tmp_path / "none.sqlite")
    assert missing.exit_code == 2 and "no explanation store there" in missing.output


def test_show_prints_a_map_stored_twice_once(explain_bundle, colour_images, tmp_path):
    """A service worker stopped between storing a decision's map and marking it done explains
    it again: `explain show` printed both as if they were two findings."""
    import numpy as np

    store = tmp_path / "explanations.sqlite"
    stored_decision(store, colour_images[0], explain_bundle)
    with ExplanationStore(store) as opened:
        opened.put("d1", "gradcam", np.full((64, 64), 0.4, np.float32), target="red")
        opened.put("d1", "gradcam", np.full((64, 64), 0.3, np.float32), target="green")
    result = run("explain", "show", "d1", "--store", store)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "gradcam: target" in line]
    assert len(lines) == 2 and "target red" in lines[0] and "target green" in lines[1]
    assert lines[0].endswith("(explained 2 times; the latest shown)")
    assert not lines[1].endswith("shown)")
    shown = json.loads(run("explain", "show", "d1", "--store", store, "--json").stdout)
    assert len(shown["explanations"]) == 3  # the data keep every map


def test_appeal_then_pending(explain_bundle, colour_images, tmp_path):
    store = tmp_path / "explanations.sqlite"
    stored_decision(store, colour_images[0], explain_bundle)
    queued = run("explain", "appeal", store, "d1", "--method", "lime")
    assert queued.exit_code == 0 and "queued 1 appeal (lime)" in queued.output
    # the same appeal again (a reviewer's second click) ran twice: two LIME maps
    again = run("explain", "appeal", store, "d1", "d1", "--method", "lime")
    assert again.exit_code == 0 and "already queued, not queued again: d1" in again.output
    assert "queued 0 appeals" in again.output
    unknown = run("explain", "appeal", store, "d404")
    assert unknown.exit_code == 2 and "decision d404 is not in" in unknown.output
    bad = run("explain", "appeal", store, "d1", "--method", "magic")
    assert bad.exit_code == 2 and "unknown method magic" in bad.output
    done = run("explain", "--pending", store, "--batch", "4", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"processed": 1, "failed": 0, "stored": 1, "errors": []}
    with ExplanationStore(store, create=False) as opened:
        assert [e.method for e in opened.explanations("d1")] == ["gradcam", "lime"]


def test_pending_exits_1_when_an_appeal_failed(explain_bundle, colour_images, tmp_path):
    """It exited 0 with '1 failed': a cron job never learnt that an appeal went unexplained."""
    store = tmp_path / "explanations.sqlite"
    stored_decision(store, colour_images[0], explain_bundle)
    colour_images[0].write_bytes(colour_images[5].read_bytes())  # replaced since the decision
    assert run("explain", "appeal", store, "d1", "--method", "lime").exit_code == 0
    done = run("explain", "--pending", store)
    assert done.exit_code == 1 and "0 appeals processed" in done.output
    assert "failed d1: not the image decided" in done.output


def test_an_appeal_with_another_image_is_refused_when_queued(explain_bundle, colour_images,
                                                             tmp_path):
    """It was queued, and failed only when processed ("changed since decision")."""
    store = tmp_path / "explanations.sqlite"
    stored_decision(store, colour_images[0], explain_bundle)
    refused = run("explain", "appeal", store, "d1", "--image", colour_images[5])
    assert refused.exit_code == 2
    assert f"--image {colour_images[5]}: not the image decision d1 was made on" in refused.output
    with ExplanationStore(store, create=False) as opened:
        assert opened.appeals() == []
    assert run("explain", "appeal", store, "d1", "--image", colour_images[0]).exit_code == 0


@pytest.fixture(scope="module")
def clip_explained(exported, tmp_path_factory):
    """`shotlab predict BUNDLE violent.mp4 --explain`: a clip whose second 3 of 4 is red, its
    decision and its store (Grad-CAM of the top red frame at its timestamp)."""
    from tests.export.test_predict_clips import colour_clip

    root = tmp_path_factory.mktemp("clip-explained")
    clip = colour_clip(root / "violent.mp4", ["green", "green", "red", "green"])
    out = root / "o" / "d.jsonl"
    result = run("predict", exported.path, clip, "--sampling", "fps:4", "--explain",
                 "--out", out)
    assert result.exit_code == 0, result.output
    (decision,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert decision["flagged"] == ["red"], decision
    return clip, decision, out.parent / "explanations.sqlite"


def test_show_draws_a_clips_maps_over_the_frame_they_explain(clip_explained, tmp_path):
    """The maps were drawn over grey, with no time, and the page said the unchanged clip was
    'gone or no longer the image decided'."""
    import numpy as np

    from shotlab.explain.show import backdrops, read_decision
    from shotlab.page.stored import stored_decision

    clip, decision, store = clip_explained
    (explained,) = decision["explained_frames"]
    result = run("explain", "show", decision["decision_id"], "--store", store, "--out",
                 tmp_path / "f.png")
    assert result.exit_code == 0, result.output
    assert f"gradcam: target red, frame at {explained['timestamp']:.3f} s" in result.output
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
    stored, rows, _, _ = read_decision(store, decision["decision_id"])
    (picture,), note = backdrops(stored, rows)
    red, green, blue = picture.reshape(-1, 3).mean(axis=0)
    assert note is None and red > 150 > green and red > 150 > blue  # the red frame, not grey
    shown = stored_decision(store, decision["decision_id"])
    assert shown.note is None
    np.testing.assert_array_equal(shown.backdrops[0], picture)
    original = clip.read_bytes()
    clip.write_bytes(original + b"\0")  # changed since the decision: grey, and said so
    try:
        shown = stored_decision(store, decision["decision_id"])
        grey = run("explain", "show", decision["decision_id"], "--store", store, "--out",
                   tmp_path / "f.png")
    finally:
        clip.write_bytes(original)  # the module's other tests read it
    assert (shown.backdrops[0] == 128).all()
    note = (f"{clip} is gone, no longer the clip decided (its sha256 differs) or its frame at "
            f"{explained['timestamp']:.3f} s does not decode: the maps are shown over grey")
    assert shown.note == note
    # `show --out` drew the grey panel without a word: it says why, in one line, as the page
    assert grey.exit_code == 0, grey.output
    assert grey.stderr.strip().splitlines() == [f"Warning: {note}"]
    assert "Warning" not in result.stderr  # the unchanged clip: no note


def test_a_clip_is_refused_by_appeal_and_run_with_what_explains_it(exported, clip_explained,
                                                                   tmp_path):
    """`appeal` queued a clip's decision and `--pending` then failed it as "not an image
    (format not recognised)"; `explain run BUNDLE clip.mp4` said "no readable image"."""
    import shutil

    from tests.security.common import one_line_error

    clip, decision, stored = clip_explained
    store = Path(shutil.copy(stored, tmp_path / "explanations.sqlite"))
    decision_id = decision["decision_id"]
    how = "clips are explained by `shotlab predict BUNDLE CLIP --explain` (Grad-CAM of their top"
    line = one_line_error(run("explain", "appeal", store, decision_id, "--method", "lime"))
    assert f"decision {decision_id}: {clip}: a clip, not an image; {how}" in line
    line = one_line_error(run("explain", "appeal", store, decision_id, "--image", clip))
    assert f"{clip}: a clip, not an image" in line
    with ExplanationStore(store, create=False) as opened:
        assert opened.appeals("queued") == []
        opened.queue(decision_id, ["lime"])  # as an older shotlab queued it
    done = run("explain", "--pending", store)
    assert done.exit_code == 1 and f"failed {decision_id}: {clip}: a clip, not an image" in \
        done.output
    line = one_line_error(run("explain", exported.path, clip))
    assert f"{clip}: a clip, not an image; {how}" in line


def test_an_animation_decided_as_a_clip_is_refused_by_appeal(explain_bundle, tmp_path):
    import numpy as np

    store = tmp_path / "explanations.sqlite"
    with ExplanationStore(store) as opened:
        opened.add_decision({"decision_id": "g1", "path": str(tmp_path / "anim.gif"),
                             "scores": {"red": 0.9}, "flagged": ["red"]},
                            bundle_path=explain_bundle)
        opened.put("g1", "gradcam", np.zeros((8, 8)), target="red", params={"timestamp": 0.5})
    result = run("explain", "appeal", store, "g1")
    assert result.exit_code == 2
    assert f"decision g1: {tmp_path / 'anim.gif'}: decided as a clip; clips are explained" \
        in result.output
