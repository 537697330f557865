"""Every command: --help, success, and bad input (exit code and message checked)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.errors import InputError
from tests.curate.test_app import default_interrupt
from tests.imaging import truncate, write_class_tree, write_image

COMMANDS = [[], ["curate"], ["curate", "import"], ["curate", "pull"], ["curate", "pull", "roboflow"],
            ["curate", "list"], ["curate", "info"], ["curate", "delete"], ["curate", "export"],
            ["curate", "app"], ["curate", "policy"], ["train"], ["train", "run"],
            ["train", "backbones"], ["train", "runs"], ["curate", "apply"], ["curate", "history"],
            ["curate", "split"], ["curate", "augment-preview"], ["explain", "app"]]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "shotlab")
def test_help(command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage: " in result.output


def test_help_imports_no_heavy_library():
    code = ("import runpy, sys\nsys.argv = ['shotlab', '--help']\n"
            "try:\n    runpy.run_module('shotlab', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = {'torch', 'fiftyone', 'cv2', 'PIL', 'numpy', 'streamlit', 'ray', 'gradio'}\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_version():
    assert run("--version").output.strip() == "shotlab, version 0.1.0"


@pytest.mark.fiftyone
def test_import_info_list_export_delete(tmp_path, dataset_name):
    write_class_tree(tmp_path / "src", {"cat": 3, "dog": 2}, split="train")
    write_class_tree(tmp_path / "src", {"cat": 1, "dog": 1}, split="valid", seed=70)
    result = run("curate", "import", tmp_path / "src", "--name", dataset_name)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Imported 7 new samples into '{dataset_name}' (multiclass)")

    info = run("curate", "info", dataset_name)
    assert info.exit_code == 0 and "7 samples, 2 classes, imbalance ratio 1.3" in info.output
    assert [line.split() for line in info.output.splitlines() if line.startswith("cat")] == [
        ["cat", "3", "1", "4"]]
    data = json.loads(run("curate", "info", dataset_name, "--json").output)
    assert data["classes"] == {"cat": {"train": 3, "val": 1}, "dog": {"train": 2, "val": 1}}

    listed = json.loads(run("curate", "list", "--json").output)
    assert {"name": dataset_name, "task": "multiclass", "samples": 7} in listed
    assert dataset_name in run("curate", "list").output

    exported = run("curate", "export", dataset_name, tmp_path / "out", "--format", "folder")
    assert exported.exit_code == 0 and (tmp_path / "out" / "val" / "dog").is_dir()

    assert run("curate", "delete", dataset_name, input="n\n").exit_code == 1  # declined
    deleted = run("curate", "delete", dataset_name, "--yes")
    assert deleted.exit_code == 0 and "image files were not touched" in deleted.output
    assert (tmp_path / "src" / "train" / "cat" / "cat_0.png").is_file()


@pytest.mark.fiftyone
def test_import_reports_skipped_files_and_json(tmp_path, dataset_name):
    write_class_tree(tmp_path, {"cat": 2})
    truncate(write_image(tmp_path / "cat" / "broken.jpg", size=(64, 64)))
    result = run("curate", "import", tmp_path, "--name", dataset_name, "--json")
    report = json.loads(result.output)
    assert (report["added"], len(report["skipped"])) == (2, 1)
    assert report["skipped"][0]["path"].endswith("broken.jpg")


@pytest.mark.fiftyone
def test_small_class_warning(tmp_path, dataset_name):
    write_class_tree(tmp_path, {"cat": 6, "rare": 1})
    run("curate", "import", tmp_path, "--name", dataset_name)
    info = run("curate", "info", dataset_name)
    assert "warning: class 'rare' has only 1 image (fewer than 5); add more" in info.output
    assert "imbalance ratio 6.0" in info.output


@pytest.mark.fiftyone
def test_info_counts_what_training_uses_not_the_excluded(tmp_path, dataset_name):
    """It counted samples tagged 'exclude' (and warned on them), disagreeing with `curate
    split` and the run's manifest."""
    from shotlab.core import store

    write_class_tree(tmp_path, {"cat": 6, "dog": 5})
    run("curate", "import", tmp_path, "--name", dataset_name)
    for sample in store.load(dataset_name).match({"ground_truth.label": "dog"}).limit(2):
        sample.tags.append("exclude")
        sample.save()
    info = run("curate", "info", dataset_name)
    assert "9 samples (2 more tagged 'exclude', left out of every count)" in info.output
    assert "warning: class 'dog' has only 3 images" in info.output
    data = json.loads(run("curate", "info", dataset_name, "--json").output)
    assert data["classes"]["dog"] == {"unassigned": 3} and data["excluded"] == 2

@pytest.mark.parametrize("args, code, message", [
    (["curate", "import", "/no/such/folder", "--name", "x"], 2, "/no/such/folder: no such file or folder"),
    (["curate", "info", "no-such-dataset"], 2, "no dataset named 'no-such-dataset'"),
    (["curate", "export", "no-such-dataset", "out"], 2, "no dataset named 'no-such-dataset'"),
    (["curate", "delete", "no-such-dataset", "--yes"], 2, "create it with `shotlab curate import"),
    (["curate", "import", ".", "--name", "x", "--format", "zip"], 2, "Invalid value for '--format'"),
])
@pytest.mark.fiftyone
def test_bad_input_exits_2_with_one_line(args, code, message):
    result = run(*args)
    assert result.exit_code == code
    assert message in result.output
    lines = result.output.strip().splitlines()
    assert len([line for line in lines if line.startswith("Error: ")]) == 1
    if not lines[0].startswith("Usage:"):  # shotlab's own errors: one line, no usage block
        assert len(lines) == 1


