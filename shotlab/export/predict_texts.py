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
    comments, bad = [], [(f"{path}:{line}", reason) for line, reason in bad_lines]
    for line, fields in rows:
        try:
            comments.append(comment_of(path, line, fields))
        except InputError as exc:
            bad.append((f"{path}:{line}", str(exc).removeprefix(f"{path}:{line}: ")))
    bad.sort(key=lambda item: int(item[0].rpartition(":")[2] or 0))
    return comments, bad


def predict_texts(bundle, paths, *, batch_size: int = BATCH_SIZE, runtime: str = "onnx",
                  progress=None, keep_inputs: bool = False):
    """Decisions for every comment in the files at `paths` (an `export.predict.Prediction`;
    with `keep_inputs`, `.inputs` holds each decision's token ids, unpadded)."""
    from shotlab.core.progress import progress_bar
    from shotlab.export.predict import Prediction
    from shotlab.runtime.runners import batches, make_runner
    from shotlab.runtime.text import PAD_ID

    result, comments = Prediction(), []
    for path in paths:
        found, bad = read_comments(Path(path))
        comments += found
        result.bad += bad
    runner = make_runner(bundle, runtime)
    with progress_bar(total=len(comments), enabled=progress, unit="text",
                      desc="Predicting") as bar:
        for chunk in batches(comments, batch_size):
            records, ids = comment_records(bundle, runner, chunk, runtime=runtime)
            result.decisions += records
            if keep_inputs:
                result.inputs += [row[row != PAD_ID] for row in ids]
            bar.update(len(chunk))
    return result


def comment_records(bundle, runner, comments: list[Comment], *, runtime: str):
    """(the decision records of `comments`, already checked by `check_text`, and their token
    ids (N, L) padded): what `predict_texts` writes and the page shows for one comment."""
    from shotlab.export.predict import decision_records
    from shotlab.runtime.kinds import load_inputs

    inputs = load_inputs([c.text for c in comments], bundle.preprocessing, progress=False)
    kept = [comments[i] for i in inputs.kept]  # all of them: each passed check_text
    records = decision_records(bundle, runner(inputs.arrays),
                               [text_sha256(c.text) for c in kept], runtime=runtime,
                               paths=[c.path for c in kept])
    return ([{**record, "kind": "text", "line": c.line, "text": c.text}
             for record, c in zip(records, kept)], inputs.arrays)
