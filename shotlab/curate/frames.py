"""Sampled frames of clips, written once as lossless PNGs into the workspace and reused.

    frames = clip_frames(path, sha256, Sampling.parse("uniform:8"))   # CachedFrames

The cache is keyed by (the clip's sha256, the sampling settings): `media/frames/ab/<sha256>/
uniform-8-png/` holds `frame_000000.png`, ... and `index.json` (the clip's facts, each frame's time,
file and size, the gaps). A clip already sampled that way (under any path, in any dataset) is
not decoded again. Nothing is written next to the user's files.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from shotlab.core import workspace
from shotlab.core.clips import DEFAULT_MAX_FRAME_PIXELS, Sampling, sample_clip
from shotlab.core.files import atomic_path
from shotlab.core.names import child_path

FRAMES_DIR = "frames"
INDEX_FILE = "index.json"
# Lossless: a frame model is trained, its clip thresholds chosen and its bundle gated on these
# files, while `predict` and `serve` score the frames as decoded. JPEG (quality 92, until
# 2026-12-02; a fifth of the size) moved a small subject's score across its threshold (0.231
# here, 0.316 decoded) and the clip recall the report gave was not the bundle's. Level 1: the
# size of level 6 within a tenth, in a third of the time.
PNG_LEVEL = 1
# In the cache folder's name: JPEG frames cached before are not reused for a new import.
FORMAT_SUFFIX = "-png"  # not ".png": a folder named like an image trips `find -name "*.png"`
# A clip dataset imported before keeps JPEG frames (its `-frames` files end in .jpg): clips
# added to it get JPEG frames from the old cache too, so one dataset holds one kind of pixels.
LEGACY_QUALITY = 92


@dataclass(frozen=True)
class FrameFile:
    timestamp: float
    path: Path
    sha256: str
    width: int
    height: int
    size_bytes: int


@dataclass(frozen=True)
class CachedFrames:
    facts: dict  # core.clips.ClipFacts.to_dict()
    frames: list[FrameFile]
    gaps: list[dict]
    decoded: int  # frames decoded to make them now; 0 when they came from the cache


def cache_folder(sha256: str, sampling: Sampling, lossless: bool = True) -> Path:
    root = workspace.current().media_dir / FRAMES_DIR
    return child_path(root, sha256[:2], sha256,
                      sampling.key.replace(":", "-") + (FORMAT_SUFFIX if lossless else ""))


def clip_frames(path: Path, sha256: str, sampling: Sampling, *,
                max_pixels: int = DEFAULT_MAX_FRAME_PIXELS, lossless: bool = True) -> CachedFrames:
    """The clip's sampled frames from the cache, or decoded and written there first (PNG;
    JPEG for a dataset that holds JPEG frames, `lossless=False`). Raises BadClipError (with the
    reason) for a clip that cannot be used."""
    folder = cache_folder(sha256, sampling, lossless)
    if (folder / INDEX_FILE).is_file():
        return read_index(folder, decoded=0)
    sampled = sample_clip(path, sampling, max_pixels=max_pixels)
    with atomic_path(folder) as partial:
        partial.mkdir(parents=True)
        entries = [write_frame(partial, i, frame, lossless)
                   for i, frame in enumerate(sampled.frames)]
        index = {"facts": sampled.facts.to_dict(), "sampling": sampling.key,
                 "frames": entries, "gaps": [g.to_dict() for g in sampled.gaps]}
        (partial / INDEX_FILE).write_text(json.dumps(index, indent=1))
    return read_index(folder, decoded=sampled.decoded)


def write_frame(folder: Path, number: int, frame, lossless: bool = True) -> dict:
    from PIL import Image

    buffer = io.BytesIO()
    options = ({"format": "PNG", "compress_level": PNG_LEVEL} if lossless
               else {"format": "JPEG", "quality": LEGACY_QUALITY})
    Image.fromarray(frame.pixels).save(buffer, **options)
    data = buffer.getvalue()
    name = f"frame_{number:06d}.{'png' if lossless else 'jpg'}"
    (folder / name).write_bytes(data)
    height, width = frame.pixels.shape[:2]
    return {"timestamp": round(frame.timestamp, 6), "file": name,
            "sha256": hashlib.sha256(data).hexdigest(), "width": width, "height": height,
            "size_bytes": len(data)}


def read_index(folder: Path, *, decoded: int) -> CachedFrames:
    index = json.loads((folder / INDEX_FILE).read_text())
    frames = [FrameFile(e["timestamp"], folder / e["file"], e["sha256"], e["width"], e["height"],
                        e["size_bytes"]) for e in index["frames"]]
    return CachedFrames(index["facts"], frames, index["gaps"], decoded)
