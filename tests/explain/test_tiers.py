"""Tier 1 (a Grad-CAM per flagged decision, inline) and tier 2 (queued appeals, in batches)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from shotlab.core.errors import ShotlabError
from shotlab.explain.pending import process_pending
from shotlab.explain.store import ExplanationStore
from shotlab.explain.tier1 import record_flagged, target_class

FAST = {"lime": {"num_samples": 100}, "shap": {"max_evals": 100}}


def decisions_for(bundle, paths):
    """Decisions as `shotlab predict` writes them, from the bundle's own ONNX runner."""
    from shotlab.core.images import load_rgb, sha256_file
    from shotlab.runtime.runners import OnnxRunner

    inputs = np.stack([bundle.preprocessing.to_array(load_rgb(p)) for p in paths])
    probs = OnnxRunner(bundle)(inputs)
    decisions = []
    for k, (path, row) in enumerate(zip(paths, probs)):
        scores = dict(zip(bundle.classes, map(float, row)))
        decisions.append({"decision_id": f"d{k}", "path": str(path), "sha256": sha256_file(path),
                          "scores": scores, "labels": [max(scores, key=scores.get)],
                          "flagged": ["red"] if k == 0 else [], "needs_review": k != 0,
                          "model_sha256": bundle.model_sha256()})
    return decisions, inputs


def test_target_is_the_top_flagged_class_else_the_top_class():
    scores = {"red": 0.3, "blue": 0.6, "green": 0.1}
    assert target_class({"scores": scores, "flagged": ["red"]}) == "red"
    assert target_class({"scores": scores, "flagged": []}) == "blue"


def test_record_flagged_stores_one_gradcam_per_decision(explain_bundle, colour_images, tmp_path):
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(explain_bundle)
    decisions, inputs = decisions_for(bundle, colour_images[:3])
    assert record_flagged(bundle, decisions, inputs, tmp_path / "e.sqlite") == 3
    with ExplanationStore(tmp_path / "e.sqlite", create=False) as store:
        assert store.count() == 3 and store.count("decisions") == 3
        (first,) = store.explanations("d0")
        assert first.method == "gradcam" and first.target == "red"
        assert first.map.shape == tuple(bundle.preprocessing.input_size)
        assert 0 <= first.map.min() and first.map.max() <= 1
        assert first.input_sha256 == decisions[0]["sha256"]
        assert store.decision("d1")["path"] == str(colour_images[1])


def test_every_class_flagged_or_reviewed_gets_its_own_gradcam(explain_bundle, colour_images,
                                                              tmp_path):
    """Tier 1 explained one class per decision: an image flagged 'red' and reviewed for 'blue'
    had no map of 'blue' for the reviewer asked about it."""
    from shotlab.explain.tier1 import attention_classes
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(explain_bundle)
    decisions, inputs = decisions_for(bundle, colour_images[:2])
    decisions[0]["review_classes"] = ["blue"]  # flagged red, blue in its review band
    assert attention_classes(decisions[0]) == sorted(
        ["red", "blue"], key=lambda c: -decisions[0]["scores"][c])
    assert record_flagged(bundle, decisions, inputs, tmp_path / "e.sqlite") == 3
    with ExplanationStore(tmp_path / "e.sqlite", create=False) as store:
        maps = {m.target: m.map for m in store.explanations("d0")}
        assert set(maps) == {"red", "blue"} and not np.allclose(maps["red"], maps["blue"])
        assert store.count("decisions") == 2 and len(store.explanations("d1")) == 1
    # predict names the target of a clip's frame rows and none of its images' (it passed a
    # list of them, so its images were explained for one class only)
    assert record_flagged(bundle, decisions, inputs, tmp_path / "f.sqlite",
                          targets=[None, "green"]) == 3
    with ExplanationStore(tmp_path / "f.sqlite", create=False) as store:
        assert {m.target for m in store.explanations("d0")} == {"red", "blue"}
        assert [m.target for m in store.explanations("d1")] == ["green"]


