"""Group-aware stratified splits: arrays in, split names out.

`assign_splits(labels, groups, val=, test=, seed=)` keeps every group (a duplicate cluster, a
video clip, a text import's `group`) inside one split, gives every class with enough samples at least one example in each
split, and otherwise follows the class proportions greedily, group by group, rarest class first
(the iterative stratification of Sechidis et al., 2011, at group level). Samples already in a
split (`fixed`) stay there and pull the rest of their group with them. `assign_splits` touches no
store; `split_dataset` reads the arrays from a dataset, writes its `split` field and logs the run.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field

from shotlab.core.errors import InputError
from shotlab.core.groups import GROUP_FIELDS, group_ids

SPLITS = ("train", "val", "test")
# A class needs one example in each of the three splits; fewer cannot be stratified.
MIN_PER_CLASS = len(SPLITS)


@dataclass
class SplitPlan:
    splits: list[str | None]  # per sample; None where the sample was not to be split
    counts: dict[str, Counter] = field(default_factory=dict)  # class -> split -> samples
    warnings: list[str] = field(default_factory=list)


NO_HOLDOUT = ("--val 0 --test 0: every sample goes to train, none is held out to validate or "
              "test a model")


def check_holdout(val: float, test: float, no_holdout: bool) -> None:
    """Putting everything in train needs `no_holdout`: it is far more often a slip than a choice."""
    if val == test == 0 and not no_holdout:
        raise InputError(f"{NO_HOLDOUT}; pass --no-holdout if that is what you want, or give "
                         f"fractions, e.g. --val 0.15 --test 0.15")


def check_fractions(val: float, test: float) -> dict[str, float]:
    """The fraction of each split, or InputError for fractions that cannot be split."""
    for name, value in (("--val", val), ("--test", test)):
        if not 0 <= value < 1:
            raise InputError(f"{name} must be a fraction in [0, 1). Got {value} instead.")
    if val + test >= 1:
        raise InputError(f"--val {val} and --test {test} leave nothing to train on (they add up "
                         f"to {val + test:g}); keep their sum below 1, e.g. --val 0.15 --test 0.15")
    return {"train": 1 - val - test, "val": val, "test": test}


@dataclass(eq=False)  # groups are compared by identity
class _Group:
    members: list[int]  # the samples to assign (not those already in a split)
    labels: Counter  # class -> samples of it in the group, assigned or not
    size: int = 0
    fixed: str | None = None


def _groups(labels, groups, fixed, active, names) -> tuple[list[_Group], list[str]]:
    found: dict[int, _Group] = {}
    warnings = []
    for i, (classes, group) in enumerate(zip(labels, groups)):
        if not active[i] and fixed[i] is None:
            continue
        entry = found.setdefault(group, _Group([], Counter()))
        entry.labels.update(classes)
        entry.size += 1
        if fixed[i] is None:
            entry.members.append(i)
        elif entry.fixed is None:
            entry.fixed = fixed[i]
        elif entry.fixed != fixed[i]:
            warnings.append(f"{names[i]} is in {fixed[i]} but a duplicate or clip-mate is in "
                            f"{entry.fixed}: the existing splits leak (re-split with --overwrite, "
                            f"or move it by hand); its unassigned group members go to "
                            f"{entry.fixed}")
    return list(found.values()), warnings


class _Assigner:
    """Greedy state: what each split holds and what it should hold."""

    def __init__(self, totals: Counter, samples: int, fractions: dict[str, float]):
        self.fractions = fractions
        self.want = {s: {c: n * f for c, n in totals.items()} for s, f in fractions.items()}
        self.samples = samples
        self.held = {s: Counter() for s in SPLITS}
        self.held_samples = Counter()

    def add(self, group: _Group, split: str) -> None:
        self.held[split].update(group.labels)
        self.held_samples[split] += group.size

    def choose(self, group: _Group, rarest: str | None, rng: random.Random) -> str:
        """The split that most wants the group's rarest class, then the most samples."""
        def need(split: str):
            label_need = (0.0 if rarest is None
                          else self.want[split][rarest] - self.held[split][rarest])
            overall = self.fractions[split] * self.samples - self.held_samples[split]
            return round(label_need, 9), round(overall, 9), rng.random()

        return max((s for s in SPLITS if self.fractions[s] > 0), key=need)


