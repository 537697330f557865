"""The screenshot of docs/video.md: the FiftyOne App on a clip dataset, rendered by Chromium.

    .venv/bin/python docs/make_clip_screenshot.py

Builds a few clips with the recipe (datasets/clips.py), imports them into a throwaway workspace
(a clip dataset and its frames dataset), serves each with `shotlab curate app` on loopback and
has headless Chromium (Debian's `chromium`) render the page into docs/images/video-app-clips.png
and docs/images/video-app-frames.png. Nothing leaves the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
IMAGES = ROOT / "docs" / "images"
CHROMIUM = ("chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--hide-scrollbars", "--virtual-time-budget=25000",
            "--window-size=1400,900")


def build(home: Path) -> None:
    from clip_sampling import recipe

    from shotlab.core import workspace
    from shotlab.curate.importer import import_path

    workspace.activate(home / "ws")
    clips = home / "clips"
    r = recipe()
    for path in sorted((ROOT / "datasets" / "sample" / "train").glob("*/*.png"))[:36:6]:
        import numpy as np

        frames = r.clip_frames("cuts", [r.subject_canvas(path)] * 2, r.filler_texture(1),
                               np.random.default_rng(0))
        r.write_mp4(clips / path.parent.name / f"{path.stem}.mp4", frames)
    import_path(clips, "clips", progress=False, sampling="uniform:8")


def screenshot(home: Path, name: str, port: int, out: Path) -> None:
    env = {**os.environ, "SHOTLAB_HOME": str(home / "ws")}
    app = subprocess.Popen([sys.executable, "-m", "shotlab", "curate", "app", name, "--port",
                            str(port)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        app.stdout.readline()  # the URL line: the App is up
        time.sleep(3)
        subprocess.run([*CHROMIUM, f"--screenshot={out}",
                        f"http://127.0.0.1:{port}/datasets/{name}"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
    finally:
        app.terminate()
        app.wait(timeout=60)


def main() -> None:
    from shotlab.core.database import free_port

    IMAGES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clip-shot-") as scratch:
        home = Path(scratch)
        build(home)
        for name, file in (("clips", "video-app-clips.png"), ("clips-frames",
                                                              "video-app-frames.png")):
            screenshot(home, name, free_port(), IMAGES / file)
            print(IMAGES / file)


if __name__ == "__main__":
    main()
