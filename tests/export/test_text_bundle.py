"""Text bundles: export of a text run (ONNX with token ids in, the tokenizer inside, parity with
PyTorch) and `shotlab predict BUNDLE comments.csv` (#15.3)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from shotlab.cli import cli

pytestmark = pytest.mark.fiftyone

PARITY = 1e-4  # FP32 ONNX vs PyTorch, max |dp| (measured ~1e-7: BERT's ops, reordered sums)


@pytest.fixture(scope="module")
def fp16_bundle(text_run, tmp_path_factory):
    """`text_run` exported with --fp16 through the CLI: its --json answer."""
    out = tmp_path_factory.mktemp("text-bundle") / "bundle"
    result = CliRunner().invoke(cli, ["export", str(text_run), "--out", str(out), "--fp16",
                                      "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_text_bundle_holds_model_tokenizer_and_contract(fp16_bundle):
    from pathlib import Path

    from shotlab.runtime.bundle import load_bundle

    folder = Path(fp16_bundle["bundle"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"model.onnx", "model.fp16.onnx", "tokenizer.json"} <= set(manifest["files"])
    assert not (folder / "trtexec.txt").exists()
    assert manifest["preprocessing"]["kind"] == "text"
    assert manifest["preprocessing"]["tokenizer"] == "tokenizer.json"
    assert manifest["input"] == {"name": "input", "dtype": "int64", "shape": ["batch", "tokens"]}
    assert manifest["calibration"]["method"] in ("temperature", "none")
    assert manifest["policy"]["thresholds"]["threat"]["review_band"]
    # a logreg run read its thresholds off train folds + val: the bundle and its report say so
    assert manifest["policy"]["scored_on"]["scored_on"] == "train folds + val"
    assert "train samples scored out of fold" in (folder / "report.html").read_text()
    bundle = load_bundle(folder)
    # the tokenizer is read from the verified private copy (runtime.bundle.private_copy)
    assert Path(bundle.preprocessing.tokenizer) == bundle.path / "tokenizer.json"
    assert Path(bundle.preprocessing.tokenizer).read_bytes() == \
        (folder / "tokenizer.json").read_bytes()
    report = json.loads((folder / "report.json").read_text())
    assert report["gate"]["passed"] and report["split"] == "test" and report["n"] == 12
    assert report["runtimes"]["onnx"]["parity"]["max_abs_diff"] < PARITY
    assert report["runtimes"]["onnx"]["parity"]["top1_agreement"] == 1.0
    assert report["runtimes"]["onnx-fp16"]["parity"]["top1_agreement"] == 1.0
    assert not report["explanations"]["available"]


def test_onnx_takes_any_batch_and_length_as_pytorch_does(text_run, fp16_bundle):
    """Both axes dynamic: batches of 1 and 3, short and long comments, padded rows included."""
    import torch

    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.runners import make_runner, probability_model
    from shotlab.runtime.text import encode, load_tokenizer
    from shotlab.train.checkpoint import load_checkpoint

    bundle = load_bundle(fp16_bundle["bundle"])
    runner = make_runner(bundle, "onnx")
    reference = probability_model(load_checkpoint(text_run).model, bundle.task)
    tokenizer = load_tokenizer(bundle.preprocessing)
    for texts in (["ok"], ["I will hurt the referee", "thanks so much, " * 60,
                           "what a lovely soup recipe from my cousin"]):
        ids = encode(tokenizer, texts, bundle.preprocessing.max_tokens)
        with torch.inference_mode():
            expected = reference(torch.from_numpy(ids)).numpy()
        assert np.abs(runner(ids) - expected).max() < PARITY
    assert ids.shape[1] == 128  # the long comment was truncated to max_tokens


def test_int8_and_tensorrt_are_refused_for_text(text_run, tmp_path):
    from shotlab.core.errors import InputError
    from shotlab.export.formats import check_kind

    result = CliRunner().invoke(cli, ["export", str(text_run), "--to", "onnx-int8", "--out",
                                      str(tmp_path / "b")])
    assert result.exit_code == 2, result.output
    assert "--to onnx-int8: not for a text model" in result.output
    assert not (tmp_path / "b").exists()
    # it said "the tensorrt Python package is not installed ... trtexec.txt", which a text
    # bundle does not have: the model's kind is checked before TensorRT's presence
    result = CliRunner().invoke(cli, ["export", str(text_run), "--to", "tensorrt", "--out",
                                      str(tmp_path / "b")])
    assert result.exit_code == 2 and "--to tensorrt: not for a text model" in result.output
    with pytest.raises(InputError, match="--to tensorrt: not for a text model"):
        check_kind(["onnx", "tensorrt"], "text")  # where TensorRT is installed
    check_kind(["onnx", "tensorrt"], "image")


def write_comments(folder):
    csv_path = folder / "comments.csv"
    csv_path.write_text('text,id\n'
                        'I will hurt the plumber badly tonight,1\n'
                        '"thank you so much to the mayor,\nyou made my day",2\n'
                        ',3\n'
                        'we baked bread with the teacher this morning,4\n'
                        + "x" * 5001 + ",5\n", encoding="utf-8")
    jsonl = folder / "more.jsonl"
    jsonl.write_text('{"text": "someone should attack the waiter with a knife"}\n'
                     '{"comment": "wrong key"}\n', encoding="utf-8")
    txt = folder / "lines.txt"
    txt.write_text("the courier cooked a delicious pasta with garlic\n\nso tasty\n")
    return csv_path, jsonl, txt


def test_predict_comments_writes_decisions_review_queue_and_bad_rows(fp16_bundle, tmp_path):
    from shotlab.export.predict_texts import text_sha256

    files = write_comments(tmp_path)
    out = tmp_path / "out" / "decisions.jsonl"
    out.parent.mkdir()
    result = CliRunner().invoke(cli, ["predict", fp16_bundle["bundle"], *map(str, files),
                                      "--out", str(out), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["texts"], summary["images"], summary["bad"]) == (6, 0, 3)
    bad = {b["path"]: b["reason"] for b in summary["bad_files"]}
    assert "the text is empty" in bad[f"{files[0]}:5"]
    assert "over the limit of 5000" in bad[f"{files[0]}:7"]
    assert "no 'text' field" in bad[f"{files[1]}:2"]
    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    by_line = {(d["path"], d["line"]): d for d in decisions}
    threat = by_line[(str(files[0]), 2)]
    assert threat["kind"] == "text" and threat["labels"] == ["threat"]
    assert threat["sha256"] == text_sha256("I will hurt the plumber badly tonight")
    assert threat["flagged"] == ["threat"] or threat["needs_review"]  # val-chosen threshold
    assert by_line[(str(files[0]), 3)]["labels"] == ["kind"]  # a row spanning two lines
    assert by_line[(str(files[1]), 1)]["labels"] == ["threat"]
    assert by_line[(str(files[2]), 1)]["labels"] == ["food"]
    assert (str(files[2]), 3) in by_line  # blank line 2 is no comment
    queue = [json.loads(line) for line in (out.parent / "review_queue.jsonl").read_text()
             .splitlines()]
    assert {d["decision_id"] for d in queue} == {d["decision_id"] for d in decisions
                                                 if d["flagged"] or d["needs_review"]}
    assert {d["decision_id"] for d in queue} >= {threat["decision_id"]}


def test_a_comment_that_is_not_unicode_text_is_a_bad_row_and_the_rest_decided(fp16_bundle,
                                                                              tmp_path):
    """A JSON escape `\\ud800` with no pair (valid JSON, no text) crashed the tokenizer and
    the whole run was lost; it is a bad row now."""
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"text": "lone \\ud800 surrogate"}\n{"text": "so tasty"}\n')
    result = CliRunner().invoke(cli, ["predict", fp16_bundle["bundle"], str(jsonl), "--out",
                                      str(tmp_path / "d.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["texts"], summary["bad"]) == (1, 1)
    (bad,) = summary["bad_files"]
    assert bad["path"] == f"{jsonl}:1" and "holds a lone surrogate" in bad["reason"]


def test_predict_text_refuses_what_it_cannot_do(fp16_bundle, tmp_path):
    csv_path = write_comments(tmp_path)[0]
    result = CliRunner().invoke(cli, ["predict", fp16_bundle["bundle"], str(csv_path),
                                      "--dataset", "inbox", "--out",
                                      str(tmp_path / "d.jsonl")])
    assert result.exit_code == 2 and "not for a text bundle yet" in result.output
    assert not (tmp_path / "d.jsonl").exists()
    image = tmp_path / "photo.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    result = CliRunner().invoke(cli, ["predict", fp16_bundle["bundle"], str(image), "--out",
                                      str(tmp_path / "e.jsonl")])
    assert result.exit_code == 2 and "not a file of comments" in result.output
    # a folder was searched for images and refused as "no image file there"
    result = CliRunner().invoke(cli, ["predict", fp16_bundle["bundle"], str(csv_path.parent),
                                      "--out", str(tmp_path / "f.jsonl")])
    assert result.exit_code == 2, result.output
    assert (f"{csv_path.parent}: a folder; a comment bundle reads comment files (CSV, JSONL or "
            f".txt), given one by one") in " ".join(result.output.split())
    # it told the user to re-export with --to onnx-int8, which export refuses for text
    result = CliRunner().invoke(cli, ["predict", fp16_bundle["bundle"], str(csv_path),
                                      "--runtime", "onnx-int8", "--out", str(tmp_path / "g.jsonl")])
    assert result.exit_code == 2, result.output
    assert "exported to onnx and onnx-fp16 only" in " ".join(result.output.split())


def test_predict_explain_stores_ig_words_for_every_flagged_comment(fp16_bundle, tmp_path):
    """`predict --explain` on comments: IG word scores (with their faithfulness) in the store,
    one per flagged or review decision, keyed by decision id."""
    from shotlab.explain.store import ExplanationStore
    from shotlab.explain.text_store import read_words
    from shotlab.explain.tier1 import attention_classes

    csv_path = write_comments(tmp_path)[0]
    out = tmp_path / "out" / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", fp16_bundle["bundle"], str(csv_path),
                                      "--explain", "--out", str(out), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    decisions = [json.loads(line) for line in out.read_text().splitlines()]
    attention = [d for d in decisions if d["flagged"] or d["needs_review"]]
    asked = {d["decision_id"]: attention_classes(d) for d in attention}
    assert attention and summary["explanations"]["stored"] == sum(map(len, asked.values()))
    with ExplanationStore(out.parent / "explanations.sqlite", readonly=True) as store:
        for decision in attention:  # one per class flagged or reviewed
            found = read_words(store, decision["decision_id"], "ig")
            assert [w.target_name for w in found] == asked[decision["decision_id"]]
            words = found[0]
            assert words.comment.words and all(w.lower() in decision["text"].lower()
                                               for w in words.comment.words)
            assert words.faithfulness  # comprehensiveness and sufficiency beside the words
        for calm in (d for d in decisions if d not in attention):
            assert read_words(store, calm["decision_id"]) == []
        stored = read_words(store, attention[0]["decision_id"], "ig")[0]
    # `explain show` gives the word scores (they were only in an --out page's hover titles)
    shown = CliRunner().invoke(cli, ["explain", "show", attention[0]["decision_id"], "--store",
                                     str(out.parent / "explanations.sqlite"), "--json"])
    assert shown.exit_code == 0, shown.output
    entry = json.loads(shown.stdout)["explanations"][0]
    assert [w["word"] for w in entry["words"]] == stored.words
    np.testing.assert_allclose([w["score"] for w in entry["words"]], stored.scores, atol=1e-6)
    plain = CliRunner().invoke(cli, ["explain", "show", attention[0]["decision_id"], "--store",
                                     str(out.parent / "explanations.sqlite")])
    top = stored.words[int(np.argmax(stored.scores))]
    assert f"top words: {top} {float(np.max(stored.scores)):+.3f}" in plain.stdout
    # which comment of the file: its line and its text (it printed the CSV's path alone)
    first = attention[0]
    assert plain.stdout.splitlines()[0] == (
        f"decision {first['decision_id']}: {csv_path}, line {first['line']}: a comment "
        f"{first['text'][:60]!r}" + ("..." if len(first["text"]) > 60 else ""))


def test_a_comment_longer_than_the_model_reads_is_read_whole_and_reviewed(fp16_bundle,
                                                                          tmp_path):
    """A comment longer than the model's 128 word pieces is read in overlapping windows (it was
    cut off: a threat after 1,800 characters of friendly filler was never read), its unsafe
    score is its highest window's, the record lists the windows, and it goes to review about
    the threat class (a short threat is diluted in a window of filler), its explanation being
    of the window that scored highest for it."""
    import csv

    from shotlab.explain.store import ExplanationStore
    from shotlab.explain.text_store import read_words

    filler = "thanks for posting the schedule, see you there and have a lovely weekend. " * 24
    threat = "I will hurt the plumber badly tonight"
    comments = tmp_path / "long.csv"
    with open(comments, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text"], [filler + threat], [threat], ["what a lovely soup"]])
    out = tmp_path / "out" / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", fp16_bundle["bundle"], str(comments),
                                      "--explain", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    long, alone, short = [json.loads(line) for line in out.read_text().splitlines()]
    assert "windows" not in alone and "windows" not in short and len(long["windows"]) >= 3
    spans = [(w["start"], w["end"]) for w in long["windows"]]
    assert spans[0][0] == 0 and spans[-1][1] == len(long["text"])
    assert all(b[0] < a[1] for a, b in zip(spans, spans[1:]))  # they overlap: nothing unread
    assert long["scores"]["threat"] == pytest.approx(
        max(w["scores"]["threat"] for w in long["windows"]), abs=1e-5)  # the highest window
    assert long["flagged"] or (long["needs_review"] and long["review_classes"] == ["threat"])
    queue = (out.parent / "review_queue.jsonl").read_text()
    assert long["decision_id"] in queue
    top = max(long["windows"], key=lambda w: w["scores"]["threat"])
    with ExplanationStore(out.parent / "explanations.sqlite", readonly=True) as store:
        (words,) = read_words(store, long["decision_id"], "ig")
    assert words.target_name == "threat"
    assert words.comment.text == long["text"][top["start"]:top["end"]]


def test_a_file_of_posts_given_to_a_comment_bundle_is_refused_by_name(fp16_bundle, tmp_path):
    """Its picture column was ignored and the captions decided as comments, exit 0."""
    posts = tmp_path / "posts.csv"
    posts.write_text("Image_Path,text\nphoto.png,I will hurt the plumber badly tonight\n")
    out = tmp_path / "d.jsonl"
    result = CliRunner().invoke(cli, ["predict", fp16_bundle["bundle"], str(posts), "--out",
                                      str(out)])
    assert result.exit_code == 2, result.output
    assert f"{posts}: a file of posts (its 'Image_Path' column names pictures)" in result.output
    assert not out.exists()


def test_a_comment_flagged_for_one_class_and_reviewed_for_another_gets_words_for_both(
        fp16_bundle, tmp_path):
    """Tier 1 explained one class per decision (the top flagged one): a reviewer asked about
    the review class had no words for it."""
    from shotlab.explain.store import ExplanationStore
    from shotlab.explain.text_store import read_words
    from shotlab.explain.text_tier1 import record_flagged_texts
    from shotlab.export.predict_texts import predict_texts
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(fp16_bundle["bundle"])
    text = "I will hurt you and your dog tonight"
    (tmp_path / "c.csv").write_text(f"text\n{text}\n")
    (decision,) = predict_texts(bundle, [tmp_path / "c.csv"]).decisions
    first, second = sorted(decision["scores"], key=lambda c: -decision["scores"][c])[:2]
    asked = {**decision, "flagged": [first], "review_classes": [second], "needs_review": True}
    store = tmp_path / "explanations.sqlite"
    assert record_flagged_texts(bundle, [asked], [text], store, score=False) == 2
    with ExplanationStore(store, readonly=True) as opened:
        found = read_words(opened, decision["decision_id"], "ig")
    assert [w.target_name for w in found] == [first, second]
    assert not np.allclose(found[0].scores, found[1].scores)  # each class's own attribution
    # the page of `explain show --out` has an entry per class (it kept the last row's words
    # under the first row's class name)
    page = tmp_path / "page.html"
    shown = CliRunner().invoke(cli, ["explain", "show", decision["decision_id"], "--store",
                                     str(store), "--out", str(page)])
    assert shown.exit_code == 0, shown.output
    assert all(f"explaining <b>{name}</b>" in page.read_text() for name in (first, second))
