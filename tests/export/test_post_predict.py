"""Posts end to end on real data: import a tiny post set (datasets/sample images with the
captions of datasets/posts.py), train the late-fusion model (frozen lite0 + MiniLM), export the
two-input ONNX bundle, check its parity with PyTorch, then `shotlab predict --explain` on a
posts CSV with bad rows: decisions, review queue, and per flagged post the modality split,
Grad-CAM and (once the text explanations are there) the caption's word scores."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner


pytestmark = pytest.mark.fiftyone


def test_training_a_post_dataset_records_a_late_fusion_run(post_run):
    import yaml

    run_dir, _, _, rows = post_run
    assert run_dir.name.endswith("-lite0-fusion")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["train"]["mode"] == "fusion"
    captions = json.loads((run_dir / "captions.json").read_text())
    assert sorted(captions.values()) == sorted(r["text"] for r in rows)
    assert {"val", "test", "calibration"} <= set(json.loads((run_dir / "metrics.json").read_text()))
    assert "off_topic" in json.loads((run_dir / "thresholds.json").read_text())["thresholds"]
    assert (run_dir / "plots" / "reliability_test.png").is_file()
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    assert history[0]["train_loss"] > 0  # the head's log loss on the train posts
    from shotlab.core import store

    predicted = store.load(json.loads((run_dir / "manifest.json").read_text())["dataset"])
    assert all(p is not None for p in predicted.values("predictions"))  # written back


def test_a_resumed_post_run_fits_on_the_captions_its_start_froze(post_run, tmp_path):
    """--resume froze the captions again from the dataset as it is now: a caption edited since
    the start was trained on unseen (captions are not in the manifest's hash)."""
    import shutil

    import torch

    from shotlab.train.finetune import TrainConfig
    from shotlab.train.manifest import Manifest
    from shotlab.train.post_fit import captions_hash, fit, read_captions

    run_dir = shutil.copytree(post_run[0], tmp_path / "run")
    frozen = read_captions(run_dir)
    first = next(iter(frozen))
    frozen[first] = "what the run froze, not what the dataset holds now"
    (run_dir / "captions.json").write_text(json.dumps(frozen))
    manifest = Manifest.load(run_dir / "manifest.json")
    fit(manifest, TrainConfig(backbone="lite0", mode="fusion", workers=0), run_dir, resume=True)
    state = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)
    assert state["captions_sha256"] == captions_hash(frozen)
    assert read_captions(run_dir)[first] == frozen[first]


def test_the_bundle_is_one_two_input_onnx_with_the_tokenizer_and_parity(post_run):
    import onnxruntime as ort

    from shotlab.explain.tier1 import load_bundle_checkpoint
    from shotlab.export.post_export import post_inputs
    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.runners import TorchRunner, make_runner, run_batched
    from shotlab.train.manifest import Manifest

    run_dir, exported, _, _ = post_run
    bundle = load_bundle(exported.path)
    assert sorted(p.name for p in exported.path.iterdir()) == \
        ["manifest.json", "model.onnx", "report.html", "report.json", "tokenizer.json"]
    assert list(bundle.parts) == ["image", "text"]
    assert bundle.parts["text"].tokenizer == str(bundle.path / "tokenizer.json")  # the copy
    session = ort.InferenceSession(str(exported.path / "model.onnx"))
    assert [(i.name, i.type, i.shape) for i in session.get_inputs()] == \
        [("image", "tensor(float)", ["batch", 3, 224, 224]),
         ("text", "tensor(int64)", ["batch", "tokens"])]
    parity = exported.report["runtimes"]["onnx"]["parity"]
    assert parity["top1_agreement"] == 1.0 and parity["max_abs_diff"] < 1e-4
    assert exported.report["gate"]["passed"]

    # Parity again here, on every post of the run, through both runners' dict batches.
    checkpoint = load_bundle_checkpoint(bundle)
    manifest = Manifest.load(run_dir / "manifest.json")
    inputs = post_inputs(checkpoint, bundle.parts, list(manifest.entries))
    torch_probs = run_batched(TorchRunner(checkpoint.model, bundle.task, 2,
                                          specs=bundle.input_specs()), inputs.arrays)
    onnx_probs = run_batched(make_runner(bundle, "onnx"), inputs.arrays, batch_size=7)
    assert np.abs(torch_probs - onnx_probs).max() < 1e-4


def test_multi_part_export_refuses_what_it_cannot_build(post_run):
    from shotlab.core.errors import InputError
    from shotlab.export.exporter import export_run

    run_dir, _, folder, _ = post_run
    with pytest.raises(InputError, match="exports as FP32 ONNX only; drop --fp16"):
        export_run(run_dir, out=folder / "other", fp16=True, progress=False)


