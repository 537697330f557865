"""The FiftyOne store: named, persistent datasets, one sample per image file.

Each sample holds `filepath` (the user's file, never moved or modified), `ground_truth`
(Classification for multiclass tasks, Classifications for multilabel ones, unset when
unlabeled), `split` (train/val/test, or None when unassigned), `sha256`, `metadata`
(width, height, mime type, channels, bytes) and where it came from (`import_format`,
`import_path`, `imported_at`). The task is kept in `dataset.info["shotlab"]`.

A text dataset (curate/text_import.py) holds one sample per comment: `filepath` is the comment's
content-addressed .txt file in the workspace, `text` the comment itself, `metadata` FiftyOne's
plain Metadata; `dataset.info["kind"]` is "text" (image datasets have no such key).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections import Counter
from typing import TYPE_CHECKING

from shotlab.core import database, workspace
from shotlab.core.errors import DatasetNotFoundError, InputError, ShotlabError
from shotlab.core.names import check_dataset_name

if TYPE_CHECKING:
    import fiftyone as fo

SPLITS = ("train", "val", "test")
UNASSIGNED = "unassigned"
UNLABELED = "(unlabeled)"  # class_counts' row for samples without a label
INFO_KEY = "shotlab"
KIND_KEY = "kind"  # dataset.info["kind"]: "text" for a text dataset, absent for images
TEXT = "text"
POST = "post"  # an image and its caption (curate/post_import.py)
_connected_uri: str | None = None  # set once this process has chosen its database


def fiftyone():
    """The fiftyone module, connected to the active workspace's database.

    FiftyOne reads its configuration when first imported, so the workspace's server is started
    (or found) and its URI set before that.
    """
    global _connected_uri
    active = workspace.current()
    first = _connected_uri is None
    if first:
        if "fiftyone" in sys.modules:
            raise ShotlabError("fiftyone was imported before shotlab chose the workspace's "
                               "database; import it through shotlab.core.store.fiftyone()")
        _connected_uri = database.with_timeouts(active.database_uri or database.connect(active))
        os.environ["FIFTYONE_DATABASE_URI"] = _connected_uri
    import fiftyone as fo

    if first:
        logs_to_stderr("fiftyone", "eta")
    return fo


def logs_to_stderr(*names: str) -> None:
    """Move these loggers' console output to stderr: stdout is for shotlab's own output (--json)."""
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                handler.setStream(sys.stderr)


def list_datasets() -> list[str]:
    return sorted(fiftyone().list_datasets())


def load(name: str, *, half_made_ok: bool = False) -> "fo.Dataset":
    """Dataset `name`; InputError if there is none, or if it is half-made (unless `half_made_ok`:
    `curate delete` removes one)."""
    dataset = find(name)
    if dataset is None:
        raise DatasetNotFoundError(name, list_datasets())
    if is_half_made(dataset) and not half_made_ok:
        raise InputError(f"dataset '{name}' was left half-created by an interrupted import; "
                         f"finish it by running the import again (`shotlab curate import PATH "
                         f"--name {name}`), or remove it with `shotlab curate delete {name} --yes`")
    return dataset


def is_half_made(dataset: "fo.Dataset") -> bool:
    """Created by a process that died before `create` finished: no shotlab info, no samples.

    (A dataset that FiftyOne itself made, with samples but without shotlab's info, is used as a
    multiclass dataset, as before.)"""
    return INFO_KEY not in dataset.info and len(dataset) == 0


def task_of(dataset: "fo.Dataset") -> str:
    return dataset.info.get(INFO_KEY, {}).get("task", "multiclass")


def find(name: str) -> "fo.Dataset | None":
    check_dataset_name(name)  # every load goes through here: a bad name never reaches a path
    fo = fiftyone()
    return fo.load_dataset(name) if fo.dataset_exists(name) else None


def require_task(dataset: "fo.Dataset", task: str) -> None:
    if task_of(dataset) != task:
        flag = "without --multilabel" if task_of(dataset) == "multiclass" else "with --multilabel"
        raise InputError(f"dataset '{dataset.name}' is {task_of(dataset)}; cannot add {task} "
                         f"labels (import {flag}, or choose another --name)")


def create(name: str, task: str, *, media: str = "image") -> "fo.Dataset":
    """A new persistent dataset for `task` with shotlab's fields declared; `media` "video"
    for a clip dataset (its samples' metadata is FiftyOne's VideoMetadata), "text" for a text
    dataset (plain Metadata, and `dataset.info["kind"] = "text"`).

    If another process created `name` meanwhile (two imports racing), that dataset is returned,
    completed if it is still half-made."""
    check_dataset_name(name)
    fo = fiftyone()
    try:
        dataset = fo.Dataset(name, persistent=True)
    except Exception:  # "name not available" or a unique-index error from the race's loser
        if not fo.dataset_exists(name):
            raise
        dataset = fo.load_dataset(name)
        if not is_half_made(dataset):
            require_task(dataset, task)
            return dataset
    complete(dataset, task, media=media)
    return dataset


def complete(dataset: "fo.Dataset", task: str, *, media: str = "image") -> None:
    """Declare shotlab's fields, then record the task: the info is written last, so a dataset
    with it is complete (see `is_half_made`). Safe to repeat, and to run in two processes."""
    set_media_type(dataset, media)
    declare_fields(dataset, task, media=media)
    if media == TEXT:
        dataset.info[KIND_KEY] = TEXT
    dataset.info[INFO_KEY] = {"task": task, "schema": 1, **({"media": media}
                                                            if media != "image" else {})}
    dataset.save()


def set_info(dataset: "fo.Dataset", key: str, value, *, unless_set: bool = False) -> bool:
    """Write `dataset.info["shotlab"][key]` (a dotted `key` names a nested one; `value` None
    removes it) in one database update that leaves every other key as the database holds it,
    then reload `dataset`. A whole-info save from a copy loaded earlier dropped what other
    processes wrote meanwhile (a `curate check` running for minutes dropped a policy set while it
    ran). `unless_set`: write only where the key is absent, and say whether it was (a claim)."""
    fo = fiftyone()
    path = f"info.{INFO_KEY}.{key}"
    query = {"name": dataset.name, **({path: {"$exists": False}} if unless_set else {})}
    update = {"$unset": {path: ""}} if value is None else {"$set": {path: value}}
    written = fo.core.odm.get_db_conn().datasets.update_one(query, update).matched_count == 1
    dataset.reload()
    return written


def media_of(dataset: "fo.Dataset") -> str:
    """"image", or "video" for a clip dataset (`curate import` of clips)."""
    return dataset.info.get(INFO_KEY, {}).get("media", "image")


def kind_of(dataset: "fo.Dataset") -> str:
    """The input kind of a dataset's samples: "text" for comments, "post" for an image and its
    caption, else "image" (clip datasets are told apart by `media_of`)."""
    return dataset.info.get(KIND_KEY, "image")


FRAMES_SUFFIX = "-frames"  # a clip dataset NAME's frames dataset: NAME-frames


def frames_dataset_of(dataset: "fo.Dataset") -> str | None:
    """The frames dataset a clip dataset's import made (curate/clip_import.py), else None."""
    return dataset.info.get(INFO_KEY, {}).get("frames_dataset")


