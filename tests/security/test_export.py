"""`shotlab export` replaces only what it wrote: a bundle folder or bundle zip, never a user's
folder, file or the run being exported, `--force` or not (issue #11, item 9)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.security.common import one_line_error, run
from shotlab.core.errors import InputError
from shotlab.export.exporter import export_run




def notes_folder(path):
    path.mkdir()
    (path / "notes.txt").write_text("my notes")
    (path / "drafts").mkdir()
    (path / "drafts" / "plan.md").write_text("plan")
    return path


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_force_keeps_a_folder_of_notes(trained_run, tmp_path):
    notes = notes_folder(tmp_path / "notes")
    before = snapshot(notes)
    result = run("export", trained_run, "--out", notes, "--force", "--no-explain")
    line = one_line_error(result)
    assert f"{notes} is in the way and is not a shotlab bundle: it holds no manifest.json" in line
    assert "move it away or choose another --out" in line
    assert snapshot(notes) == before


def foreign_manifest(tmp_path, exported):
    folder = notes_folder(tmp_path / "foreign")
    (folder / "manifest.json").write_text(json.dumps({"name": "my project", "files": {}}))
    return folder, "its manifest.json has no format_version, runtimes, classes"


def bundle_with_notes(tmp_path, exported):
    folder = shutil.copytree(exported.path, tmp_path / "bundle")
    (folder / "notes.txt").write_text("written into the bundle folder by its user")
    return folder, "holds 1 file(s) the bundle's manifest does not list (notes.txt)"


def link_to_bundle(tmp_path, exported):
    (tmp_path / "link").symlink_to(shutil.copytree(exported.path, tmp_path / "bundle"))
    return tmp_path / "link", "it is a symbolic link"


def a_file(tmp_path, exported):
    (tmp_path / "paper.txt").write_text("a file, not a folder")
    return tmp_path / "paper.txt", "it is not a folder"


@pytest.mark.parametrize("make", [foreign_manifest, bundle_with_notes, link_to_bundle, a_file])
def test_force_replaces_only_a_bundle(make, trained_run, exported, tmp_path):
    out, reason = make(tmp_path, exported)
    before = snapshot(out) if out.is_dir() else out.read_bytes()
    with pytest.raises(InputError, match="is not a shotlab bundle") as info:
        export_run(trained_run, out=out, force=True, explain=False)
    assert reason in str(info.value)
    assert (snapshot(out) if out.is_dir() else out.read_bytes()) == before


def test_force_replaces_a_bundle_and_an_empty_folder(trained_run, exported, tmp_path):
    bundle = shutil.copytree(exported.path, tmp_path / "bundle")
    assert export_run(trained_run, out=bundle, force=True, explain=False).path == bundle
    (tmp_path / "empty").mkdir()
    export_run(trained_run, out=tmp_path / "empty", force=True, explain=False)
    assert json.loads((tmp_path / "empty" / "manifest.json").read_text())["format_version"]


@pytest.mark.parametrize("where", ["run", "parent"])
def test_out_never_holds_the_run(where, trained_run, tmp_path):
    run_dir = shutil.copytree(trained_run, tmp_path / "runs" / trained_run.name)
    before = snapshot(run_dir)
    out = run_dir if where == "run" else run_dir.parent
    line = one_line_error(run("export", run_dir, "--out", out, "--force", "--no-explain"))
    assert f"holds the run being exported ({run_dir})" in line
    assert "choose an --out outside the run folder" in line
    assert snapshot(run_dir) == before


def test_a_zip_that_is_not_a_bundle_zip_is_kept(trained_run, exported, tmp_path):
    out = shutil.copytree(exported.path, tmp_path / "bundle")
    mine = tmp_path / "bundle.zip"
    shutil.make_archive(str(tmp_path / "bundle"), "zip", notes_folder(tmp_path / "notes"))
    before = mine.read_bytes()
    line = one_line_error(run("export", trained_run, "--out", out, "--zip", "--force",
                              "--no-explain"))
    assert f"{mine} is in the way and is not a shotlab bundle zip: it holds no manifest" in line
    # --force without --zip replaces the bundle and removes only a stale *bundle* zip
    export_run(trained_run, out=out, force=True, explain=False)
    assert mine.read_bytes() == before
    shutil.copy(exported.zip_path, mine)
    export_run(trained_run, out=out, force=True, explain=False)
    assert not mine.exists()


def test_a_rejected_folder_of_notes_is_kept(trained_run, exported, tmp_path):
    from tests.export.test_cli import wrong_normalisation

    notes = notes_folder(tmp_path / "bundle.rejected")
    before = snapshot(notes)
    contract = wrong_normalisation(exported.path, tmp_path)  # the gate refuses this export
    line = one_line_error(run("export", trained_run, "--out", tmp_path / "bundle",
                              "--preprocessing", contract, "--no-explain"))
    assert f"{notes} is in the way (a refused export is moved there)" in line
    assert snapshot(notes) == before and not (tmp_path / "bundle").exists()


def test_an_empty_folder_needs_no_force(trained_run, tmp_path):
    """security.md: an empty folder at OUT may be replaced; it asked for --force."""
    from shotlab.export.targets import check_targets

    (tmp_path / "empty").mkdir()
    check_targets(tmp_path / "empty", trained_run, zip_bundle=False, force=False)
    (tmp_path / "empty" / "note.txt").write_text("mine")
    with pytest.raises(InputError):
        check_targets(tmp_path / "empty", trained_run, zip_bundle=False, force=False)
