"""The format table, contradictory options, and TensorRT (skipped where it cannot run)."""

from __future__ import annotations

import numpy as np
import pytest

from shotlab.core.errors import InputError, ShotlabError
from shotlab.export import tensorrt_build
from shotlab.runtime.runners import tensorrt_unavailable_reason
from shotlab.export.formats import FORMATS, check_options, parse_formats
from shotlab.export.parity import flag_recall, gate_failures, unchecked

TENSORRT_MISSING = tensorrt_unavailable_reason()


def test_formats_table():
    assert list(FORMATS) == ["onnx", "onnx-int8", "tensorrt"]
    assert parse_formats("onnx") == ["onnx"]
    assert parse_formats("tensorrt") == ["onnx", "tensorrt"]  # the engine is built from ONNX
    assert parse_formats(" TensorRT , onnx ") == ["onnx", "tensorrt"]


@pytest.mark.parametrize("text", ["coreml", "onnx,tflite", "", " , "])
def test_unknown_format_lists_the_known_ones(text):
    with pytest.raises(InputError, match="--to must name export formats from: onnx, onnx-int8, tensorrt"):
        parse_formats(text)


def test_int8_needs_tensorrt():
    with pytest.raises(InputError, match="--int8 is a TensorRT option"):
        check_options(["onnx"], fp16=False, int8=True)
    check_options(["onnx", "tensorrt"], fp16=True, int8=True)  # FP16 fallback for INT8 layers


def test_trtexec_command_reproduces_the_build():
    command = tensorrt_build.trtexec_command("model.onnx", "input", (3, 224, 224), fp16=True,
                                             int8=True)
    assert command.split() == [
        "trtexec", "--onnx=model.onnx", "--saveEngine=model.engine",
        "--minShapes=input:1x3x224x224", "--optShapes=input:32x3x224x224",
        "--maxShapes=input:64x3x224x224", "--timingCacheFile=timing.cache",
        "--memPoolSize=workspace:1024M", "--fp16", "--int8", "--calib=calibration.cache"]


def test_bundle_always_has_trtexec(exported):
    command = (exported.path / "trtexec.txt").read_text().splitlines()[-1]
    assert command.startswith("trtexec --onnx=model.onnx --saveEngine=model.engine")
    assert "--minShapes=input:1x3x64x64" in command
    assert "--fp16" in command and "--int8" not in command


@pytest.mark.skipif(TENSORRT_MISSING is None, reason="TensorRT is available here")
def test_tensorrt_missing_fails_clearly(trained_run, tmp_path):
    from shotlab.export.exporter import export_run

    with pytest.raises(ShotlabError, match="--to tensorrt: .*trtexec.txt") as info:
        export_run(trained_run, formats=["onnx", "tensorrt"], out=tmp_path / "b")
    assert info.value.exit_code == 1
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.partial").exists()


@pytest.mark.tensorrt
@pytest.mark.skipif(TENSORRT_MISSING is not None, reason=f"TensorRT cannot run here: "
                                                         f"{TENSORRT_MISSING}")
def test_tensorrt_engine_agrees_with_onnx(trained_run, tmp_path):
    import numpy as np

    from shotlab.export.exporter import export_run
    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.runners import OnnxRunner, make_runner

    result = export_run(trained_run, formats=["onnx", "tensorrt"], fp16=True, int8=True,
                        out=tmp_path / "b", explain=False)
    bundle = load_bundle(result.path)
    batch = np.random.default_rng(0).normal(size=(4, 3, 64, 64)).astype(np.float32)
    assert np.abs(make_runner(bundle, "tensorrt")(batch) - OnnxRunner(bundle)(batch)).max() < 0.05
    assert (result.path / "calibration.cache").is_file()
    assert (result.path / "timing.cache").is_file()


def reference_metrics(recall):
    return {"per_class": {"red": {"recall": recall}, "blue": {"recall": 1.0}}}


def test_gate_names_the_metric_and_numbers():
    failures = gate_failures("onnx", {"top1_agreement": 0.9}, reference_metrics(0.5),
                             reference_metrics(1.0), ["red"], min_agreement=0.99,
                             recall_tolerance=0.02)
    assert failures == [
        "onnx: top-1 agreement with PyTorch 0.900 is below --min-agreement 0.990",
        "onnx: recall on unsafe class 'red' 0.500 vs PyTorch 1.000 (drop 0.500 > "
        "--recall-tolerance 0.020)"]


def test_gate_passes_within_tolerance():
    assert gate_failures("onnx", {"top1_agreement": 0.995}, reference_metrics(0.99),
                         reference_metrics(1.0), ["red"], min_agreement=0.99,
                         recall_tolerance=0.02) == []
    assert gate_failures("onnx", {"top1_agreement": 1.0}, reference_metrics(None),
                         reference_metrics(None), ["red"], min_agreement=0.99,
                         recall_tolerance=0.0) == []  # no positives: nothing to compare


def test_gate_refuses_a_runtime_that_stops_flagging_what_keeps_its_label():
    """Scores that fall under the threshold but stay the argmax keep the label and its recall:
    the gate passed a bundle (std x1.6 preprocessing) that flagged 0 of 6 red images."""
    classes, thresholds = ["blue", "red"], {"red": {"threshold": 0.9, "review_band": [0.85, 0.95]}}
    y = np.array([1, 1, 1, 1, 0])
    torch_probs = np.array([[0.02, 0.98], [0.05, 0.95], [0.04, 0.96], [0.3, 0.7], [0.9, 0.1]])
    onnx_probs = np.array([[0.2, 0.8], [0.3, 0.7], [0.25, 0.75], [0.3, 0.7], [0.9, 0.1]])
    ours = flag_recall(y, onnx_probs, classes, "multiclass", thresholds, ["red"])
    theirs = flag_recall(y, torch_probs, classes, "multiclass", thresholds, ["red"])
    assert (ours, theirs) == ({"red": 0.0}, {"red": 0.75})
    same_labels = reference_metrics(1.0)  # every red image is still labelled red
    failures = gate_failures("onnx", {"top1_agreement": 1.0, "flag_recall": ours}, same_labels,
                             same_labels, ["red"], min_agreement=0.99, recall_tolerance=0.02,
                             reference_flags=theirs)
    assert failures == ["onnx: share of positives flagged for unsafe class 'red' 0.000 vs "
                        "PyTorch 0.750 (drop 0.750 > --recall-tolerance 0.020)"]


def test_a_drop_of_exactly_the_tolerance_passes():
    """1 - 0.98 is 0.020000000000000018 in floating point: 49 of 50 was refused at 0.02."""
    assert gate_failures("onnx", {"top1_agreement": 1.0}, reference_metrics(49 / 50),
                         reference_metrics(1.0), ["red"], min_agreement=0.99,
                         recall_tolerance=0.02) == []


def test_an_unsafe_class_without_test_positives_is_named_as_unchecked():
    assert unchecked(reference_metrics(None), ["red"], "test") == [
        "recall on unsafe class 'red' not checked: the test split has no 'red' samples"]
    assert unchecked(reference_metrics(0.5), ["red"], "test") == []