def jpeg_frames_note(frames_name: str) -> str:
    """What a frames dataset with JPEG frames (a clip import before 2026-12-02) costs, and the
    fix: `curate import` and `train` say it."""
    return (f"'{frames_name}' holds JPEG frames (imported before 2026-12-02; clips added to it "
            f"get JPEG frames too, so it holds one kind): a model trained on them has its clip "
            f"thresholds and report measured on JPEG pixels, while predict and serve score "
            f"frames as decoded; import the clips again under a new --name for lossless frames")


def clip_dataset_of(frames: "fo.Dataset") -> str | None:
    """The clip dataset a frames dataset belongs to (curate/clip_import.py), else None."""
    return frames.info.get(INFO_KEY, {}).get("clip_dataset")


def linked_frames(dataset: "fo.Dataset") -> "fo.Dataset | None":
    """The frames dataset of a clip dataset, if it exists and names this one as its clip
    dataset (a dataset that does not link back belongs to something else)."""
    name = frames_dataset_of(dataset)
    frames = find(name) if name else None
    if frames is None or clip_dataset_of(frames) != dataset.name:
        return None
    return frames


# What FiftyOne itself infers from the files of each kind (a comment's .txt is "unknown").
MEDIA_TYPES = {"image": "image", "video": "video", TEXT: "unknown"}