def test_record_flagged_without_the_checkpoint_says_so(explain_bundle, colour_images, tmp_path):
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(explain_bundle)
    manifest = {**bundle.manifest, "source": {**bundle.manifest["source"],
                                              "checkpoint": str(tmp_path / "gone" / "best.pt")}}
    moved = dataclasses.replace(bundle, manifest=manifest)
    decisions, inputs = decisions_for(bundle, colour_images[:1])
    with pytest.raises(ShotlabError, match="gone/best.pt.*missing; Grad-CAM needs the PyTorch"):
        record_flagged(moved, decisions, inputs, tmp_path / "e.sqlite")


def test_record_flagged_with_another_checkpoint_says_so(explain_bundle, colour_images, tmp_path):
    """A run trained again after export holds another model at the same path: Grad-CAM would
    explain it silently (the stored model_sha256 was not the bundle's)."""
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(explain_bundle)
    manifest = {**bundle.manifest, "source": {**bundle.manifest["source"],
                                              "checkpoint_sha256": "0" * 64}}
    retrained = dataclasses.replace(bundle, manifest=manifest)
    decisions, inputs = decisions_for(bundle, colour_images[:1])
    with pytest.raises(ShotlabError, match=r"not the checkpoint bundle .* \(its sha256 differs"):
        record_flagged(retrained, decisions, inputs, tmp_path / "e.sqlite")
    assert record_flagged(bundle, decisions, inputs, tmp_path / "e.sqlite") == 1


def flagged_store(explain_bundle, images, tmp_path):
    """An explanation store holding the tier-1 records of `images`' flagged decisions."""
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(explain_bundle)
    decisions, inputs = decisions_for(bundle, images)
    store_path = tmp_path / "e.sqlite"
    record_flagged(bundle, decisions, inputs, store_path)
    return store_path


def test_pending_appeals_are_processed_in_batches(explain_bundle, colour_images, tmp_path):
    from shotlab.runtime.bundle import load_bundle

    store_path = flagged_store(explain_bundle, colour_images[:3], tmp_path)
    with ExplanationStore(store_path) as store:
        store.queue("d0", ["lime", "shap"])
        store.queue("d1", ["lime", "gradcampp"])
        store.queue("d9", ["lime"], image_path=tmp_path / "missing.png",
                    bundle_path=explain_bundle)
    summary = process_pending(store_path, batch=2, options=FAST)
    assert (summary["processed"], summary["failed"], summary["stored"]) == (2, 1, 4)
    assert "missing.png: file not found" in summary["errors"][0]["error"]
    with ExplanationStore(store_path, create=False) as store:
        assert [e.method for e in store.explanations("d0")] == ["gradcam", "lime", "shap"]
        lime = store.explanations("d0", "lime")[0]
        assert lime.target == "red" and lime.params["num_samples"] == 100
        assert lime.params["fill"] == "mean" and lime.params["n_segments"] == 50  # defaults too
        assert {"deletion_auc", "random_deletion_auc", "insertion_auc"} <= set(lime.scores)
        assert store.appeals() == []
        # an appeal's gradient map names the checkpoint it ran on, as tier 1's does (it named
        # the ONNX model, so a reviewer saw two models for maps from one network)
        tier1, appealed = store.explanations("d1", "gradcam")[0], store.explanations(
            "d1", "gradcampp")[0]
        assert appealed.model_sha256 == tier1.model_sha256 != lime.model_sha256
        assert appealed.params["model"] == "checkpoint" == tier1.params["model"]
        assert appealed.params["checkpoint"] == tier1.params["checkpoint"]
        assert lime.model_sha256 == load_bundle(explain_bundle).model_sha256("onnx")
    assert process_pending(store_path)["processed"] == 0  # nothing left in the queue


def test_a_second_run_on_the_same_queue_is_refused(explain_bundle, colour_images, tmp_path):
    """Two `explain pending` runs together each took every queued appeal: every map twice."""
    import subprocess
    import sys
    import time

    from shotlab.core.errors import InputError
    from shotlab.explain.pending import sole_run

    store_path = flagged_store(explain_bundle, colour_images[:1], tmp_path)
    with ExplanationStore(store_path) as store:
        store.queue("d0", ["lime"])
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom shotlab.explain.pending import sole_run\n"
        f"with sole_run({str(store_path)!r}):\n    print('held', flush=True)\n"
        "    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)  # another process's run
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match="another `shotlab explain pending` is processing"):
            process_pending(store_path, options=FAST)
        holder.kill()  # killed mid-run: the kernel drops its lock, nothing is left behind
        holder.wait(10)
        time.sleep(0.1)
        assert process_pending(store_path, options=FAST)["processed"] == 1
    finally:
        if holder.poll() is None:
            holder.kill()
    with sole_run(store_path):  # and in one process, after the run: free again
        alias = tmp_path / "alias.sqlite"
        alias.symlink_to(store_path)
        with pytest.raises(InputError, match="another"):  # the same store under another name
            process_pending(alias, options=FAST)


