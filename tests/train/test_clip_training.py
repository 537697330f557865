"""Training on a clip dataset: the frame model trains on its frames, clips are evaluated with the
clip contract's pooling and with the middle-frame baseline, and the bundle carries the contract."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from shotlab.core import store
from shotlab.curate.importer import import_path
from shotlab.train.finetune import TrainConfig
from shotlab.train.runs import train_run
from tests.export.test_predict_clips import colour_clip

pytestmark = pytest.mark.fiftyone

# Each clip: its class's colour, except red clips, where red fills one second of three (the
# rest is grey filler): the case where pooling with max beats looking at one frame.
LAYOUT = {"red": ["grey", "red", "grey"], "green": ["green"] * 3, "blue": ["blue"] * 3}
COUNTS = {"train": 3, "val": 2, "test": 2}


@pytest.fixture(scope="module")
def clip_run(tmp_path_factory):
    """One run shared by this module's tests (training is the slow part); they only read it."""
    dataset_name = f"t-cliptrain-{uuid.uuid4().hex[:6]}"
    root = tmp_path_factory.mktemp("cliptrain") / "clips"
    seed = 0
    for split, count in COUNTS.items():
        for name, colours in LAYOUT.items():
            for i in range(count):
                seed += 1
                colour_clip(root / split / name / f"{name}_{i}.mp4", colours, seed=seed)
    import_path(root, dataset_name, progress=False, sampling="uniform:4")
    config = TrainConfig(backbone="tiny-test", mode="full", epochs=3, workers=0, unsafe=["red"])
    result = train_run(dataset_name, config, track=False, writeback=False, progress=False)
    yield result
    for name in (dataset_name, f"{dataset_name}-frames"):
        store.delete(name)


