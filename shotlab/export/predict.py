"""`shotlab predict BUNDLE PATHS...`: one decision per image, and a review queue.

Each decision (a JSON line):
    decision_id   uuid4 hex: the key explanations and reviews refer to
    path, sha256  the image as read (the file is never modified)
    scores        {class: probability} from the bundle's model (softmax or sigmoid)
    labels        predicted classes under the policy's thresholds (`shotlab.runtime.decide`)
    flagged       unsafe classes whose score is at or over their threshold
    needs_review  a score inside an unsafe class's review band
    bundle, model_sha256, policy_version, runtime, time

`review_queue.jsonl` beside the decisions holds the decisions that are flagged or need review.
Both are written under temporary names and moved into place together when the whole command has
succeeded (`staged_decisions`): a failed run leaves the previous files as they were, and only a
file predict wrote (a decisions file, or an empty one) is ever replaced (`check_outputs`).
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shotlab.core.clock import utc_now
from shotlab.core.errors import InputError
from shotlab.core.files import atomic_path, writing_lock
from shotlab.runtime.kinds import load_inputs
from shotlab.runtime.runners import BATCH_SIZE

REVIEW_QUEUE_FILE = "review_queue.jsonl"


@dataclass
class Prediction:
    decisions: list[dict] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    inputs: list[np.ndarray] = field(default_factory=list)  # per decision (for --explain)


def collect_paths(paths, skipped: list | None = None) -> list[Path]:
    """Files as given, folders searched recursively for image and clip extensions (the image
    and clip kinds' suffixes), hidden ones too, links to folders followed as `curate import`
    follows them; sorted, one per file read (a second path to the same file, by a symlink or
    `..`, is dropped: decisions name the file itself). A broken symlink, a pipe or a device is
    kept, so that reading it names it among the bad files. The folders not walked (a loop of
    links, one that cannot be listed; not a second link to a folder walked, which is harmless)
    are added to `skipped` as (path, why)."""
    from shotlab.curate.readers.folder import files_under
    from shotlab.runtime.kinds import KINDS

    suffixes = KINDS["image"].extensions | KINDS["clip"].extensions
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            files, passed = files_under(path, hidden=True, aliases=False)
            found += sorted(p for p in files if p.suffix.lower() in suffixes)
            if skipped is not None:
                skipped += [(p.path, p.reason) for p in passed]
        elif path.exists() or path.is_symlink():  # a broken link: named among the bad files
            found.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def decision_records(bundle, probs: np.ndarray, sha256s, *, runtime: str,
                     paths=None, thresholds=None, pooled: bool = False) -> list[dict]:
    """One decision record per row of `probs`: the record `predict` writes and the service
    stores and returns (shotlab.serve), so both decide the same bytes the same way.
    `paths` are the files read (None for bytes that came without one, e.g. over HTTP).
    A clip's record (export/predict_clips.py) passes its pooled scores (`pooled`) and the
    bundle's clip thresholds where it has them."""
    from shotlab.runtime.decide import decide

    rows = decide(probs, bundle.classes, task=bundle.task, pooled=pooled,
                  thresholds=bundle.thresholds if thresholds is None else thresholds)
    now = utc_now()
    paths = paths if paths is not None else [None] * len(rows)
    return [{"decision_id": uuid.uuid4().hex,
             "path": str(Path(path).resolve()) if path is not None else None,
             "sha256": sha256, **row, "bundle": os.path.abspath(bundle.origin),
             "model_sha256": bundle.model_sha256(runtime),
             "policy_version": bundle.policy.get("version"), "runtime": runtime, "time": now}
            for path, sha256, row in zip(paths, sha256s, rows)]


def decisions_for(bundle, paths, probs: np.ndarray, sha256s, *, runtime: str) -> list[dict]:
    """The records of the images at `paths`; `sha256s` of the bytes that were decoded (the
    loader's, `Inputs.sha256s`: hashing the file again could hash a file replaced since)."""
    return decision_records(bundle, probs, sha256s, runtime=runtime, paths=paths)


def predict_paths(bundle, paths, *, batch_size: int = BATCH_SIZE, runtime: str = "onnx",
                  progress=None, keep_inputs: bool = False,
                  max_pixels: int | None = None, runner=None) -> Prediction:
    """Decisions for `paths` in batches; unreadable images are listed in `.bad`, not raised.
    `runner`: an open runner of `runtime` to reuse (else one is opened here)."""
    from shotlab.core.progress import progress_bar
    from shotlab.runtime.runners import make_runner

    runner = runner or make_runner(bundle, runtime)
    preprocessing, result = bundle.preprocessing, Prediction()
    with progress_bar(total=len(paths), enabled=progress, unit="img", desc="Predicting") as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            inputs = load_inputs(chunk, preprocessing, progress=False, max_pixels=max_pixels)
            result.bad += inputs.bad
            if inputs.kept:
                probs = runner(inputs.arrays)
                result.decisions += decisions_for(bundle, [chunk[i] for i in inputs.kept],
                                                  probs, inputs.sha256s, runtime=runtime)
                if keep_inputs:
                    result.inputs += list(inputs.arrays)
            bar.update(len(chunk))
    return result


def needs_attention(decision: dict) -> bool:
    return bool(decision["needs_review"] or decision["flagged"])


def write_jsonl(path: Path, rows) -> Path:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def output_paths(out: Path) -> tuple[Path, Path]:
    return out, out.parent / REVIEW_QUEUE_FILE


def check_outputs(out: Path, bundle=None) -> None:
    """Refuse to write where predict would replace a file it did not write (a user's notes, an
    input image, the explanation store): the decisions file and the review queue beside it may
    replace only an empty file or one whose first line is a decision. Nothing is written inside
    a `bundle` folder: `export --force` would then refuse to replace it, and a bundle zipped
    for shipping would carry the decisions (every file's path) with it."""
    from shotlab.core.files import check_own_output

    decisions, queue = output_paths(out)
    if bundle is not None and Path(bundle).is_dir() and \
            decisions.resolve().is_relative_to(Path(bundle).resolve()):
        raise InputError(f"--out {out}: inside the bundle {bundle}; a bundle holds only what "
                         f"export wrote: write the decisions outside it")
    if decisions.name == REVIEW_QUEUE_FILE:
        raise InputError(f"--out {out}: the review queue is written beside the decisions under "
                         f"that name; give the decisions file another name")
    for path in (decisions, queue):
        check_own_output(path, "--out", is_decisions_file,
                         f"{path} exists and is not a decisions file that shotlab predict "
                         f"wrote; predict replaces only its own output: move it away or "
                         f"choose another --out")
    if queue_of_another_run(decisions, queue):
        raise InputError(f"{queue} holds the review queue of another decisions file than "
                         f"{decisions}; replacing it would lose that queue: give --out a "
                         f"folder of its own, or move the queue away")


EMPTY = object()  # what `first_record` gives for an empty file


def first_record(path: Path):
    """The JSON value on the first line of a file, EMPTY for an empty file, None when the line
    is unreadable or not JSON."""
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 20).strip()
        return json.loads(first) if first else EMPTY
    except (OSError, ValueError):
        return None


