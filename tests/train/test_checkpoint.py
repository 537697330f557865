"""Loading a run's best model back from its checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shotlab.core.errors import InputError
from shotlab.core.images import load_rgb
from shotlab.train.checkpoint import load_checkpoint
from shotlab.train.manifest import Manifest

pytestmark = [pytest.mark.fiftyone, pytest.mark.slow]


def test_run_checkpoint_loads_with_contract_and_predicts_its_test_split(trained_run):
    loaded = load_checkpoint(trained_run)
    assert loaded.run_dir == trained_run and loaded.task == "multiclass"
    assert loaded.classes == ["blue", "green", "red"]
    assert list(loaded.preprocessing.class_names) == loaded.classes
    assert not loaded.model.training
    test = Manifest.load(trained_run / "manifest.json").split("test")
    batch = np.stack([loaded.preprocessing.to_array(load_rgb(e.filepath)) for e in test])
    with torch.no_grad():
        pred = loaded.model(torch.from_numpy(batch)).argmax(1).numpy()
    truth = [loaded.classes.index(e.labels[0]) for e in test]
    assert (pred == np.array(truth)).mean() >= 0.8


def test_a_run_and_its_bundle_load_from_a_path_with_a_tilde(trained_run, exported, monkeypatch):
    """docs/text.md's `load_checkpoint("~/.shotlab/runs/...")` said "no checkpoint found": only a
    shell expands `~`, and the library is called from Python."""
    from shotlab.runtime.bundle import load_bundle

    monkeypatch.setenv("HOME", str(trained_run.parent))
    assert load_checkpoint(f"~/{trained_run.name}").run_dir == trained_run
    monkeypatch.setenv("HOME", str(exported.path.parent))
    assert load_bundle(f"~/{exported.path.name}").origin == exported.path


def test_missing_and_corrupt_checkpoints_are_named(tmp_path):
    with pytest.raises(InputError, match="no checkpoint found"):
        load_checkpoint(tmp_path)
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="best.pt: not a readable shotlab checkpoint"):
        load_checkpoint(bad)


def test_a_best_pt_changed_since_its_run_finished_is_refused(trained_run, tmp_path):
    """A best.pt damaged or replaced after training was exported, and passed the gate (which
    compares ONNX with that same damaged model), under the run's metrics and thresholds. The
    run now records its sha256 in metrics.json, and export and explain refuse another file."""
    import json
    import shutil

    from shotlab.core.images import sha256_file
    from shotlab.explain.sources import open_source
    from shotlab.export.exporter import export_run

    run = shutil.copytree(trained_run, tmp_path / trained_run.name,
                          ignore=shutil.ignore_patterns("last.pt", "bundle*"))
    best = run / "checkpoints" / "best.pt"
    assert json.loads((run / "metrics.json").read_text())["checkpoint_sha256"] == \
        sha256_file(best)
    load_checkpoint(run)  # unchanged: loads
    state = torch.load(best, weights_only=True)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = state["model"][name] + 0.5  # weights changed, still a checkpoint
    torch.save(state, best)
    for load in (load_checkpoint, open_source,
                 lambda r: export_run(r, out=tmp_path / "out", progress=False)):
        with pytest.raises(InputError, match="best.pt: changed since its run finished"):
            load(run)
    assert not (tmp_path / "out").exists()
