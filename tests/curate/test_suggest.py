"""`curate suggest`: uncertain and diverse picks on planted clusters, and the command end to end."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from shotlab.cli import cli
from shotlab.core import store
from shotlab.core.errors import InputError
from shotlab.core.images import sha256_file
from shotlab.curate.suggest import rank_to_label as rank
from shotlab.train.baselines import make_classifier
from tests.train.trainsets import COLOURS, noisy_colour


def planted(seed=0, dim=16, per_cluster=30):
    """Six tight clusters on separate axes; clusters 0 and 1 have three labelled points each
    (classes a and b); the pool holds every cluster plus five points halfway between 0 and 1."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:6] * 5
    pool = [c + rng.normal(0, 0.3, (per_cluster, dim)) for c in centres]
    between = (centres[0] + centres[1]) / 2 + rng.normal(0, 0.3, (5, dim))
    labelled = np.concatenate([centres[0] + rng.normal(0, 0.3, (3, dim)),
                               centres[1] + rng.normal(0, 0.3, (3, dim))])
    cluster = np.repeat(np.arange(6), per_cluster).tolist() + [-1] * 5  # -1: between 0 and 1
    return labelled, [("a",)] * 3 + [("b",)] * 3, np.concatenate(pool + [between]), cluster


def rank_to_label(*args, **kw):
    return rank(*args, classifier=partial(make_classifier, "logreg"), **kw)


def test_picks_cover_the_unlabelled_clusters_and_the_uncertain_boundary():
    labelled, labels, pool, cluster = planted()
    picked = rank_to_label(labelled, labels, pool, budget=6)
    reached = {cluster[i] for i in picked.order}
    assert {2, 3, 4, 5} <= reached  # every cluster nobody labelled, one pick each
    assert -1 in reached  # and the boundary between the two labelled classes
    assert len(picked.order) == len(set(picked.order)) == 6
    # uncertainty alone would spend the whole budget on the boundary's five points
    by_uncertainty = np.argsort(-picked.uncertainty)[:6]
    assert len({cluster[i] for i in by_uncertainty}) < len(reached)


def test_random_picks_cover_fewer_clusters_on_average():
    labelled, labels, pool, cluster = planted()
    rng = np.random.default_rng(0)
    random_cover = np.mean([len({cluster[i] for i in rng.choice(len(pool), 6, replace=False)})
                            for _ in range(200)])
    assert len({cluster[i] for i in rank_to_label(labelled, labels, pool, 6).order}) > random_cover


def test_without_two_labelled_classes_it_is_a_coverage_selection():
    _, _, pool, cluster = planted()
    picked = rank_to_label(np.zeros((0, pool.shape[1])), [], pool, budget=6)
    assert (picked.uncertainty == 1).all()
    assert len({cluster[i] for i in picked.order}) >= 6
    with pytest.raises(InputError, match="budget"):
        rank_to_label(np.zeros((0, pool.shape[1])), [], pool, budget=0)


def test_coverage_stays_in_0_1_once_the_pool_is_covered():
    """With a copy of a labelled point and a copy of a pool point, the budget outlasts the
    distinct points: float noise (~1e-16) was then the scale, and coverage read 1.00 for the
    labelled image's copy, -2.00 and -0.67 for others."""
    labelled, labels, pool, _ = planted(per_cluster=3)
    pool = np.concatenate([pool, labelled[:2], pool[:3]])
    picked = rank_to_label(labelled, labels, pool, budget=len(pool))
    assert sorted(picked.order) == list(range(len(pool)))
    assert ((picked.coverage >= 0) & (picked.coverage <= 1)).all()
    covered = int(np.argmin(picked.coverage))  # the first pick with nothing left to cover
    assert picked.coverage[covered] == 0 and (picked.coverage[covered:] == 0).all()
    assert picked.coverage[0] > 0.5


def test_multilabel_uncertainty_is_the_least_certain_class():
    labelled, _, pool, cluster = planted()
    labels = [("a",)] * 3 + [("a", "b")] * 3
    picked = rank_to_label(labelled, labels, pool, budget=5, multilabel=True)
    assert picked.uncertainty.shape == (len(pool),) and -1 in {cluster[i] for i in picked.order}


