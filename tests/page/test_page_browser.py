"""The page end to end: a real `shotlab explain app` process on a free loopback port, driven by
Playwright through Debian's chromium (never a browser Playwright downloads).

Screenshots go to $SHOTLAB_PAGE_SCREENSHOTS when it is set (docs/images for the docs:
`SHOTLAB_PAGE_SCREENSHOTS=docs/images pytest tests/page/test_page_browser.py`), else to a
temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from shotlab.core.addresses import free_port
from tests.page.conftest import PageServer, became_healthy

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
WAIT_MS = 120_000  # a decision, Grad-CAM or a rerun on a loaded 2-core CI machine
LONG_WAIT_MS = 600_000  # LIME + SHAP + faithfulness there
UPLOAD = "[data-testid='stFileUploaderDropzoneInput']"
ERROR = "[data-testid='stAlertContentError']"

sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed "
                               "(pip install -e '.[dev]')")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is not installed "
                       "(apt-get install chromium; .ci/run installs it)"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("page-home")


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> Path:
    """While this file exists, the page's long explanations wait after each batch."""
    return tmp_path_factory.mktemp("gate") / "hold"


@pytest.fixture(scope="module")
def server(exported, predicted, home, gate):
    page_server = PageServer(exported.path, "--store", predicted["store"],
                             "--max-upload-mb", 1, home=home, gate=gate).start()
    yield page_server
    page_server.stop()


@pytest.fixture
def hold(gate):
    """Holds the page's long explanations at their first batch until `hold.release()` (or the
    test's end): a run stays running, whatever the machine's speed."""
    gate.touch()
    holding = SimpleNamespace(release=lambda: gate.unlink(missing_ok=True))
    yield holding
    holding.release()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser, server, request, shots):
    """open_page() -> a new browser session on the page (its own Streamlit session). When the
    test fails, the server's last log lines are printed and each page saved as a screenshot
    (`failed-NAME-N.png` among the screenshots), so a CI failure says what the page was doing."""
    contexts = []

    def opener():
        context = browser.new_context(viewport={"width": 1400, "height": 1700})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(server.url)
        page.wait_for_selector(UPLOAD, state="attached")
        return page

    yield opener
    if getattr(request.node, "failed_call", False):
        leave_evidence(server, contexts, shots / f"failed-{request.node.name}")
    for context in contexts:
        context.close()


