"""`shotlab serve` on a text bundle over real HTTP: comments as text/plain bodies and multipart
parts, decided as `shotlab predict` decides them, micro-batched across lengths (padded, scores
unchanged), explained with Integrated Gradients in the background, bad comments refused."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from tests.serve.conftest import Server
from tests.serve.test_service import assert_same_decisions, metric, wait_for

pytestmark = pytest.mark.fiftyone

TEXT = {"Content-Type": "text/plain; charset=utf-8"}
THREAT = "I will hurt the plumber badly tonight"
# Distinct lengths (in tokens) on purpose: a batch of them is padded to its longest.
COMMENTS = [THREAT, "thank you so much to the mayor, you made my day", "so tasty",
            "we baked bread with the teacher this morning and then a soup with garlic, " * 3,
            "someone should attack the waiter with a knife", "the courier cooked pasta",
            "big thanks to the barista", "lovely",
            # longer than the model reads at once: read in windows, pooled, sent to review
            "thanks for posting the schedule, see you there and have a lovely weekend. " * 24
            + THREAT]
SCORES_ATOL = 1e-5  # batched (padded) vs batch-1 scores: the model masks PAD


@pytest.fixture(scope="module")
def server(text_bundle, tmp_path_factory):
    # --max-wait-ms 50: on a loaded 2-core machine, concurrent comments still arrive together
    server = Server(text_bundle, tmp_path_factory.mktemp("serve-text-store") / "store",
                    "--max-wait-ms", 50).start()
    yield server
    server.stop()


def moderate(server, body: bytes, headers=TEXT):
    return httpx.post(server.url + "/v1/moderate", content=body, headers=headers, timeout=60)


def batch1_scores(bundle_path, texts) -> np.ndarray:
    """Each comment run alone (batch 1, no padding) through the bundle's ONNX model."""
    from shotlab.runtime.bundle import load_bundle
    from shotlab.runtime.runners import make_runner
    from shotlab.runtime.text import encode, load_tokenizer

    bundle = load_bundle(bundle_path)
    runner, tokenizer = make_runner(bundle, "onnx"), load_tokenizer(bundle.preprocessing)
    return np.concatenate([runner(encode(tokenizer, [t], bundle.preprocessing.max_tokens))
                           for t in texts])


