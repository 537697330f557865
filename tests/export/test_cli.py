"""`shotlab export` and `shotlab predict`: --help, success, bad input, and the gate."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from tests.imaging import write_image


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("command", ["export", "predict"])
def test_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and f"Usage: cli {command}" in result.output


def test_export_unknown_format(trained_run, tmp_path):
    result = run("export", trained_run, "--to", "onnx,coreml", "--out", tmp_path / "b")
    assert result.exit_code == 2
    assert "--to must name export formats from: onnx, onnx-int8, tensorrt. Got coreml instead." in result.output


def test_export_contradictory_options(trained_run, tmp_path):
    result = run("export", trained_run, "--int8", "--out", tmp_path / "b")
    assert result.exit_code == 2 and "--int8 is a TensorRT option" in result.output
    assert not (tmp_path / "b").exists()


def test_export_not_a_run(tmp_path):
    result = run("export", tmp_path)
    assert result.exit_code == 2 and "no checkpoint found" in result.output


def test_export_refuses_a_checkpoint_or_run_its_thresholds_do_not_belong_to(trained_run, tmp_path):
    """last.pt was exported with best.pt's thresholds (and "trained before shotlab calibrated
    scores"); a run stopped before thresholds.json shipped with no policy and flagged nothing;
    a damaged thresholds.json was a JSONDecodeError traceback."""
    import shutil

    last = run("export", trained_run / "checkpoints" / "last.pt", "--out", tmp_path / "b")
    assert last.exit_code == 2 and "chosen on checkpoints/best.pt" in last.output
    assert f"export the run folder {trained_run}" in last.output
    copy = shutil.copytree(trained_run, tmp_path / "run")
    (copy / "thresholds.json").write_text('{"thresholds": {"red"')
    damaged = run("export", copy, "--out", tmp_path / "b")
    assert damaged.exit_code == 2 and "thresholds.json: not readable JSON" in damaged.output
    (copy / "thresholds.json").unlink()
    unfinished = run("export", copy, "--out", tmp_path / "b")
    assert unfinished.exit_code == 2 and "the run did not finish" in unfinished.output
    assert f"shotlab train --resume {copy}" in unfinished.output
    assert not (tmp_path / "b").exists()


def test_export_refuses_a_preprocessing_file_it_cannot_read_or_of_another_kind(trained_run,
                                                                              tmp_path):
    """A non-UTF-8 file was a UnicodeDecodeError traceback; a text contract on an image model a
    RuntimeError from deep inside torch.onnx.export."""
    binary = tmp_path / "device.json"
    binary.write_bytes(b"\xff\xfe{")
    unreadable = run("export", trained_run, "--out", tmp_path / "b", "--preprocessing", binary)
    assert unreadable.exit_code == 2 and f"{binary}: not a preprocessing contract" in unreadable.output
    text = tmp_path / "text.json"
    text.write_text(json.dumps({"kind": "text", "input_size": [64, 64], "mean": [0.5] * 3,
                                "std": [0.5] * 3, "tokenizer": "t.json", "max_tokens": 8}))
    other = run("export", trained_run, "--out", tmp_path / "b", "--preprocessing", text)
    assert other.exit_code == 2, other.output
    assert "--preprocessing: kind 'text', but the run's model reads image inputs" in other.output
    assert not (tmp_path / "b").exists()


def wrong_normalisation(bundle_path, tmp_path):
    """The bundle's contract with BGR channels: what a camera pipeline gets wrong."""
    contract = json.loads((bundle_path / "manifest.json").read_text())["preprocessing"]
    path = tmp_path / "bgr.json"
    path.write_text(json.dumps({**contract, "channel_order": "BGR"}))
    return path


