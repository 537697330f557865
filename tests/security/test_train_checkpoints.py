"""No code runs from a checkpoint: every torch.load in shotlab is weights-only, and a refused
file is named in one line (not torch's hint to load it with code execution on)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core import workspace
from shotlab.core.errors import InputError
from shotlab.train.backbones import load_state_dict
from shotlab.train.checkpoint import load_checkpoint

SHOTLAB = Path(__file__).resolve().parents[2] / "shotlab"


class CreatesMarker:
    """Unpickling this runs `open(marker, 'w')`: proof that a load executed code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def plant(path: Path, marker: Path, how: str) -> None:
    """A checkpoint-shaped file whose unpickling would create `marker`."""
    payload = {"model": CreatesMarker(marker), "epoch": 0, "manifest_hash": "x"}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.fiftyone
@pytest.mark.slow
@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_resume_refuses_a_planted_last_checkpoint_in_one_line(trained_run, tmp_path, how):
    run_dir = workspace.current().runs_dir / f"planted-{how}-{tmp_path.name}"
    shutil.copytree(trained_run, run_dir)
    marker = tmp_path / "code-ran"
    plant(run_dir / "checkpoints" / "last.pt", marker, how)

    result = CliRunner().invoke(cli, ["train", "--resume", str(run_dir), "--no-track"])

    assert not marker.exists(), "unpickling the checkpoint ran code"
    assert result.exit_code == 2, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {run_dir / 'checkpoints' / 'last.pt'}: not a readable "
                               f"shotlab checkpoint (it ")
    assert "never loads" in lines[0] and "start a new run" in lines[0]
    assert "weights_only" not in result.output


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_best_checkpoint_and_weights_files_never_run_code(tmp_path, how):
    marker = tmp_path / "code-ran"
    planted = tmp_path / "best.pt"
    plant(planted, marker, how)
    for load in (load_checkpoint, load_state_dict):
        with pytest.raises(InputError) as caught:
            load(planted)
        assert "\n" not in str(caught.value) and str(planted) in str(caught.value)
        assert "weights_only" not in str(caught.value)
    assert not marker.exists()


def test_every_torch_load_in_shotlab_is_weights_only():
    for path in SHOTLAB.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}:{number}: {line.strip()}"
