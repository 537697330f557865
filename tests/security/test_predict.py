"""`shotlab predict` replaces its decisions only when a whole run succeeds, refuses an empty
input, and never writes over a file it did not write (issue #11, items 9 and 11)."""

from __future__ import annotations

import json

import pytest

from tests.imaging import write_image
from tests.security.common import one_line_error, run
from tests.security.test_explain import damage_tables, filled_store, state
from tests.train.trainsets import write_colour_tree



@pytest.fixture
def earlier(tmp_path):
    """An output folder holding the decisions and review queue of an earlier run."""
    out = tmp_path / "out"
    out.mkdir()
    decision = {"decision_id": "earlier", "path": "/images/a.png", "flagged": ["red"],
                "needs_review": False}
    for name in ("decisions.jsonl", "review_queue.jsonl"):
        (out / name).write_text(json.dumps(decision) + "\n")
    return out


def test_an_empty_folder_keeps_the_decisions(exported, earlier, tmp_path):
    empty = tmp_path / "incoming"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    before = state(earlier)
    line = one_line_error(run("predict", exported.path, empty, "--out",
                              earlier / "decisions.jsonl"))
    assert f"{empty}: no image or clip file there; nothing was predicted and the decisions were left " \
           f"as they were" in line and "--allow-empty" in line
    assert state(earlier) == before
    allowed = run("predict", exported.path, empty, "--out", earlier / "decisions.jsonl",
                  "--allow-empty")
    assert allowed.exit_code == 0, allowed.output
    assert (earlier / "decisions.jsonl").read_text() == ""
    assert (earlier / "review_queue.jsonl").read_text() == ""


def test_unreadable_images_only_keep_the_decisions(exported, earlier, tmp_path):
    (tmp_path / "broken.png").write_text("no")
    before = state(earlier)
    line = one_line_error(run("predict", exported.path, tmp_path / "broken.png", "--out",
                              earlier / "decisions.jsonl"))
    assert f"the one image or clip file could not be read ({tmp_path / 'broken.png'}: " in line
    assert state(earlier) == before


def test_a_damaged_store_keeps_the_decisions(exported, earlier, tmp_path):
    images = write_colour_tree(tmp_path / "images", counts={"new": 2}, seed=11)  # red: flagged
    store = damage_tables(filled_store(earlier / "explanations.sqlite"))
    before = state(earlier)
    line = one_line_error(run("predict", exported.path, images, "--out",
                              earlier / "decisions.jsonl", "--explain"))
    assert f"{store}: the explanation store cannot be read or written" in line
    assert state(earlier) == before  # decisions, review queue and store as they were


@pytest.mark.parametrize("out, victim", [("notes.txt", "notes.txt"),
                                         ("decisions.jsonl", "review_queue.jsonl"),
                                         ("photo.png", "photo.png")])
def test_out_replaces_only_decisions(out, victim, exported, earlier):
    photo = write_image(earlier / "photo.png", seed=3)
    if victim != "photo.png":
        (earlier / victim).write_text("my own notes\n")
    before = state(earlier)
    line = one_line_error(run("predict", exported.path, photo, "--out", earlier / out))
    assert f"{earlier / victim} exists and is not a decisions file that shotlab predict " \
           f"wrote" in line
    assert state(earlier) == before


def test_out_never_replaces_a_pipe_or_reads_it(exported, earlier):
    """A pipe (or a device) is no decisions file: reading it waited forever, and an empty read
    let predict replace it with a regular file."""
    import os

    fifo = earlier / "pipe.jsonl"
    os.mkfifo(fifo)
    photo = write_image(earlier / "photo.png", seed=3)
    line = one_line_error(run("predict", exported.path, photo, "--out", fifo))
    assert f"{fifo} exists and is not a decisions file" in line
    assert fifo.is_fifo()


def test_a_json_array_first_line_is_not_a_decisions_file(tmp_path):
    from shotlab.export.predict import is_decisions_file

    path = tmp_path / "d.jsonl"
    path.write_text('[["decision_id", 1]]\n')
    assert not is_decisions_file(path)
    path.write_text('{"decision_id": "a"}\n')
    assert is_decisions_file(path) and not is_decisions_file(tmp_path)


