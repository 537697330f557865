"""The FiftyOne App serving a clip dataset over loopback: the clips as video samples with the
metadata shotlab wrote, each clip's file served as media, and its frames dataset as images."""

from __future__ import annotations

import signal

import pytest

from shotlab.core import store
from shotlab.core.addresses import free_port
from shotlab.curate.importer import import_path
from tests.clipmaking import write_clip
from tests.curate.test_app import STARTUP_TIMEOUT, RunningApp

pytestmark = pytest.mark.fiftyone

DATASET_QUERY = 'query { dataset(name: "%s") { name mediaType } }'


def test_app_serves_a_clip_dataset_and_its_frames(tmp_path, dataset_name):
    import requests

    for name in ("cooking", "sports"):
        write_clip(tmp_path / "clips" / name / f"{name}.mp4", frames=12, fps=6)
    import_path(tmp_path / "clips", dataset_name, progress=False, sampling="uniform:3")
    clip_path = store.load(dataset_name).first().filepath
    frame_path = store.load(f"{dataset_name}-frames").first().filepath
    port = free_port()
    app = RunningApp(dataset_name, port, tmp_path)
    try:
        page = app.wait_until_serving(timeout=STARTUP_TIMEOUT)
        assert "<title>FiftyOne</title>" in page.text
        for name, media in ((dataset_name, "video"), (f"{dataset_name}-frames", "image")):
            answer = requests.post(f"http://127.0.0.1:{port}/graphql",
                                   json={"query": DATASET_QUERY % name}, timeout=30).json()
            assert "errors" not in answer, answer
            assert answer["data"]["dataset"] == {"name": name, "mediaType": media}
        for path in (clip_path, frame_path):
            served = requests.get(f"http://127.0.0.1:{port}/media", params={"filepath": path},
                                  timeout=30)
            assert served.status_code == 200
            with open(path, "rb") as f:
                assert served.content == f.read()
        assert app.stop(signal.SIGTERM) == 0, app.output()
    finally:
        app.kill()
        store.delete(f"{dataset_name}-frames")
