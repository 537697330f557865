"""`shotlab curate check` end to end: planted faults in a real store, tiny-test embeddings."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageEnhance

from shotlab.cli import cli
from shotlab.core import store
from shotlab.core.images import sha256_file
from shotlab.curate.importer import import_path
from tests.train.trainsets import COLOURS, noisy_colour, write_colour_tree, write_multilabel_csv

pytestmark = pytest.mark.fiftyone


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


# tiny-test's random weights put same-colour images at cosine ~0.97 to each other (real backbones
# separate distinct photos far more), so near-duplicate tests ask for near-identical embeddings.
TINY_TEST_COSINE = "cosine=0.995"


def check(name, *args):
    result = run("curate", "check", name, "--backbone", "tiny-test", "--json",
                 "--threshold", TINY_TEST_COSINE, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def planted(tmp_path, dataset_name):
    """Colour classes (train 8 / val 4 / test 4 each) with three planted faults:
    a red image filed under green, a train image copied into test, and a darkened image."""
    root = write_colour_tree(tmp_path / "colours", counts={"train": 8, "val": 4, "test": 4})
    rng = np.random.default_rng(99)
    Image.fromarray(noisy_colour(COLOURS["red"], rng)).save(root / "train/green/flipped.png")
    shutil.copy(root / "train/blue/blue_0.png", root / "test/blue/leaked.png")
    dark = ImageEnhance.Brightness(Image.open(root / "train/red/red_1.png")).enhance(0.05)
    dark.save(root / "train/red/dark.png")
    import_path(root, dataset_name, progress=False)
    return dataset_name, root


def file_hashes(root):
    return {p: sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def sample(name, filename):
    return store.load(name).match({"filepath": {"$regex": f"/{filename}$"}}).first()


def test_help():
    result = run("curate", "check", "--help")
    assert result.exit_code == 0
    assert "--checks" in result.output and "--threshold" in result.output


def test_unknown_dataset_is_refused():
    result = run("curate", "check", "no-such-set", "--checks", "quality")
    assert result.exit_code == 2
    assert "no dataset named 'no-such-set'" in result.output


def test_unknown_check_name_is_refused(planted):
    result = run("curate", "check", planted[0], "--checks", "label,typos")
    assert result.exit_code == 2
    assert "unknown check 'typos'; choose from label, duplicates" in result.output


def test_the_label_check_holds_a_byte_copy_out_with_its_original(planted):
    """leaked.png is blue_0.png copied: one group, held out together, counted in the details."""
    out = check(planted[0], "--checks", "label")
    assert out["checks"]["label"]["details"]["grouped"] == 2


def test_the_report_never_replaces_a_users_file(planted, tmp_path):
    """--report notes.html replaced the user's notes."""
    notes = tmp_path / "notes.html"
    notes.write_text("<p>my notes</p>")
    refused = run("curate", "check", planted[0], "--checks", "quality", "--report", notes)
    assert refused.exit_code == 2 and "exists and is not a shotlab check report" in refused.output
    assert notes.read_text() == "<p>my notes</p>"
    report = tmp_path / "new" / "check.html"  # a missing folder is made, as predict --out does
    for _ in range(2):  # an earlier report is replaced
        assert check(planted[0], "--checks", "quality", "--report", report)["report"] == \
            str(report)

def test_bad_threshold_is_refused(planted):
    result = run("curate", "check", planted[0], "--threshold", "blury=2")
    assert result.exit_code == 2
    assert "--threshold blury=2: expected NAME=VALUE with NAME one of blurry" in result.output


@pytest.mark.slow
def test_planted_faults_are_found_and_written_back(planted, tmp_path):
    name, root = planted
    before = file_hashes(root)
    report_path = tmp_path / "out" / "report.html"
    summary = check(name, "--report", report_path)
    assert file_hashes(root) == before  # the user's files are only read

    checks = summary["checks"]
    assert any(p.endswith("flipped.png") for p in checks["label"]["top"])
    flipped = sample(name, "flipped.png")
    assert flipped.is_label_issue and flipped.label_suggestion == "red"
    assert "issue:label" in flipped.tags
    leaked, original = sample(name, "leaked.png"), sample(name, "train/blue/blue_0.png")
    assert leaked.duplicate_cluster == original.duplicate_cluster is not None
    assert leaked.is_leakage_issue and original.is_leakage_issue
    assert leaked.leakage_splits == "test,train"
    assert "dark" in sample(name, "dark.png").quality_issues
    assert checks["balance"]["details"]["counts"]["green"] == 17

    dataset = store.load(name)
    assert {"label-issues", "duplicates", "leakage", "quality"} <= set(dataset.list_saved_views())
    for view_name, field in (("label-issues", "label_score"), ("quality", "quality_score"),
                             ("duplicates", "duplicate_score")):
        scores = dataset.load_saved_view(view_name).values(field)
        assert scores and scores == sorted(scores, reverse=True)
    assert dataset.info["shotlab"]["checks"]["counts"]["leakage"] == 2

    html = report_path.read_text()
    assert summary["report"] == str(report_path)
    assert "data:image/jpeg;base64," in html and "http" not in html