def leave_evidence(server, contexts, prefix: Path) -> None:
    print("the page server's last log lines:\n" + "".join(server.log[-60:]))
    for number, context in enumerate(contexts):
        for page in context.pages:
            path = prefix.with_name(f"{prefix.name}-{number}.png")
            page.screenshot(path=str(path), full_page=True)
            print(f"page {number} as seen ({path}):\n{page.inner_text('body')[-3000:]}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("SHOTLAB_PAGE_SCREENSHOTS")
    return Path(folder) if folder else tmp_path_factory.mktemp("page-shots")


def red(inbox) -> Path:
    return sorted((inbox / "new" / "red").glob("*.png"))[0]


def upload(page, path: Path) -> None:
    page.set_input_files(UPLOAD, str(path))


def shown_decision(page) -> dict:
    page.wait_for_selector(".shotlab-bar")
    return {bar.get_attribute("data-class"): (float(bar.get_attribute("data-score")),
                                              bar.get_attribute("data-flagged") == "true")
            for bar in page.query_selector_all(".shotlab-bar")}


def caption(page, text: str):
    return page.get_by_test_id("stImageCaption").filter(
        has_text=re.compile(f"^{re.escape(text)}$"))


def wait_for_caption(page, text: str, timeout=WAIT_MS):
    caption(page, text).first.wait_for(timeout=timeout)


def test_upload_shows_predicts_decision_and_gradcam(open_page, inbox, predicted, shots):
    page = open_page()
    path = red(inbox)
    upload(page, path)
    wait_for_caption(page, "Grad-CAM")
    expected = predicted["decisions"][path.name]
    shown = shown_decision(page)
    assert set(shown) == set(expected["scores"])
    for name, (score, flagged) in shown.items():
        assert score == pytest.approx(expected["scores"][name], abs=1e-6)
        assert flagged == (name in expected["flagged"])
    heading = page.locator("h3").filter(has_text=path.name).inner_text()
    assert heading.endswith(": " + ", ".join(expected["labels"]))
    review = "needs review" if expected["needs_review"] else "no review needed"
    assert page.get_by_text(review).count() >= 1
    page.screenshot(path=str(shots / "page-decision.png"), full_page=True)
    assert (shots / "page-decision.png").stat().st_size > 10_000


def test_a_clip_shows_its_timeline_segments_and_top_frame(open_page, exported, tmp_path, shots):
    """The clip panel: the same record as `shotlab predict` on the clip, the segment to watch,
    the timeline and Grad-CAM on the top frame."""
    from shotlab.export.predict_clips import predict_clips
    from shotlab.runtime.bundle import load_bundle
    from tests.export.test_predict_clips import colour_clip

    clip = colour_clip(tmp_path / "violent.mp4", ["green", "green", "red", "green"])
    (expected,) = predict_clips(load_bundle(exported.path), [clip]).decisions
    page = open_page()
    page.get_by_text("a short clip", exact=True).click()
    page.wait_for_selector("text=Upload a short clip")
    upload(page, clip)
    wait_for_caption(page, "Grad-CAM")
    shown = shown_decision(page)
    for name, (score, flagged) in shown.items():
        assert score == pytest.approx(expected["scores"][name], abs=1e-6)
        assert flagged == (name in expected["flagged"])
    assert caption(page, "top frame, as the model sees it").count() == 1
    segment = expected["segments"][0]
    assert page.get_by_text(f"red {segment['start']:.1f}-{segment['end']:.1f} s",
                            exact=False).count() == 1
    page.screenshot(path=str(shots / "page-clip.png"), full_page=True)


def test_open_stored_decision(open_page, predicted, shots):
    flagged = next(r for r in predicted["decisions"].values() if r["flagged"])
    page = open_page()
    page.get_by_role("tab", name="Open decision").click()
    page.get_by_label("Decision id").fill(flagged["decision_id"])
    page.get_by_role("button", name="Open decision").click()
    wait_for_caption(page, "Grad-CAM (red)")
    scores = ", ".join(f"{name} {score:.3f}" for name, score in flagged["scores"].items())
    for text in (f"Decision {flagged['decision_id']}", f"decided {flagged['time']}",
                 f"scores {scores}"):
        shown = page.get_by_text(text, exact=False)
        shown.first.wait_for()  # Streamlit may stream a line after the pictures on a busy machine
        assert shown.count() == 1, text
    table = page.get_by_test_id("stTable").filter(has_text="input sha256")
    table.wait_for()
    assert flagged["sha256"][:16] in table.inner_text()  # the stored map's input hash
    page.screenshot(path=str(shots / "page-stored-decision.png"), full_page=True)
    page.get_by_label("Decision id").fill("0" * 32)
    page.get_by_role("button", name="Open decision").click()
    page.wait_for_selector(f"{ERROR}:has-text('nothing stored')")


def test_corrupt_upload_gets_the_one_line_reason(open_page, inbox, predicted):
    page = open_page()
    upload(page, inbox / "corrupt.jpg")
    page.wait_for_selector(ERROR)
    assert page.inner_text(ERROR).strip() == f"corrupt.jpg: {predicted['bad']['corrupt.jpg']}"
    assert page.query_selector(".shotlab-bar") is None


def test_upload_over_the_limit_is_refused(open_page, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + os.urandom(int(1.5 * 2**20)))  # over --max-upload-mb 1
    page = open_page()
    upload(page, big)
    page.wait_for_selector("text=/1(\\.0)? ?MB/")
    assert page.query_selector(".shotlab-bar") is None


def start_lime(page, inbox, *extra: str) -> None:
    """Asks for LIME and `extra`, then waits for LIME's progress: the run is held at its first
    batch (`hold`; on the tiny test model LIME can finish in half a second, before a poll sees
    its bar)."""
    upload(page, red(inbox))
    wait_for_caption(page, "Grad-CAM")
    for label in ("LIME", *extra):
        page.get_by_text(label, exact=True).click()
    page.get_by_role("button", name="Explain", exact=True).click()
    page.wait_for_selector("[data-testid='stProgress']:has-text('lime:')")


def test_lime_shows_progress_and_can_be_cancelled(open_page, inbox, hold):
    page = open_page()
    start_lime(page, inbox, "SHAP")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("text=Explanation cancelled.")  # stopped while held, at a report
    assert page.query_selector("[data-testid='stProgress']") is None
    assert caption(page, "LIME").count() == 0 and caption(page, "SHAP").count() == 0


def test_a_long_explanation_does_not_block_another_session(open_page, inbox, shots, hold):
    """While one session runs LIME and SHAP with scores (held at LIME's first batch), another
    gets its decision; the first then finishes with its maps, faithfulness table and sanity
    check."""
    first, second = open_page(), open_page()
    start_lime(first, inbox, "SHAP", "Score faithfulness")
    upload(second, sorted((inbox / "new" / "blue").glob("*.png"))[0])
    assert shown_decision(second)["red"][1] is False  # a served page waiting on LIME: times out
    assert first.query_selector("[data-testid='stProgress']") is not None
    hold.release()
    wait_for_caption(first, "SHAP", timeout=LONG_WAIT_MS)
    first.wait_for_selector("text=Sanity check", timeout=LONG_WAIT_MS)
    table = first.inner_text("[data-testid='stTable']")
    assert all(name in table for name in ("Grad-CAM", "LIME", "SHAP", "deletion AUC"))
    first.screenshot(path=str(shots / "page-explanations.png"), full_page=True)


@pytest.fixture(scope="module")
def text_server(text_bundle, home):
    page_server = PageServer(text_bundle, home=home).start()
    yield page_server
    page_server.stop()


def test_a_comment_shows_predicts_decision_and_its_words(browser, text_server, text_bundle,
                                                         tmp_path, shots):
    """A comment bundle's page: an empty comment gets predict's one-line reason; a typed threat
    gets predict's decision, its words highlighted by IG, then SHAP on request, each with its
    faithfulness against random word rankings."""
    from tests.page.conftest import predict, write_comments_csv

    threat = "I will hurt the plumber badly tonight"
    comments = write_comments_csv(tmp_path / "comments.csv", [threat, ""])
    out = tmp_path / "decisions.jsonl"
    summary = predict(text_bundle, comments, "--out", out)
    (expected,) = [json.loads(line) for line in out.read_text().splitlines()]
    (empty_reason,) = [b["reason"] for b in summary["bad_files"]]
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(text_server.url)
    decide = page.get_by_role("button", name="Decide")
    decide.wait_for()
    decide.click()  # nothing typed
    page.wait_for_selector(ERROR)
    assert page.inner_text(ERROR).strip() == f"comment: {empty_reason}"
    assert page.query_selector(".shotlab-bar") is None
    page.get_by_role("textbox", name="Comment").fill(threat)
    decide.click()
    page.wait_for_selector(".shotlab-words[data-method='ig']")
    shown = shown_decision(page)
    assert set(shown) == set(expected["scores"])
    for name, (score, flagged) in shown.items():
        assert score == pytest.approx(expected["scores"][name], abs=1e-6)
        assert flagged == (name in expected["flagged"])
    assert page.locator("h3").filter(has_text="comment").inner_text().endswith(
        ": " + ", ".join(expected["labels"]))
    ig = page.locator(".shotlab-words[data-method='ig']")
    assert ig.locator("span.w").count() == 7  # one highlighted span per word
    assert ig.inner_text().endswith(threat)
    page.get_by_text("SHAP", exact=True).click()
    page.get_by_role("button", name="Explain", exact=True).click()
    page.wait_for_selector(".shotlab-words[data-method='shap']", timeout=LONG_WAIT_MS)
    table = page.get_by_test_id("stTable").filter(has_text="comprehensiveness")
    table.wait_for()
    assert "Integrated Gradients" in table.inner_text() and "SHAP" in table.inner_text()
    page.screenshot(path=str(shots / "page-comment.png"), full_page=True)
    assert (shots / "page-comment.png").stat().st_size > 10_000
    context.close()


@pytest.fixture(scope="module")
def post_server(post_run, home):
    page_server = PageServer(post_run[1].path, home=home).start()
    yield page_server
    page_server.stop()


def test_a_post_shows_predicts_decision_split_gradcam_and_caption_words(
        browser, post_server, post_run, tmp_path, shots):
    """A post bundle's page: upload the image, write the caption, Decide: predict's record for
    that post, the modality split, Grad-CAM on the image and the caption's IG words."""
    import csv

    from tests.page.conftest import predict

    _, exported, folder, rows = post_run
    row = next(r for r in rows if r["split"] == "test")
    image = Path(folder) / row["image_path"]
    posts = tmp_path / "posts.csv"
    with posts.open("w", newline="") as handle:
        csv.writer(handle).writerows([["image_path", "text"], [str(image), row["text"]]])
    out = tmp_path / "decisions.jsonl"
    predict(exported.path, posts, "--out", out)
    (expected,) = [json.loads(line) for line in out.read_text().splitlines()]
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(post_server.url)
    page.wait_for_selector(UPLOAD, state="attached")
    upload(page, image)
    page.get_by_role("textbox", name="Caption").fill(row["text"])
    page.get_by_role("button", name="Decide").click()
    page.wait_for_selector(".shotlab-words[data-method='ig']")
    shown = shown_decision(page)
    for name, (score, flagged) in shown.items():
        assert score == pytest.approx(expected["scores"][name], abs=1e-5)
        assert flagged == (name in expected["flagged"])
    assert page.get_by_text("Modality split", exact=False).count() == 1
    wait_for_caption(page, "Grad-CAM (caption held fixed)")
    assert page.locator(".shotlab-words[data-method='ig']").inner_text().endswith(row["text"])
    page.screenshot(path=str(shots / "page-post.png"), full_page=True)
    context.close()


def websocket_status(url: str, host: str, origin: str) -> int:
    """The status of a websocket upgrade to the page's stream, sent with `host` and `origin`."""
    import socket

    port = int(url.rsplit(":", 1)[1])
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}:{port}\r\nOrigin: {origin}\r\n"
               f"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"Sec-WebSocket-Protocol: streamlit\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request.encode())
        return int(connection.recv(100).split()[1])