def assign_splits(labels, groups, *, val: float, test: float, seed: int,
                  fixed=None, active=None, names=None) -> SplitPlan:
    """Split names for samples with `labels` (a tuple of class names each) and `groups`.

    `fixed`: per sample, a split it already has (kept) or None. `active`: per sample, whether to
    assign it (default all); inactive samples without a fixed split get None and count for
    nothing. `names`: per sample, how warnings name it (default "sample <index>"). The same
    inputs and seed give the same result.
    """
    fractions = check_fractions(val, test)
    count = len(labels)
    fixed = list(fixed) if fixed is not None else [None] * count
    active = list(active) if active is not None else [True] * count
    rng = random.Random(seed)
    names = list(names) if names is not None else [f"sample {i}" for i in range(count)]
    units, warnings = _groups(labels, groups, fixed, active, names)
    totals = Counter()
    for unit in units:
        totals.update(unit.labels)
    state = _Assigner(totals, sum(u.size for u in units), fractions)
    splits = list(fixed)

    def place(unit: _Group, split: str) -> None:
        state.add(unit, split)
        for i in unit.members:
            splits[i] = split

    pending = []
    for unit in units:
        if unit.fixed is not None:
            place(unit, unit.fixed)
        else:
            pending.append(unit)
    rng.shuffle(pending)
    pending = _seed_rare_classes(pending, totals, state, place, rng)
    rarity = lambda u: min((totals[c] for c in u.labels), default=count + 1)  # noqa: E731
    pending.sort(key=lambda u: (rarity(u), -u.size))
    for unit in pending:
        rarest = min(unit.labels, key=lambda c: (totals[c], c), default=None)
        place(unit, state.choose(unit, rarest, rng))
    counts = _counts(labels, splits)
    warnings += _presence_warnings(totals, counts, fractions)
    return SplitPlan(splits, counts, warnings)


def _seed_rare_classes(pending, totals, state, place, rng) -> list:
    """Give each class one group in every split that lacks it, rarest class first: test, val,
    then train, unless the class has too few groups for every split, when train comes first
    (a class in test but not in train is one the model never learns)."""
    by_class: dict[str, list[_Group]] = {}
    for unit in pending:  # in shuffled order, so ties below fall to the seed
        for label in unit.labels:
            by_class.setdefault(label, []).append(unit)
    placed: set[int] = set()
    for label in sorted(totals, key=lambda c: (totals[c], c)):
        if totals[label] < MIN_PER_CLASS:
            continue
        wanting = [s for s in ("test", "val", "train")
                   if state.fractions[s] > 0 and state.held[s][label] == 0]
        if len([u for u in by_class.get(label, []) if id(u) not in placed]) < len(wanting):
            wanting.reverse()  # too few groups to go round: train first
        for split in wanting:
            candidates = [u for u in by_class.get(label, []) if id(u) not in placed]
            if not candidates:
                break
            unit = min(candidates, key=lambda u: u.size)  # the first smallest: seeded order
            placed.add(id(unit))
            place(unit, split)
    return [u for u in pending if id(u) not in placed]


def _counts(labels, splits) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for names, split in zip(labels, splits):
        if split is None:
            continue
        for name in names:
            counts.setdefault(name, Counter())[split] += 1
    return dict(sorted(counts.items()))


def _presence_warnings(totals, counts, fractions) -> list[str]:
    warnings = []
    for label, total in sorted(totals.items()):
        missing = [s for s in SPLITS if fractions[s] > 0 and counts.get(label, {}).get(s, 0) == 0]
        if not missing:
            continue
        why = (f"it has only {total} sample{'s' * (total != 1)}, fewer than {MIN_PER_CLASS}"
               if total < MIN_PER_CLASS else
               "its samples sit in too few duplicate clusters or clips to spread")
        warnings.append(f"class '{label}' has no example in {', '.join(missing)}: {why}; "
                        f"add images of '{label}' or merge the class")
    return warnings


