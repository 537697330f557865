"""`dataset.info["shotlab"]` is written key by key: several processes write it (an import's
record, a check's summary, the policy and its versions), and a whole-info save from a copy loaded
earlier dropped what the others had written since."""

from __future__ import annotations

import pytest

from shotlab.core import policy, store

pytestmark = pytest.mark.fiftyone


def written_elsewhere(dataset, key: str, value) -> None:
    """What another process does: write the database, leaving this process's copy as it was."""
    fo = store.fiftyone()
    fo.core.odm.get_db_conn().datasets.update_one(
        {"name": dataset.name}, {"$set": {f"info.{store.INFO_KEY}.{key}": value}})


def in_database(dataset) -> dict:
    fo = store.fiftyone()
    return fo.core.odm.get_db_conn().datasets.find_one({"name": dataset.name})["info"][store.INFO_KEY]


@pytest.fixture
def dataset(dataset_name):
    made = store.create(dataset_name, "multiclass")
    made.add_sample(store.fiftyone().Sample(
        filepath="/nowhere/a.png",
        ground_truth=store.fiftyone().Classification(label="cat")))
    made.add_sample(store.fiftyone().Sample(
        filepath="/nowhere/b.png",
        ground_truth=store.fiftyone().Classification(label="dog")))
    return made


def test_a_check_summary_saved_from_an_old_copy_keeps_a_policy_set_meanwhile(dataset):
    """`curate check` loads the dataset, scans for minutes, then records its summary: a policy
    another process set while it ran was lost (the check's stale copy of the info was saved)."""
    from shotlab.curate.checks.fields import record_summary

    set_meanwhile = policy.Policy(("cat",), 0.9, 0.1, 2).to_dict()
    written_elsewhere(dataset, "policy", set_meanwhile)
    record_summary(dataset, {"label_issues": 0})
    kept = in_database(dataset)
    assert kept["policy"] == set_meanwhile and kept["checks"] == {"label_issues": 0}
    assert kept["task"] == "multiclass"
    assert dataset.info[store.INFO_KEY]["policy"] == set_meanwhile  # and this copy is fresh


def test_a_version_number_taken_meanwhile_is_never_overwritten(dataset):
    """Two runs registering different policy variants at once could both take the next
    version number, the second overwriting the first's policy under it."""
    first = policy.set_policy(dataset, policy.Policy(("cat",), 0.95, 0.1))
    theirs = policy.Policy(("cat",), 0.99, 0.1, first.version + 1)
    written_elsewhere(dataset, f"{policy.HISTORY_KEY}.{theirs.version}", theirs.to_dict())
    assert not policy.keep(dataset, theirs.__class__(("dog",), 0.9, 0.1, theirs.version),
                           current=False)
    ours = policy.registered(dataset, policy.Policy(("cat",), 0.97, 0.1))
    assert ours.version == theirs.version + 1
    kept = in_database(dataset)[policy.HISTORY_KEY]
    assert kept[str(theirs.version)] == theirs.to_dict()
    assert kept[str(ours.version)]["target_recall"] == 0.97
    assert policy.policy_of(dataset) == first  # a variant never becomes current
    assert policy.registered(dataset, policy.Policy(("cat",), 0.99, 0.1)).version == theirs.version


def test_a_new_current_policy_keeps_the_one_it_replaces(dataset):
    first = policy.set_policy(dataset, policy.Policy(("cat",), 0.95, 0.1))
    second = policy.set_policy(dataset, policy.Policy(("dog",), 0.95, 0.1))
    assert second.version == first.version + 1
    assert policy.version_of(dataset, first.version) == first
    assert policy.policy_of(dataset) == second
    # the default policy (no unsafe class) was the current one before: kept as well
    assert set(in_database(dataset)[policy.HISTORY_KEY]) == {"1", str(first.version),
                                                             str(second.version)}
    assert policy.set_policy(dataset, policy.Policy(("dog",), 0.95, 0.1)) == second  # same rules


def test_two_imports_never_drop_each_others_record(dataset):
    """Each import rewrote the whole `importing` map from its copy, so one finishing in the
    moment between another's read and write dropped it; records are written one by one now
    (escaped: a host name's dots would be a MongoDB path)."""
    from shotlab.curate.import_common import end_import, imports, start_import

    ours = start_import(dataset, "/src/a", 10)
    theirs = {"path": "/src/b", "files": 5, "started": "2026-12-02T12:00:00Z"}
    written_elsewhere(dataset, "importing.other%2Ehost:77", theirs)  # another host's, running
    end_import(dataset, ours)
    dataset.reload()
    assert imports(dataset) == {"other.host:77": theirs}
