"""Word explanations in the explanation store, and tier 1 for flagged comments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shotlab.explain import explain_text
from shotlab.explain.store import ExplanationStore
from shotlab.explain.text_store import put_words, read_words, text_sha256


def test_round_trip(one_word_model, text_prep, tmp_path):
    out = explain_text(one_word_model, ["this joke kills me", "Unbelievably, it kills!"],
                       [1, 1], "ig", preprocessing=text_prep, score=True)
    path = tmp_path / "explanations.sqlite"
    with ExplanationStore(path) as store:
        for i, e in enumerate(out):
            put_words(store, f"d{i}", e, model_sha256="m" * 64)
        store.put("d0", "gradcam", np.zeros((2, 2)))  # an image row beside: left out
    with ExplanationStore(path, readonly=True) as store:
        (back,) = read_words(store, "d1")
        rows = store.explanations("d1")
    original = out[1]
    assert back.comment == original.comment and back.method == "ig"
    assert back.target == 1 and back.target_name == "violent"
    np.testing.assert_allclose(back.scores, original.scores, rtol=1e-3, atol=1e-4)  # float16
    assert back.faithfulness == original.faithfulness
    assert back.info["convergence_delta"] == original.info["convergence_delta"]
    assert rows[0].input_sha256 == text_sha256("Unbelievably, it kills!")
    assert rows[0].model_sha256 == "m" * 64 and rows[0].params["n_steps"] == 16


def test_tier1_stores_ig_for_flagged_comments(one_word_model, one_word_bundle, tmp_path):
    from shotlab.explain.text_tier1 import record_flagged_texts
    from shotlab.explain.show import describe, render
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(one_word_bundle)
    decisions = [{"decision_id": "a", "sha256": text_sha256("this joke kills me"),
                  "scores": {"fine": 0.12, "violent": 0.88}, "flagged": ["violent"],
                  "labels": ["violent"], "needs_review": False},
                 {"decision_id": "b", "scores": {"fine": 0.88, "violent": 0.12}, "flagged": [],
                  "labels": ["fine"], "needs_review": True}]
    store = tmp_path / "explanations.sqlite"
    stored = record_flagged_texts(bundle, decisions, ["this joke kills me", "nice day"], store,
                                  model=one_word_model)
    assert stored == 2
    with ExplanationStore(store, readonly=True) as opened:
        (a,) = read_words(opened, "a")
        (b,) = read_words(opened, "b")
        assert opened.decision("a")["flagged"] == ["violent"]
    assert a.target_name == "violent" and a.words[int(np.argmax(a.scores))] == "kills"
    assert a.faithfulness["beats_random_comprehensiveness"]
    assert b.target_name == "fine"  # nothing flagged: its top class
    assert describe(store, "a")["explanations"][0]["params"]["kind"] == "text"
    page = render(store, "a", tmp_path / "a.html")[0].read_text()
    assert ">kills</span>" in page and "decision a" in page


def test_tier1_explains_a_multilabel_comment_through_its_sigmoid_scores(text_prep, tmp_path):
    """Tier 1 ran IG through a softmax for every bundle: on a multilabel model whose two tags
    both rise with "kills", the softmax stays at 0.5 and every word scored 0."""
    from shotlab.explain.text_tier1 import record_flagged_texts
    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.text import load_tokenizer
    from tests.explain.text_toys import TwoTagModel, write_bundle

    model = TwoTagModel(load_tokenizer(text_prep))
    bundle = load_bundle(write_bundle(model, text_prep, tmp_path / "b", task="multilabel"))
    decision = {"decision_id": "a", "scores": {"fine": 0.88, "violent": 0.88},
                "flagged": ["violent"], "labels": ["fine", "violent"], "needs_review": False}
    store = tmp_path / "explanations.sqlite"
    record_flagged_texts(bundle, [decision], ["this joke kills me"], store, model=model)
    with ExplanationStore(store, readonly=True) as opened:
        (words,) = read_words(opened, "a")
    assert words.target_name == "violent"
    assert words.words[int(np.argmax(words.scores))] == "kills"
    # IG's scores add up to sigmoid(2) - sigmoid(-2) = 0.76 (the baseline has no "kills")
    assert float(np.sum(words.scores)) == pytest.approx(0.76, abs=0.05)


def test_tier1_without_the_checkpoint_says_so(one_word_bundle, tmp_path):
    from shotlab.core.errors import ShotlabError
    from shotlab.explain.text_tier1 import record_flagged_texts
    from shotlab.runtime.bundle import load_bundle

    with pytest.raises(ShotlabError, match="checkpoint .* is missing"):
        record_flagged_texts(load_bundle(one_word_bundle),
                             [{"decision_id": "a", "scores": {"violent": 0.9}}], ["x"],
                             tmp_path / "s.sqlite")
    assert not (tmp_path / "s.sqlite").exists()


def test_the_service_worker_names_integrated_gradients_for_a_text_bundle(one_word_bundle):
    """A text bundle's failed explanation job said 'Grad-CAM needs the PyTorch model'."""
    from shotlab.core.errors import ShotlabError
    from shotlab.runtime.bundle import load_bundle
    from shotlab.serve.explainer import ExplanationWorker

    worker = ExplanationWorker(load_bundle(one_word_bundle), None, None)
    with pytest.raises(ShotlabError, match="missing; Integrated Gradients needs the PyTorch"):
        worker.load_checkpoint()


