"""`shotlab predict BUNDLE comments.csv`: one decision per comment of a text bundle.

Comments come from CSV or JSONL rows (`core/rows.py`, the `text` column or key) or from a .txt
file (one comment per line; blank lines are not comments). Each is tokenized through the
bundle's input kind (`runtime/kinds.py`, the bundle's own tokenizer.json), scored by the
bundle's runner and decided by the one rule (`export.predict.decision_records`). The record
adds, beside the image fields:

    kind    "text"
    line    the line of the file the comment starts on (a CSV row may span lines)
    text    the comment as read (what a reviewer reads in the review queue)

`path` is the file the comment came from and `sha256` the hash of the comment's UTF-8 bytes (the
identity a text dataset gives it). Rows that cannot be decided (no text field, empty, over the
length limit, bytes that are not UTF-8) are listed in `.bad` as ("FILE:LINE", reason).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.rows import ROW_SUFFIXES
from shotlab.runtime.runners import BATCH_SIZE
from shotlab.runtime.text import TEXT_FIELD

COMMENT_SUFFIXES = ROW_SUFFIXES | {".txt"}


@dataclass(frozen=True)
class Comment:
    path: Path | None  # None for a comment that came without a file (typed into the page)
    line: int
    text: str


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def comment_of(path: Path, line: int, fields: dict) -> Comment:
    """The comment of one row, or InputError saying what is wrong with it."""
    from shotlab.runtime.text import text_column

    return Comment(path, line, text_column(fields, f"{path}:{line}"))


def text_lines(path: Path) -> tuple[list[tuple[int, dict]], list[tuple[int, str]]]:
    """A .txt file as (line, {"text": line}) rows, blank lines left out; undecodable lines bad."""
    from shotlab.core.rows import decode_lines

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    lines, bad = decode_lines(data)
    return [(n, {TEXT_FIELD: text.rstrip("\r\n")}) for n, text in lines if text.strip()], bad


def read_comments(path: Path) -> tuple[list[Comment], list[tuple[str, str]]]:
    """The comments of one file and its bad rows as ("FILE:LINE", reason)."""
    from shotlab.core.rows import read_rows

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in COMMENT_SUFFIXES:
        return [], [(str(path), f"not a file of comments (this bundle reads text: give "
                                f"{', '.join(sorted(COMMENT_SUFFIXES))} files)")]
    if suffix == ".txt":
        rows, bad_lines = text_lines(path)
    else:
        found, bad_lines = read_rows(path)
        rows = [(row.line, row.fields) for row in found]
        if rows and (column := picture_column(rows[0][1])):
            return [], [(str(path), f"a file of posts (its '{column}' column names pictures): "
                                    f"this bundle decides comments alone and would ignore the "
                                    f"pictures; give it to a post bundle, or drop the column to "
                                    f"decide the captions as comments")]
    comments, bad = [], [(f"{path}:{line}", reason) for line, reason in bad_lines]
    for line, fields in rows:
        try:
            comments.append(comment_of(path, line, fields))
        except InputError as exc:
            bad.append((f"{path}:{line}", str(exc).removeprefix(f"{path}:{line}: ")))
    bad.sort(key=lambda item: int(item[0].rpartition(":")[2] or 0))
    return comments, bad


def picture_column(fields: dict) -> str | None:
    """The column of a row that names a post's picture (`core.rows.IMAGE_COLUMNS`), if any."""
    from shotlab.core.rows import IMAGE_COLUMNS

    return next((str(k) for k in fields if str(k).strip().lower() in IMAGE_COLUMNS), None)


def predict_texts(bundle, paths, *, batch_size: int = BATCH_SIZE, runtime: str = "onnx",
                  progress=None):
    """Decisions for every comment in the files at `paths` (an `export.predict.Prediction`)."""
    from shotlab.core.progress import progress_bar
    from shotlab.export.predict import Prediction
    from shotlab.runtime.runners import batches, make_runner

    result, comments = Prediction(), []
    for path in paths:
        found, bad = read_comments(Path(path))
        comments += found
        result.bad += bad
    runner = make_runner(bundle, runtime)
    with progress_bar(total=len(comments), enabled=progress, unit="text",
                      desc="Predicting") as bar:
        for chunk in batches(comments, batch_size):
            result.decisions += comment_records(bundle, runner, chunk, runtime=runtime)[0]
            bar.update(len(chunk))
    return result


def comment_records(bundle, runner, comments: list[Comment], *, runtime: str):
    """(the decision records of `comments`, already checked by `check_text`, and their windows'
    token ids (W, L) padded): what `predict_texts` writes and the page shows for one comment."""
    from shotlab.runtime.runners import run_batched

    ids, owners, spans = window_rows(bundle, [c.text for c in comments])
    # in runs of BATCH_SIZE rows: 32 comments of 5,000 characters are about 300 windows
    records = pooled_records(bundle, run_batched(runner, ids), owners, spans,
                             [text_sha256(c.text) for c in comments], runtime=runtime,
                             paths=[c.path for c in comments])
    return ([{**record, "kind": "text", "line": c.line, "text": c.text}
             for record, c in zip(records, comments)], ids)


def window_rows(bundle, texts: list[str]) -> tuple[np.ndarray, list[int], list]:
    """(token ids (W, L) of every window of `texts`, each window's text index, each text's
    window spans): a comment longer than the model reads is read in overlapping windows
    (`runtime.text.text_windows`); a short one is one window, itself."""
    from shotlab.runtime.text import encode, load_tokenizer, window_texts

    tokenizer, limit = load_tokenizer(bundle.preprocessing), bundle.preprocessing.max_tokens
    parts, owners, spans = window_texts(tokenizer, texts, limit)
    return encode(tokenizer, parts, limit), owners, spans


def pooled_records(bundle, window_probs, owners: list[int], spans: list, sha256s, *,
                   runtime: str, paths=None) -> list[dict]:
    """One decision record per text from its windows' scores (`runtime.text.pool_windows`:
    the highest window for an unsafe class, the mean for the others). A text read in several
    windows lists them, `windows`: [{start, end, scores}] (characters of the text), and, when
    nothing flagged it, goes to review (`runtime.text.windowed_review_class`). Its
    explanation explains that class's top window."""
    from shotlab.export.predict import decision_records
    from shotlab.runtime.text import pool_windows, windowed_review_class

    window_probs, owners = np.asarray(window_probs, np.float64), np.asarray(owners)
    classes = list(bundle.classes)
    probs = pool_windows(window_probs, owners, len(spans), classes,
                         bundle.policy.get("unsafe", ()))
    records = decision_records(bundle, probs, sha256s, runtime=runtime, paths=paths,
                               pooled=len(owners) > len(spans))
    unsafe = bundle.policy.get("unsafe", ())
    for i, record in enumerate(records):
        if len(spans[i]) > 1:
            record["windows"] = [{"start": start, "end": end,
                                  "scores": {c: round(float(p), 6) for c, p in zip(classes, row)}}
                                 for (start, end), row in zip(spans[i],
                                                              window_probs[owners == i])]
            about = windowed_review_class(record["scores"], classes, unsafe)
            if about is not None and not record["flagged"]:
                record["needs_review"] = True
                record["review_classes"] = record["review_classes"] or [about]
    return records
