"""Bundle round trip: export, load (folder and zip), run, and refuse tampered files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shotlab.core.errors import InputError
from shotlab.export import onnx_export
from shotlab.runtime.bundle import load_bundle, zip_folder
from shotlab.runtime.contract import INPUT_NAME
from shotlab.runtime.kinds import load_inputs
from shotlab.runtime.runners import OnnxRunner, TorchRunner, make_runner, run_batched
from shotlab.train.checkpoint import load_checkpoint
from shotlab.train.manifest import Manifest

# FP32 ONNX vs PyTorch on the CPU: the same kernels up to summation order (measured ~1e-7).
FP32_TOLERANCE = 1e-4
# FP16 weights and activations keep ~3 significant digits; probabilities move by ~1e-4..1e-3.
FP16_TOLERANCE = 1e-2


def split_paths(run_dir):
    manifest = Manifest.load(run_dir / "manifest.json")
    return [e.filepath for e in manifest.split("test")]


@pytest.fixture(scope="module")
def reference(trained_run):
    checkpoint = load_checkpoint(trained_run)
    inputs = load_inputs(split_paths(trained_run), checkpoint.preprocessing, progress=False)
    return inputs.arrays, run_batched(TorchRunner(checkpoint.model, checkpoint.task), inputs.arrays)


@pytest.mark.parametrize("fp16, tolerance", [(False, FP32_TOLERANCE), (True, FP16_TOLERANCE)],
                         ids=["fp32", "fp16"])
def test_round_trip_agrees_with_pytorch(exported, reference, fp16, tolerance):
    arrays, expected = reference
    probs = make_runner(load_bundle(exported.path), "onnx-fp16" if fp16 else "onnx")(arrays)
    assert probs.shape == expected.shape == (18, 3)
    assert np.abs(probs - expected).max() < tolerance
    assert (probs.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-3)  # softmax inside the graph


def test_report_records_parity_and_gate(exported):
    report = json.loads((exported.path / "report.json").read_text())
    assert report["split"] == "test" and report["n"] == 18
    assert report["gate"] == {"passed": True, "failures": [], "unchecked": [],
                              "allowed_regression": False, "min_agreement": 0.99,
                              "recall_tolerance": 0.02}
    flags = report["pytorch"]["flag_recall"]  # red's positives flagged, measured on both sides
    assert set(flags) == {"red"} and flags == report["runtimes"]["onnx"]["parity"]["flag_recall"]
    assert set(report["runtimes"]) == {"onnx", "onnx-fp16"}
    assert report["runtimes"]["onnx"]["parity"]["max_abs_diff"] < FP32_TOLERANCE
    assert report["runtimes"]["onnx"]["metrics"]["per_class"]["red"]["recall"] == \
        report["pytorch"]["metrics"]["per_class"]["red"]["recall"]
    assert set(report["speed"]["batches"]) == {"1", "32"}
    assert set(report["speed"]["batches"]["32"]) == {"pytorch", "onnx", "onnx-fp16"}
    html = (exported.path / "report.html").read_text()
    assert "Regression gate passed" in html and "data:image/png;base64," in html
    assert "thresholds chosen on the validation split" in html  # a full run: val alone
    assert "<script" not in html and "http" not in html.split("<body>")[1]  # self-contained


def test_report_explains_a_sample_per_class(exported):
    section = exported.report["explanations"]
    if not section.get("available"):
        pytest.skip(f"shotlab.explain not available: {section.get('reason')}")
    items = section["items"]
    assert {item["true"] for item in items} == {"blue", "green", "red"}
    assert all(item["_gradcam_png"] and item["_lime_png"] for item in items)


def test_manifest_describes_the_bundle(exported, trained_run):
    bundle = load_bundle(exported.path)
    manifest = bundle.manifest
    assert bundle.classes == ["blue", "green", "red"] and bundle.task == "multiclass"
    run_thresholds = json.loads((trained_run / "thresholds.json").read_text())
    assert bundle.thresholds == run_thresholds["thresholds"]
    assert manifest["policy"]["unsafe"] == ["red"]
    assert manifest["dataset_manifest_hash"] == Manifest.load(trained_run / "manifest.json").hash
    assert bundle.checkpoint_path == trained_run / "checkpoints" / "best.pt"
    assert manifest["source"]["run"] == str(trained_run)
    assert bundle.preprocessing == load_checkpoint(trained_run).preprocessing
    assert manifest["input"]["shape"] == ["batch", 3, 64, 64]
    assert set(manifest["files"]) >= {"model.onnx", "model.fp16.onnx", "report.html",
                                      "report.json", "trtexec.txt"}
    assert {"torch", "timm", "onnx", "onnxruntime", "numpy", "python", "shotlab"} <= {
        k for k, v in manifest["versions"].items() if v}


def test_a_relative_run_is_recorded_by_its_absolute_path(trained_run, monkeypatch):
    """A bundle exported as `export runs/x` from one folder found no checkpoint for Grad-CAM or
    Integrated Gradients when run from any other folder."""
    from shotlab.export.exporter import base_manifest

    checkpoint = load_checkpoint(trained_run)
    monkeypatch.chdir(trained_run.parent)
    relative = type(trained_run)(trained_run.name)
    manifest = base_manifest(checkpoint, relative, {}, checkpoint.preprocessing, "hash")
    assert manifest["source"]["run"] == str(trained_run)
    assert manifest["source"]["checkpoint"] == str(checkpoint.path.absolute())


def test_onnx_carries_the_manifest_summary(exported):
    meta = onnx_export.metadata(exported.path / "model.onnx")
    assert json.loads(meta["shotlab.classes"]) == ["blue", "green", "red"]
    assert json.loads(meta["shotlab.preprocessing"])["input_size"] == [64, 64]
    assert json.loads(meta["shotlab.policy"])["unsafe"] == ["red"]


def test_dynamic_batch(exported):
    runner = OnnxRunner(load_bundle(exported.path))
    for n in (1, 5):
        assert runner(np.zeros((n, 3, 64, 64), np.float32)).shape == (n, 3)


def test_zip_bundle_loads_and_runs(exported, reference):
    arrays, expected = reference
    bundle = load_bundle(exported.zip_path)
    assert bundle.origin == exported.zip_path and bundle.classes == ["blue", "green", "red"]
    assert np.abs(OnnxRunner(bundle)(arrays) - expected).max() < FP32_TOLERANCE


def test_tampered_file_is_refused_by_name(bundle_copy):
    model = bundle_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"model\.onnx: sha256 does not match"):
        load_bundle(bundle_copy)
    assert load_bundle(bundle_copy, verify=False).classes  # verify=False is the escape hatch


def test_missing_file_is_refused_by_name(bundle_copy):
    (bundle_copy / "report.json").unlink()
    with pytest.raises(InputError, match=r"report\.json is missing"):
        load_bundle(bundle_copy)


def flip_a_model_byte(bundle):
    model = bundle / "model.onnx"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0xFF
    model.write_bytes(bytes(data))


@pytest.mark.parametrize("damage,refusal", [
    (flip_a_model_byte, r"bundle\.zip: model\.onnx: sha256 does not match"),
    (lambda bundle: (bundle / "report.json").unlink(),
     r"bundle\.zip: bundle file report\.json is missing"),
], ids=["tampered", "missing"])
def test_a_damaged_zip_bundle_is_named_by_its_zip(bundle_copy, tmp_path, damage, refusal):
    """The message named the temporary folder the zip was unpacked into (gone at exit)."""
    damage(bundle_copy)
    archive = zip_folder(bundle_copy, tmp_path / "bundle.zip")
    with pytest.raises(InputError, match=refusal) as refused:
        load_bundle(archive)
    assert "shotlab-bundle-" not in str(refused.value)


def test_a_zip_of_the_bundle_folder_itself_is_named_with_the_fix(bundle_copy, tmp_path):
    """zip -r bundle.zip bundle/ puts the manifest one level down."""
    import zipfile

    archive = tmp_path / "nested.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(bundle_copy.rglob("*")):
            out.write(path, path.relative_to(bundle_copy.parent).as_posix())
    with pytest.raises(InputError, match=r"nested\.zip: not a shotlab bundle \(no manifest\.json\) "
                                         r"\(it holds bundle/manifest\.json: zip the bundle "
                                         r"folder's files, not the folder"):
        load_bundle(archive)


def test_not_a_bundle(tmp_path):
    with pytest.raises(InputError, match="not a shotlab bundle"):
        load_bundle(tmp_path)
    (tmp_path / "x.zip").write_text("not a zip")
    with pytest.raises(InputError, match="not a readable zip"):
        load_bundle(tmp_path / "x.zip")


def test_existing_bundle_is_not_overwritten(exported, trained_run):
    from shotlab.export.exporter import export_run

    with pytest.raises(InputError, match="already exists; pass --force"):
        export_run(trained_run, out=exported.path)


def test_force_replaces_the_bundle_and_its_stale_zip(trained_run, tmp_path):
    from shotlab.export.exporter import export_run

    out = tmp_path / "bundle"
    first = export_run(trained_run, out=out, zip_bundle=True, explain=False)
    assert first.zip_path == tmp_path / "bundle.zip" and first.zip_path.is_file()
    second = export_run(trained_run, out=out, force=True, explain=False)
    assert second.zip_path is None and not (tmp_path / "bundle.zip").exists()
    assert load_bundle(out).classes == ["blue", "green", "red"]


def test_a_zip_in_the_way_is_never_replaced(trained_run, tmp_path):
    from shotlab.export.exporter import export_run

    (tmp_path / "bundle.zip").write_bytes(b"someone else's file")
    for force in (False, True):
        with pytest.raises(InputError, match=r"bundle\.zip is in the way and is not a shotlab "
                                             r"bundle zip: it is not a readable zip"):
            export_run(trained_run, out=tmp_path / "bundle", zip_bundle=True, force=force,
                       explain=False)
    export_run(trained_run, out=tmp_path / "bundle", explain=False)  # no --zip: left alone
    export_run(trained_run, out=tmp_path / "bundle", force=True, explain=False)  # not ours
    assert (tmp_path / "bundle.zip").read_bytes() == b"someone else's file"


def test_multilabel_export_puts_sigmoid_in_the_graph(tmp_path):
    import onnxruntime as ort
    import torch

    from shotlab.train.backbones import create_model

    model = create_model("tiny-test", num_classes=4, pretrained=False).model.eval()
    path = onnx_export.export_file(model, "multilabel", (3, 64, 64), tmp_path / "m.onnx")
    onnx_export.check(path)
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs = session.run(None, {INPUT_NAME: x})[0]
    with torch.inference_mode():
        expected = torch.sigmoid(model(torch.from_numpy(x))).numpy()
    assert np.abs(probs - expected).max() < FP32_TOLERANCE
    assert not np.allclose(probs.sum(axis=1), 1.0)  # independent scores, not a softmax


@pytest.mark.slow
def test_report_shows_calibration_before_and_after_and_the_review_load(tmp_path, dataset_name):
    """The report showed only the calibrated ECE (train printed 'ECE on test 0.231 -> 0.187'),
    and neither the flag rate nor the review rate of each threshold. A calibrated run: 21 val
    samples, over the 20 calibration needs (the shared run has 12, and stays raw)."""
    import html as html_module

    from shotlab.curate.importer import import_path
    from shotlab.export.exporter import export_run
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run
    from tests.train.trainsets import write_colour_tree

    root = write_colour_tree(tmp_path / "colours", counts={"train": 6, "val": 7, "test": 4})
    import_path(root, dataset_name, progress=False)
    config = TrainConfig(backbone="tiny-test", mode="linear", epochs=2, workers=0,
                         unsafe=["red"])
    run_dir = train_run(dataset_name, config, track=False, writeback=False,
                        progress=False).run_dir
    result = export_run(run_dir, out=tmp_path / "bundle", explain=False, progress=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())["test"]
    report = json.loads((result.path / "report.json").read_text())
    assert report["calibration"] == {"split": "test", "ece_raw": metrics["ece_raw"],
                                     "ece": metrics["ece"]}
    page = html_module.unescape((result.path / "report.html").read_text())
    assert f"ECE on test {metrics['ece_raw']:.3f} → {metrics['ece']:.3f}" in page
    record = result.manifest["calibration"]
    assert record["method"] == "temperature"
    assert f"val ECE {record['val_ece_before']:.3f} → {record['val_ece_after']:.3f}" in page
    red = json.loads((run_dir / "thresholds.json").read_text())["thresholds"]["red"]
    row = (f"<td>{red['precision']:.3f}</td><td>{red['flag_rate']:.0%}</td>"
           f"<td>{red['review_rate']:.0%}</td></tr>")
    assert row in page and "sent to review</th>" in page