def write_predict_csv(folder, rows):
    """The test posts plus bad rows (lines named in the test)."""
    test_rows = [r for r in rows if r["split"] == "test"]
    path = folder / "incoming.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_path", "text"])
        for row in test_rows:
            writer.writerow([row["image_path"], row["text"]])
        writer.writerow(["images/not-there.png", "where did it go"])
        writer.writerow([test_rows[0]["image_path"], "   "])
        writer.writerow([animated_picture(folder / "anim.gif"), "a harmless first frame"])
    return path, len(test_rows)


def animated_picture(path):
    """A two-frame GIF: a post model scores one still, so it is refused, not decided on its
    first frame."""
    from PIL import Image

    frames = [Image.new("RGB", (32, 32), colour) for colour in ("green", "red")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=200)
    return str(path)


def test_predict_and_explain_posts_end_to_end(post_run, tmp_path):
    from shotlab.cli import cli
    from shotlab.explain.store import ExplanationStore

    _, exported, folder, rows = post_run
    path, n = write_predict_csv(folder, rows)
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(exported.path), str(path), "--out", str(out),
                                      "--explain", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["posts"], data["images"], data["bad"]) == (n, 0, 3)
    bad = {b["path"]: b["reason"] for b in data["bad_files"]}
    assert "not found" in bad[f"{path}:{n + 2}"] and "empty" in bad[f"{path}:{n + 3}"]
    assert "anim.gif: an animated picture (several frames)" in bad[f"{path}:{n + 4}"]
    assert "not-there.png: file not found" in bad[f"{path}:{n + 2}"]  # the image named

    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    queue = [json.loads(line) for line in (tmp_path / "review_queue.jsonl").read_text().splitlines()]
    assert len(decisions) == n and all(d["kind"] == "post" for d in decisions)
    assert [d["source"] for d in decisions] == [f"{path}:{i}" for i in range(2, n + 2)]
    assert {d["decision_id"] for d in queue} == \
        {d["decision_id"] for d in decisions if d["flagged"] or d["needs_review"]}
    assert queue and data["explanations"]["stored"] == len(queue)

    with ExplanationStore(tmp_path / "explanations.sqlite", readonly=True) as store:
        for decision in queue:
            rows_of = {r.method: r for r in store.explanations(decision["decision_id"])}
            split = rows_of["modality_split"].scores
            target = rows_of["modality_split"].target
            assert split["phi_image"] + split["phi_text"] == \
                pytest.approx(split["both"] - split["neither"], abs=1e-12)
            # the split's "both" is the decision's own score: the same ONNX model decided it
            assert split["both"] == pytest.approx(decision["scores"][target], abs=1e-5)
            assert rows_of["modality_split"].params["neutral"]["text"] == \
                "empty comment: [CLS] [SEP]"
            cam = rows_of["gradcam"]
            assert cam.params["part"] == "image" and cam.map.shape == (224, 224)
            assert store.decision(decision["decision_id"])["path"] == decision["path"]
            if has_text_attribution():  # the caption's words, through the text explanations
                words = rows_of["ig"]
                assert words.params["part"] == "text" and words.params["text"] == decision["text"]
                assert words.map.shape == (1, len(words.params["words"]))
                assert "comprehensiveness" in words.scores
    # `explain show` prints the split (it printed the methods' names alone)
    first = queue[0]["decision_id"]
    with ExplanationStore(tmp_path / "explanations.sqlite", readonly=True) as store:
        split = {r.method: r for r in store.explanations(first)}["modality_split"].scores
    shown = CliRunner().invoke(cli, ["explain", "show", first, "--store",
                                     str(tmp_path / "explanations.sqlite")])
    assert shown.exit_code == 0, shown.output
    assert f"picture {split['phi_image']:+.3f}, caption {split['phi_text']:+.3f}" in shown.stdout


def has_text_attribution() -> bool:
    try:
        from shotlab.explain import explain_text  # noqa: F401
    except ImportError:
        return False
    return True


def test_explain_on_a_post_bundle_points_to_predict_explain(post_run):
    """It said 'give a dict of arrays by part name', an internal message with no way forward."""
    from click.testing import CliRunner

    from shotlab.cli import cli

    _, exported, folder, rows = post_run
    image = next(folder.rglob("*.png"))
    result = CliRunner().invoke(cli, ["explain", str(exported.path), str(image)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"Error: {exported.path}: a post model (image + text); its decisions are explained per "
        f"part by `shotlab predict {exported.path} POSTS.csv --explain`, then `shotlab explain "
        f"show DECISION_ID --store STORE`")
