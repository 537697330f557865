"""The review loop: read annotators' decisions back from the store, apply them, log every change.

Annotators work in the FiftyOne App. They edit `ground_truth`, or tag a sample:

- `relabel:<class>` sets the label (multilabel: `relabel:a,b` sets exactly those classes,
  `relabel:` clears them). The tag is removed once applied; the change log keeps it. A class no
  sample had at the last apply is refused (a typo would otherwise create a class) unless it is
  named in `allow_new`; an App edit to such a class is applied (the App wrote it) with a note.
- `exclude` marks the sample `excluded=True`. The sample and the tag stay: nothing is ever
  deleted, and the manifest leaves tagged samples out of training. Removing the tag includes it
  again (`excluded=False`, logged).
- `keep` marks a flagged sample as reviewed and right: `reviewed_keep=True` (the tag stays;
  removing it clears the field), so `curate check` can leave such samples unflagged.

On a clip dataset, a clip's new label and its exclusion reach its frames dataset too (train
reads the frames): the frames take the clip's label, an excluded clip's frames get the `exclude`
tag (`excluded_with_clip=True`), and including the clip again removes it from those frames only.

Direct edits are found by comparing `ground_truth` with `applied_label`, the label shotlab last
knew (a list of class names). A sample without it (imported before the review loop existed, or
added since the last apply) takes its current label as the baseline: edits made before the first
apply cannot be told from the imported label, and are not logged.

Every change goes to the dataset's change log (`ChangeLog`), kept in FiftyOne's execution store
scoped to the dataset: one record per apply or split run, deleted with the dataset.
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from shotlab.core import store

RELABEL_PREFIX = "relabel:"
EXCLUDE_TAG = "exclude"  # the tag shotlab/train/manifest.py leaves out
KEEP_TAG = "keep"
EXCLUDED_FIELD = "excluded"
KEEP_FIELD = "reviewed_keep"
SNAPSHOT_FIELD = "applied_label"
WITH_CLIP_FIELD = "excluded_with_clip"  # on frames the `exclude` tag reached through their clip
LOG_STORE = "shotlab.changes"


def now(timespec: str = "seconds") -> str:
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


def whoami() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no $USER and no passwd entry (some containers)
        return None


class ChangeLog:
    """The change log of one dataset: records of runs, each a list of change entries.

    Stored in FiftyOne's execution store scoped to the dataset (not in any sample), so it
    survives edits, re-imports and App sessions, and goes when the dataset is deleted. Keys sort
    by time; a record is written once and never rewritten, so two runs cannot overwrite each
    other's entries.
    """

    def __init__(self, dataset):
        store.fiftyone()  # connects to the workspace's database before fiftyone is imported
        from fiftyone.operators.store import ExecutionStore

        self._store = ExecutionStore.create(LOG_STORE, dataset_id=dataset._doc.id)

    def append(self, entries: list[dict]) -> None:
        if entries:
            # Microseconds order runs made in the same second; the suffix keeps two hosts apart.
            self._store.set(f"{now('microseconds')}/{uuid.uuid4().hex[:8]}", entries)

    def entries(self) -> list[dict]:
        """Every entry, oldest first."""
        return [e for key in sorted(self._store.list_keys()) for e in self._store.get(key) or []]


@dataclass
class Problem:
    sample_id: str
    filepath: str
    message: str


@dataclass
class ApplyReport:
    name: str
    dry_run: bool
    changes: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    tags_removed: int = 0
    baselines: int = 0  # samples whose applied_label was set for the first time
    notes: list[str] = field(default_factory=list)  # applied, but worth a look
    frames_dataset: str | None = None  # a clip dataset's frames dataset, which train reads
    frames_changed: int = 0  # its frames that followed their clip's label or exclusion

    def to_dict(self) -> dict:
        return {"name": self.name, "dry_run": self.dry_run, "changes": self.changes,
                "problems": [asdict(p) for p in self.problems],
                "tags_removed": self.tags_removed, "baselines": self.baselines,
                "notes": self.notes, "frames_dataset": self.frames_dataset,
                "frames_changed": self.frames_changed}


@dataclass
class SampleState:
    """One sample as the store holds it, and as apply leaves it."""

    sample_id: str
    filepath: str
    label: tuple[str, ...]
    snapshot: tuple[str, ...] | None
    tags: list[str]
    excluded: bool
    keep: bool


def parse_relabel(tag: str, task: str) -> tuple[str, ...] | str:
    """The classes a `relabel:` tag names, or a message saying why it cannot be applied."""
    names = tuple(dict.fromkeys(n.strip() for n in tag[len(RELABEL_PREFIX):].split(",")
                                if n.strip()))
    if task == "multiclass" and len(names) != 1:
        return (f"tag '{tag}' names {len(names)} classes; a multiclass sample takes exactly one "
                f"(e.g. relabel:cat)")
    return tuple(sorted(names)) if task == "multilabel" else names


def relabel(state: SampleState, task: str, classes: set[str]) -> tuple[tuple | None, list[str]]:
    """The label the sample's `relabel:` tags ask for (None: no tag), and why it cannot be set."""
    relabels = [t for t in state.tags if t.startswith(RELABEL_PREFIX)]
    wanted = [parse_relabel(t, task) for t in relabels]
    problems = [w for w in wanted if isinstance(w, str)]
    unknown = sorted({c for w in wanted if not isinstance(w, str) for c in w} - classes)
    if unknown:
        problems.append(f"unknown class{'es' * (len(unknown) > 1)} {', '.join(unknown)} in "
                        f"{', '.join(relabels)}; classes: {', '.join(sorted(classes)) or 'none yet'}"
                        f" (fix the tag, or allow a new class with --new-class)")
    if len(set(wanted)) > 1 and not problems:
        problems.append(f"conflicting tags {', '.join(relabels)}; keep one")
    return (None if problems or not wanted else wanted[0]), problems


