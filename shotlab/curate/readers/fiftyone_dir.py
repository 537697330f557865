"""FiftyOne export directories: FiftyOneDataset and FiftyOneImageClassificationDataset.

(ImageClassificationDirectoryTree exports are plain `class/image` trees: the folder reader.)
The export is loaded into a temporary FiftyOne dataset, read, and the temporary dataset deleted.
Labels come from `ground_truth`, else the first classification field; the split from a `split`
field, else a train/val/test tag.
"""

from __future__ import annotations

from pathlib import Path

from shotlab.core import store
from shotlab.curate.records import SPLIT_ALIASES, Record, Scan, normalise_split

DATASET_MARKERS = ("metadata.json", "samples.json")  # FiftyOneDataset
CLASSIFICATION_MARKER = "labels.json"  # FiftyOneImageClassificationDataset


def looks_like_fiftyone(root: Path) -> bool:
    return all((root / m).is_file() for m in DATASET_MARKERS) or (root / CLASSIFICATION_MARKER).is_file()


def label_field(dataset) -> str | None:
    fo = store.fiftyone()
    kinds = (fo.Classification, fo.Classifications)
    fields = dataset.get_field_schema(embedded_doc_type=kinds)
    return "ground_truth" if "ground_truth" in fields else next(iter(fields), None)


def labels_of(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if hasattr(value, "classifications"):
        return tuple(c.label for c in value.classifications)
    return (value.label,)


def split_of(sample) -> str | None:
    if sample.has_field("split") and sample["split"]:
        return normalise_split(sample["split"])
    return next((normalise_split(t) for t in sample.tags if t.lower() in SPLIT_ALIASES), None)


def read_fiftyone(root: Path) -> Scan:
    fo = store.fiftyone()
    kind = (fo.types.FiftyOneDataset if (root / DATASET_MARKERS[0]).is_file()
            else fo.types.FiftyOneImageClassificationDataset)
    temporary = fo.Dataset.from_dir(dataset_dir=str(root), dataset_type=kind, progress=False)
    try:
        field = label_field(temporary)
        return Scan(records=[Record(Path(s.filepath), labels_of(s[field]) if field else (), split_of(s))
                             for s in temporary.iter_samples()])
    finally:
        temporary.delete()
