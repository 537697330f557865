"""One exported bundle (ONNX + FP16, zipped, with explanations) shared by the export tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory):
    """export_run's result for the shared trained run; tests must not modify its folder."""
    from shotlab.export.exporter import export_run

    out = tmp_path_factory.mktemp("exported") / "bundle"
    return export_run(trained_run, out=out, fp16=True, zip_bundle=True, progress=False)


@pytest.fixture
def bundle_copy(exported, tmp_path):
    """A copy of the shared bundle folder a test may tamper with."""
    return shutil.copytree(exported.path, tmp_path / "bundle")