def flag(name: str, before: bool, after: bool, tag: str) -> list[tuple]:
    return [] if before == after else [(name, before, after, f"tag {tag}" + " removed" * before)]


def decide(state: SampleState, task: str, classes: set[str]) -> tuple[SampleState, list, list]:
    """What apply does to one sample: (new state, change entries, problem messages). Pure.

    `classes`: the classes a `relabel:` tag may name."""
    changes = []
    base = state.snapshot if state.snapshot is not None else state.label
    if state.label != base:
        changes.append(("label", list(base), list(state.label), "edit"))
    label, tags = state.label, list(state.tags)
    wanted, problems = relabel(state, task, classes)
    if wanted is not None:
        tag = next(t for t in tags if t.startswith(RELABEL_PREFIX))
        if wanted != label:
            changes.append(("label", list(label), list(wanted), f"tag {tag}"))
            label = wanted
        tags = [t for t in tags if not t.startswith(RELABEL_PREFIX)]
    excluded, keep = EXCLUDE_TAG in tags, KEEP_TAG in tags
    if excluded and keep:
        problems.append(f"tagged both '{EXCLUDE_TAG}' and '{KEEP_TAG}'; remove one")
        excluded, keep = state.excluded, state.keep
    changes += flag(EXCLUDED_FIELD, state.excluded, excluded, EXCLUDE_TAG)
    changes += flag(KEEP_FIELD, state.keep, keep, KEEP_TAG)
    after = SampleState(state.sample_id, state.filepath, label, label, tags, excluded, keep)
    return after, changes, problems


def known_classes(states: list[SampleState]) -> set[str]:
    """The classes shotlab knew at the last apply (current labels where there is no snapshot)."""
    return {c for s in states for c in (s.snapshot if s.snapshot is not None else s.label)}


def new_class_notes(changes: list[dict], known: set[str]) -> list[str]:
    """Edits in the App that brought in a class no sample had: applied, but maybe typos."""
    return [f"{c['filepath']}: edited to new class {', '.join(sorted(set(c['new']) - known))}; "
            f"if that is a typo, fix the label in the App and apply again"
            for c in changes if c["source"] == "edit" and set(c["new"]) - known]


