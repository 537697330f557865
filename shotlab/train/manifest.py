"""The frozen manifest: the dataset version a run trains on.

Every sample's id, path, sha256, labels and split (and the group it belongs with, where it has
one), read from the FiftyOne store at one moment. Its hash names the dataset version in every run
and bundle. Unlabeled samples and samples an annotator tagged `exclude` are left out (and
counted). Labelled samples without a split stay in the entries (split None, as the store holds
them) but no run reads them: they are counted as `no_split` (`unsplit_note` says so). A `--pseudo-label` run's manifest adds unlabeled samples to its train split with the
model's label, each marked by `pseudo` (its calibrated score; train/pseudo.py): a person's label
has `pseudo` None.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.core.files import write_json_atomic

EXCLUDE_TAG = "exclude"
# left_out's count of labelled samples in no split: a run reads train, val and test only, and a
# sample labelled after `curate split` (a `relabel:` tag on an unlabeled one) has none.
NO_SPLIT = "no_split"


@dataclass(frozen=True)
class Entry:
    sample_id: str
    filepath: str
    sha256: str
    labels: tuple[str, ...]
    split: str | None
    pseudo: float | None = None  # a pseudo-label's calibrated score; None: a person's label
    # The samples it belongs with (core/groups.py: duplicates, byte copies, a clip, a comment
    # thread), named by the group's first sample id; None for a sample alone.
    group: str | None = None


def entry_dict(entry: Entry) -> dict:
    """The entry as stored; `pseudo` and `group` only where set, so manifests without them keep
    the hashes they had before either existed."""
    data = asdict(entry)
    for key in ("pseudo", "group"):
        if data[key] is None:
            del data[key]
    return data


@dataclass(frozen=True)
class Manifest:
    dataset: str
    task: str
    classes: tuple[str, ...]
    entries: tuple[Entry, ...]
    left_out: dict  # reason -> count
    kind: str = "image"  # the samples' input kind: "text" where each file holds a comment
    # files whose bytes changed since import, found by `freeze` (not saved: what it trains on is
    # in the entries' sha256s); `changed_note` says so
    changed: tuple[str, ...] = field(default=(), compare=False)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    def canonical(self) -> str:
        body = {"task": self.task, "classes": self.classes,
                "entries": [entry_dict(e) for e in sorted(self.entries, key=lambda e: e.sample_id)]}
        if self.kind != "image":  # image manifests keep the hashes they had before kinds
            body["kind"] = self.kind
        return json.dumps(body, sort_keys=True)

    def split(self, name: str) -> list[Entry]:
        return [e for e in self.entries if e.split == name]

    def groups(self, entries: list[Entry]) -> np.ndarray | None:
        """One group number per entry for grouped cross-validation (a sample alone is a group of
        its own); None when no two of `entries` belong together."""
        keys = [e.group or f"alone:{i}" for i, e in enumerate(entries)]
        numbers = {key: n for n, key in enumerate(dict.fromkeys(keys))}
        return np.array([numbers[k] for k in keys]) if len(numbers) < len(keys) else None

    def targets(self, entries: list[Entry]) -> np.ndarray:
        """Class indices (multiclass) or a 0/1 matrix (multilabel) for `entries`."""
        index = {c: i for i, c in enumerate(self.classes)}
        if self.task == "multilabel":
            y = np.zeros((len(entries), len(self.classes)), dtype=np.int64)
            for row, entry in enumerate(entries):
                y[row, [index[c] for c in entry.labels]] = 1
            return y
        return np.array([index[e.labels[0]] for e in entries], dtype=np.int64)

    def save(self, path: Path) -> None:
        data = {"dataset": self.dataset, "task": self.task, "classes": list(self.classes),
                "kind": self.kind, "hash": self.hash, "left_out": self.left_out,
                "entries": [entry_dict(e) for e in self.entries]}
        write_json_atomic(path, data)

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        try:
            data = json.loads(Path(path).read_text())
            entries = tuple(Entry(**{**e, "labels": tuple(e["labels"])}) for e in data["entries"])
            manifest = cls(data["dataset"], data["task"], tuple(data["classes"]), entries,
                           data.get("left_out", {}), data.get("kind", "image"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a readable shotlab manifest ({type(exc).__name__}: "
                             f"{exc}); start a new run with `shotlab train NAME`") from None
        if data.get("hash") and data["hash"] != manifest.hash:
            raise InputError(f"{path}: manifest hash does not match its entries (edited by hand?)")
        return manifest


def freeze(name: str) -> Manifest:
    """The manifest of dataset `name` as it is now in the store, files edited since import
    hashed again first (core/changed_files.py): an entry's sha256 is the bytes trained on."""
    from shotlab.core.changed_files import refresh_changed
    from shotlab.core.groups import dataset_groups, shared_keys

    dataset = store.load(name)
    changed = refresh_changed(dataset)
    task = store.task_of(dataset)
    entries, groups, left_out = [], [], {"unlabeled": 0, "excluded": 0, NO_SPLIT: 0}
    for (sample_id, filepath, digest, labels, split, tags), group in zip(sample_rows(dataset),
                                                                         dataset_groups(dataset)):
        if EXCLUDE_TAG in (tags or []):
            left_out["excluded"] += 1
        elif not labels and task == "multiclass":
            left_out["unlabeled"] += 1
        else:
            entries.append(Entry(sample_id, filepath, digest, tuple(labels), split))
            groups.append(group)
            left_out[NO_SPLIT] += split is None
    # a group key only where another entry shares the group (a copy an annotator excluded, the
    # usual fix for a duplicate, leaves its twin alone)
    keys = shared_keys(groups, [e.sample_id for e in entries])
    entries = [replace(e, group=key) for e, key in zip(entries, keys)]
    classes = tuple(sorted({label for e in entries for label in e.labels}))
    return Manifest(name, task, classes, tuple(entries), left_out, kind_of(dataset),
                    tuple(changed))


