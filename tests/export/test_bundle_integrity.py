"""A bundle is verified as a whole: its manifest is covered by a digest, and no path in it can
leave the bundle folder (issue 11.2). Every case here ran to a decision with exit 0 before."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.errors import InputError
from shotlab.core.images import sha256_file
from shotlab.runtime.bundle import MANIFEST_FILE, digest, load_bundle
from tests.train.trainsets import write_colour_tree


def read(bundle):
    return json.loads((bundle / MANIFEST_FILE).read_text())


def write(bundle, manifest, *, redigest: bool):
    """Write `manifest` back; with `redigest`, as an attacker who also recomputes the digest."""
    if redigest:
        manifest["digest"] = digest(manifest)
    (bundle / MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize("edit", [
    lambda m: m["policy"]["thresholds"]["red"].update(threshold=0.99),
    lambda m: m["policy"]["thresholds"]["red"].update(review_band=[0.0, 0.0]),
    lambda m: m["policy"].update(unsafe=[]),
    lambda m: m.update(classes=list(reversed(m["classes"]))),
], ids=["threshold", "review-band", "unsafe-list", "class-order"])
def test_an_edited_manifest_is_refused(bundle_copy, edit):
    manifest = read(bundle_copy)
    edit(manifest)
    write(bundle_copy, manifest, redigest=False)
    with pytest.raises(InputError, match="does not match its digest"):
        load_bundle(bundle_copy)


def test_predict_refuses_an_edited_manifest_in_one_line(bundle_copy, tmp_path):
    images = write_colour_tree(tmp_path / "in", counts={"new": 1}, seed=3)
    manifest = read(bundle_copy)
    manifest["policy"]["thresholds"]["red"]["threshold"] = 0.99
    write(bundle_copy, manifest, redigest=False)
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(bundle_copy), str(images), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "does not match its digest" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("path", ["../../evil.onnx", "/tmp/evil.onnx", "sub/../../evil.onnx"])
def test_a_model_path_outside_the_bundle_is_refused_even_with_a_valid_digest(bundle_copy, path):
    evil = bundle_copy.parent.parent / "evil.onnx"
    shutil.copy(bundle_copy / "model.onnx", evil)
    manifest = read(bundle_copy)
    manifest["runtimes"]["onnx"] = path
    manifest["files"][path] = sha256_file(evil)
    write(bundle_copy, manifest, redigest=True)
    with pytest.raises(InputError, match="would leave the bundle folder"):
        load_bundle(bundle_copy)


def test_a_symlink_out_of_the_bundle_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.move(bundle_copy / "model.onnx", outside)
    (bundle_copy / "model.onnx").symlink_to(outside)  # same bytes, so the sha256 matches
    with pytest.raises(InputError, match="points outside the bundle folder"):
        load_bundle(bundle_copy)


def test_a_runtime_must_name_a_hashed_file(bundle_copy):
    manifest = read(bundle_copy)
    manifest["runtimes"]["onnx"] = "report.html.onnx"
    write(bundle_copy, manifest, redigest=True)
    with pytest.raises(InputError, match="not a hashed bundle file"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("edit,refusal", [
    (lambda m: m.update(runtimes=list(m["runtimes"])), "runtimes must be an object, not a list"),
    (lambda m: m["runtimes"].update(onnx=["model.onnx"]),
     "runtimes.onnx must be a string, not a list"),
    (lambda m: m.update(policy="strict"), "policy must be an object, not a string"),
    (lambda m: m["policy"].update(thresholds=[0.5]),
     "policy.thresholds must be an object, not a list"),
    (lambda m: m.update(classes=[1, 2, 3]), "classes must be a list of class names"),
    (lambda m: m["preprocessing"].update(interpolation="cubic"),
     "preprocessing interpolation 'cubic' is not one"),
    (lambda m: m["preprocessing"].update(colour="yes"),
     "unknown key(s) 'colour': a preprocessing contract has input_size"),
], ids=["runtimes-list", "runtime-list", "policy-string", "thresholds-list", "classes-numbers",
        "interpolation", "unknown-field"])
def test_a_field_of_the_wrong_type_is_refused_even_with_a_valid_digest(bundle_copy, edit,
                                                                       refusal):
    """These crashed with AttributeError / TypeError tracebacks once past the digest."""
    manifest = read(bundle_copy)
    edit(manifest)
    write(bundle_copy, manifest, redigest=True)
    with pytest.raises(InputError, match=rf"manifest\.json: .*{re.escape(refusal)}"):
        load_bundle(bundle_copy)


def test_a_runtime_naming_a_file_that_is_no_model_is_refused_in_one_line(bundle_copy, tmp_path):
    """ONNX Runtime's InvalidProtobuf came out as a traceback."""
    manifest = read(bundle_copy)
    manifest["runtimes"]["onnx"] = "report.json"
    write(bundle_copy, manifest, redigest=True)
    images = write_colour_tree(tmp_path / "in", counts={"new": 1}, seed=3)
    result = CliRunner().invoke(cli, ["predict", str(bundle_copy), str(images),
                                      "--out", str(tmp_path / "d.jsonl")])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (f"{bundle_copy / 'report.json'}: ONNX Runtime cannot load it as the onnx model"
            in result.output)


