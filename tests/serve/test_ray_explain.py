"""`shotlab explain pending STORE --ray`: queued appeals spread over Ray actors on a real local
Ray; the store ends as the single-process run leaves it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.explain.store import ExplanationStore
from tests.explain.test_tiers import FAST, decisions_for
from tests.serve.ray_cluster import start_ray

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_address():
    yield from start_ray()


@pytest.fixture
def appeals(exported, images, tmp_path):
    """A store with 4 decisions: 3 appeals for LIME, 1 for SHAP, and one on a missing image."""
    from shotlab.explain.tier1 import record_flagged
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(exported.path)
    decisions, inputs = decisions_for(bundle, images[:4])
    store_path = tmp_path / "explanations.sqlite"
    record_flagged(bundle, decisions, inputs, store_path)
    with ExplanationStore(store_path) as store:
        for decision in decisions[:3]:
            store.queue(decision["decision_id"], ["lime"])
        store.queue("d3", ["shap"])
        store.queue("d9", ["lime"], image_path=tmp_path / "missing.png", bundle_path=exported.path)
    return store_path


def stored(store_path) -> dict:
    with ExplanationStore(store_path, create=False) as store:
        assert store.appeals() == []  # the queue is empty
        return {(a.decision_id, a.status): [(e.method, e.target, e.map, e.params["tier"])
                                            for e in store.explanations(a.decision_id)
                                            if e.method != "gradcam"]
                for a in store.appeals(None)}


def test_ray_completes_the_queue_as_the_single_process_run(ray_address, appeals, tmp_path):
    from shotlab.explain.pending import process_pending
    from shotlab.explain.ray_pending import process_pending_ray

    alone = shutil.copy(appeals, tmp_path / "alone.sqlite")
    on_ray = process_pending_ray(appeals, address=ray_address, batch=2, options=FAST)
    single = process_pending(alone, batch=2, options=FAST)
    assert (on_ray["processed"], on_ray["failed"], on_ray["stored"]) == (4, 1, 4)
    assert {k: v for k, v in on_ray.items() if k != "errors"} \
        == {k: v for k, v in single.items() if k != "errors"}
    assert on_ray["errors"] == single["errors"] and "missing.png" in on_ray["errors"][0]["error"]
    ray_rows, single_rows = stored(appeals), stored(alone)
    assert ray_rows.keys() == single_rows.keys() and ("d9", "failed") in ray_rows
    for key, rows in ray_rows.items():
        assert [r[:2] + r[3:] for r in rows] == [r[:2] + r[3:] for r in single_rows[key]]
        for ray_map, single_map in zip((r[2] for r in rows), (r[2] for r in single_rows[key])):
            assert np.allclose(ray_map, single_map, atol=1e-2)  # seeded: the same maps


def test_the_cli_runs_pending_on_ray(ray_address, appeals):
    result = CliRunner().invoke(cli, ["explain", "pending", str(appeals), "--ray", "--method",
                                      "gradcam", "--no-score", "--json"])
    assert result.exit_code == 1, result.output  # d9 failed: a script must see it
    assert json.loads(result.stdout) == {
        "processed": 4, "failed": 1, "stored": 4,
        "errors": [{"decision_id": "d9", "error": json.loads(result.stdout)["errors"][0]["error"]}]}
    with ExplanationStore(appeals, create=False) as store:
        assert [e.params.get("tier") for e in store.explanations("d0")] == [None, 2]


def busy_workers(ancestor: int) -> list[int]:
    """Process ids of the AppealWorkers under `ancestor` (this test's Ray) running a batch: Ray
    titles an actor's process by the method it runs. Other Rays on the machine are not touched."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if (process.info["cmdline"] or [""])[0].startswith("ray::AppealWorker.explain"):
            try:
                if ancestor in {parent.pid for parent in process.parents()}:
                    found.append(process.info["pid"])
            except psutil.NoSuchProcess:
                pass
    return found


def kill_first_busy_worker(killed: list, stop: threading.Event) -> None:
    """SIGKILL the first of this test's AppealWorkers seen running a batch."""
    while not stop.is_set() and not killed:
        for pid in busy_workers(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # its batch ended meanwhile: wait for the next one
                continue
            killed.append(pid)
            return
        time.sleep(0.02)


def test_a_worker_killed_mid_batch_has_its_batch_run_again(ray_address, appeals):
    from shotlab.explain.ray_pending import process_pending_ray

    killed, stop = [], threading.Event()
    killer = threading.Thread(target=kill_first_busy_worker, args=(killed, stop))
    killer.start()
    try:
        summary = process_pending_ray(appeals, address=ray_address, batch=2, options=FAST)
    finally:
        stop.set()
        killer.join()
    assert killed, "no worker was seen running a batch"
    assert (summary["processed"], summary["failed"], summary["stored"]) == (4, 1, 4)
    rows = stored(appeals)  # every appeal done once: nothing lost, nothing written twice
    assert sorted(rows) == [("d0", "done"), ("d1", "done"), ("d2", "done"), ("d3", "done"),
                            ("d9", "failed")]
    assert all(len(rows[(d, "done")]) == 1 for d in ("d0", "d1", "d2", "d3"))
