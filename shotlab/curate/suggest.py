"""What to label next: unlabeled samples ranked by uncertainty and coverage, on embeddings.

    picked = rank_to_label(labelled, labels, pool, budget=20)   # indices into `pool`, best first

The mix (documented in docs/curate-suggest.md): a logistic regression on the labelled embeddings
gives each pool sample an **uncertainty** u in [0, 1] (1 - the margin between its two most
likely classes; for multilabel, the least certain class's 1 - |2p - 1|). **Coverage** d is the
cosine distance from the sample to the nearest labelled or already picked sample, divided by
the largest such distance. Samples are picked greedily, each time the one with the highest
u * d, and d is updated after every pick: uncertain samples far from anything labelled come
first, and a tight cluster of equally uncertain images yields one pick, not twenty (the weakness
of ranking by uncertainty alone). With fewer than two classes labelled there is no classifier
yet, and u is 1: the picks are then a pure coverage (k-centre) selection.

Arrays only: the command (shotlab/commands/suggest.py) brings the embeddings and the dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shotlab.core.errors import InputError


@dataclass
class Suggestion:
    order: list[int]  # indices into the pool, in the order picked
    uncertainty: np.ndarray  # per pool sample
    coverage: np.ndarray  # per picked sample: its normalised distance when it was picked


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def uncertainty(labelled: np.ndarray, labels: Sequence[tuple[str, ...]], pool: np.ndarray,
                *, multilabel: bool = False, seed: int = 0) -> np.ndarray:
    """Per pool sample, in [0, 1]; all ones when fewer than two classes are labelled."""
    from sklearn.linear_model import LogisticRegression

    classes = sorted({c for row in labels for c in row})
    if len(classes) < 2 or len(pool) == 0:
        return np.ones(len(pool))
    if not multilabel:
        y = np.array([row[0] for row in labels])
        model = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
        top = np.sort(model.fit(labelled, y).predict_proba(pool), axis=1)
        return 1.0 - (top[:, -1] - top[:, -2])
    u = np.zeros(len(pool))
    for name in classes:
        y = np.array([name in row for row in labels])
        if y.all() or not y.any():
            continue
        model = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
        p = model.fit(labelled, y).predict_proba(pool)[:, 1]
        u = np.maximum(u, 1.0 - np.abs(2 * p - 1))
    return u


def rank_to_label(labelled, labels: Sequence[tuple[str, ...]], pool, budget: int, *,
                  multilabel: bool = False, seed: int = 0) -> Suggestion:
    """Up to `budget` pool indices, greedily by uncertainty x coverage (module docstring)."""
    if budget < 1:
        raise InputError(f"--budget must be at least 1; got {budget}")
    pool, labelled = unit(pool), unit(labelled) if len(labelled) else np.zeros((0, np.shape(pool)[1]))
    u = uncertainty(labelled, labels, pool, multilabel=multilabel, seed=seed)
    nearest = (1.0 - (pool @ labelled.T).max(axis=1)) if len(labelled) else np.full(len(pool), 2.0)
    order, coverage = [], []
    for _ in range(min(budget, len(pool))):
        scale = nearest.max() or 1.0
        score = u * (nearest / scale)
        score[order] = -1.0
        pick = int(np.argmax(score))
        order.append(pick)
        coverage.append(float(nearest[pick] / scale))
        nearest = np.minimum(nearest, 1.0 - pool @ pool[pick])
    return Suggestion(order, u, np.array(coverage))


RANK_FIELD = "to_label_rank"  # 1 = label first; None for samples not suggested this time
VIEW = "to-label"


def suggest_for(name: str, budget: int, embed, *, seed: int = 0) -> dict:
    """Rank dataset `name`'s unlabeled samples (not tagged 'exclude') with `embed(paths,
    sha256s)`, write RANK_FIELD and the saved view VIEW; returns a summary."""
    from shotlab.core import store
    from shotlab.curate.checks.run import load_samples

    dataset = store.load(name)
    samples = load_samples(dataset)
    pool = [i for i, labels in enumerate(samples.labels) if not labels]
    if not pool:
        raise InputError(f"dataset '{name}' has no unlabeled samples to suggest from; import "
                         f"images without labels (a CSV row 'path,' with an empty label)")
    vectors = embed(samples.paths, samples.sha256s)
    known = [i for i, labels in enumerate(samples.labels) if labels]
    picked = rank_to_label(vectors[known], [samples.labels[i] for i in known], vectors[pool],
                           budget, multilabel=samples.task == "multilabel", seed=seed)
    ids = [samples.ids[pool[j]] for j in picked.order]
    write_ranks(dataset, ids)
    return {"name": name, "pool": len(pool), "labelled": len(known), "budget": budget,
            "view": VIEW, "suggested": [
                {"id": samples.ids[pool[j]], "filepath": samples.paths[pool[j]],
                 "uncertainty": round(float(picked.uncertainty[j]), 4),
                 "coverage": round(float(c), 4)} for j, c in zip(picked.order, picked.coverage)]}


def write_ranks(dataset, ids: list[str]) -> None:
    """RANK_FIELD 1..len(ids) on `ids` (None elsewhere) and the saved view VIEW in that order."""
    from shotlab.core import store

    store.fiftyone()
    from fiftyone import ViewField as F

    rank = {sample_id: i + 1 for i, sample_id in enumerate(ids)}
    dataset.set_values(RANK_FIELD, [rank.get(i) for i in dataset.values("id")])
    view = dataset.match(F(RANK_FIELD) != None).sort_by(RANK_FIELD)  # noqa: E711 (a query)
    dataset.save_view(VIEW, view, overwrite=True)
