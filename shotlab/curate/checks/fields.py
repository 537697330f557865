"""Writing check results into the store: fields, `issue:<name>` tags, saved views, and the
latest run's summary in `dataset.info["shotlab"]["checks"]`.

Every field a check owns is rewritten on every sample, so a value left by an earlier run (a
sample since fixed, or since tagged `exclude`) does not survive a re-run; samples left out of
the run get None.
"""

from __future__ import annotations

from shotlab.core import store
from shotlab.curate.checks.base import CheckResult

TAG_PREFIX = "issue:"
# Saved view -> the check whose flagged samples it shows, worst first.
VIEWS = {"label-issues": "label", "duplicates": "duplicate", "leakage": "leakage",
         "quality": "quality", "outliers": "outlier"}


def field_kind(fo, name: str):
    if name.startswith("is_"):
        return fo.BooleanField, {}
    if name.endswith(("_score", "_confidence")):
        return fo.FloatField, {}
    if name == "quality_issues":
        return fo.ListField, {"subfield": fo.StringField}
    return fo.StringField, {}


def declare(dataset, names) -> None:
    fo = store.fiftyone()
    schema = dataset.get_field_schema()
    for name in names:
        if name not in schema:
            kind, options = field_kind(fo, name)
            dataset.add_sample_field(name, kind, **options)


def write_results(dataset, checked_ids: list[str], results: list[CheckResult]) -> None:
    """Set every result's fields on all samples (None outside `checked_ids`) and its tag."""
    all_ids = dataset.values("id")
    position = {sample_id: i for i, sample_id in enumerate(checked_ids)}
    for result in results:
        columns = result.columns()
        declare(dataset, columns)
        for name, values in columns.items():
            dataset.set_values(name, [values[position[s]] if s in position else None
                                      for s in all_ids])
        tag = TAG_PREFIX + result.name
        dataset.untag_samples(tag)
        flagged = [checked_ids[i] for i in result.worst(len(checked_ids))]
        if flagged:
            dataset.select(flagged).tag_samples(tag)


def save_views(dataset, results: list[CheckResult]) -> list[str]:
    """Saved views over the flagged samples of the checks that ran, worst first."""
    store.fiftyone()  # connects to the workspace's database before fiftyone is imported
    from fiftyone import ViewField as F

    ran = {r.name: r for r in results}
    saved = []
    for view_name, check in VIEWS.items():
        if check in ran:
            result = ran[check]
            view = dataset.match(F(result.issue_field) == True).sort_by(  # noqa: E712 (a query)
                result.score_field, reverse=True)
            dataset.save_view(view_name, view, overwrite=True)
            saved.append(view_name)
    return saved


def record_summary(dataset, summary: dict) -> None:
    store.set_info(dataset, "checks", summary)