def unsplit_notes(dataset, updates: dict[str, tuple[SampleState, SampleState]]) -> list[str]:
    """A note when samples labelled here (unlabeled before) have no split: train reads train,
    val and test only, so it would leave them out; `curate split` keeps existing splits."""
    splits = dict(zip(dataset.values("id"), dataset.values("split")))
    labelled = [after.filepath for sample_id, (before, after) in updates.items()
                if after.label and not before.label and splits.get(sample_id) is None
                and not after.excluded]
    if not labelled:
        return []
    many = len(labelled) > 1
    return [f"{len(labelled)} sample{'s' * many} labelled here {'have' if many else 'has'} no "
            f"split (first: {labelled[0]}), so train would leave {'them' if many else 'it'} "
            f"out; run `shotlab curate split {dataset.name}` (it keeps existing splits and "
            f"assigns the rest)"]


def read_states(dataset) -> list[SampleState]:
    task = store.task_of(dataset)
    schema = dataset.get_field_schema()

    def column(name: str, default):
        return dataset.values(name) if name in schema else [default] * len(dataset)

    snapshots = [tuple(s) if s is not None else None for s in column(SNAPSHOT_FIELD, None)]
    rows = zip(dataset.values("id"), dataset.values("filepath"), store.sample_labels(dataset),
               snapshots, dataset.values("tags"), column(EXCLUDED_FIELD, None),
               column(KEEP_FIELD, None))
    return [SampleState(i, f, tuple(sorted(l)) if task == "multilabel" else l, s, list(t or []),
                        bool(e), bool(k)) for i, f, l, s, t, e, k in rows]


def declare_review_fields(dataset) -> None:
    fo = store.fiftyone()
    schema = dataset.get_field_schema()
    for name, kind, extra in ((EXCLUDED_FIELD, fo.BooleanField, {}),
                              (KEEP_FIELD, fo.BooleanField, {}),
                              (SNAPSHOT_FIELD, fo.ListField, {"subfield": fo.StringField})):
        if name not in schema:
            dataset.add_sample_field(name, kind, **extra)


def apply_reviews(name: str, *, dry_run: bool = False,
                  allow_new: tuple[str, ...] = ()) -> ApplyReport:
    """Apply the annotators' tags and edits on dataset `name`, log them, and return what changed.

    Idempotent: a second run finds nothing to do. Never deletes a sample or touches a file.
    """
    dataset = store.load(name)
    task = store.task_of(dataset)
    states = read_states(dataset)
    known = known_classes(states)
    classes = known | set(allow_new)
    report = ApplyReport(name, dry_run)
    updates, stamp, user = {}, now(), whoami()
    for state in states:
        after, changes, problems = decide(state, task, classes)
        report.problems += [Problem(state.sample_id, state.filepath, m) for m in problems]
        report.changes += [{"time": stamp, "user": user, "kind": kind, "sample_id": state.sample_id,
                            "filepath": state.filepath, "old": old, "new": new, "source": source}
                           for kind, old, new, source in changes]
        report.tags_removed += len(state.tags) - len(after.tags)
        report.baselines += state.snapshot is None
        if after != state:
            updates[state.sample_id] = (state, after)
    report.notes = new_class_notes(report.changes, known) + unsplit_notes(dataset, updates)
    frames, frame_updates = frames_to_follow(dataset, updates, task)
    report.frames_dataset = frames.name if frames is not None else None
    report.frames_changed = len(frame_updates)
    if not dry_run and frame_updates:  # first: were the clips written first and this failed,
        write_frames(frames, frame_updates, task)  # the next apply would see nothing to follow
    if not dry_run and updates:
        write_states(dataset, updates, task)
        ChangeLog(dataset).append(report.changes)
    return report


def write_states(dataset, updates: dict[str, tuple[SampleState, SampleState]], task: str) -> None:
    """Write each (before, after) pair's differences; labels only where they changed."""
    declare_review_fields(dataset)
    for sample in dataset.select(list(updates)).iter_samples(autosave=True):
        before, after = updates[sample.id]
        if after.label != before.label:
            sample["ground_truth"] = store.make_label(after.label, task)
        removed = set(before.tags) - set(after.tags)  # re-read: keep tags added meanwhile
        sample.tags = [t for t in sample.tags if t not in removed]
        sample[EXCLUDED_FIELD] = after.excluded
        sample[KEEP_FIELD] = after.keep
        sample[SNAPSHOT_FIELD] = list(after.label)