@pytest.mark.slow
def test_rerun_after_fixes_shows_fewer_issues_and_drops_stale_marks(planted):
    name, _ = planted
    first = check(name, "--checks", "label,quality")
    dataset = store.load(name)
    flipped = sample(name, "flipped.png")
    flipped.ground_truth.label = "red"  # the annotator's fix
    flipped.save()
    dark = sample(name, "dark.png")
    dark.tags.append("exclude")
    dark.save()
    second = check(name, "--checks", "label,quality")
    assert second["checks"]["label"]["count"] < first["checks"]["label"]["count"]
    assert second["checks"]["quality"]["count"] < first["checks"]["quality"]["count"]
    assert second["excluded"] == 1
    flipped, dark = sample(name, "flipped.png"), sample(name, "dark.png")
    assert not flipped.is_label_issue and "issue:label" not in flipped.tags
    assert dark.quality_score is None and "issue:quality" not in dark.tags
    assert dataset.info["shotlab"]["checks"]["excluded"] == 1


def test_terminal_summary_names_checks_and_views(planted):
    result = run("curate", "check", planted[0], "--backbone", "tiny-test", "--checks",
                 "duplicates,leakage,balance", "--threshold", TINY_TEST_COSINE)
    assert result.exit_code == 0, result.output
    assert "leakage" in result.output and "leaked.png" in result.output
    assert "Saved views: duplicates, leakage" in result.output
    assert "Report: " in result.output


@pytest.mark.slow
def test_multilabel_dataset_runs_the_multilabel_variant(tmp_path, dataset_name):
    csv_path = write_multilabel_csv(tmp_path / "ml", per_pattern={"train": 5, "val": 2, "test": 2})
    import_path(csv_path, dataset_name, multilabel=True, progress=False)
    summary = check(dataset_name, "--checks", "label")
    assert summary["task"] == "multilabel"
    assert summary["checks"]["label"]["details"]["classes_judged"] == ["blue", "red"]
    scores = store.load(dataset_name).values("label_score")
    assert all(s is not None for s in scores)


def test_a_file_replaced_after_import_is_named_with_the_fix(tmp_path, dataset_name):
    """Embedding reads the file (its embedding is not cached yet) and finds it is no image."""
    root = write_colour_tree(tmp_path / "colours", counts={"train": 4})
    fresh = root / "train/blue/fresh.png"  # bytes no earlier test embedded: a cache miss
    Image.fromarray(np.random.default_rng().integers(0, 256, (24, 24, 3), np.uint8)).save(fresh)
    import_path(root, dataset_name, progress=False)
    fresh.write_text("junk")
    result = run("curate", "check", dataset_name, "--backbone", "tiny-test", "--checks", "label")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.strip() == (
        f"Error: {fresh}: not an image (format not recognised); the "
        f"file changed or went missing since import: restore it, or tag its sample 'exclude' in "
        f"the App to leave it out")


def test_an_image_let_in_by_max_pixels_is_named_as_too_large_not_as_changed(tmp_path,
                                                                          dataset_name):
    """Imported with --max-pixels, the file never changed, but check said it had."""
    root = write_colour_tree(tmp_path / "colours", counts={"train": 4})
    huge = root / "train/blue/huge.png"
    Image.new("L", (9500, 9420)).save(huge)  # 89,490,000 pixels: over the default limit
    import_path(root, dataset_name, progress=False, max_pixels=100_000_000)
    result = run("curate", "check", dataset_name, "--backbone", "tiny-test", "--checks", "label")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.strip() == (
        f"Error: {huge}: over the 89,478,485-pixel limit that curate check and suggest read "
        f"dataset files at (as train and export do; a larger --max-pixels at import let it in): "
        f"downscale it, or tag its sample 'exclude' in the App to leave it out")