def test_another_site_gets_no_websocket_even_with_a_config_that_allows_it(exported, tmp_path):
    """DNS rebinding (a foreign name resolving to 127.0.0.1) got the page's websocket, and a
    config.toml turning CORS and XSRF off was obeyed; both are pinned now."""
    home = tmp_path / "home"
    (home / ".streamlit").mkdir(parents=True)
    (home / ".streamlit" / "config.toml").write_text(
        "[server]\nenableCORS = false\nenableXsrfProtection = false\nallowedHosts = ['*']\n")
    page_server = PageServer(exported.path, home=home).start()
    try:
        own = f"{page_server.url}"
        assert websocket_status(page_server.url, "127.0.0.1", own) == 101
        assert websocket_status(page_server.url, "evil.example", "http://evil.example") == 403
        assert websocket_status(page_server.url, "127.0.0.1", "http://evil.example") == 403
    finally:
        page_server.stop()


class Listener:
    """A TCP port on loopback that records the first line of whatever connects to it."""

    def __init__(self):
        import socket
        import threading

        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.5)
        self.address = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.seen: list[bytes] = []
        self.running = True
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while self.running:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            with connection:
                self.seen.append(connection.recv(1000).split(b"\r\n")[0])

    def close(self) -> None:
        self.running = False
        self.socket.close()


