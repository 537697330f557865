"""The marks a --pseudo-label run leaves on its dataset (train/pseudo.py): the field
`pseudo_label` on the samples it added and the saved view `pseudo-labelled`. Written where every
run finishes (`runs.finish`), so a resumed run writes them too."""

from __future__ import annotations

from shotlab.train.manifest import Entry

PSEUDO_FIELD = "pseudo_label"
PSEUDO_VIEW = "pseudo-labelled"


def write_marks(name: str, added: list[Entry], run: str) -> None:
    """PSEUDO_FIELD on the `added` samples (None on every other: an earlier run's marks go) and
    the saved view PSEUDO_VIEW, least confident first."""
    from shotlab.core import store

    fo = store.fiftyone()
    dataset = store.load(name)
    marks = {e.sample_id: fo.Classification(label=e.labels[0], confidence=e.pseudo, run=run)
             for e in added}
    if not marks and not dataset.has_sample_field(PSEUDO_FIELD):
        return  # nothing added and no earlier marks to clear (FiftyOne cannot type all-None)
    dataset.set_values(PSEUDO_FIELD, [marks.get(i) for i in dataset.values("id")])
    view = dataset.select(list(marks)).sort_by(f"{PSEUDO_FIELD}.confidence")
    dataset.save_view(PSEUDO_VIEW, view, overwrite=True)
