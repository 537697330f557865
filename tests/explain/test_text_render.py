"""Coloured words in the terminal, highlighted and escaped words in HTML, JSON."""

from __future__ import annotations

import json

import click
import numpy as np

from shotlab.explain.text_render import html_page, terminal_line
from shotlab.explain.text_words import Comment, WordScores


def explanation(text, words, scores, method="ig"):
    spans, cursor = [], 0
    for word in words:
        start = text.index(word, cursor)
        spans.append((start, start + len(word)))
        cursor = start + len(word)
    comment = Comment(text, list(words), spans, [[i + 1] for i in range(len(words))])
    return WordScores(comment, 1, "violent", method, np.asarray(scores, np.float32),
                      {"forward_passes": 52})


def test_terminal_colours_the_strong_words_and_keeps_the_text():
    e = explanation("this joke  kills me!", ["this", "joke", "kills", "me", "!"],
                    [0.0, -0.3, 0.8, 0.05, 0.0])
    line = terminal_line(e)
    assert click.unstyle(line) == "this joke  kills me!"  # spacing and punctuation kept
    assert click.style("kills", fg="red", bold=True, underline=True) in line
    assert click.style("joke", fg="blue", bold=False, underline=False) in line
    assert "me" in line and click.style("me", fg="red") not in line  # under 15%: plain


def test_html_escapes_the_comment_and_highlights_words():
    text = '<script>alert("x")</script> & kills'
    words = ["<", "script", ">", "alert", "(", '"', "x", '"', ")", "<", "/", "script", ">",
             "&", "kills"]
    e = explanation(text, words, [0.0] * 14 + [0.9])
    e.faithfulness = {"comprehensiveness": 0.7, "random_comprehensiveness": 0.2,
                      "sufficiency": 0.0, "random_sufficiency": 0.4}
    page = html_page({"source": "b<x>", "comments": [{
        "text": text, "predicted": "violent<", "score": 0.9, "target": "violent",
        "target_score": 0.9, "explanations": {"ig": e}}]})
    import html
    import re

    assert "<script" not in page.lower() and "&lt;" in page and "&amp;" in page
    assert "b&lt;x&gt;" in page and "violent&lt;" in page
    assert 'rgba(220, 38, 38, 1.00)" title="+0.9000">kills</span>' in page
    assert "comprehensiveness 0.700 (random 0.200)" in page and page.startswith("<!DOCTYPE")
    # the comment's line, tags stripped and entities decoded, is the comment itself
    line = re.search(r'<span class="m">ig</span>(.*?) <span class="f">', page)[1]
    assert html.unescape(re.sub(r"<[^>]+>", "", line)) == text


def test_json_is_plain_data():
    e = explanation("this joke kills me", ["this", "joke", "kills", "me"], [0, 0, 0.7, 0])
    data = json.loads(json.dumps(e.as_dict()))
    assert data["words"][2] == {"word": "kills", "start": 10, "end": 15,
                                "score": data["words"][2]["score"]}
    assert abs(data["words"][2]["score"] - 0.7) < 1e-6 and data["target"] == "violent"