def test_clip_dataset_trains_on_frames_and_evaluates_clips(clip_run):
    run_dir = clip_run.run_dir
    dataset_name = json.loads((run_dir / "clip_metrics.json").read_text())["clip_dataset"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["dataset"] == f"{dataset_name}-frames"
    assert manifest["classes"] == ["blue", "green", "red"]
    results = json.loads((run_dir / "clip_metrics.json").read_text())
    for kind in ("aggregated", "middle_frame"):
        assert results[kind]["clips"] == {"val": 6, "test": 6}
        test = results[kind]["test"]
        assert test["n"] == 6 and 0 <= test["macro_auprc"] <= 1
        assert set(test["per_class"]) == {"blue", "green", "red"}
        assert "recall/red" in test["intervals"]
    contract = json.loads((run_dir / "clip.json").read_text())
    assert contract["sampling"] == "uniform:4"
    assert contract["aggregation"] == {"blue": "mean", "green": "mean", "red": "max"}
    assert set(contract["thresholds"]) == {"red"}
    assert set(clip_run.clips) == {"aggregated", "middle_frame"}
    assert clip_run.clips["aggregated"]["split"] == "test"
    assert set(clip_run.clips["aggregated"]["unsafe_recall"]) == {"red"}


def test_clip_thresholds_reach_the_recall_target_on_validation_clips(clip_run):
    contract = json.loads((clip_run.run_dir / "clip.json").read_text())
    red = contract["thresholds"]["red"]
    assert red["support"] == 2 and red["recall"] >= red["target_recall"]


def test_bundle_carries_the_clip_contract_and_predict_uses_it(clip_run, tmp_path):
    from shotlab.export.exporter import export_run
    from shotlab.export.predict_clips import clip_contract, clip_thresholds
    from shotlab.runtime.bundle import load_bundle

    exported = export_run(clip_run.run_dir, out=tmp_path / "bundle", progress=False,
                          explain=False)
    bundle = load_bundle(exported.path)
    saved = json.loads((clip_run.run_dir / "clip.json").read_text())
    assert bundle.clip == saved
    assert clip_thresholds(bundle) == saved["thresholds"] != bundle.thresholds
    contract = clip_contract(bundle)
    assert (contract.sampling, dict(contract.aggregation)) == \
        (saved["sampling"], saved["aggregation"])
    assert np.isclose(contract.margin, 0.1)


def test_the_clip_line_reports_recall_of_the_unsafe_classes_only():
    from shotlab.train.clip_eval import headline

    per_class = {c: {"recall": r} for c, r in (("safe", 1.0), ("nsfw", 0.5), ("gore", 1.0))}
    test = {"macro_auprc": 0.8, "macro_f1": 0.7, "per_class": per_class,
            "thresholds": {"safe": 0.5, "nsfw": 0.2, "gore": 0.5}}  # multilabel: every class
    results = {"aggregated": {"test": test}, "middle_frame": {"test": test}, "unsafe": ["nsfw"]}
    assert headline(results)["aggregated"]["unsafe_recall"] == {"nsfw": 0.5}
    assert headline({**results, "unsafe": []})["middle_frame"]["unsafe_recall"] == {}
    older = {"aggregated": {"test": {**test, "thresholds": {"nsfw": 0.2}}}, "middle_frame": {}}
    assert headline(older)["aggregated"]["unsafe_recall"] == {"nsfw": 0.5}  # before "unsafe"


def test_leaving_the_clip_contract_the_thresholds_were_chosen_under_is_warned(clip_run, tmp_path):
    """--sampling and --aggregate replaced the bundle's clip contract in silence while its clip
    thresholds, chosen under that contract, stayed (a tester's flags went 24 -> 5 with
    red=mean); --early-exit with mean pooling never stops a clip, and said nothing."""
    from click.testing import CliRunner

    from shotlab.cli import cli
    from shotlab.export.exporter import export_run

    bundle = export_run(clip_run.run_dir, out=tmp_path / "bundle", progress=False,
                        explain=False).path
    clip = colour_clip(tmp_path / "in" / "c.mp4", ["grey", "red", "grey"], seed=99)
    out = str(tmp_path / "d.jsonl")
    plain = CliRunner().invoke(cli, ["predict", str(bundle), str(clip), "--early-exit", "--out",
                                     out])
    assert plain.exit_code == 0 and "warning" not in plain.stderr, plain.output
    moved = CliRunner().invoke(cli, ["predict", str(bundle), str(clip), "--sampling", "fps:2",
                                     "--aggregate", "red=mean", "--early-exit", "--out", out])
    assert moved.exit_code == 0, moved.output
    said = " ".join(moved.stderr.split())
    assert ("warning: --sampling fps:2: the clip thresholds were chosen on validation clips "
            "sampled uniform:4") in said
    assert "--aggregate: red=mean departs from the pooling the clip thresholds were chosen " \
           "under (red=max)" in said
    assert "--early-exit: every unsafe class is pooled by mean" in said


def test_a_clip_run_prints_the_clip_thresholds_its_bundle_decides_with(clip_run, capsys):
    """`train` on clips printed the frame thresholds and their warnings (support: frames), never
    the clip thresholds the bundle deploys, so the margin it advised applied to another rule."""
    from shotlab.train.report import echo_run

    echo_run(clip_run, as_json=False)
    shown = capsys.readouterr().out
    saved = json.loads((clip_run.run_dir / "clip.json").read_text())["thresholds"]["red"]
    assert f"Clip threshold for unsafe class 'red': {saved['threshold']:.3f} (on val clips: " \
           in shown
    assert "Frame threshold (single images) for unsafe class 'red'" in shown
    assert "Threshold for unsafe class" not in shown
    echo_run(clip_run, as_json=True)
    assert json.loads(capsys.readouterr().out)["clip_thresholds"]["red"] == saved


def test_the_export_gate_judges_a_clip_bundle_on_clips(clip_run, tmp_path):
    """The export report measured a clip bundle on frames only: an INT8 model agreeing on 97%
    of frames still changed a clip decision, and nothing measured clips. The report now pools
    each runtime's frame scores per clip and decides them with the clip thresholds; the gate's
    rules apply to them (a runtime that loses the unsafe clips is refused by name)."""
    from shotlab.export.exporter import export_run
    from shotlab.export.validate import GateRules, clip_gate, evaluation_split
    from shotlab.runtime.bundle import load_bundle
    from shotlab.train.manifest import Manifest

    exported = export_run(clip_run.run_dir, out=tmp_path / "bundle", progress=False,
                          explain=False)
    clips = exported.report["clips"]
    assert clips["n"] == 6 and clips["contract"]["aggregation"]["red"] == "max"
    assert clips["runtimes"]["onnx"]["parity"]["top1_agreement"] == 1.0
    assert exported.report["gate"]["passed"]
    assert "onnx (6 clips)" in Path(exported.to_dict()["report"]).read_text()
    assert exported.to_dict()["clip_agreement"]["onnx"]["n"] == 6

    bundle, manifest = load_bundle(exported.path), Manifest.load(clip_run.run_dir / "manifest.json")
    _, entries = evaluation_split(manifest)
    classes = manifest.classes
    sure = np.array([[1.0 if c in e.labels else 0.0 for c in classes] for e in entries])
    blind = sure.copy()
    blind[:, classes.index("red")] = 0.0  # a runtime that never sees red
    report = {"gate": {"failures": [], "passed": True}}
    clip_gate(report, bundle, manifest, entries, sure, {"onnx-int8": blind}, GateRules())
    assert not report["gate"]["passed"]
    assert any(f.startswith("onnx-int8 (clips): recall on unsafe class 'red'")
               for f in report["gate"]["failures"]), report["gate"]["failures"]


def test_train_runs_lists_a_clip_run_by_its_clip_decisions(clip_run):
    """`train runs` listed a clip run's frame accuracy, not what its bundle decides per clip."""
    from shotlab.train.cli import split_label
    from shotlab.train.runs import run_summary

    clips = json.loads((clip_run.run_dir / "clip_metrics.json").read_text())["aggregated"]
    row = run_summary(clip_run.run_dir)
    assert (row["level"], row["split"]) == ("clips", "test")
    assert (row["accuracy"], row["macro_auprc"]) == (clips["test"]["accuracy"],
                                                     clips["test"]["macro_auprc"])
    assert split_label(row) == "test (clips)"