def flagged_comment(bundle_path, model, tmp_path) -> Path:
    """A store with decision 'a' (the comment "my boss kills it", flagged violent) and its IG."""
    from shotlab.explain.text_tier1 import record_flagged_texts
    from shotlab.runtime.bundle import load_bundle

    store = tmp_path / "explanations.sqlite"
    decision = {"decision_id": "a", "scores": {"fine": 0.12, "violent": 0.88},
                "flagged": ["violent"], "labels": ["violent"]}
    record_flagged_texts(load_bundle(bundle_path), [decision], ["my boss kills it"], store,
                         model=model)
    return store


def test_an_appeal_on_a_comment_stores_shap_and_lime(one_word_model, one_word_bundle, tmp_path):
    """Tier 1 stores IG with the comment; an appeal needs only the decision id, and
    `--pending` runs SHAP and LIME through the bundle's ONNX model."""
    from shotlab.explain.pending import process_pending
    from shotlab.runtime.bundle import load_bundle

    store = flagged_comment(one_word_bundle, one_word_model, tmp_path)
    with ExplanationStore(store) as opened:
        opened.queue("a", ["shap", "lime"])
        with pytest.raises(Exception, match="decision zz is not in"):
            opened.queue("zz", ["shap"])
    summary = process_pending(store)
    assert summary == {"processed": 1, "failed": 0, "stored": 2, "errors": []}
    with ExplanationStore(store, readonly=True) as opened:
        stored = {e.method: e for e in read_words(opened, "a")}
        (row,) = [r for r in opened.explanations("a", "shap")]
    assert set(stored) == {"ig", "shap", "lime"}
    for e in stored.values():
        assert e.words[int(np.argmax(e.scores))] == "kills" and e.target_name == "violent"
        assert e.faithfulness["beats_random_comprehensiveness"]
    assert row.params["tier"] == 2 and row.model_sha256 == load_bundle(
        one_word_bundle).model_sha256("onnx")


def test_an_image_method_on_a_comment_appeal_is_refused(one_word_model, one_word_bundle, tmp_path):
    """It was queued, then marked done with nothing stored: a reviewer took it as answered."""
    from click.testing import CliRunner

    from shotlab.cli import cli
    from shotlab.explain.text_tier1 import record_flagged_texts
    from shotlab.runtime.bundle import load_bundle

    store = tmp_path / "explanations.sqlite"
    decision = {"decision_id": "a", "scores": {"fine": 0.12, "violent": 0.88},
                "flagged": ["violent"], "labels": ["violent"]}
    record_flagged_texts(load_bundle(one_word_bundle), [decision], ["my boss kills it"], store,
                         model=one_word_model)
    refused = CliRunner().invoke(cli, ["explain", "appeal", str(store), "a", "--method", "gradcam"])
    assert refused.exit_code == 2 and "unknown method gradcam for text models" in refused.output
    with ExplanationStore(store, readonly=True) as opened:
        assert opened.appeals() == []
    queued = CliRunner().invoke(cli, ["explain", "appeal", str(store), "a", "--method", "shap"])
    assert queued.exit_code == 0 and "queued 1 appeal (shap)" in queued.output



def test_a_comment_appeal_is_explained_by_a_ray_worker(one_word_model, one_word_bundle, tmp_path):
    """`pending --ray` stopped at the first comment appeal: its actor reads the comment from
    the stored explanations, which the recording store it runs against did not have. The actor
    class and the driver's jobs are plain Python: no Ray is started here."""
    from shotlab.explain.ray_pending import AppealWorker, jobs_for, replay

    store = flagged_comment(one_word_bundle, one_word_model, tmp_path)
    with ExplanationStore(store) as opened:
        opened.queue("a", ["shap", "lime"])
        (job,) = jobs_for(opened, 8)
        writes, summary = AppealWorker().explain(job.bundle_path, job.appeals, job.decisions,
                                                 None, True, {}, job.stored)
        replay(opened, writes)
        assert summary == {"processed": 1, "failed": 0, "stored": 2, "errors": []}
        stored = {e.method: e for e in read_words(opened, "a")}
        assert opened.appeals() == [] and opened.appeals("done")[0].decision_id == "a"
    assert set(stored) == {"ig", "shap", "lime"}
    for e in stored.values():
        assert e.words[int(np.argmax(e.scores))] == "kills" and e.comment.text == "my boss kills it"