def test_a_foreign_origin_makes_the_page_call_out_to_nobody(exported, tmp_path):
    """Streamlit looked up the machine's public address at checkip.amazonaws.com whenever a
    foreign origin knocked: an outbound request from an offline tool, caused by any web site.
    Every proxy variable points at a local listener here, which must hear nothing."""
    proxy = Listener()
    page_server = PageServer(exported.path, home=tmp_path / "home")
    page_server.env.update({name: proxy.address for name in
                            ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")})
    page_server.env.pop("NO_PROXY", None), page_server.env.pop("no_proxy", None)
    page_server.start()
    try:
        assert websocket_status(page_server.url, "127.0.0.1", "http://evil.example") == 403
        assert websocket_status(page_server.url, "127.0.0.1", page_server.url) == 101
    finally:
        page_server.stop()
        proxy.close()
    assert proxy.seen == []


def test_file_and_class_names_are_shown_as_text_not_markdown(browser, exported, inbox, tmp_path):
    """A flagged image named `![t](http:&#47;&#47;HOST&#47;x.png).png`, deleted after review,
    made the stored decision's "is gone" warning an image fetched from HOST by every reviewer's
    browser (Markdown); so did the one-line error of an upload so named. Both are text now."""
    import shutil

    from tests.page.conftest import predict

    listener = Listener()
    url = listener.address.replace("/", "&#47;")
    folder = tmp_path / "inbox"
    folder.mkdir()
    named = folder / f"![t]({url}&#47;gone.png).png"
    shutil.copy(red(inbox), named)
    out = tmp_path / "decisions.jsonl"
    store = Path(predict(exported.path, folder, "--out", out, "--explain")["explanations"]["store"])
    (decision,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert decision["flagged"], decision  # so its map is stored
    named.unlink()
    import numpy as np

    from shotlab.explain.store import ExplanationStore

    with ExplanationStore(store) as opened:  # a map whose class is Markdown: caption and table
        opened.put(decision["decision_id"], "gradcam", np.full((8, 8), 0.5, np.float32),
                   target=f"![c]({url}&#47;target.png)")
    bad_upload = tmp_path / f"![u]({url}&#47;upload.png).jpg"
    bad_upload.write_bytes(b"not an image\n" * 40)
    page_server = PageServer(exported.path, "--store", store, home=tmp_path / "home").start()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(page_server.url)
        page.wait_for_selector(UPLOAD, state="attached")
        upload(page, bad_upload)
        page.wait_for_selector(ERROR)
        assert page.inner_text(ERROR).startswith(bad_upload.name)
        page.get_by_role("tab", name="Open decision").click()
        page.get_by_label("Decision id").fill(decision["decision_id"])
        page.get_by_role("button", name="Open decision").click()
        warning = page.get_by_test_id("stAlertContentWarning").filter(has_text="is gone")
        warning.wait_for()
        assert str(named) in warning.inner_text()
        page.get_by_test_id("stTable").filter(has_text="target.png").wait_for()
        caption(page, f"Grad-CAM (![c]({url}&#47;target.png))").first.wait_for()
        assert page.locator("img[src*='gone.png'], img[src*='upload.png'], "
                            "img[src*='target.png']").count() == 0
    finally:
        context.close()
        page_server.stop()
        listener.close()
    assert listener.seen == []


def wait_healthy(port: int, process, log: Path) -> None:
    """Until the page at `port` answers its health check; fails if `process` ends first."""
    assert became_healthy(port, process), "the page did not start:\n" + log.read_text()[-2000:]


def test_the_page_outlives_a_reader_that_stopped_reading(exported, tmp_path):
    """`shotlab explain app B | head -1`: Streamlit's banner went into the closed pipe and the
    server ended with a BrokenPipeError; it prints no banner now, and stops on SIGTERM."""
    import subprocess

    page_server, port = PageServer(exported.path, home=tmp_path / "home"), free_port()
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen([*page_server.command, "--port", str(port)],
                                   env=page_server.env, stdout=subprocess.PIPE, stderr=stderr)
    try:
        assert b"Explanation page for" in process.stdout.readline()
        process.stdout.close()  # what `head -1` does once it has its line
        wait_healthy(port, process, log)
        time.sleep(5)  # Streamlit's banner came right after its server started
        wait_healthy(port, process, log)  # still there
        process.terminate()
        assert process.wait(30) is not None  # it used to ignore SIGTERM here
    finally:
        if process.poll() is None:
            process.kill()
    assert "BrokenPipeError" not in log.read_text()


def test_the_page_starts_with_no_standard_output_at_all(exported, tmp_path):
    """`shotlab explain app B >&-` (a service manager may start it so): Python's sys.stdout is
    None there, and making standard output pipe-safe must not end the page."""
    import subprocess

    page_server, port = PageServer(exported.path, home=tmp_path / "home"), free_port()
    closed = ["sh", "-c", 'exec "$@" >&-', "sh", *page_server.command, "--port", str(port)]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(closed, env=page_server.env, stderr=stderr)
    try:
        wait_healthy(port, process, log)
        process.terminate()
        assert process.wait(30) is not None
    finally:
        if process.poll() is None:
            process.kill()


def test_nothing_written_to_the_users_home(server, home):
    """Run last in this file: after every page above, the page process's HOME is still empty
    (no ~/.streamlit, no caches, no uploads)."""
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == []
