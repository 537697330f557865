"""`shotlab curate import` of clips: a clip dataset and the frames dataset linked to it.

A source whose files are clips (mp4, mov, m4v, avi, mkv, webm, mpg) in any layout the readers
know (class folders, split/class folders, a CSV with a label or one-hot tag columns) becomes:

    NAME          one video sample per clip: its file (never moved or modified), labels, split,
                  sha256, FiftyOne VideoMetadata, and the clip facts from PyAV (duration, fps,
                  variable_frame_rate, rotation, codec), the sampling, the frames and the gaps
    NAME-frames   one image sample per sampled frame: the PNG in the workspace's frame cache
                  (curate/frames.py), the clip's labels and split, `clip_id` (the clip sample's
                  id), `clip_path` and `timestamp`; every check and `curate split` (which keeps a
                  clip's frames together through `clip_id`) run on it as on any image dataset

Bad clips are skipped by name with the reason; clips longer than `max_seconds` are imported with
a warning. `dataset.info["shotlab"]` of each names the other (`frames_dataset`, `clip_dataset`).
"""

from __future__ import annotations

import mimetypes
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from shotlab.core import store
from shotlab.core.clips import DEFAULT_MAX_FRAME_PIXELS, Sampling, is_clip_path
from shotlab.core.errors import BadImageError, InputError, StrictImportError
from shotlab.core.images import sha256_file
from shotlab.core.names import check_dataset_name
from shotlab.core.progress import progress_bar
from shotlab.curate.records import Record, Scan, Skipped

# Short-clip tooling: the users tag clips under 30 s; a longer one is still imported, but
# 8 uniform frames over minutes of footage miss most of it, so the summary says so.
DEFAULT_MAX_SECONDS = 30.0
DEFAULT_SAMPLING = "uniform:8"


@dataclass(frozen=True)
class SampledRecord:
    filepath: str  # resolved
    record: Record
    sha256: str
    frames: object  # curate.frames.CachedFrames


def frames_dataset_name(name: str) -> str:
    frames = f"{name}{store.FRAMES_SUFFIX}"
    try:
        return check_dataset_name(frames)
    except InputError:
        raise InputError(f"dataset name {name!r} is too long for its frames dataset "
                         f"('{frames}'); choose a shorter --name") from None


def has_clips(scan: Scan) -> bool:
    return any(is_clip_path(r.path) for r in scan.records)


def only_clips(scan: Scan) -> Scan:
    """The clip records; images beside them are skipped by name (a clip dataset holds clips)."""
    clips = Scan(skipped=list(scan.skipped), ignored=list(scan.ignored))
    for record in scan.records:
        if is_clip_path(record.path):
            clips.records.append(record)
        else:
            clips.skipped.append(Skipped(str(record.path), "an image among clips: import images "
                                                            "into a dataset of their own"))
    return clips


def sample_all(candidates: dict[str, Record], sampling: Sampling, *, max_pixels: int,
               progress, lossless: bool = True) -> tuple[list[SampledRecord], list[Skipped]]:
    from shotlab.curate.frames import clip_frames

    valid, skipped = [], []
    for filepath, record in progress_bar(candidates.items(), enabled=progress, unit="clip",
                                         total=len(candidates), desc="Sampling clips"):
        try:
            sha = sha256_file(Path(filepath))
            frames = clip_frames(Path(filepath), sha, sampling, max_pixels=max_pixels,
                                 lossless=lossless)
        except BadImageError as exc:  # BadClipError, or an unreadable file
            skipped.append(Skipped(str(record.path), exc.reason))
            continue
        except OSError as exc:
            skipped.append(Skipped(str(record.path), f"unreadable file ({exc.strerror or exc})"))
            continue
        valid.append(SampledRecord(filepath, record, sha, frames))
    return valid, skipped


def too_long(valid: list[SampledRecord], max_seconds: float) -> list[str]:
    return [f"{v.record.path}: {v.frames.facts['duration']:.1f} s is longer than --max-seconds "
            f"{max_seconds:g}; imported anyway, its frames spread over the whole clip"
            for v in valid if v.frames.facts["duration"] > max_seconds]


def clip_sample(item: SampledRecord, task: str, source: dict, sampling: Sampling):
    fo = store.fiftyone()
    facts = item.frames.facts
    metadata = fo.VideoMetadata(
        size_bytes=facts["size_bytes"], frame_width=facts["width"], frame_height=facts["height"],
        frame_rate=facts["fps"], total_frame_count=facts["frames"], duration=facts["duration"],
        encoding_str=facts["codec"],
        mime_type=mimetypes.guess_type(item.filepath)[0] or "video/mp4")
    labels = item.record.labels
    return fo.Sample(filepath=item.filepath, ground_truth=store.make_label(labels, task),
                     applied_label=sorted(labels) if task == "multilabel" else list(labels),
                     split=item.record.split, sha256=item.sha256, metadata=metadata,
                     duration=facts["duration"], fps=facts["fps"],
                     variable_frame_rate=facts["variable_frame_rate"],
                     rotation=facts["rotation"], codec=facts["codec"], sampling=sampling.key,
                     sampled_frames=len(item.frames.frames), gaps=item.frames.gaps, **source)


def frame_samples(item: SampledRecord, clip_id: str, task: str, source: dict) -> list:
    fo = store.fiftyone()
    labels = item.record.labels
    return [fo.Sample(filepath=str(f.path), ground_truth=store.make_label(labels, task),
                      applied_label=sorted(labels) if task == "multilabel" else list(labels),
                      split=item.record.split, sha256=f.sha256,
                      metadata=fo.ImageMetadata(size_bytes=f.size_bytes,
                                                mime_type=mimetypes.guess_type(str(f.path))[0],
                                                width=f.width, height=f.height, num_channels=3),
                      clip_id=clip_id, clip_path=item.filepath, timestamp=f.timestamp, **source)
            for f in item.frames.frames]


def linked_datasets(name: str, task: str):
    """The clip dataset (created as video) and its frames dataset, each naming the other."""
    frames_name = frames_dataset_name(name)
    clips, frames = store.find(name), store.find(frames_name)
    clips = store.create(name, task, media="video") if clips is None else clips
    if store.is_half_made(clips):
        store.complete(clips, task, media="video")
    frames = store.create(frames_name, task) if frames is None else frames
    if store.is_half_made(frames):
        store.complete(frames, task)
    store.set_info(clips, "frames_dataset", frames_name)
    store.set_info(frames, "clip_dataset", name)
    return clips, frames


def check_frames_link(name: str, clips) -> None:
    """Refuse to add to NAME-frames unless every frame in it is of a clip in `clips` (None when
    NAME does not exist): frames left by a deleted clip dataset of the same name would be taken
    for the new clips' (false 'same bytes' warnings, frames of clips that are gone)."""
    frames_name = frames_dataset_name(name)
    frames = store.find(frames_name)
    if frames is None or len(frames) == 0:
        return
    if clips is None:
        fix = (f"delete it with `shotlab curate delete {frames_name}` and import again, or "
               f"choose another --name")
    else:  # deleting the frames alone would lose the frames of the clips NAME still has
        fix = (f"delete both with `shotlab curate delete {name}` (it takes '{frames_name}' "
               f"with it) and import all the clips again, or choose another --name")
    if store.clip_dataset_of(frames) != name:
        raise InputError(f"dataset '{frames_name}' exists but is not the frames dataset of "
                         f"'{name}'; {fix}")
    ids = set(map(str, clips.values("id"))) if clips is not None else set()
    if not set(frames.values("clip_id")) <= ids:
        raise InputError(f"dataset '{frames_name}' holds frames of clips that are not in "
                         f"'{name}' (left by deleted clips); {fix}")


def add_clips(clips, frames, valid: list[SampledRecord], task: str, source: dict,
              sampling: Sampling, progress) -> tuple[int, int, list[str]]:
    """Add each clip, then its frames; a clip whose bytes another clip of this dataset already
    has shares that clip's frames (a frame file is one sample) and says so."""
    added_clips = added_frames = 0
    warnings = []
    seen = set(frames.values("filepath"))
    for item in progress_bar(valid, enabled=progress, unit="clip", desc="Adding clips"):
        sample = clip_sample(item, task, source, sampling)
        clips.add_sample(sample)
        added_clips += 1
        new = [s for s in frame_samples(item, str(sample.id), task, source)
               if s.filepath not in seen]
        if len(new) < len(item.frames.frames):
            warnings.append(f"{item.record.path}: same bytes as a clip already in '{clips.name}';"
                            f" its frames are that clip's")
        if new:
            frames.add_samples(new, progress=False)
            seen.update(s.filepath for s in new)
            added_frames += len(new)
    return added_clips, added_frames, warnings


def has_jpeg_frames(frames_name: str) -> bool:
    """Whether a frames dataset holds JPEG frames (an import before 2026-12-02 stored them so)."""
    frames = store.find(frames_name)
    return frames is not None and any(p.endswith(".jpg") for p in frames.values("filepath"))


def check_same_sampling(dataset, chosen: Sampling) -> None:
    """Refuse to add clips sampled another way: a run pools each clip's frames under one
    sampling (its clip contract), and thresholds chosen on 8 frames a clip do not hold on 14."""
    taken = sorted({s for s in dataset.distinct("sampling") if s})
    if taken and chosen.key not in taken:
        raise InputError(f"dataset '{dataset.name}' holds clips sampled with {', '.join(taken)}; "
                         f"import with --sampling {taken[0]}, or under another --name")


def import_clips(scan: Scan, name: str, *, task: str, fmt: str, given: Path,
                 sampling: str = DEFAULT_SAMPLING, max_seconds: float = DEFAULT_MAX_SECONDS,
                 max_pixels: int = DEFAULT_MAX_FRAME_PIXELS, strict: bool = False,
                 allow_empty: bool = False, progress=None):
    """Import the clips of `scan` into `name` and `name`-frames; an ImportReport (see
    curate/import_common.py) whose `frames_*` fields count the frames."""
    from shotlab.curate.duplicates import exact_duplicate_groups
    from shotlab.curate.import_common import ImportReport, check_not_empty, unique_records

    chosen = Sampling.parse(sampling)
    scan = only_clips(scan)
    frames_name = frames_dataset_name(name)  # a name too long for it is refused here
    existing = store.find(name)
    if existing is not None and not store.is_half_made(existing):
        store.require_task(existing, task)
        if store.media_of(existing) != "video":
            raise InputError(f"dataset '{name}' holds images; import clips under another --name")
        check_same_sampling(existing, chosen)
    check_frames_link(name, existing)
    candidates, repeats = unique_records(scan.records)
    known = set(existing.values("filepath")) if existing is not None else set()
    new = {f: r for f, r in candidates.items() if f not in known}
    lossless = not has_jpeg_frames(frames_name)
    valid, bad = sample_all(new, chosen, max_pixels=max_pixels, progress=progress,
                            lossless=lossless)
    skipped = scan.skipped + repeats + bad
    if strict and skipped:
        raise StrictImportError(f"{len(skipped)} files would be skipped (first: {skipped[0].path}: "
                                f"{skipped[0].reason}); nothing was imported (drop --strict to skip them)")
    check_not_empty(scan, valid, skipped, existing, given, allow_empty)
    clips, frames = linked_datasets(name, task)
    source = {"import_format": fmt, "import_path": str(given),
              "imported_at": datetime.now(timezone.utc)}
    added, frames_added, warnings = add_clips(clips, frames, valid, task, source, chosen, progress)
    groups = exact_duplicate_groups(clips.values("sha256"), store.sample_labels(clips),
                                    multilabel=task == "multilabel")
    return ImportReport(name=name, task=task, source=str(given), format=fmt, added=added,
                        already_present=len(candidates) - len(bad) - added, skipped=skipped,
                        ignored=len(scan.ignored), duplicate_groups=len(groups),
                        conflicting_groups=sum(g.conflicting for g in groups),
                        warnings=too_long(valid, max_seconds) + warnings
                        + ([] if lossless or not valid
                           else [store.jpeg_frames_note(frames_name)]),
                        frames_dataset=frames.name, frames_added=frames_added,
                        frames_decoded=sum(v.frames.decoded for v in valid),
                        sampling=chosen.key)


def propagate_splits(dataset) -> int:
    """After `curate split` of a clip dataset or its frames dataset: give the other one the same
    split per clip (frames follow their clip; a clip follows its frames, which `curate split`
    keeps together through `clip_id`). Returns how many samples of the other dataset changed."""
    info = dataset.info.get(store.INFO_KEY, {})
    if info.get("frames_dataset"):
        frames = store.find(info["frames_dataset"])
        if frames is None:
            return 0
        by_clip = dict(zip(map(str, dataset.values("id")), dataset.values("split")))
        wanted = [by_clip.get(c) for c in frames.values("clip_id")]
        target = frames
    elif info.get("clip_dataset"):
        target = store.find(info["clip_dataset"])
        if target is None:
            return 0
        by_clip = active_frame_splits(dataset)
        wanted = [by_clip.get(i, s) for i, s in zip(map(str, target.values("id")),
                                                    target.values("split"))]
    else:
        return 0
    changes = {i: s for i, s, old in zip(target.values("id"), wanted, target.values("split"))
               if s != old}
    if changes:
        target.set_values("split", changes, key_field="id")
    return len(changes)


def active_frame_splits(frames) -> dict[str, str | None]:
    """Per clip id, the split of its frames not tagged `exclude` (the most common, should they
    differ): `curate split` leaves excluded frames as they were, so their split may be stale.
    A clip whose frames are all excluded is absent (it keeps its split)."""
    from shotlab.curate.review import EXCLUDE_TAG

    splits: dict[str, Counter] = {}
    for clip_id, split, tags in zip(frames.values("clip_id"), frames.values("split"),
                                    frames.values("tags")):
        if EXCLUDE_TAG not in (tags or []):
            splits.setdefault(clip_id, Counter())[split] += 1
    return {clip_id: counts.most_common(1)[0][0] for clip_id, counts in splits.items()}
