"""The screenshot of docs/text.md: the FiftyOne App on the illustrative comment set.

    .venv/bin/python docs/make_text_screenshot.py

Imports datasets/comments/comments.csv into a throwaway workspace, serves it with `shotlab
curate app` on loopback and has headless Chromium render the page into
docs/images/text-app-comments.png (the recipe of docs/make_clip_screenshot.py). The tiles show
each comment's label and `text` field; the .txt media itself has no preview in the App.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs"))
OUT = ROOT / "docs" / "images" / "text-app-comments.png"


def main() -> None:
    from make_clip_screenshot import screenshot

    from shotlab.core import workspace
    from shotlab.core.database import free_port
    from shotlab.curate.importer import import_path

    with tempfile.TemporaryDirectory(prefix="text-shot-") as scratch:
        home = Path(scratch)
        workspace.activate(home / "ws")
        import_path(ROOT / "datasets" / "comments" / "comments.csv", "comments", progress=False)
        screenshot(home, "comments", free_port(), OUT)
        print(OUT)


if __name__ == "__main__":
    main()