@pytest.mark.fiftyone
def test_suggest_ranks_the_unlabeled_images_and_saves_the_view(tmp_path, dataset_name):
    """Labelled red and green images; an unlabeled pool of red, green, blue and yellow: the
    colours nobody labelled come first, only unlabeled images are ranked, no file changes."""
    from shotlab.curate.importer import import_path

    rng = np.random.default_rng(5)
    rows = ["filepath,label"]
    for colour, labelled, unlabeled in (("red", 4, 6), ("green", 4, 6), ("blue", 0, 6),
                                        ("yellow", 0, 6)):
        for i in range(labelled + unlabeled):
            path = tmp_path / f"{colour}_{i}.png"
            Image.fromarray(noisy_colour(COLOURS[colour], rng)).save(path)
            rows.append(f"{path},{colour if i < labelled else ''}")
    (tmp_path / "pool.csv").write_text("\n".join(rows) + "\n")
    import_path(tmp_path / "pool.csv", dataset_name, progress=False)
    before = {p: sha256_file(p) for p in tmp_path.glob("*.png")}

    result = CliRunner().invoke(cli, ["curate", "suggest", dataset_name, "--budget", "4",
                                      "--backbone", "tiny-test", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["pool"] == 24 and summary["labelled"] == 8 and len(summary["suggested"]) == 4
    colours = [s["filepath"].rsplit("/", 1)[1].split("_")[0] for s in summary["suggested"]]
    assert {"blue", "yellow"} <= set(colours[:2])  # the unlabelled colours first
    dataset = store.load(dataset_name)
    view = dataset.load_saved_view("to-label")
    assert view.values("filepath") == [s["filepath"] for s in summary["suggested"]]
    assert view.values("to_label_rank") == [1, 2, 3, 4]
    assert all(v is None for v in view.values("ground_truth"))
    assert before == {p: sha256_file(p) for p in tmp_path.glob("*.png")}

    assert summary["copies"] == [] and summary["changed"] == []
    # a file rewritten since import was ranked as it is now without a word (`check` says it)
    changed = tmp_path / "blue_0.png"
    Image.fromarray(noisy_colour(COLOURS["yellow"], rng)).save(changed)
    again = CliRunner().invoke(cli, ["curate", "suggest", dataset_name, "--budget", "2",
                                     "--backbone", "tiny-test"])
    assert again.exit_code == 0 and "2 of 24 unlabeled images" in again.output
    assert f"Warning: 1 file changed since import (first: {changed})" in again.output
    assert len(store.load(dataset_name).load_saved_view("to-label")) == 2  # old ranks cleared


@pytest.mark.fiftyone
def test_byte_copies_of_labelled_images_are_left_out_and_said(tmp_path, dataset_name):
    """An unlabeled byte copy of a labelled image was suggested (coverage 1.00, noise over
    noise): labelling it teaches nothing its twin has not."""
    from shotlab.curate.importer import import_path

    rng = np.random.default_rng(3)
    rows = ["filepath,label"]
    for name, colour, label in (("r0", "red", "red"), ("g0", "green", "green"),
                                ("b0", "blue", ""), ("y0", "yellow", "")):
        Image.fromarray(noisy_colour(COLOURS[colour], rng)).save(tmp_path / f"{name}.png")
        rows.append(f"{name}.png,{label}")
    (tmp_path / "copy.png").write_bytes((tmp_path / "r0.png").read_bytes())
    (tmp_path / "pool.csv").write_text("\n".join(rows + ["copy.png,"]) + "\n")
    import_path(tmp_path / "pool.csv", dataset_name, progress=False)
    args = ["curate", "suggest", dataset_name, "--budget", "5", "--backbone", "tiny-test"]
    summary = json.loads(CliRunner().invoke(cli, args + ["--json"]).stdout)
    assert summary["pool"] == 2 and summary["copies"] == [str(tmp_path / "copy.png")]
    assert {s["filepath"].rsplit("/", 1)[1] for s in summary["suggested"]} == {"b0.png", "y0.png"}
    assert all(0 <= s["coverage"] <= 1 for s in summary["suggested"])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (f"Left out 1 unlabeled byte copy of a labelled image (first: {tmp_path / 'copy.png'})"
            in result.output)


def test_an_outlier_waits_until_the_clusters_are_covered():
    """One off-topic image far from everything: coverage alone would pick it first."""
    labelled, labels, pool, cluster = planted()
    outlier = np.zeros((1, pool.shape[1]))
    outlier[0, 10] = 9.0
    picked = rank_to_label(labelled, labels, np.concatenate([pool, outlier]), budget=4)
    assert len(pool) not in picked.order  # the four unlabelled clusters come first
    assert {cluster[i] for i in picked.order} == {2, 3, 4, 5}
    assert picked.density[len(pool)] == 0.25  # the least dense sample: a quarter weight


@pytest.mark.fiftyone
def test_suggest_refuses_a_multilabel_dataset(tmp_path, dataset_name):
    """In a multilabel set an image without classes is a labelled negative ('safe'), which
    training uses: it is not unlabeled, so there is no pool, and nothing is written."""
    from shotlab.curate.importer import import_path

    rng = np.random.default_rng(1)
    rows = ["filepath,label"]
    for i, label in enumerate(["red", "red;green", "green", "", ""]):
        path = tmp_path / f"img_{i}.png"
        Image.fromarray(noisy_colour(COLOURS["red"], rng)).save(path)
        rows.append(f"{path},{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    import_path(tmp_path / "labels.csv", dataset_name, multilabel=True, progress=False)

    result = CliRunner().invoke(cli, ["curate", "suggest", dataset_name, "--budget", "2",
                                      "--backbone", "tiny-test"])
    assert result.exit_code != 0
    assert f"'{dataset_name}' is multilabel" in result.output
    assert "not unlabeled" in result.output and "Traceback" not in result.output
    dataset = store.load(dataset_name)
    assert "to_label_rank" not in dataset.get_field_schema()
    assert "to-label" not in dataset.list_saved_views()
