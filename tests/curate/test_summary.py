"""`curate info`'s headline counts classes, not the bucket of unlabeled samples."""

from __future__ import annotations

from shotlab.core import store
from shotlab.curate.summary import DatasetSummary


def test_unlabeled_samples_are_not_a_class():
    summary = DatasetSummary("d", "multiclass", 18, {
        "blue": {"train": 3}, "green": {"train": 3}, "red": {"train": 3},
        store.UNLABELED: {store.UNASSIGNED: 9}}, {"train": 9, store.UNASSIGNED: 9}, 1.0)
    assert "18 samples, 3 classes," in summary.render()


def test_class_names_that_look_alike_in_another_unicode_form_are_warned():
    """'café' typed (one character é) and 'café' from a macOS folder name (e + a combining
    accent) were two classes that print alike, with no word: the case check compared them as
    different strings."""
    import unicodedata

    from shotlab.curate.summary import case_variants

    typed, folder = "café", unicodedata.normalize("NFD", "café")
    (warning,) = case_variants({typed: 3, folder: 2, "hate": 1})
    assert "look alike but are written with different Unicode characters" in warning
    assert "'cafe\\u0301'" in warning and "'caf\\xe9'" in warning
    (cased,) = case_variants({"Hate": 1, "hate": 2})
    assert "differ only in letter case" in cased
    assert case_variants({"café": 1, "cafe": 1}) == []  # another word, not another form
