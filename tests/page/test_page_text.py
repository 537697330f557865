"""The page's comment panel without a browser: the decision is `shotlab predict`'s record for
the same text, bad comments get the CLI's one-line reasons, and the words come from
`shotlab.explain`'s text methods with their faithfulness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shotlab.core.errors import InputError
from shotlab.page.model import open_model
from shotlab.page.panels import PANELS, panels_for
from tests.page.conftest import predict, write_comments_csv

pytestmark = pytest.mark.fiftyone

THREAT = "I will hurt the plumber badly tonight"
TEXTS = [THREAT, "we baked bread with the teacher this morning",
         "thank you so much to the mayor, you made my day"]
RECORD_KEYS = ("labels", "flagged", "needs_review", "sha256", "text", "kind", "model_sha256",
               "policy_version", "runtime", "bundle")


@pytest.fixture(scope="module")
def text_model(text_bundle):
    return open_model(text_bundle)


@pytest.fixture(scope="module")
def text_predicted(text_bundle, tmp_path_factory) -> dict:
    """{text: record} from `shotlab predict BUNDLE comments.csv`, and its bad rows' reasons."""
    folder = tmp_path_factory.mktemp("page-text-predict")
    comments = write_comments_csv(folder / "comments.csv", [*TEXTS, "", "x" * 5001])
    out = folder / "decisions.jsonl"
    summary = predict(text_bundle, comments, "--out", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return {"decisions": {r["text"]: r for r in records},
            "bad": [b["reason"] for b in summary["bad_files"]]}


def test_a_text_bundle_gets_the_comment_panel(text_model):
    assert [p.kind for p in panels_for(text_model.kind)] == ["text"]


def test_comment_decision_is_predicts_record(text_model, text_predicted):
    for text in TEXTS:
        decided = PANELS["text"].decide(text_model, "comment", text.encode("utf-8"))
        expected = text_predicted["decisions"][text]
        for key in RECORD_KEYS:
            assert decided.record[key] == expected[key], key
        assert decided.record["scores"] == pytest.approx(expected["scores"], abs=1e-6)
        assert decided.record["decision_id"] != expected["decision_id"]
        assert decided.record["path"] is None  # typed: no file behind it
    threat = PANELS["text"].decide(text_model, "comment", THREAT.encode()).record
    assert threat["labels"] == ["threat"] and (threat["flagged"] or threat["needs_review"])


def test_a_txt_upload_is_one_comment(text_model, text_predicted):
    decided = PANELS["text"].decide(text_model, "why.txt", b"\xef\xbb\xbf" + THREAT.encode()
                                    + b"\n")
    assert decided.record["text"] == THREAT
    assert decided.record["sha256"] == text_predicted["decisions"][THREAT]["sha256"]


def test_bad_comments_get_the_clis_one_line_reason(text_model, text_predicted):
    empty, long = text_predicted["bad"]  # predict's reasons for the blank and the long row
    decide = PANELS["text"].decide
    with pytest.raises(InputError) as caught:
        decide(text_model, "comment", b" \n ")
    assert str(caught.value) == f"comment: {empty}"
    with pytest.raises(InputError) as caught:
        decide(text_model, "comment", b"x" * 5001)
    assert str(caught.value) == f"comment: {long}"
    with pytest.raises(InputError) as caught:
        decide(text_model, "latin1.txt", "caf\u00e9 au lait".encode("latin-1"))
    assert str(caught.value) == "latin1.txt:1: not UTF-8 (byte 4 of the line); save the file " \
                                "as UTF-8"
    assert all("\n" not in reason for reason in (empty, long))


def test_words_by_ig_then_shap_with_faithfulness_and_progress(text_model):
    from shotlab.explain.text_report import explain_texts

    decided = PANELS["text"].decide(text_model, "comment", THREAT.encode())
    explain = PANELS["text"].explain
    first = explain(text_model, decided, ["ig"], score=False)
    assert first["target"] == "threat" and list(first["words"]) == ["ig"]
    ig = first["words"]["ig"]
    assert ig.words == ["I", "will", "hurt", "the", "plumber", "badly", "tonight"]
    assert ig.faithfulness and {"comprehensiveness", "random_sufficiency"} <= set(ig.faithfulness)
    cli = explain_texts(text_model.source, [THREAT], ["ig"], target="threat")
    np.testing.assert_allclose(ig.scores, cli["comments"][0]["explanations"]["ig"].scores,
                               atol=1e-5)  # `shotlab explain BUNDLE --text`'s words
    seen = []
    deeper = explain(text_model, decided, ["shap"], score=False,
                     progress=lambda fraction, text: seen.append((fraction, text)))
    assert deeper["words"]["shap"].scores.shape == (7,) and deeper["words"]["shap"].faithfulness
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(text.startswith("shap: ") and "/500 model runs" in text for _, text in seen)


def test_words_html_escapes_the_comment(text_model):
    from shotlab.page.panels import words_html

    decided = PANELS["text"].decide(text_model, "comment", b"<script>x</script> I will hurt you")
    words = PANELS["text"].explain(text_model, decided, ["ig"], score=False)["words"]["ig"]
    shown = words_html("ig", words)
    assert "<script>" not in shown and "&lt;" in shown and "&gt;" in shown
    assert shown.count("class=\"w\"") == len(words.words)


def test_words_html_lets_no_markdown_out_of_the_comment(text_model):
    """A blank line in a comment (shown between its words, or in a tail the words do not
    cover) ended the HTML block, and Markdown read the rest: a phishing link, a heading and a
    picture fetched from anywhere, in the reviewer's page."""
    from markdown_it import MarkdownIt  # CommonMark, as the page's Markdown renderer reads it

    from shotlab.page.panels import words_html

    comment = ("I will hurt the referee badly tonight " * 3 + "\n\n# Account suspended\r\n\r\n"
               "[restore access](https://evil.example/phish) ![p](https://evil.example/t.png)")
    decided = PANELS["text"].decide(text_model, "comment", comment.encode())
    words = PANELS["text"].explain(text_model, decided, ["ig"], score=False)["words"]["ig"]
    rendered = MarkdownIt("commonmark").render(words_html("ig", words))
    assert "<h1>" not in rendered and "<a href" not in rendered and "<img" not in rendered
    assert ">suspended</span>" in rendered and ">phish</span>" in rendered  # as words


def test_a_stored_comment_decision_shows_its_words(text_bundle, tmp_path):
    """"Open decision" on a comment `shotlab predict --explain` decided: the IG words stored
    for it, no picture, the store left as it was."""
    from pathlib import Path

    from shotlab.page.panels import words_html
    from shotlab.page.stored import stored_decision

    comments = write_comments_csv(tmp_path / "comments.csv", [THREAT])
    out = tmp_path / "decisions.jsonl"
    summary = predict(text_bundle, comments, "--out", out, "--explain")
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    store = Path(summary["explanations"]["store"])
    before = store.read_bytes()
    shown = stored_decision(store, record["decision_id"])
    assert shown.backdrop is None and shown.maps == [] and shown.splits == []
    (words,) = shown.words
    assert words.method == "ig" and words.comment.text == THREAT and words.faithfulness
    assert shown.decision["sha256"] == record["sha256"]
    assert words_html("ig", words).count('class="w"') == len(words.words) == 7
    assert store.read_bytes() == before
