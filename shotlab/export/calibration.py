"""The calibration set: which train-split images INT8 calibration sees, for every INT8 runtime.

    entries = calibration_set(manifest.split("train"))     # <= CALIBRATION_IMAGES, by class
    drawn = as_trained(entries, preprocessing)             # the images as the run had them

ONNX Runtime's static quantization (`export.quantize`) and TensorRT's INT8 calibrator
(`export.tensorrt_build`) both calibrate on exactly these images, so their INT8 models are
comparable. The set is stratified by label (proportional to each class's share of the train
split, at least one image of every class), and deterministic: within a class, images are taken
in sha256 order, a fixed pseudo-random order that does not depend on file names or import order.
"""

from __future__ import annotations

from dataclasses import dataclass

# At most this many images. TensorRT's guide suggests ~500 for ImageNet-scale data; 256 keeps
# three ORT calibration passes over lite0 at 224 px within about a minute on 2 cores, and covers
# a small dataset's whole train split.
CALIBRATION_IMAGES = 256


def calibration_set(entries, count: int = CALIBRATION_IMAGES) -> list:
    """Up to `count` of `entries` (manifest entries with `labels` and `sha256`), stratified by
    label set: each stratum gets its proportional share (largest remainder), at least one."""
    strata: dict[tuple, list] = {}
    for entry in sorted(entries, key=lambda e: (e.sha256, e.filepath)):
        strata.setdefault(tuple(entry.labels), []).append(entry)
    if len(entries) <= count:
        return [e for key in sorted(strata) for e in strata[key]]
    shares = allocate({key: len(items) for key, items in strata.items()}, count)
    return [e for key in sorted(strata) for e in strata[key][:shares[key]]]


def allocate(sizes: dict, count: int) -> dict:
    """{stratum: how many}, summing to `count` (< the total), proportional to `sizes`: the floor
    of each exact share (at least one), then one more each by largest remainder."""
    total = sum(sizes.values())
    exact = {key: count * size / total for key, size in sizes.items()}
    shares = {key: max(1, int(value)) for key, value in exact.items()}
    while sum(shares.values()) > count:  # more strata than images: trim the largest shares
        shares[max(shares, key=lambda key: (shares[key], key))] -= 1
    by_remainder = sorted(sizes, key=lambda key: (int(exact[key]) - exact[key], key))
    while sum(shares.values()) < count:
        key = next(k for k in by_remainder if shares[k] < sizes[k])
        shares[key] += 1
        by_remainder.remove(key)
        by_remainder.append(key)  # each stratum once before any gets a second extra
    return shares


def summary(entries, skipped=()) -> dict:
    """What the manifest records about a calibration set: the images calibrated on (`entries`)
    per label set, and the files drawn that did not decode (`skipped`)."""
    per_label: dict[str, int] = {}
    for entry in entries:
        key = "+".join(entry.labels) or "(none)"
        per_label[key] = per_label.get(key, 0) + 1
    return {"split": "train", "images": len(entries), "limit": CALIBRATION_IMAGES,
            "per_label": dict(sorted(per_label.items())),
            **({"skipped": list(skipped)} if skipped else {})}


@dataclass
class Drawn:
    """Images of a set of manifest entries, loaded for calibration."""

    arrays: object  # the model inputs (runtime.runners.Batch); None when no image is left
    kept: list[int]  # positions in the entries given
    bad: list[tuple[str, str]]  # (path, why) left out


def as_trained(entries, preprocessing, progress=None, desc: str = "INT8") -> Drawn:
    """The images of manifest `entries` as the run trained on them: a file that no longer
    decodes, or whose bytes changed since the run (its sha256 is not the manifest's), is left
    out with why. Every INT8 runtime calibrates on what this keeps."""
    from shotlab.export.validate import changed_since_run
    from shotlab.runtime.kinds import load_inputs
    from shotlab.runtime.runners import select_rows

    if not entries:
        return Drawn(None, [], [])
    inputs = load_inputs([e.filepath for e in entries], preprocessing, progress=progress,
                         desc=desc)
    changed = dict(changed_since_run(entries, inputs))
    row_of = {i: row for row, i in enumerate(inputs.kept)}
    kept = [i for i in inputs.kept if i not in changed]
    rows = [row_of[i] for i in kept]
    return Drawn(select_rows(inputs.arrays, rows) if kept else None, kept,
                 inputs.bad + [(entries[i].filepath, why) for i, why in changed.items()])