@dataclass
class SplitReport:
    name: str
    seed: int
    fractions: dict[str, float]
    overwrite: bool
    assigned: int  # samples that got a split this run
    kept: int  # samples whose existing split was kept
    changed: int  # samples whose split field changed
    skipped: dict[str, int]  # reason -> samples left as they were
    grouped: int  # groups of more than one sample kept together
    counts: dict[str, dict[str, int]]  # per class: a multilabel sample counts once per class
    warnings: list[str]
    samples: dict[str, int] = field(default_factory=dict)  # split -> samples, each once

    def to_dict(self) -> dict:
        return asdict(self)


def split_dataset(name: str, *, val: float, test: float, seed: int,
                  overwrite: bool = False, no_holdout: bool = False) -> SplitReport:
    """Write the `split` field of dataset `name` with `assign_splits`, and log the run.

    Samples with a split keep it unless `overwrite`. Samples tagged `exclude` and unlabeled
    multiclass samples are left as they are (training leaves them out). `val` and `test` both 0
    need `no_holdout`.
    """
    from shotlab.core import store
    from shotlab.curate.review import EXCLUDE_TAG, ChangeLog, now, whoami

    fractions = check_fractions(val, test)
    check_holdout(val, test, no_holdout)
    dataset = store.load(name)
    schema = dataset.get_field_schema()
    labels = store.sample_labels(dataset)
    current = dataset.values("split")
    excluded = [EXCLUDE_TAG in (t or []) for t in dataset.values("tags")]
    unlabeled = [not l and store.task_of(dataset) == "multiclass" for l in labels]
    active = [not (e or u) for e, u in zip(excluded, unlabeled)]
    fixed = [s if a and s in SPLITS and not overwrite else None for s, a in zip(current, active)]
    keys = [dataset.values(f) for f in GROUP_FIELDS if f in schema]
    groups = group_ids(*keys, *frame_clusters(dataset))
    plan = assign_splits(labels, groups, val=val, test=test, seed=seed, fixed=fixed,
                         active=active, names=dataset.values("filepath"))
    changed = {i: s for i, (s, old) in enumerate(zip(plan.splits, current))
               if active[i] and s != old}
    ids = dataset.values("id")
    if changed:
        dataset.set_values("split", {ids[i]: s for i, s in changed.items()}, key_field="id")
    from shotlab.curate.clip_import import propagate_splits

    propagate_splits(dataset)  # a clip dataset's frames (or a frames dataset's clips) follow
    sizes = Counter(g for g, a in zip(groups, active) if a)
    report = SplitReport(
        name, seed, fractions, overwrite,
        assigned=sum(a and f is None for a, f in zip(active, fixed)),
        kept=sum(f is not None for f in fixed), changed=len(changed),
        skipped={"excluded": sum(excluded), "unlabeled": sum(u and not e for u, e in
                                                               zip(unlabeled, excluded))},
        grouped=sum(n > 1 for n in sizes.values()),
        counts={c: dict(v) for c, v in plan.counts.items()},
        warnings=plan.warnings + ([NO_HOLDOUT] if val == test == 0 else []),
        samples=split_sizes(plan.splits, active))
    ChangeLog(dataset).append([{"time": now(), "user": whoami(), "kind": "split", "sample_id": None,
                                "filepath": None, "old": None, "new": report.counts,
                                "source": f"curate split seed={seed} val={val} test={test}"
                                          f"{' --overwrite' if overwrite else ''}",
                                "changed": report.changed, "samples": report.samples}])
    return report


def frame_clusters(dataset) -> list[list]:
    """For a clip dataset, one more grouping key: per clip, the duplicate clusters its frames
    are in (`curate check NAME-frames` writes them there), so a re-upload of a clip, whose bytes
    differ, lands in the split of its original; [] for other datasets."""
    from shotlab.core import store

    frames = store.linked_frames(dataset)
    if frames is None or "duplicate_cluster" not in frames.get_field_schema():
        return []
    by_clip: dict[str, list] = {}
    for clip_id, cluster in zip(frames.values("clip_id"), frames.values("duplicate_cluster")):
        if cluster:
            by_clip.setdefault(str(clip_id), []).append(cluster)
    return [[by_clip.get(str(i), []) for i in dataset.values("id")]]


def split_sizes(splits, active) -> dict[str, int]:
    """How many of the active samples each split holds (each sample once, whatever its classes)."""
    sizes = Counter(s for s, a in zip(splits, active) if a and s in SPLITS)
    return {s: sizes[s] for s in SPLITS}
