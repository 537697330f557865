"""Each extension point is one table, and the help texts are generated from it (issue 12.3)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from shotlab.cli import cli
from shotlab.core.tasks import TASKS
from shotlab.curate.checks.detect import threshold_names
from shotlab.curate.checks.registry import CHECKS
from shotlab.export.formats import FORMATS
from shotlab.runtime.decide import check_names
from shotlab.runtime.kinds import KINDS
from shotlab.runtime.runners import RUNNERS
from shotlab.train.choices import MODES, PRESETS


def help_of(*command: str) -> str:
    result = CliRunner().invoke(cli, [*command, "--help"], terminal_width=1000)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # click wraps lines: compare as one line


@pytest.mark.parametrize("command, table", [
    (("curate", "check"), CHECKS),
    (("curate", "check"), dict.fromkeys(threshold_names())),
    (("train", "run"), MODES),
    (("train", "run"), PRESETS),
    (("curate", "augment-preview"), PRESETS),
    (("export",), FORMATS),
], ids=["checks", "thresholds", "modes", "presets", "preview-presets", "formats"])
def test_help_lists_every_registered_name(command, table):
    text = help_of(*command)
    missing = [name for name in table if name not in text]
    assert not missing


def test_check_results_are_named_after_the_checks():
    from shotlab.curate.checks.run import CHECKS as RUN_CHECKS

    assert tuple(CHECKS) == RUN_CHECKS


def test_augmentation_builds_every_preset_and_refuses_others():
    from shotlab.core.errors import InputError
    from shotlab.train.augment import build_preset

    for name in PRESETS:
        if name != "none":
            assert build_preset(name, 32, 32, seed=0) is not None
    with pytest.raises((InputError, KeyError)):
        build_preset("extreme", 32, 32, seed=0)


def test_every_runner_name_is_a_runtime_export_can_write():
    assert set(RUNNERS) == {"onnx", "onnx-fp16", "onnx-int8", "tensorrt"}
    assert {"onnx", "onnx-int8", "tensorrt"} == set(FORMATS)


def test_tasks_and_kinds_are_single_tables():
    assert list(TASKS) == ["multiclass", "multilabel"]
    for task in TASKS:
        check_names(["a", "b"], task=task)
    assert "image" in KINDS


def test_every_page_panel_is_an_input_kind():
    from shotlab.page.panels import PANELS

    assert {k for p in PANELS.values() for k in p.input_kinds} <= set(KINDS)
    assert "image" in PANELS and PANELS["post"].input_kinds == ("image", "text")