def test_export_refuses_an_unusable_preprocessing_file_before_any_work(tmp_path):
    """interpolation 'cubic' crashed with a KeyError ~35 s into export."""
    contract = {"input_size": [64, 64], "mean": [0.5] * 3, "std": [0.5] * 3}
    path = tmp_path / "device.json"
    path.write_text(json.dumps({**contract, "interpolation": "cubic"}))
    result = run("export", tmp_path, "--out", tmp_path / "b", "--preprocessing", path)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert f"{path}: preprocessing interpolation 'cubic' is not one" in result.output
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("extra, message", [
    # a KeyError's "('mean')" before the contract's own check of 'border' could speak
    ({"crop_mode": "border", "mean": None, "std": None}, "crop_mode 'border' is not one"),
    ({"mean": None}, "preprocessing mean [] must be 3 numbers"),
    # "Preprocessing.__init__() got an unexpected keyword argument 'foo'"
    ({"foo": 3}, "unknown key(s) 'foo': a preprocessing contract has input_size, mean"),
])
def test_a_preprocessing_file_is_refused_by_its_keys_names(tmp_path, extra, message):
    contract = {"input_size": [64, 64], "mean": [0.5] * 3, "std": [0.5] * 3, **extra}
    path = tmp_path / "device.json"
    path.write_text(json.dumps({k: v for k, v in contract.items() if v is not None}))
    result = run("export", tmp_path, "--out", tmp_path / "b", "--preprocessing", path)
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"{path}: {message}" in result.output


def test_gate_refuses_a_broken_export_then_allows_it(exported, trained_run, tmp_path,
                                                     monkeypatch):
    contract = wrong_normalisation(exported.path, tmp_path)
    out = tmp_path / "bundle"
    refused = run("export", trained_run, "--out", out, "--preprocessing", contract,
                  "--no-explain")
    assert refused.exit_code == 1, refused.output
    assert "export refused" in refused.output and "top-1 agreement with PyTorch" in refused.output
    assert "recall on unsafe class 'red'" in refused.output
    assert not out.exists()
    rejected = json.loads((tmp_path / "bundle.rejected" / "report.json").read_text())
    assert rejected["gate"]["passed"] is False and not rejected["same_preprocessing"]
    ran = run("predict", tmp_path / "bundle.rejected", write_image(tmp_path / "p.png", seed=1),
              "--out", tmp_path / "d.jsonl")  # it used to run, signed and all
    assert ran.exit_code == 2 and "its export refused it (onnx: top-1 agreement" in ran.output
    assert "export with --allow-regression" in ran.output and not (tmp_path / "d.jsonl").exists()

    allowed = run("export", trained_run, "--out", out, "--preprocessing", contract,
                  "--no-explain", "--allow-regression")
    assert allowed.exit_code == 0, allowed.output
    said = " ".join(allowed.output.split())
    assert f"Bundle: {out}" in said and "WARNING: shipped with a regression" in said
    # the refused export's folder was left beside it, its report read as this bundle's; this
    # one did not pass the gate, so the line says how it shipped
    assert f"Removed {tmp_path / 'bundle.rejected'}: an earlier export to this --out the gate " \
           f"refused (this one was shipped with --allow-regression)." in said
    assert not (tmp_path / "bundle.rejected").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["gate"]["allowed_regression"] is True
    assert report["runtimes"]["onnx"]["parity"]["top1_agreement"] < 0.99
    assert "Shipped with a regression" in (out / "report.html").read_text()
    assert json.loads((out / "manifest.json").read_text())["preprocessing"]["channel_order"] == "BGR"
    # predict and serve ran the model its gate failed without a word: one warning line each
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # start-up only
    image = write_image(tmp_path / "p.png", seed=1)
    for command in (["predict", out, image, "--out", tmp_path / "d.jsonl"],
                    ["serve", out, "--port", 0, "--store", tmp_path / "store"]):
        result = run(*command)
        assert result.exit_code == 0, result.output
        (line,) = [x for x in result.stderr.splitlines() if "regression" in x]
        assert line.startswith(f"Warning: {out}: its onnx model was shipped with a regression "
                               f"(export --allow-regression): top-1 agreement with PyTorch ")
        assert "--min-agreement" in line
    plain = run("predict", exported.path, image, "--out", tmp_path / "d.jsonl")
    assert plain.exit_code == 0 and "regression" not in plain.stderr