def first_decision_id(path: Path) -> str | None:
    """The decision_id on the first line of a decisions file (None: empty or unreadable)."""
    value = first_record(path)
    return value.get("decision_id") if isinstance(value, dict) else None


def queue_of_another_run(decisions: Path, queue: Path) -> bool:
    """Whether the review queue at `queue` holds decisions that are not in `decisions`: the
    queue of a run written to another --out in the same folder, which replacing would lose."""
    queued = first_decision_id(queue) if queue.is_file() else None
    if queued is None:
        return False
    if not decisions.is_file():
        return True
    with open(decisions, "rb") as f:
        return not any(str(queued).encode() in line for line in f)  # a uuid4: unique


def is_decisions_file(path: Path) -> bool:
    """A regular file, empty or whose first line is a JSON object with a decision_id (never a
    device, a pipe or a folder: reading a pipe would wait forever, and a device is no file)."""
    if not path.is_file():
        return False
    value = first_record(path)
    return value is EMPTY or isinstance(value, dict) and "decision_id" in value


@contextmanager
def writing_outputs(out: Path):
    """The decisions file and the review queue beside it locked (`writing_lock`) for a whole
    run: locked only while written, two runs into one --out both succeeded, and the decisions
    of the one that finished first were lost. A second run is refused at once (exit 2)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for path in output_paths(out):
            stack.enter_context(writing_lock(path))
        yield


@contextmanager
def staged_decisions(out: Path, decisions: list[dict], *, locked: bool = False):
    """Write the decisions and the review queue beside them to temporary names; yield their
    final paths. They replace the old files together when the block finishes; if it raises,
    the old files are left as they were. `locked`: the caller holds `writing_outputs(out)`."""
    paths = output_paths(out)
    queue = [d for d in decisions if needs_attention(d)]
    with ExitStack() as stack:
        partials = [stack.enter_context(atomic_path(path, lock=not locked)) for path in paths]
        for partial, rows in zip(partials, (decisions, queue)):
            write_jsonl(partial, rows)
        yield paths


def write_decisions(out: Path, decisions: list[dict]) -> tuple[Path, Path]:
    """The decisions file (replaced) and `review_queue.jsonl` beside it."""
    with staged_decisions(out, decisions) as paths:
        return paths


def split_kinds(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(images, clips) among `files`: clips by suffix, and animated images (a GIF or PNG of
    several frames: every frame is scored, as a clip's are, not the first alone)."""
    from shotlab.core.clips import is_clip_path
    from shotlab.core.images import is_animated

    clip = [is_clip_path(f) or is_animated(f) for f in files]
    return [f for f, c in zip(files, clip) if not c], [f for f, c in zip(files, clip) if c]


def summary(prediction: Prediction, classes) -> dict:
    counts = {c: 0 for c in classes}
    for decision in prediction.decisions:
        for label in decision["labels"]:
            counts[label] += 1
    clips = sum(d.get("kind") == "clip" for d in prediction.decisions)
    texts = sum(d.get("kind") == "text" for d in prediction.decisions)
    posts = sum(d.get("kind") == "post" for d in prediction.decisions)
    return {"images": len(prediction.decisions) - clips - texts - posts, "clips": clips,
            "texts": texts, **({"posts": posts} if posts else {}),
            "bad": len(prediction.bad),
            "flagged": sum(bool(d["flagged"]) for d in prediction.decisions),
            "needs_review": sum(d["needs_review"] for d in prediction.decisions),
            "labels": counts}
