"""FiftyOne export directories: FiftyOneDataset and FiftyOneImageClassificationDataset.

(ImageClassificationDirectoryTree exports are plain `class/image` trees: the folder reader.)
The export is loaded into a temporary FiftyOne dataset, read, and the temporary dataset deleted.
Labels come from `ground_truth`, else the first classification field; the split from a `split`
field, else a train/val/test tag. A sample whose `split` is none of those is skipped by name, and
so is one tagged `exclude` (a shotlab export keeps an annotator's exclusions as that tag).
"""

from __future__ import annotations

from pathlib import Path

from shotlab.core import store
from shotlab.core.errors import InputError, one_line
from shotlab.curate.review import EXCLUDE_TAG
from shotlab.curate.records import (SPLIT_ALIASES, Record, Scan, Skipped, normalise_split,
                                    unknown_split)

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
    """The sample's split: its `split` field, else a train/val/test tag. ValueError for a
    `split` value that is none of SPLIT_ALIASES (skipped by name, as the CSV reader does)."""
    if sample.has_field("split") and sample["split"]:
        split = normalise_split(str(sample["split"]))
        if split is None:
            raise ValueError(unknown_split(str(sample["split"])))
        return split
    return next((normalise_split(t) for t in sample.tags if t.lower() in SPLIT_ALIASES), None)


def scan_samples(samples, field: str | None) -> Scan:
    scan = Scan()
    for sample in samples:
        if EXCLUDE_TAG in sample.tags:
            scan.skipped.append(Skipped(sample.filepath, f"tagged '{EXCLUDE_TAG}' in the export "
                                        f"(an annotator left it out of training): not imported"))
            continue
        try:
            split = split_of(sample)
        except ValueError as exc:
            scan.skipped.append(Skipped(sample.filepath, str(exc)))
            continue
        scan.records.append(Record(Path(sample.filepath),
                                   labels_of(sample[field]) if field else (), split))
    return scan


def read_fiftyone(root: Path) -> Scan:
    fo = store.fiftyone()
    kind = (fo.types.FiftyOneDataset if (root / DATASET_MARKERS[0]).is_file()
            else fo.types.FiftyOneImageClassificationDataset)
    try:
        with store.quieted("fiftyone.utils.data.importers"):  # "Importing samples..."
            temporary = fo.Dataset.from_dir(dataset_dir=str(root), dataset_type=kind,
                                            progress=False)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        # FiftyOne's reading errors; a labels.json of another shape (a list) is an AttributeError
        raise InputError(f"{root}: not a readable FiftyOne export ({type(exc).__name__}: "
                         f"{one_line(exc)}); give the folder `curate export --format fiftyone` (or "
                         f"FiftyOne's export) wrote, whole, or import its images with "
                         f"--format folder (a labels.json beside them is read as FiftyOne's)"
                         ) from None
    try:
        return scan_samples(temporary.iter_samples(), label_field(temporary))
    finally:
        temporary.delete()