def unsplit_note(manifest: Manifest) -> str | None:
    """One line when labelled samples have no split: a run trains and scores none of them, which
    would otherwise pass unseen (`curate split` keeps existing splits and assigns these)."""
    count = manifest.left_out.get(NO_SPLIT, 0)
    if not count:
        return None
    from shotlab.core.output import plural

    return (f"{plural(count, 'labelled sample')} {'has' if count == 1 else 'have'} no split and "
            f"{'was' if count == 1 else 'were'} not used; run `shotlab curate split "
            f"{manifest.dataset}` (it keeps existing splits and assigns the rest)")


def changed_note(manifest: Manifest) -> str | None:
    """One line when files changed since import: the run learnt them as they are now, under
    the labels given to what they held then (a picture replaced by another keeps its label)."""
    if not manifest.changed:
        return None
    from shotlab.core.changed_files import changed_summary

    count = len(manifest.changed)
    return (f"{changed_summary(list(manifest.changed))}: "
            f"trained on as {'it is' if count == 1 else 'they are'} now, under the label given "
            f"before; if a picture was replaced by another, check its label in the App "
            f"(`shotlab curate app {manifest.dataset}`) and train again")


def jpeg_frames_note(manifest: Manifest) -> str | None:
    """One line when a clip run's frames are JPEG (an import before 2026-12-02)."""
    if not any(e.filepath.endswith(".jpg") for e in manifest.entries) or \
            not manifest.dataset.endswith(store.FRAMES_SUFFIX):
        return None
    return store.jpeg_frames_note(manifest.dataset)


def sample_rows(dataset):
    """(id, filepath, sha256, labels, split, tags) of every sample, in dataset order."""
    return zip(dataset.values("id"), dataset.values("filepath"), dataset.values("sha256"),
               store.sample_labels(dataset), dataset.values("split"), dataset.values("tags"))


def check_files(manifest: Manifest) -> None:
    """Refuse, before a run starts, a manifest whose files are gone since import (a linear run
    would train from cached embeddings and fail only at evaluation, its folder left behind).
    A comment's file is the workspace's copy of its text, which a text run reads."""
    from shotlab.core.output import plural

    gone = [e.filepath for e in manifest.entries if not os.path.exists(e.filepath)]
    if gone:
        many = len(gone) > 1
        raise InputError(f"dataset '{manifest.dataset}': {plural(len(gone), 'file')} "
                         f"{'are' if many else 'is'} gone since import (first: {gone[0]}); "
                         f"restore {'them' if many else 'it'}, or tag the "
                         f"{'samples' if many else 'sample'} '{EXCLUDE_TAG}' in the App and run "
                         f"`shotlab curate apply`")


def kind_of(dataset) -> str:
    """A dataset's input kind: `info["kind"]` ("text" for comments); images have no key."""
    return dataset.info.get("kind", "image")