@pytest.mark.parametrize("version", [1, 99, None])
def test_an_unreadable_format_version_is_refused_with_the_fix(bundle_copy, version):
    manifest = read(bundle_copy)
    manifest["format_version"] = version
    write(bundle_copy, manifest, redigest=True)
    with pytest.raises(InputError, match=rf"format version {version} is not one this shotlab "
                                         rf"reads \(2\); re-export it"):
        load_bundle(bundle_copy)


def test_the_digest_covers_every_key_but_itself(exported):
    manifest = read(exported.path)
    assert manifest["digest"] == digest(manifest)
    assert digest({**manifest, "digest": "anything"}) == manifest["digest"]
    assert digest({**manifest, "created": "2000-01-01"}) != manifest["digest"]


def test_a_bundle_zip_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import zipfile

    bomb = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_FILE, "{}")
        archive.writestr("model.onnx", b"\0" * (8 << 20))  # 8 MiB of zeros: ratio ~1000:1
    before = set(tmp_path.parent.glob("shotlab-bundle-*"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with pytest.raises(InputError, match=r"compressed [\d,]+:1 \(a zip bomb\?\)"):
        load_bundle(bomb)
    assert not any(p.stat().st_size for p in tmp_path.rglob("model.onnx"))
    assert set(tmp_path.parent.glob("shotlab-bundle-*")) == before


def test_predict_refuses_a_bundle_zip_bomb_naming_only_what_predict_offers(tmp_path):
    """predict has no --zip-max-ratio option (curate import does): the refusal named it."""
    import zipfile

    bomb = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.onnx", b"\0" * (8 << 20))
    images = write_colour_tree(tmp_path / "in", counts={"new": 1}, seed=3)
    result = CliRunner().invoke(cli, ["predict", str(bomb), str(images),
                                      "--out", str(tmp_path / "d.jsonl")])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "raise the limit with $SHOTLAB_ZIP_MAX_RATIO)" in result.output
    assert "--zip-max" not in result.output


def test_export_with_no_decodable_test_image_is_one_line(trained_run, tmp_path):
    """Validation used to end in a bare ValueError from np.concatenate([])."""
    from dataclasses import replace

    from shotlab.train.manifest import Manifest

    run = shutil.copytree(trained_run, tmp_path / "run")
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    manifest = Manifest.load(run / "manifest.json")
    entries = tuple(replace(e, filepath=str(broken)) if e.split == "test" else e
                    for e in manifest.entries)
    replace(manifest, entries=entries).save(run / "manifest.json")
    result = CliRunner().invoke(cli, ["export", str(run), "--out", str(tmp_path / "b"),
                                      "--no-explain"])
    assert result.exit_code == 2, result.output
    assert re.search(r"none of the \d+ test images .* decodes \(first: .*broken\.png\)",
                     result.output)
    assert len(result.output.strip().splitlines()) == 1


def test_what_is_verified_is_what_runs(bundle_copy, tmp_path):
    """A folder bundle was hashed in place and its model opened again afterwards: anyone who
    could write the folder could swap model.onnx in between (timed with inotify, a forged model
    ran under a valid signature, its decisions naming the genuine model's sha256). The bundle
    is now verified and run from a private copy of the files its manifest lists."""
    import numpy as np

    from shotlab.runtime.runners import make_runner

    (bundle_copy / "notes.txt").write_text("not listed")
    bundle = load_bundle(bundle_copy)
    assert bundle.origin == bundle_copy and bundle.path != bundle_copy
    assert not (bundle.path / "notes.txt").exists()  # only what the manifest lists
    batch = np.random.default_rng(0).random((2, *bundle.preprocessing.sample_shape),
                                            dtype=np.float32)
    before = make_runner(bundle)(batch)
    # swapped after verification: another model's bytes where model.onnx was
    shutil.copyfile(bundle_copy / "model.fp16.onnx", bundle_copy / "model.onnx")
    runner = make_runner(bundle)
    assert sha256_file(bundle.model_file("onnx")) == bundle.model_sha256("onnx")
    np.testing.assert_array_equal(runner(batch), before)
    with pytest.raises(InputError, match=re.escape(f"{bundle_copy / 'model.onnx'}: sha256 "
                                                   f"does not match")):
        load_bundle(bundle_copy)  # the next load sees the swap, and names the user's folder


def test_an_empty_dataset_name_is_refused_before_anything_is_decided(bundle_copy, tmp_path):
    images = write_colour_tree(tmp_path / "in", counts={"new": 1}, seed=3)
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(bundle_copy), str(images), "--out", str(out),
                                      "--dataset", ""])
    assert result.exit_code == 2, result.output
    assert "dataset name '' is not allowed" in result.output and not out.exists()


def test_a_manifest_naming_no_bundle_format_is_called_not_a_bundle(bundle_copy):
    manifest = read(bundle_copy)
    del manifest["format_version"]
    write(bundle_copy, manifest, redigest=True)
    with pytest.raises(InputError, match=r"not a bundle \(its manifest.json names no bundle "
                                         r"format; a training run's folder\?\): give the run's "
                                         r"exported bundle \(RUN/bundle"):
        load_bundle(bundle_copy)