def test_an_appeal_on_a_replaced_image_fails_and_stores_no_map(explain_bundle, colour_images,
                                                                tmp_path):
    """A LIME map of whatever file is at the path now was stored under the old decision id and
    the appeal marked done: the reviewer read another picture's map as the decision's."""
    store_path = flagged_store(explain_bundle, colour_images[:2], tmp_path)
    colour_images[1].write_bytes(colour_images[5].read_bytes())  # replaced after `predict`
    with ExplanationStore(store_path) as store:
        store.queue("d0", ["lime"])
        store.queue("d1", ["lime"])
    summary = process_pending(store_path, options=FAST)
    assert (summary["processed"], summary["failed"], summary["stored"]) == (1, 1, 1)
    (error,) = summary["errors"]
    assert error["decision_id"] == "d1"
    assert error["error"].startswith(f"not the image decided: {colour_images[1]} changed")
    assert "sha256 differs" in error["error"]
    with ExplanationStore(store_path, readonly=True) as store:
        assert store.explanations("d1", "lime") == [] and store.explanations("d0", "lime")
        (failed,) = store.appeals("failed")
        assert failed.decision_id == "d1" and "sha256 differs" in failed.error


def test_a_ray_worker_fails_an_appeal_on_a_replaced_image(explain_bundle, colour_images,
                                                          tmp_path):
    """The --ray path runs the same batch code against a RecordingStore (no Ray started here:
    the actor class is plain Python); its replayed writes fail the appeal, store no map."""
    from shotlab.explain.ray_pending import AppealWorker, replay

    store_path = flagged_store(explain_bundle, colour_images[:1], tmp_path)
    colour_images[0].write_bytes(colour_images[5].read_bytes())
    with ExplanationStore(store_path) as store:
        store.queue("d0", ["lime"])
        (appeal,) = store.appeals()
        writes, summary = AppealWorker().explain(
            str(explain_bundle), [appeal], {"d0": store.decision("d0")}, None, False, FAST)
        replay(store, writes)
        assert (summary["failed"], summary["stored"]) == (1, 0)
        assert "not the image decided" in store.appeals("failed")[0].error
        assert [e.method for e in store.explanations("d0")] == ["gradcam"]  # tier 1's only


def test_a_review_is_explained_for_the_class_it_is_about_and_that_class_s_frame():
    """A clip in review (violence 0.4 pooled, inside its band, not flagged) was explained for
    its top class, cooking, on cooking's best frame: the reviewer got a map of the wrong class.
    An appeal reads the stored decision, which keeps no review_classes: they are read again off
    its scores and the bundle's thresholds, to the same class."""
    from shotlab.export.predict_clips import top_frame
    from shotlab.runtime.clip_scores import ClipContract
    from shotlab.runtime.decide import decide, review_classes

    classes = ["cooking", "sports", "violence"]
    thresholds = {"violence": {"threshold": 0.5, "review_band": [0.3, 0.5]}}
    frames = np.array([[0.9, 0.1, 0.0], [0.5, 0.1, 0.4], [0.8, 0.1, 0.1]])
    pooled = ClipContract.resolve(None, classes, ["violence"]).pool(frames)
    (row,) = decide(pooled[None], classes, task="multiclass", thresholds=thresholds, pooled=True)
    assert row["flagged"] == [] and row["needs_review"] is True
    assert row["review_classes"] == ["violence"] and row["labels"] == ["cooking"]
    assert target_class(row) == "violence"
    assert top_frame(frames, classes, target_class(row)) == 1
    stored = {k: v for k, v in row.items() if k != "review_classes"}
    assert target_class(stored) == "cooking"  # what an appeal read before
    assert review_classes(stored["scores"], thresholds) == ["violence"]
    (confident,) = decide(frames[:1], classes, task="multiclass", thresholds=thresholds)
    assert confident["review_classes"] == [] and target_class(confident) == "cooking"