def set_media_type(dataset: "fo.Dataset", media: str) -> None:
    """Set the media type while the dataset is empty. Left unset, FiftyOne sets it on the first
    `add_samples` from the value it cached when it loaded the dataset, which fails ("cannot set
    media type of a non-empty dataset") when a concurrent import added its samples first."""
    if dataset.media_type is not None:
        return
    try:
        dataset.media_type = MEDIA_TYPES.get(media, media)
    except ValueError:  # another process added samples, and with them the media type, meanwhile
        dataset.reload()


def declare_fields(dataset: "fo.Dataset", task: str, *, media: str = "image") -> None:
    """Declare the sample fields up front, so queries work before any value is set."""
    fo = fiftyone()
    kind = fo.Classifications if task == "multilabel" else fo.Classification
    dataset.add_sample_field("ground_truth", fo.EmbeddedDocumentField, embedded_doc_type=kind)
    for name in ("split", "sha256", "import_format", "import_path"):
        dataset.add_sample_field(name, fo.StringField)
    dataset.add_sample_field("imported_at", fo.DateTimeField)
    # The label shotlab last saw: `curate apply` compares it with ground_truth to find App edits.
    dataset.add_sample_field("applied_label", fo.ListField, subfield=fo.StringField)
    metadata = {"video": fo.VideoMetadata, TEXT: fo.Metadata}.get(media, fo.ImageMetadata)
    dataset.add_sample_field("metadata", fo.EmbeddedDocumentField, embedded_doc_type=metadata)
    dataset.create_index("sha256")
    unique_paths(dataset)


def unique_paths(dataset: "fo.Dataset") -> bool:
    """Make the resolved file path a sample's identity in the database itself (a unique index),
    so two concurrent imports cannot add the same file twice. False if the dataset already holds
    repeated paths (left by an older shotlab), which block the index."""
    try:
        with quieted("fiftyone.core.collections"):  # "Converting existing index..."
            dataset.create_index("filepath", unique=True)
    except Exception as exc:  # pymongo's DuplicateKeyError / OperationFailure code 11000
        if "E11000" not in str(exc) and getattr(exc, "code", None) != 11000:
            raise
        return False
    return True


@contextlib.contextmanager
def quieted(logger: str):
    """FiftyOne's INFO lines of `logger` held back inside the block ("Importing samples...",
    "Converting existing index..."): shotlab's own output says what happened."""
    chatty = logging.getLogger(logger)
    level = chatty.level
    chatty.setLevel(logging.WARNING)
    try:
        yield
    finally:
        chatty.setLevel(level)


def delete(name: str) -> None:
    load(name, half_made_ok=True).delete()


def make_label(labels: tuple[str, ...], task: str):
    """The `ground_truth` value for a tuple of class names (None when unlabeled)."""
    fo = fiftyone()
    if task == "multilabel":
        return fo.Classifications(classifications=[fo.Classification(label=l) for l in labels])
    if not labels:
        return None
    (label,) = labels
    return fo.Classification(label=label)


def label_path(task: str) -> str:
    """The field path of the class names inside `ground_truth`."""
    return "ground_truth.classifications.label" if task == "multilabel" else "ground_truth.label"


def sample_labels(dataset: "fo.Dataset") -> list[tuple[str, ...]]:
    """Every sample's class names, in dataset order; () for unlabeled samples."""
    values = dataset.values(label_path(task_of(dataset)))
    if task_of(dataset) == "multilabel":
        return [tuple(v or ()) for v in values]
    return [(v,) if v else () for v in values]


def class_names(dataset: "fo.Dataset") -> list[str]:
    return sorted({label for labels in sample_labels(dataset) for label in labels})


def split_names(dataset: "fo.Dataset") -> list[str]:
    return [s or UNASSIGNED for s in dataset.values("split")]


def class_counts(dataset: "fo.Dataset") -> dict[str, Counter]:
    """For each class, how many samples of it each split holds."""
    counts: dict[str, Counter] = {}
    for labels, split in zip(sample_labels(dataset), split_names(dataset)):
        for label in labels or (UNLABELED,):
            counts.setdefault(label, Counter())[split] += 1
    return dict(sorted(counts.items()))