def test_same_decisions_as_predict(server, text_bundle, tmp_path):
    from shotlab.export.predict_texts import text_sha256

    path = tmp_path / "comments.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text"], *([c] for c in COMMENTS)])
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(cli, ["predict", str(text_bundle), str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    offline = {d["sha256"]: d for d in map(json.loads, open(out))}
    served = [moderate(server, c.encode("utf-8")) for c in COMMENTS]
    assert [r.status_code for r in served] == [200] * len(COMMENTS), served[0].text
    served = [r.json() for r in served]
    assert [d["sha256"] for d in served] == [text_sha256(c) for c in COMMENTS]
    assert set(offline) == {d["sha256"] for d in served}
    assert {d["kind"] for d in served} == {"text"}
    assert served[0]["labels"] == ["threat"] and served[2]["labels"] == ["food"]
    for got in served:  # a tier-1 job for each flagged or review comment, none for the rest
        attention = bool(got["flagged"] or got["needs_review"])
        assert (got["explanation"] in ("pending", "done")) == attention, got
    assert_same_decisions(served, offline, atol=SCORES_ATOL)
    assert served[-1]["windows"] == offline[served[-1]["sha256"]]["windows"]
    assert len(served[-1]["windows"]) > 1 and served[-1]["needs_review"]
    assert all("windows" not in d for d in served[:-1])


def test_comments_of_different_lengths_share_runs_with_batch1_scores(server, text_bundle):
    """24 distinct comments of 3 to 60 tokens at once: runs hold several (padded to the
    longest), and every score equals the comment's batch-1 score."""
    texts = [f"comment {i}: " + "the referee was really lovely and kind today " * (i % 6)
             + "thanks" for i in range(24)]  # nothing flagged: no IG queued before the next test
    before = httpx.get(server.url + "/metrics").text

    async def flood():
        async with httpx.AsyncClient(headers=TEXT, timeout=60) as client:
            return await asyncio.gather(*(client.post(server.url + "/v1/moderate",
                                                      content=t.encode()) for t in texts))

    responses = asyncio.run(flood())
    assert [r.status_code for r in responses] == [200] * len(texts)
    after = httpx.get(server.url + "/metrics").text
    runs = metric(after, "shotlab_batch_size_count") - metric(before, "shotlab_batch_size_count")
    rows = metric(after, "shotlab_batch_size_sum") - metric(before, "shotlab_batch_size_sum")
    assert rows == len(texts) and runs < len(texts), (rows, runs)
    classes = list(responses[0].json()["scores"])
    served = np.array([[r.json()["scores"][c] for c in classes] for r in responses])
    np.testing.assert_allclose(served, batch1_scores(text_bundle, texts), atol=SCORES_ATOL)


def test_a_leading_bom_is_no_part_of_the_comment_as_in_predict(server):
    """A body saved by a Windows editor starts with a UTF-8 BOM: it was kept in the comment,
    so its sha256 (and maybe its decision) differed from predict's for the same file."""
    from shotlab.export.predict_texts import text_sha256

    served = moderate(server, b"\xef\xbb\xbf" + THREAT.encode()).json()
    assert (served["text"], served["sha256"]) == (THREAT, text_sha256(THREAT))
    parts = [("text", ("c.txt", b"\xef\xbb\xbf" + THREAT.encode(), "text/plain"))]
    response = httpx.post(server.url + "/v1/moderate/batch", files=parts, timeout=60)
    (result,) = response.json()["results"]
    assert (result["text"], result["sha256"]) == (THREAT, text_sha256(THREAT))


def test_batch_endpoint_reads_text_parts_with_a_bad_one_in_its_place(server):
    parts = [("text", (None, "so tasty")), ("text", ("c.txt", b"caf\xe9 au lait", "text/plain")),
             ("text", ("d.txt", THREAT.encode(), "text/plain"))]
    response = httpx.post(server.url + "/v1/moderate/batch", files=parts, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 422, 200]
    assert "not UTF-8" in results[1]["detail"]
    assert results[2]["sha256"] == moderate(server, THREAT.encode()).json()["sha256"]


def test_only_text_fields_are_comments_other_form_fields_are_not_read(server):
    """A client's own fields (user_id, thread) were each decided as a comment."""
    sent = [("text", (None, THREAT)), ("user_id", (None, "12345")),
            ("thread", (None, "general-chat")), ("text", ("c.txt", b"so tasty", "text/plain"))]
    response = httpx.post(server.url + "/v1/moderate/batch", files=sent, timeout=60)
    assert response.status_code == 200, response.text
    assert [r["text"] for r in response.json()["results"]] == [THREAT, "so tasty"]
    alone = httpx.post(server.url + "/v1/moderate", files=[("user_id", (None, "12345"))],
                       timeout=60)
    assert alone.status_code == 422, alone.text
    assert alone.json()["detail"] == ("the multipart body has no item (form fields not read: "
                                      "user_id); send a comment as a form field named 'text' "
                                      "or a file part (curl -F 'text=so tasty')")


def test_a_flagged_comment_gets_its_ig_words_in_the_background(server):
    from shotlab.explain.store import ExplanationStore
    from shotlab.explain.text_store import read_words

    # The threshold is chosen on the tiny validation split: take the first threat that needs
    # attention (flagged, or in the review band).
    threats = [b"someone should attack the referee with a knife", THREAT.encode(),
               b"I am going to smash the umpire's face in", b"the landlord is going to get "
               b"beaten up"]
    decision = next(d for d in (moderate(server, t).json() for t in threats)
                    if d["flagged"] or d["needs_review"])
    assert decision["explanation"] in ("pending", "done")
    url = f"{server.url}/v1/decisions/{decision['decision_id']}"
    stored = wait_for(lambda: (s := httpx.get(url).json())["explanation"]["status"] in
                      ("done", "failed") and s)
    assert stored["explanation"]["status"] == "done", stored["explanation"]
    assert [m["method"] for m in stored["explanation"]["maps"]] == ["ig"]
    with ExplanationStore(Path(server.store) / "explanations.sqlite", readonly=True) as store:
        (words,) = read_words(store, decision["decision_id"], "ig")
    assert words.comment.words and all(w.lower() in decision["text"].lower()
                                       for w in words.comment.words)
    assert words.faithfulness
    # the client reads the word scores too (it got the method's name alone)
    (shown,) = stored["explanation"]["maps"]
    assert [w["word"] for w in shown["words"]] == words.words
    np.testing.assert_allclose([w["score"] for w in shown["words"]], words.scores, atol=1e-6)
    assert shown["scores"]["comprehensiveness"] == words.faithfulness["comprehensiveness"]


@pytest.mark.parametrize("case", ["empty", "blank", "invisible", "nul", "too_long", "not_utf8",
                                  "media_type"])
def test_bad_comments_get_a_status_and_the_reason_predict_gives(server, case):
    body, headers, status, reason = {
        "empty": (b"", TEXT, 422, "empty body"),
        "blank": (b"  \n ", TEXT, 422, "the text is empty"),
        # decided as an empty text is (and flagged so): zero-width spaces, a BOM, NULs
        "invisible": ("\u200b\ufeff\u200b".encode(), TEXT, 422, "only invisible characters"),
        "nul": (b"\x00\x00", TEXT, 422, "only invisible characters"),
        "too_long": (b"a" * 5001, TEXT, 422, "5001 characters, over the limit of 5000"),
        "not_utf8": (b"caf\xe9", TEXT, 422, "not UTF-8"),
        "media_type": (b'{"text": "hi"}', {"Content-Type": "application/json"}, 415,
                       "send multipart/form-data or the raw bytes as text/plain"),
    }[case]
    response = moderate(server, body, headers)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert reason in detail and "\n" not in detail


def test_max_items_counts_comments_sent_as_fields_and_as_files_together(text_bundle,
                                                                       start_server):
    """4 form fields and 4 file parts passed a --max-items 4 server's parser (each sort was
    counted on its own); the queue no larger than the limit, the 8 comments got a 429 'retry'
    that could never succeed."""
    server = start_server(text_bundle, "--max-items", 4, "--queue-size", 4, "--no-explain")
    fields = [("text", (None, comment)) for comment in COMMENTS[:4]]
    files = [("text", (f"{i}.txt", comment.encode(), "text/plain"))
             for i, comment in enumerate(COMMENTS[4:8])]
    over = httpx.post(server.url + "/v1/moderate/batch", files=fields + files, timeout=60)
    assert over.status_code == 413, over.text
    assert over.json()["detail"] == ("8 items in one request, over the limit of 4 "
                                     "(--max-items); send at most 4 a request")
    within = httpx.post(server.url + "/v1/moderate/batch", files=fields[:2] + files[:2],
                        timeout=60)
    assert within.status_code == 200, within.text
    assert [r["status"] for r in within.json()["results"]] == [200] * 4


def test_a_long_comments_served_words_point_into_the_comment(server):
    """A comment read in windows is explained on the window that scored its class; the words'
    start/end counted from that window's start, while the answer's text is the whole comment,
    so they pointed at other characters ('live' at 237 read 'phot')."""
    decision = moderate(server, COMMENTS[-1].encode()).json()
    assert len(decision["windows"]) > 1 and decision["needs_review"]
    url = f"{server.url}/v1/decisions/{decision['decision_id']}"
    stored = wait_for(lambda: (s := httpx.get(url).json())["explanation"]["status"] in
                      ("done", "failed") and s, timeout=180)
    (words,) = stored["explanation"]["maps"]
    start, end = words["window"]
    assert start > 0 and (start, end) in {(w["start"], w["end"]) for w in decision["windows"]}
    assert words["words"] and all(decision["text"][w["start"]:w["end"]] == w["word"]
                                  for w in words["words"])
    shown = CliRunner().invoke(cli, ["explain", "show", decision["decision_id"], "--store",
                                     str(Path(server.store) / "explanations.sqlite")])
    assert shown.exit_code == 0, shown.output
    # a served comment has no file: it was headed "image unknown"
    assert shown.output.splitlines()[0].startswith(
        f"decision {decision['decision_id']}: a comment, the passage explained 'thanks for")