def frames_to_follow(dataset, updates: dict, task: str) -> tuple:
    """A clip dataset's frames dataset (train reads it, not the clips) and the frame updates
    that make its frames follow the clips' new labels and exclusions; (None, {}) otherwise."""
    frames = store.linked_frames(dataset)
    if frames is None:
        return None, {}
    return frames, follow_clips(frames, clip_changes(updates), task)


def clip_changes(updates: dict[str, tuple[SampleState, SampleState]]) -> dict[str, tuple]:
    """Per clip whose label or exclusion this apply changes: (label or None, excluded or None),
    None where that one is unchanged."""
    wanted = {}
    for sample_id, (before, after) in updates.items():
        base = before.snapshot if before.snapshot is not None else before.label
        label = after.label if after.label != base else None
        excluded = after.excluded if after.excluded != before.excluded else None
        if label is not None or excluded is not None:
            wanted[sample_id] = (label, excluded)
    return wanted


@dataclass
class FrameState:
    label: tuple[str, ...]
    tags: list[str]
    with_clip: bool  # excluded through its clip (WITH_CLIP_FIELD)


def follow(frame: FrameState, label: tuple | None, excluded: bool | None) -> FrameState:
    """A frame after its clip's change. Pure. An excluded clip's frames get the `exclude` tag;
    including the clip again removes it only from the frames that got it from the clip."""
    tags, with_clip = list(frame.tags), frame.with_clip
    if excluded and EXCLUDE_TAG not in tags:
        tags, with_clip = [*tags, EXCLUDE_TAG], True
    elif excluded is False and with_clip:
        tags, with_clip = [t for t in tags if t != EXCLUDE_TAG], False
    return FrameState(frame.label if label is None else label, tags, with_clip)


def follow_clips(frames, wanted: dict[str, tuple], task: str) -> dict[str, tuple]:
    """The frames of `wanted`'s clips whose state changes: frame id -> (before, after)."""
    if not wanted:
        return {}
    store.fiftyone()
    from fiftyone import ViewField as F

    view = frames.match(F("clip_id").is_in(list(wanted)))
    schema = frames.get_field_schema()
    flags = (view.values(WITH_CLIP_FIELD) if WITH_CLIP_FIELD in schema else [None] * len(view))
    changed = {}
    raw = view.values(store.label_path(task))
    labels = ([tuple(sorted(v or ())) for v in raw] if task == "multilabel"
              else [(v,) if v else () for v in raw])
    for frame_id, clip_id, label, tags, with_clip in zip(
            view.values("id"), view.values("clip_id"), labels, view.values("tags"), flags):
        before = FrameState(label, list(tags or []), bool(with_clip))
        after = follow(before, *wanted[clip_id])
        if after != before:
            changed[frame_id] = (before, after)
    return changed


def write_frames(frames, updates: dict[str, tuple[FrameState, FrameState]], task: str) -> None:
    """Each (before, after) frame's new label (and its snapshot, so no later apply takes it for
    an App edit); its `exclude` tag, `excluded` mirroring it, and WITH_CLIP_FIELD."""
    declare_review_fields(frames)
    if WITH_CLIP_FIELD not in frames.get_field_schema():
        frames.add_sample_field(WITH_CLIP_FIELD, store.fiftyone().BooleanField)
    for sample in frames.select(list(updates)).iter_samples(autosave=True):
        before, after = updates[sample.id]
        if after.label != before.label:
            sample["ground_truth"] = store.make_label(after.label, task)
            sample[SNAPSHOT_FIELD] = list(after.label)
        if after.tags != before.tags:  # re-read: keep tags added meanwhile
            excluded = EXCLUDE_TAG in after.tags
            sample.tags = [t for t in sample.tags if t != EXCLUDE_TAG] + [EXCLUDE_TAG] * excluded
            sample[EXCLUDED_FIELD] = excluded
        sample[WITH_CLIP_FIELD] = after.with_clip


def history(name: str, limit: int | None = None) -> list[dict]:
    """The change log of dataset `name`, newest first (at most `limit` entries)."""
    entries = ChangeLog(store.load(name)).entries()[::-1]
    return entries[:limit] if limit else entries
