"""Library code does not reseed the caller's global generators except through core/seeding.py."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import shotlab
from shotlab.core.seeding import seeded_torch

GLOBAL_RESEED = re.compile(r"\b(?:random\.seed|np\.random\.seed|torch\.manual_seed|"
                           r"torch\.cuda\.manual_seed(?:_all)?)\(")


def test_only_the_seeding_module_reseeds_global_generators():
    root = Path(shotlab.__file__).parent
    offenders = [f"{path.relative_to(root)}:{n}" for path in root.rglob("*.py")
                 if path.name != "seeding.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if GLOBAL_RESEED.search(line)]
    assert offenders == []


def test_a_seeded_draw_is_reproducible_and_leaves_the_callers_generator_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded_torch(0):
        first = torch.rand(3)
    with seeded_torch(0):
        assert torch.equal(torch.rand(3), first)
    assert torch.equal(torch.rand(3), expected_next)
