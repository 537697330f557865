"""A bundle exported from the shared trained run, and colour images to explain with it."""

from __future__ import annotations

import pytest

from tests.train.trainsets import write_colour_tree


@pytest.fixture(scope="session")
def explain_bundle(trained_run, tmp_path_factory):
    """A bundle folder (ONNX) exported from `trained_run`; tests must not modify it."""
    from shotlab.export.exporter import export_run

    out = tmp_path_factory.mktemp("explain-bundle") / "bundle"
    return export_run(trained_run, out=out, explain=False, progress=False).path


@pytest.fixture
def colour_images(tmp_path):
    """Two readable colour photos per class (red, green, blue), as files."""
    root = write_colour_tree(tmp_path / "colours", counts={"test": 2}, seed=7)
    return sorted(root.rglob("*.png"))


@pytest.fixture(scope="session")
def text_prep():
    """The text contract of the packaged MiniLM (its tokenizer), classes fine / violent."""
    from shotlab.train.text_model import text_preprocessing
    from tests.explain.text_toys import CLASSES

    return text_preprocessing(CLASSES)


@pytest.fixture(scope="session")
def one_word_model(text_prep):
    """The toy whose decision depends on the word "kills" only (tests/explain/text_toys.py)."""
    from shotlab.runtime.text import load_tokenizer
    from tests.explain.text_toys import OneWordModel

    return OneWordModel(load_tokenizer(text_prep))


@pytest.fixture(scope="session")
def one_word_bundle(one_word_model, text_prep, tmp_path_factory):
    """A real bundle of the toy: ONNX (softmax inside, int64 ids with dynamic batch and tokens),
    tokenizer.json, and a manifest written and verified by runtime/bundle.py. Its checkpoint is
    absent (the toy was never trained), so gradient methods must say so."""
    from tests.explain.text_toys import write_bundle

    return write_bundle(one_word_model, text_prep, tmp_path_factory.mktemp("text-bundle") / "b")