SEEDED = [["train", "no-such-dataset"], ["curate", "suggest", "no-such-dataset"],
          ["curate", "split", "no-such-dataset"],
          ["curate", "augment-preview", "no-such-dataset", "--preset", "none"]]


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
@pytest.mark.parametrize("command", SEEDED, ids=lambda c: " ".join(c[:2]))
def test_a_seed_numpy_cannot_take_is_refused_before_any_work(command, seed):
    """Before the dataset is even looked up (it does not exist): click names --seed."""
    result = run(*command, "--seed", seed)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--seed'" in result.output and "0<=x<=4294967295" in result.output


@pytest.mark.fiftyone
def test_strict_import_fails_with_exit_1(tmp_path, dataset_name):
    write_class_tree(tmp_path, {"cat": 1})
    (tmp_path / "cat" / "empty.png").write_bytes(b"")
    result = run("curate", "import", tmp_path, "--name", dataset_name, "--strict")
    assert result.exit_code == 1
    assert result.output.startswith("Error: 1 files would be skipped (first: ")
    assert "empty.png: empty file (0 bytes)); nothing was imported" in result.output


def test_debug_shows_the_exception():
    result = run("--debug", "curate", "import", "/no/such/folder", "--name", "x")
    assert isinstance(result.exception, InputError)


def test_workspace_option_isolates_the_database(tmp_path):
    """A separate workspace has its own database: the test datasets are not visible there."""
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    env.pop("SHOTLAB_HOME")
    out = subprocess.run([sys.executable, "-m", "shotlab", "--workspace", str(tmp_path / "ws"),
                          "curate", "list", "--json"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
    assert (tmp_path / "ws" / "db").is_dir() and not (tmp_path / "home" / ".fiftyone").exists()


def test_sigterm_runs_the_exit_handlers(tmp_path):
    """`kill` during `predict bundle.zip` left the unpacked bundle in /tmp: the exit handler
    that removes it never ran."""
    import subprocess
    import sys

    marker = tmp_path / "cleaned"
    code = ("import atexit, os, signal, time\n"
            "from shotlab.cli import exit_on_sigterm\n"
            "exit_on_sigterm()\n"
            f"atexit.register(lambda: open({str(marker)!r}, 'w').write('done'))\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"
            "time.sleep(30)\n")
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == 143 and marker.read_text() == "done"


# A command of the real group that waits: Ctrl-C lands while it runs.
WAITING_COMMAND = ("import time\n"
                   "from shotlab import cli\n"
                   "@cli.cli.command('wait')\n"
                   "def wait():\n"
                   "    print('waiting', flush=True)\n"
                   "    time.sleep(60)\n"
                   "cli.main()\n")


def interrupted(tmp_path, code: str, *argv: str, ready: str) -> tuple[int, str]:
    """(exit status, stderr) of `python -c code argv...` sent SIGINT once it printed `ready`."""
    env = {**os.environ, "SHOTLAB_HOME": str(tmp_path / "ws")}
    process = subprocess.Popen([sys.executable, "-c", code, *argv], env=env,
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=default_interrupt)  # as typed in a terminal
    try:
        assert process.stdout.readline().strip() == ready
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, stderr


def test_ctrl_c_exits_130_without_a_traceback(tmp_path):
    """Ctrl-C exited 1 with click's "Aborted!", which a script cannot tell from a failure."""
    returncode, stderr = interrupted(tmp_path, WAITING_COMMAND, "wait", ready="waiting")
    assert returncode == 130, stderr
    assert "Interrupted." in stderr and "Aborted" not in stderr and "Traceback" not in stderr


def test_ctrl_c_with_debug_shows_the_traceback_and_still_exits_130(tmp_path):
    returncode, stderr = interrupted(tmp_path, WAITING_COMMAND, "--debug", "wait",
                                     ready="waiting")
    assert returncode == 130, stderr
    assert "Traceback" in stderr and "KeyboardInterrupt" in stderr and "Aborted" not in stderr


def test_ctrl_c_after_the_command_finished_does_not_break_its_exit(tmp_path):
    """A Ctrl-C while exit handlers ran (the database's stop, pymongo's thread joins) printed
    "Exception ignored in atexit callback" with a KeyboardInterrupt traceback."""
    code = ("import atexit, time\n"
            "from shotlab import cli\n"
            "@cli.cli.command('done')\n"
            "def done():\n"
            "    atexit.register(lambda: (print('at exit', flush=True), time.sleep(3)))\n"
            "cli.main()\n")
    returncode, stderr = interrupted(tmp_path, code, "done", ready="at exit")
    assert returncode == 0 and "Traceback" not in stderr, stderr


def test_signals_ignored_holds_off_ctrl_c_then_restores_it():
    """The workspace database's stop at exit runs under it: a second Ctrl-C cut the stop short."""
    from shotlab.core.signals import signals_ignored

    # Python's own Ctrl-C handler, whatever this run started with (`make test &` ignores it)
    started_with = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with signals_ignored():
            os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt here
            time.sleep(0.1)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    finally:
        signal.signal(signal.SIGINT, started_with)
