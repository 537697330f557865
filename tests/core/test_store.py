"""The store module: FiftyOne is connected to the workspace and kept off shotlab's stdout."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.fiftyone


def test_fiftyone_logs_go_to_stderr_so_json_output_stays_clean(tmp_path):
    code = ("import logging\nfrom shotlab.core import workspace, store\n"
            f"workspace.activate({str(tmp_path)!r})\nfo = store.fiftyone()\n"
            "logging.getLogger('fiftyone.core.dataset').warning('a FiftyOne warning')\n"
            "print('{}')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "{}\n"
    assert "a FiftyOne warning" in result.stderr