def test_an_appeal_on_a_review_only_decision_explains_the_class_under_review(
        explain_bundle, colour_images, tmp_path):
    """The store keeps no review_classes, so an appeal explained the top class (blue) where
    tier 1 explains the class under review (red, inside its band, not flagged)."""
    from shotlab.core.images import sha256_file
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(explain_bundle)
    entry = bundle.thresholds["red"]
    low, threshold = entry["review_band"][0], entry["threshold"]
    red = (low + threshold) / 2 if low < threshold else low
    image = colour_images[0]
    store_path = tmp_path / "e.sqlite"
    with ExplanationStore(store_path) as store:
        store.add_decision({"decision_id": "r", "path": str(image), "sha256": sha256_file(image),
                            "scores": {"blue": 0.99, "green": 0.0, "red": red},
                            "labels": ["blue"], "flagged": [], "needs_review": True,
                            "model_sha256": bundle.model_sha256()}, explain_bundle)
        store.queue("r", ["lime"], image_path=image, bundle_path=explain_bundle)
    assert process_pending(store_path, options=FAST)["stored"] == 1
    with ExplanationStore(store_path, create=False) as store:
        assert store.explanations("r", "lime")[0].target == "red"


def test_an_appeal_with_a_bundle_that_did_not_decide_it_fails_and_stores_no_map(
        explain_bundle, colour_images, tmp_path):
    """`explain appeal ... --bundle OTHER` stored OTHER's map under a decision another model
    made, and the appeal read done: the reviewer read a map of a model that never decided it."""
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(explain_bundle)
    decisions, inputs = decisions_for(bundle, colour_images[:2])
    decisions[1]["model_sha256"] = "f" * 64  # made by another bundle's model
    store_path = tmp_path / "e.sqlite"
    record_flagged(bundle, decisions, inputs, store_path)
    with ExplanationStore(store_path) as store:
        store.queue("d0", ["lime"])
        store.queue("d1", ["lime"])
    summary = process_pending(store_path, options=FAST)
    assert (summary["processed"], summary["failed"], summary["stored"]) == (1, 1, 1)
    assert summary["errors"][0]["decision_id"] == "d1"
    assert "decided by another model (sha256 ffffffffffff)" in summary["errors"][0]["error"]
    with ExplanationStore(store_path, readonly=True) as store:
        assert store.explanations("d1", "lime") == []


def test_the_service_worker_leaves_jobs_another_bundle_queued(explain_bundle, colour_images,
                                                              tmp_path):
    """A server restarted on the same --store with another bundle explained the first bundle's
    queued decisions with its own checkpoint and marked them done. It takes only its own now;
    the other bundle's wait (pending) for a server of that bundle."""
    from shotlab.runtime.bundle import load_bundle
    from shotlab.serve.explainer import ExplanationWorker
    from shotlab.serve.store import DecisionStore

    bundle = load_bundle(explain_bundle)
    decisions, inputs = decisions_for(bundle, colour_images[:2])
    decisions[1]["model_sha256"] = "f" * 64
    store = DecisionStore(tmp_path / "decisions.sqlite")
    store.save(decisions, [None, None], {d["decision_id"]: x for d, x in zip(decisions, inputs)})
    worker = ExplanationWorker(bundle, store, tmp_path / "explanations.sqlite")
    assert worker.round() == 1 and worker.round() == 0
    assert store.get("d0")["explanation"]["status"] == "done"
    assert store.get("d1")["explanation"]["status"] == "pending"
    assert worker.own([(decisions[1], inputs[1])]) == []  # a record that slipped through
    failed = store.get("d1")["explanation"]
    assert failed["status"] == "failed" and "decided by another model" in failed["error"]
    with ExplanationStore(tmp_path / "explanations.sqlite", readonly=True) as explained:
        assert explained.explanations("d0") and not explained.explanations("d1")
    store.close()
