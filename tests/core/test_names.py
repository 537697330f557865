"""Dataset names are checked in one place, and paths built from names never leave their parent."""

from __future__ import annotations

import os

import pytest

from shotlab.core.errors import InputError
from shotlab.core.names import MAX_NAME_LENGTH, check_dataset_name, child_path


@pytest.mark.parametrize("name", ["vehicles", "Vehicles-2024", "a", "my_set.v2", "_x",
                                  "9", "a" * MAX_NAME_LENGTH])
def test_plain_names_are_accepted_as_given(name):
    assert check_dataset_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "x/../../../tmp/ESCAPED",
                                  "/etc", "a\\b", "a b", "tab\there", "new\nline", "nul\0",
                                  "véhicules", "a" * (MAX_NAME_LENGTH + 1), None, 7])
def test_other_names_are_refused_with_the_allowed_characters(name):
    with pytest.raises(InputError) as caught:
        check_dataset_name(name)
    message = str(caught.value)
    assert "\n" not in message
    assert f"dataset name {name!r} is not allowed" in message
    assert "ASCII letters, digits, '-', '_' and '.' (not first)" in message


def test_child_path_keeps_the_name_inside_its_parent(tmp_path):
    assert child_path(tmp_path, "run-1") == tmp_path / "run-1"
    assert child_path(tmp_path, "a", "b.npy") == tmp_path / "a" / "b.npy"
    assert child_path(tmp_path / "missing", "x") == tmp_path / "missing" / "x"


@pytest.mark.parametrize("parts", [("..",), ("",), (".",), ("a/../..",), ("/etc/passwd",),
                                   ("x/../../../tmp/ESCAPED",), ("a", "../../b"), ("nul\0",)])
def test_child_path_refuses_a_way_out(tmp_path, parts):
    with pytest.raises(InputError, match="would lead outside") as caught:
        child_path(tmp_path / "parent", *parts)
    assert "\n" not in str(caught.value)


def test_child_path_refuses_a_symlink_leading_out(tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    os.symlink(tmp_path / "elsewhere", parent / "link")
    with pytest.raises(InputError, match="would lead outside"):
        child_path(parent, "link", "file")
    os.symlink(parent / "inner", parent / "inner-link")
    assert child_path(parent, "inner-link", "file") == parent / "inner-link" / "file"
