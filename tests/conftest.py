"""Every test runs against a throwaway shotlab workspace, never the user's real database."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

from shotlab.core import workspace

_WORKSPACE = tempfile.mkdtemp(prefix="shotlab-test-workspace-")


def pytest_configure(config):
    # Before any test imports FiftyOne: point shotlab (and so FiftyOne) at a temporary folder,
    # in this process and in every `shotlab` subprocess a test starts.
    os.environ[workspace.HOME_ENV] = _WORKSPACE
    os.environ.pop(workspace.DATABASE_URI_ENV, None)
    workspace.activate(_WORKSPACE)


def pytest_unconfigure(config):
    shutil.rmtree(_WORKSPACE, ignore_errors=True)


@pytest.fixture
def dataset_name(request):
    """A fresh dataset name; the dataset is deleted after the test if it was created."""
    name = f"t-{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"
    yield name
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