def test_predict_success(exported, tmp_path):
    images = tmp_path / "images"
    write_image(images / "a.png", seed=1, size=(40, 30))
    write_image(images / "b.jpg", seed=2)
    (images / "broken.png").write_text("no")
    out = tmp_path / "out" / "decisions.jsonl"
    result = run("predict", exported.zip_path, images, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["images"] == 2 and data["bad"] == 1
    assert data["bad_files"][0]["path"].endswith("broken.png")
    assert len(out.read_text().splitlines()) == 2
    assert data["review_queue"] == str(out.parent / "review_queue.jsonl")
    text = run("predict", exported.path, images / "a.png", "--out", out)
    assert text.exit_code == 0 and "1 image predicted" in text.output


def test_predict_tampered_bundle(bundle_copy, tmp_path):
    (bundle_copy / "trtexec.txt").write_text("trtexec --onnx=evil.onnx\n")
    write_image(tmp_path / "a.png")
    result = run("predict", bundle_copy, tmp_path / "a.png", "--out", tmp_path / "d.jsonl")
    assert result.exit_code == 2
    assert "trtexec.txt: sha256 does not match the bundle manifest" in result.output
    assert not (tmp_path / "d.jsonl").exists()


def test_predict_not_a_bundle(tmp_path):
    write_image(tmp_path / "a.png")
    result = run("predict", tmp_path, tmp_path / "a.png")
    assert result.exit_code == 2 and "not a shotlab bundle" in result.output


def test_predict_explain_stores_the_review_queue(exported, tmp_path):
    pytest.importorskip("shotlab.explain.tier1", reason="shotlab.explain.tier1 not available")
    from tests.train.trainsets import write_colour_tree

    images = write_colour_tree(tmp_path / "images", counts={"new": 3}, seed=11)
    out = tmp_path / "out" / "decisions.jsonl"
    result = run("predict", exported.path, images, "--out", out, "--explain", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    queued = out.parent.joinpath("review_queue.jsonl").read_text().splitlines()
    assert data["flagged"] >= 1  # the red images
    assert data["explanations"]["stored"] == len(queued)
    assert data["explanations"]["store"] == str(out.parent / "explanations.sqlite")
    assert (out.parent / "explanations.sqlite").is_file()


def test_predict_explain_beside_a_file_that_is_no_store_says_how_to_get_past_it(exported,
                                                                              tmp_path):
    """The fix it gave, "give the explanations.sqlite that predict --explain wrote", was one
    predict has no option for."""
    from tests.train.trainsets import write_colour_tree

    images = write_colour_tree(tmp_path / "images", counts={"new": 3}, seed=11)
    out = tmp_path / "out" / "decisions.jsonl"
    out.parent.mkdir()
    (out.parent / "explanations.sqlite").write_text("notes\n")
    result = run("predict", exported.path, images, "--out", out, "--explain")
    assert result.exit_code == 2, result.output
    assert "not an explanation store" in result.output
    assert "move this file away or choose another --out" in " ".join(result.output.split())
    assert (out.parent / "explanations.sqlite").read_text() == "notes\n"


def test_predict_keeps_the_review_queue_of_another_decisions_file(exported, tmp_path):
    """Monday's run queued its red images in review_queue.jsonl; Tuesday's, written to another
    --out in the same folder, replaced that queue with its own (empty) one without a word."""
    from tests.train.trainsets import write_colour_tree

    images = write_colour_tree(tmp_path / "images", counts={"new": 3}, seed=11)
    monday = run("predict", exported.path, images / "new" / "red", "--out", tmp_path / "monday.jsonl")
    assert monday.exit_code == 0, monday.output
    queue = (tmp_path / "review_queue.jsonl").read_text()
    assert queue.count("\n") >= 1
    tuesday = run("predict", exported.path, images / "new" / "blue", "--out",
                  tmp_path / "tuesday.jsonl")
    assert tuesday.exit_code == 2 and "holds the review queue of another decisions file" \
        in tuesday.output
    assert (tmp_path / "review_queue.jsonl").read_text() == queue
    assert not (tmp_path / "tuesday.jsonl").exists()
    again = run("predict", exported.path, images / "new" / "red", "--out", tmp_path / "monday.jsonl")
    assert again.exit_code == 0, again.output  # its own queue is replaced as before


def test_predict_says_when_no_explanation_was_stored(tmp_path, capsys):
    import numpy as np

    from shotlab.export.cli import echo_predict, record_explanations
    from shotlab.export.predict import Prediction

    calm = Prediction(decisions=[{"needs_review": False, "flagged": []}] * 2,
                      inputs=[np.zeros((3, 8, 8), np.float32)] * 2)
    explanations = record_explanations(None, calm, tmp_path / "decisions.jsonl")
    assert explanations == {"stored": 0, "store": None}
    assert not (tmp_path / "explanations.sqlite").exists()
    data = {"bad_files": [], "images": 2, "labels": {"green": 2}, "flagged": 0,
            "needs_review": 0, "bad": 0, "decisions": "d.jsonl", "review_queue": "q.jsonl",
            "explanations": explanations}
    echo_predict(data)
    out = capsys.readouterr().out
    assert "Explanations stored: none (nothing flagged or queued for review)" in out
    assert "None" not in out


@pytest.mark.parametrize("counts, skipped", [({"texts": 3}, "2 bad rows skipped"),
                                             ({"posts": 1}, "2 bad rows skipped"),
                                             ({"images": 3}, "2 bad files skipped")])
def test_predict_counts_what_it_skipped_as_rows_or_files(counts, skipped, capsys):
    """Comments and posts are rows of a few files: '14 bad files skipped' named 5 files."""
    from shotlab.export.cli import echo_predict

    echo_predict({"bad_files": [], "labels": {}, "flagged": 0, "needs_review": 0, "bad": 2,
                  "decisions": "d.jsonl", "review_queue": "q.jsonl",
                  **counts})
    assert capsys.readouterr().out.splitlines()[0].endswith(skipped)


def test_export_leaves_out_and_names_test_images_changed_or_gone_since_the_run(tmp_path,
                                                                               dataset_name):
    """A test image replaced by another after training was scored under its old label and a
    deleted one skipped, exit 0 without a word: the report measured a test set the run never
    had."""
    import shutil

    from shotlab.curate.importer import import_path
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run
    from tests.train.trainsets import write_colour_tree

    root = write_colour_tree(tmp_path / "colours", counts={"train": 6, "val": 3, "test": 4})
    import_path(root, dataset_name, progress=False)
    run = train_run(dataset_name, TrainConfig(backbone="tiny-test", mode="full", epochs=1,
                                              workers=0, unsafe=["red"]),
                    track=False, writeback=False, progress=False).run_dir
    reds, greens = sorted((root / "test" / "red").iterdir()), sorted((root / "test" / "green")
                                                                     .iterdir())
    shutil.copyfile(greens[0], reds[0])  # a green picture now under a red test image's name
    reds[1].unlink()
    result = CliRunner().invoke(cli, ["export", str(run), "--out", str(tmp_path / "b"),
                                      "--no-explain", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    left_out = {item["path"]: item["reason"] for item in data["skipped"]}
    assert "changed since the run" in left_out[str(reds[0])]
    assert str(reds[1]) in left_out and data["measured"] == data_total(run) - 2
    shown = CliRunner().invoke(cli, ["export", str(run), "--out", str(tmp_path / "c"),
                                     "--no-explain"])
    assert f"test sample {reds[0]} left out of the report: changed since the run" in shown.stderr


def data_total(run) -> int:
    manifest = json.loads((run / "manifest.json").read_text())
    return sum(entry["split"] == "test" for entry in manifest["entries"])


def test_a_gate_failure_on_clips_names_its_runtime():
    from shotlab.export.runtime_choice import failed_runtime, rule_of

    assert rule_of("onnx-int8 (clips): recall on unsafe class 'red' 0.0") == \
        "recall on unsafe class 'red' 0.0 (on clips)"

    assert failed_runtime("onnx-int8: top-1 agreement with PyTorch 0.5 is below") == "onnx-int8"
    assert failed_runtime("onnx-int8 (clips): recall on unsafe class 'red' 0.0") == "onnx-int8"
    assert failed_runtime("onnx: recall on unsafe class 'red' 0.0 vs PyTorch") == "onnx"