def test_an_image_deleted_after_import_is_named_not_scored_in_silence(tmp_path, dataset_name):
    """With the scan cache warm, a deleted file's old figures were reported with no word, and
    the report and views sent reviewers to a missing image."""
    root = write_colour_tree(tmp_path / "colours", counts={"train": 4})
    import_path(root, dataset_name, progress=False)
    assert check(dataset_name, "--checks", "quality")["warnings"] == []
    gone = root / "train/red/red_1.png"
    gone.unlink()
    assert check(dataset_name, "--checks", "quality")["warnings"] == [
        f"1 file gone since import (first: {gone}): its results come from what was measured "
        f"before where the caches hold it, else it is listed as unreadable; restore it, or tag "
        f"it 'exclude' and run `shotlab curate apply`"]
    uncached = tmp_path / "colours/train/blue/blue_0.png"
    uncached.rename(tmp_path / "moved.png")  # gone, and its figures no longer cached
    from shotlab.core import workspace
    from shotlab.curate.checks.stats_cache import FILE_NAME

    (workspace.current().cache_dir / FILE_NAME).unlink()
    found = check(dataset_name, "--checks", "quality")
    assert f"{uncached}: file not found" in json.dumps(found)
    assert "2 files gone since import" in found["warnings"][0]

def test_an_image_edited_after_import_is_measured_as_it_is_now(tmp_path, dataset_name):
    """The scan cache keys by sha256: the edited file gets its current one, so it is measured
    again; a file only touched (newer mtime, same bytes) is hashed, found unchanged, and kept."""
    root = write_colour_tree(tmp_path / "colours", counts={"train": 4})
    import_path(root, dataset_name, progress=False)
    edited, touched = root / "train/red/red_1.png", root / "train/blue/blue_0.png"
    assert check(dataset_name, "--checks", "quality")["warnings"] == []
    assert "dark" not in (sample(dataset_name, "red_1.png").quality_issues or "")
    ImageEnhance.Brightness(Image.open(edited)).enhance(0.05).save(edited)
    touched.touch()
    second = check(dataset_name, "--checks", "quality")
    assert second["warnings"] == [f"1 file changed since import (first: {edited}): measured as "
                                  f"it is now, and the dataset's sha256 updated"]
    assert "dark" in sample(dataset_name, "red_1.png").quality_issues
    assert sample(dataset_name, "red_1.png").sha256 == sha256_file(edited)
    assert sample(dataset_name, "blue_0.png").sha256 == sha256_file(touched)
    assert check(dataset_name, "--checks", "quality")["warnings"] == []
    result = run("curate", "check", dataset_name, "--checks", "quality")
    assert "Warning" not in result.output


@pytest.mark.parametrize("pair, expected", [
    ("blurry=-7", "expected a number from -6 to 2"),
    ("blurry=2.5", "expected a number from -6 to 2"),
    ("dark=1.5", "expected a number from 0 to 1"),
    ("bright=-0.1", "expected a number from 0 to 1"),
    ("low_information=9", "expected a number from 0 to 8"),
    ("odd_size=-1", "expected a number of 0 or more"),
    ("odd_size=inf", "expected a number of 0 or more"),
    ("odd_aspect_ratio=Infinity", "expected a number of 0 or more"),
    ("phash_distance=-1", "expected a whole number from 0 to 64"),
    ("phash_distance=2.5", "expected a whole number from 0 to 64"),
    ("cosine=2", "expected a number from -1 to 1"),
    ("cosine=nan", "expected a number from -1 to 1"),
])
def test_threshold_outside_its_measures_range_is_refused(pair, expected):
    """Checked before the dataset is even looked up: a cut no image can reach is a typo."""
    result = run("curate", "check", "no-such-dataset", "--threshold", pair)
    assert result.exit_code == 2, result.output
    assert f"--threshold {pair}: {expected}" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_thresholds_inside_their_range_are_accepted():
    from shotlab.curate.checks.run import parse_thresholds

    assert parse_thresholds(["blurry=-1", "dark=0", "phash_distance=64", "cosine=-1"]) == {
        "blurry": -1.0, "dark": 0.0, "phash_distance": 64.0, "cosine": -1.0}