@pytest.mark.parametrize("command", [["predict", "IMAGE"], ["export"], ["keygen"]])
def test_an_output_under_a_file_is_refused_before_any_work(command, exported, trained_run,
                                                          tmp_path):
    """It failed with a FileExistsError traceback, for predict after every image was decided."""
    photo = write_image(tmp_path / "photo.png", seed=3)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    args = {"predict": [exported.path, photo], "export": [trained_run, "--no-explain"],
            "keygen": []}[command[0]]
    option = [] if command[0] == "keygen" else ["--out"]
    line = one_line_error(run(command[0], *args, *option, notes / "x"))
    assert f"{notes} is a file, not a folder" in line
    assert notes.read_text() == "mine\n"


def test_a_refused_output_leaves_no_folders_behind(tmp_path):
    """The writability probe made the missing folders above --out, then the check refused it."""
    from shotlab.core.errors import InputError
    from shotlab.core.files import check_can_write
    from shotlab.export.predict import check_outputs

    with pytest.raises(InputError, match="review queue is written beside"):
        check_outputs(tmp_path / "new" / "deeper" / "review_queue.jsonl")
    check_can_write(tmp_path / "also" / "new" / "decisions.jsonl", "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="link is a broken link, not a folder"):
        check_can_write(tmp_path / "link" / "out.jsonl", "--out")


def test_a_pipe_in_a_folder_is_named_among_the_bad_files_not_dropped(tmp_path):
    """Predict and import dropped a FIFO named .png or .mp4 without a word; read directly, an
    image pipe would have waited forever."""
    import os

    from shotlab.core.errors import BadImageError
    from shotlab.core.images import read_bytes
    from shotlab.curate.readers.folder import files_under
    from shotlab.export.predict import collect_paths

    folder = tmp_path / "in" / "cat"
    write_image(folder / "a.png", seed=1)
    os.mkfifo(folder / "pipe.png")
    assert [p.name for p in collect_paths([tmp_path / "in"])] == ["a.png", "pipe.png"]
    assert [p.name for p in files_under(tmp_path / "in")[0]] == ["a.png", "pipe.png"]
    with pytest.raises(BadImageError, match="not a regular file"):
        read_bytes(folder / "pipe.png")


def test_predict_over_a_folder_with_a_pipe_finishes_and_names_it(exported, tmp_path):
    """The check for animated images opened every file before the regular-file guard: a FIFO
    named .png blocked predict for ever. Run as a user would, in a process with a deadline."""
    import os
    import subprocess
    import sys

    folder = tmp_path / "in"
    write_image(folder / "a.png", seed=1)
    os.mkfifo(folder / "pipe.png")
    done = subprocess.run([sys.executable, "-m", "shotlab", "predict", str(exported.path),
                           str(folder), "--out", str(tmp_path / "d.jsonl"), "--json"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    import json

    summary = json.loads(done.stdout)
    assert summary["images"] == 1 and summary["bad_files"][0]["path"].endswith("pipe.png")

def test_symlinked_and_repeated_paths_are_decided_once_and_a_broken_link_is_named(tmp_path):
    from shotlab.export.predict import collect_paths

    folder = tmp_path / "in"
    a = write_image(folder / "a.png", seed=1)
    write_image(folder / "b.png", seed=2)
    (folder / "link.png").symlink_to(a)
    (folder / "broken.png").symlink_to(tmp_path / "nowhere.png")
    found = collect_paths([folder, folder / ".." / "in" / "a.png"])
    assert [p.name for p in found] == ["a.png", "b.png", "broken.png"]
    assert collect_paths([folder / "broken.png"]) == [folder / "broken.png"]  # named itself


def test_decisions_are_never_written_inside_the_bundle(exported, tmp_path):
    """`--out BUNDLE/decisions.jsonl` was taken: the bundle then held the decisions (every
    file's path; a zipped bundle would ship them) and `export --force` refused to replace it."""
    import shutil

    bundle = shutil.copytree(exported.path, tmp_path / "bundle")
    before = sorted(p.name for p in bundle.rglob("*"))
    write_image(tmp_path / "in" / "a.png", seed=1)
    line = one_line_error(run("predict", bundle, tmp_path / "in", "--out",
                              bundle / "runs" / "decisions.jsonl"))
    assert f"--out {bundle / 'runs' / 'decisions.jsonl'}: inside the bundle {bundle}" in line
    assert sorted(p.name for p in bundle.rglob("*")) == before
    done = run("predict", bundle, tmp_path / "in", "--out", tmp_path / "decisions.jsonl")
    assert done.exit_code == 0, done.output
