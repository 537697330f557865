"""`shotlab explain RUN_OR_BUNDLE --text ... | comments.csv` on a text model."""

from __future__ import annotations

import json

from click.testing import CliRunner

from shotlab.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_help_names_the_text_options():
    result = run("explain", "run", "--help")
    assert result.exit_code == 0
    assert "--text" in result.output and "--html" in result.output


def test_explain_a_comment_through_a_bundle(one_word_bundle, tmp_path):
    page = tmp_path / "why.html"
    result = run("explain", one_word_bundle, "--text", "this joke kills me", "--method",
                 "shap,lime", "--html", page, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (entry,) = data["comments"]
    assert entry["predicted"] == "violent" and entry["target"] == "violent"
    for method in ("shap", "lime"):
        words = entry["explanations"][method]["words"]
        assert [w["word"] for w in words] == ["this", "joke", "kills", "me"]
        assert max(words, key=lambda w: w["score"])["word"] == "kills"
        faith = entry["explanations"][method]["faithfulness"]
        assert faith["beats_random_comprehensiveness"] and faith["beats_random_sufficiency"]
    assert ">kills</span>" in page.read_text() and data["html"] == str(page)
    again = run("explain", one_word_bundle, "--text", "kills", "--method", "lime", "--html", page)
    assert again.exit_code == 0, again.output  # its own page from the run before is replaced
    assert ">kills</span>" in page.read_text() and "joke" not in page.read_text()


def test_explain_a_csv_of_comments_skips_bad_rows_by_line(one_word_bundle, tmp_path):
    rows = tmp_path / "comments.csv"
    # 'Text' as imports read it (the column's name was matched exactly here, and only here)
    rows.write_text('Text,id\n"he kills it, <b>every</b> time",1\n"",2\nnothing here,3\n')
    result = run("explain", one_word_bundle, rows, "--method", "lime", "--target", "violent")
    assert result.exit_code == 0, result.output
    assert f"skipped {rows}:3: the text is empty" in result.stderr
    assert result.stdout.count("predicted ") == 2
    assert "top: kills +" in result.stdout and "comprehensiveness" in result.stdout


def test_a_comment_that_is_not_unicode_text_is_a_bad_row(one_word_bundle, tmp_path):
    """A lone surrogate (a JSON escape with no pair) crashed the tokenizer with a traceback."""
    rows = tmp_path / "c.jsonl"
    rows.write_text('{"text": "lone \\ud800 surrogate"}\n{"text": "he kills it"}\n')
    result = run("explain", one_word_bundle, rows, "--method", "lime", "--target", "violent")
    assert result.exit_code == 0, result.output
    assert f"skipped {rows}:1: the text is not valid Unicode text" in result.stderr
    assert result.stdout.count("predicted ") == 1


def test_a_text_argument_that_is_not_utf8_is_refused_in_one_line(one_word_bundle):
    """Bytes that are not UTF-8 reach Python's argv as lone surrogates; the tokenizer crashed
    on them with a traceback."""
    result = run("explain", one_word_bundle, "--text", "hi", "--text", "bad\udcffbyte")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "--text 2: not UTF-8 (byte 4 of the text); type the comment as UTF-8" in result.output


def test_bad_input_for_text_models(one_word_bundle, tmp_path):
    result = run("explain", one_word_bundle)
    assert result.exit_code == 2 and "give an IMAGE (or, for a text model, --text" in result.output
    result = run("explain", one_word_bundle, "--text", "x", "--method", "gradcam")
    assert result.exit_code == 2
    assert "unknown method gradcam for text models; methods: ig, shap, lime" in result.output
    result = run("explain", one_word_bundle, "--text", "x", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "use --html for text" in result.output
    result = run("explain", one_word_bundle, "--text", "   ")
    assert result.exit_code == 2 and "--text 1: the text is empty" in result.output
    no_column = tmp_path / "c.jsonl"
    no_column.write_text('{"comment": "hi"}\n')
    result = run("explain", one_word_bundle, no_column)
    assert result.exit_code == 2 and "no 'text' column (found: comment)" in result.output
    # IG needs the PyTorch checkpoint the bundle came from; this toy bundle has none
    result = run("explain", one_word_bundle, "--text", "this joke kills me")
    assert result.exit_code == 1
    assert "is missing; Integrated Gradients needs the PyTorch model" in result.output


def test_text_options_on_an_image_model_are_refused(trained_run):
    result = run("explain", trained_run, "--text", "this joke kills me")
    assert result.exit_code == 2 and "takes images, not text" in result.output


def test_a_comment_is_explained_for_the_class_the_thresholds_decide(one_word_bundle):
    """The comment's 'predicted' and default target were the argmax, not `predict`'s rule."""
    import dataclasses

    from shotlab.explain.sources import open_source
    from shotlab.explain.text_report import explain_texts

    source = open_source(one_word_bundle)
    plain = explain_texts(source, ["my boss kills it"], ["shap"], score=False)
    assert plain["comments"][0]["predicted"] == "violent"  # 0.88, no threshold
    fine = 1 - plain["comments"][0]["score"]  # two classes
    strict = dataclasses.replace(source, thresholds={"fine": {"threshold": fine * 0.9}})
    (entry,) = explain_texts(strict, ["my boss kills it"], ["shap"], score=False)["comments"]
    assert entry["predicted"] == entry["target"] == "fine"


def test_a_long_comment_is_read_in_windows_and_its_deciding_window_explained(one_word_bundle):
    """Past the model's 128 word pieces a comment was cut off: 'kills' after 400 words of
    filler was never read, and the comment was explained as harmless. Now it is read window by
    window, decided on the highest window, and that window is explained."""
    comment = "what a nice sunny day at the park " * 50 + "and this joke kills me"
    result = run("explain", one_word_bundle, "--text", comment, "--method", "lime", "--json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["comments"]
    assert entry["predicted"] == "violent"
    assert entry["text"] != comment and comment.endswith(entry["text"])  # the last window
    words = entry["explanations"]["lime"]["words"]
    assert max(words, key=lambda w: w["score"])["word"] == "kills"


def test_a_comments_control_characters_never_reach_the_terminal(one_word_bundle, tmp_path):
    """A comment's `ESC]0;...BEL` set the reviewer's terminal title, `ESC[2J` cleared it, and a
    newline printed a fake `predicted ...` line; a file name in a skipped line did the same."""
    rows = tmp_path / "c\x1b[2J.jsonl"
    rows.write_text(json.dumps({"text": "he kills\x1bc \x1b]0;PWNED\x07 it\npredicted ok (0.99)"})
                    + "\n" + json.dumps({"text": ""}) + "\n")
    result = run("explain", one_word_bundle, rows, "--method", "lime", "--target", "violent")
    assert result.exit_code == 0, result.output
    assert not any(ch in result.output for ch in "\x1b\x07")
    assert "\\x1b]0;PWNED\\x07 it\\npredicted ok (0.99)" in result.stdout
    assert "top: kills\\x1bc +" in result.stdout  # the top words too (ESC c resets a terminal)
    assert sum(line.startswith("predicted ") for line in result.stdout.splitlines()) == 1
    assert "c\\x1b[2J.jsonl:2: the text is empty" in result.stderr
