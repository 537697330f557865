"""`shotlab curate info`: class counts per split, imbalance and tiny-class warnings."""

from __future__ import annotations

import unicodedata

from collections import Counter
from dataclasses import asdict, dataclass, field

from shotlab.core import store
from shotlab.core.output import plural, printable, table
from shotlab.curate.import_common import unfinished_imports
from shotlab.curate.review import EXCLUDE_TAG

# Below this many images a class cannot be split three ways and still be cross-validated (5-fold).
MIN_PER_CLASS = 5
SPLIT_ORDER = (*store.SPLITS, store.UNASSIGNED)


@dataclass
class DatasetSummary:
    name: str
    task: str
    samples: int
    classes: dict[str, dict[str, int]]  # class -> split -> count
    splits: dict[str, int]
    imbalance_ratio: float | None  # largest class / smallest class
    warnings: list[str] = field(default_factory=list)
    excluded: int = 0  # samples tagged `exclude`: left out of every count, as training leaves them

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        splits = [s for s in SPLIT_ORDER if self.splits.get(s)]
        rows = [[name, *(counts.get(s, 0) for s in splits), sum(counts.values())]
                for name, counts in self.classes.items()]
        rows.append(["total", *(self.splits[s] for s in splits), self.samples])
        ratio = "n/a" if self.imbalance_ratio is None else f"{self.imbalance_ratio:.1f}"
        left_out = (f" ({self.excluded} more tagged '{EXCLUDE_TAG}', left out of every count)"
                    if self.excluded else "")
        lines = [f"Dataset '{self.name}': {self.task}, {self.samples} samples{left_out}, "
                 f"{len(set(self.classes) - {store.UNLABELED})} classes, imbalance ratio {ratio} "
                 f"(largest/smallest class)",
                 "", table(["class", *splits, "total"], rows)]
        return "\n".join(lines + [printable(f"warning: {w}") for w in self.warnings])


def imbalance_ratio(totals: dict[str, int]) -> float | None:
    sizes = [n for name, n in totals.items() if name != store.UNLABELED]
    return max(sizes) / min(sizes) if sizes else None


def class_warnings(totals: dict[str, int], min_per_class: int,
                   noun: str = "image") -> list[str]:
    return [f"class '{name}' has only {plural(n, noun)} (fewer than {min_per_class}); "
            f"add more before training" for name, n in totals.items()
            if name != store.UNLABELED and n < min_per_class] + case_variants(totals)


def case_variants(names) -> list[str]:
    """One warning per set of class names that differ only in letter case ('Hate', 'hate') or
    in Unicode form ('café' typed, and 'café' from a macOS folder name: an e and a combining
    accent): they are separate classes, which a label column or folder rarely means."""
    variants: dict[str, list[str]] = {}
    for name in names:
        if name != store.UNLABELED:
            key = unicodedata.normalize("NFKC", str(name)).casefold()
            variants.setdefault(key, []).append(str(name))
    return [variant_warning(sorted(group)) for group in variants.values() if len(group) > 1]


def variant_warning(group: list[str]) -> str:
    if len({name.casefold() for name in group}) == 1:
        how, shown = "differ only in letter case", ", ".join(repr(n) for n in group)
    else:  # written with different characters: ascii() shows which
        how = ("look alike but are written with different Unicode characters (an accent as a "
               "character of its own, as macOS folder names store it, or a compatibility form)")
        shown = ", ".join(ascii(n) for n in group)
    return (f"classes {shown} {how}: they are {len(group)} separate classes; if they are one, "
            f"correct the labels in the source and import it into a new dataset, or relabel "
            f"them in the App")


def dataset_case_variants(name: str) -> list[str]:
    """`case_variants` of dataset NAME's classes (every sample, excluded ones too)."""
    return case_variants(store.class_counts(store.load(name)))


def sample_noun(dataset) -> str:
    """What one sample of `dataset` is, for messages: an image, a clip, a comment or a post."""
    if store.media_of(dataset) == "video":
        return "clip"
    return kind_noun(store.kind_of(dataset))


def kind_noun(kind: str) -> str:
    """What one sample of a `kind` dataset (store.kind_of) is: an image, a comment or a post."""
    return {store.TEXT: "comment", store.POST: "post"}.get(kind, "image")


def summarize(name: str, *, min_per_class: int = MIN_PER_CLASS) -> DatasetSummary:
    """The counts of the samples training would use: those tagged `exclude` are left out (and
    counted apart), so these figures agree with `curate split` and the run's manifest."""
    dataset = store.load(name)
    kept = dataset.match_tags(EXCLUDE_TAG, bool=False)
    counts = store.class_counts(kept)
    totals = {label: sum(c.values()) for label, c in counts.items()}
    splits = Counter(store.split_names(kept))
    return DatasetSummary(name=name, task=store.task_of(dataset), samples=len(kept),
                          classes={k: dict(v) for k, v in counts.items()}, splits=dict(splits),
                          imbalance_ratio=imbalance_ratio(totals),
                          warnings=unfinished_imports(dataset)
                          + class_warnings(totals, min_per_class, sample_noun(dataset)),
                          excluded=len(dataset) - len(kept))
