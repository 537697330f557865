"""The HTML report of `shotlab curate check`: one self-contained file (thumbnails inlined as
base64 JPEG, no external URL, no script) with a section per check listing its worst samples; a
text dataset's cards quote the comment instead of a thumbnail."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from shotlab.core.errors import BadImageError, InputError
from shotlab.core.files import write_text_atomic
from shotlab.core.images import load_rgb

THUMB_SIDE = 128  # px: big enough to see a wrong label, small enough for hundreds per file
PER_CHECK = 24  # samples shown per check, worst first
STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.grid{display:flex;flex-wrap:wrap;
gap:8px}.card{width:150px;font-size:11px;word-break:break-all}.card img{max-width:128px;
max-height:128px;display:block}.note{color:#a40}.text{font-size:12px;word-break:normal;
margin:0 0 4px;padding:4px;background:#f4f4f4}"""
TEXT_CHARS = 280  # of a comment shown on its card


def thumbnail(path: str) -> str:
    """A data: URI of a small JPEG of the image, or '' when it cannot be read."""
    try:
        image = load_rgb(path)
    except BadImageError:
        return ""
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def media(samples, position: int) -> str:
    """The card's picture of the sample: its thumbnail, or the comment quoted."""
    if samples.texts is not None:
        text = samples.texts[position]
        text = text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 3] + "..."
        return f'<p class="text">{html.escape(text)}</p>'
    src = thumbnail(samples.paths[position])
    image = f'<img src="{src}" alt="">' if src else "<em>unreadable</em>"
    name = samples.names[position] if samples.names and samples.names[position] else None
    return image + html.escape(name or Path(samples.paths[position]).name)  # a frame: clip, time


def card(result, position: int, samples) -> str:
    extra = "".join(f"<br>{html.escape(k)}: {html.escape(str(v[position]))}"
                    for k, v in result.fields.items() if v[position] is not None)
    labels = ",".join(samples.labels[position]) or "(none)"
    return (f'<div class="card">{media(samples, position)}'
            f"<br>label: {html.escape(labels)}<br>score: {result.scores[position]:.3f}"
            f"{extra}</div>")


def section(result, samples) -> str:
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)
    cards = "".join(card(result, i, samples) for i in result.worst(PER_CHECK))
    more = f"<p>{result.count - PER_CHECK} more not shown.</p>" if result.count > PER_CHECK else ""
    return (f"<h2>{html.escape(result.name)}: {result.count} flagged</h2>{notes}"
            f'<div class="grid">{cards}</div>{more}')


def render(summary, results, samples) -> str:
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{c['count']}</td></tr>"
                   for n, c in summary.checks.items())
    body = "".join(section(r, samples) for r in results) + "".join(
        f'<p class="note">{html.escape(n)}: {html.escape(why)}</p>'
        for n, why in summary.skipped.items())
    title = f"{TITLE}{summary.name}"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{summary.checked} samples checked ({summary.excluded} excluded), "
            f"{html.escape(summary.time)}</p><table><tr><th>check</th><th>flagged</th></tr>"
            f"{rows}</table>{body}</body></html>")


TITLE = "shotlab curate check: "


def check_report_path(path: Path) -> None:
    """Refuse, before any check runs, a --report the report cannot go to without harm: an
    existing file that is not an earlier report (a user's own file, never replaced). Missing
    folders are made, as `predict --out` makes them."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--report {path} is a folder; give a file name, e.g. {path}/check.html")
    if path.exists() and not is_check_report(path):
        raise InputError(f"--report {path} exists and is not a shotlab check report; choose a "
                         f"new file name (nothing was overwritten)")


def is_check_report(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(300).decode("utf-8", errors="replace")
    except OSError:
        return False
    return head.startswith("<!doctype html>") and f"<title>{TITLE}" in head


def write_report(path: Path, summary, results, samples) -> Path:
    """Write the report atomically to `path` and return it."""
    return write_text_atomic(path, render(summary, results, samples))
