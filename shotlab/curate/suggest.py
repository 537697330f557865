"""What to label next: unlabeled samples ranked by uncertainty, coverage and density.

    picked = rank_to_label(labelled, labels, pool, budget=20, classifier=make)   # pool indices

The mix (docs/curate-suggest.md). Features are centred on the mean of every sample and scaled
to unit length (raw embeddings of ReLU networks all sit at cosine ~1). For each pool sample:
- **uncertainty** u in [0, 1]: `classifier()` (a scikit-learn classifier the caller brings: the
  command passes train's few-shot logistic regression) fitted on the labelled samples, then 1 -
  the margin between the two most likely classes (multilabel: the least certain class's
  1 - |2p - 1|). With fewer than two classes labelled there is no classifier yet: u = 1.
- **coverage** d in [0, 1]: cosine distance to the nearest labelled or already picked sample,
  divided by the largest such distance (0 for all once every sample is covered: distances
  under COVERED are float noise);
- **density** r: mean cosine similarity to its DENSITY_NEIGHBOURS nearest pool neighbours,
  scaled to [0.5, 1] and squared, so in [0.25, 1]: an outlier (a corrupt or off-topic image) is
  far from everything, and coverage alone would pick it first; quartering its score, rather
  than zeroing it, still lets a small group (a rare class, a class boundary) in once the big
  clusters are covered. The square (over [0.5, 1] as such) was 1 to 2 points ahead at 30 to 110
  labels on two Fashion-MNIST pools (100 and 200 a class); the cube was behind it.
Picks are greedy: each time the sample with the highest u x d x r (u x r once d is 0 for all),
then d is updated. `suggest_for` leaves byte copies of labelled samples out of the pool. A tight
cluster of equally uncertain images yields one pick, not twenty. Measured on Fashion-MNIST
(benchmarks/label_efficiency.py): u x d alone was behind random picks; with r it is ahead.

Arrays only: the command (shotlab/commands/suggest.py) brings the embeddings and the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shotlab.core.errors import InputError

DENSITY_NEIGHBOURS = 10  # a local neighbourhood on pools of a few hundred to tens of thousands


@dataclass
class Suggestion:
    order: list[int]  # indices into the pool, in the order picked
    uncertainty: np.ndarray  # per pool sample
    coverage: np.ndarray  # per picked sample: its normalised distance when it was picked
    density: np.ndarray  # per pool sample


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def uncertainty(labelled: np.ndarray, labels: Sequence[tuple[str, ...]], pool: np.ndarray,
                classifier: Callable, *, multilabel: bool = False) -> np.ndarray:
    """Per pool sample, in [0, 1]; all ones when fewer than two classes are labelled."""
    classes = sorted({c for row in labels for c in row})
    if len(classes) < 2 or len(pool) == 0:
        return np.ones(len(pool))
    if not multilabel:
        model = classifier().fit(labelled, np.array([row[0] for row in labels]))
        top = np.sort(model.predict_proba(pool), axis=1)
        return 1.0 - (top[:, -1] - top[:, -2])
    y = np.array([[name in row for name in classes] for row in labels], dtype=int)
    informative = (y.min(axis=0) == 0) & (y.max(axis=0) == 1)  # a class with both answers
    if not informative.any():
        return np.ones(len(pool))
    p = classifier(task="multilabel").fit(labelled, y[:, informative]).predict_proba(pool)
    return (1.0 - np.abs(2 * np.asarray(p) - 1)).max(axis=1)


def density(pool: np.ndarray, neighbours: int = DENSITY_NEIGHBOURS) -> np.ndarray:
    """Mean cosine similarity to the nearest `neighbours` others, scaled to [0.5, 1], squared:
    [0.25, 1], rising faster towards the dense regions."""
    k = min(neighbours, len(pool) - 1)
    if k < 1:
        return np.ones(len(pool))
    sims = np.empty(len(pool))
    for start in range(0, len(pool), 1024):  # bounded memory on large pools
        block = pool[start:start + 1024] @ pool.T
        sims[start:start + 1024] = np.sort(block, axis=1)[:, -k - 1:-1].mean(axis=1)
    low, high = sims.min(), sims.max()
    if high <= low:
        return np.ones(len(pool))
    return (0.5 + 0.5 * (sims - low) / (high - low)) ** 2


def rank_to_label(labelled, labels: Sequence[tuple[str, ...]], pool, budget: int, *,
                  classifier: Callable, multilabel: bool = False) -> Suggestion:
    """Up to `budget` pool indices, greedily by uncertainty x coverage x density."""
    if budget < 1:
        raise InputError(f"--budget must be at least 1; got {budget}")
    pool = np.asarray(pool, dtype=np.float64)
    labelled = np.asarray(labelled, dtype=np.float64).reshape(-1, pool.shape[1])
    centre = np.concatenate([pool, labelled]).mean(axis=0)
    pool, labelled = unit(pool - centre), unit(labelled - centre)
    u = uncertainty(labelled, labels, pool, classifier, multilabel=multilabel)
    r = density(pool)
    nearest = (distance(pool, labelled).min(axis=1) if len(labelled)
               else np.full(len(pool), 2.0))
    order, coverage = [], []
    for _ in range(min(budget, len(pool))):
        d = normalised(nearest)
        # once every sample sits on a labelled or picked one, rank the rest on u x r alone
        score = u * r * (d if d.any() else 1.0)
        score[order] = -1.0
        pick = int(np.argmax(score))
        order.append(pick)
        coverage.append(float(d[pick]))
        nearest = np.minimum(nearest, distance(pool, pool[pick:pick + 1])[:, 0])
    return Suggestion(order, u, np.array(coverage), r)


# Cosine distances below this are float noise (an exact copy scores ~1e-16, either sign).
COVERED = 1e-9


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine distance of unit rows, in [0, 2], with float noise around 0 read as 0."""
    d = np.clip(1.0 - a @ b.T, 0.0, 2.0)
    return np.where(d < COVERED, 0.0, d)


def normalised(nearest: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1]: each distance over the largest; all 0 when every sample is covered
    (dividing noise by noise gave 1.00 to an exact copy of a labelled image, and -2.00)."""
    scale = nearest.max(initial=0.0)
    return nearest / scale if scale > 0 else np.zeros_like(nearest)


RANK_FIELD = "to_label_rank"  # 1 = label first; None for samples not suggested this time
VIEW = "to-label"
# How a dataset of each kind gets samples without labels.
UNLABELED_HOW = {"image": "images without labels (a CSV row 'path,' with an empty label)",
                 "text": "comments without labels (a row whose label is empty)",
                 "post": "posts without labels (a row whose label is empty)"}


def suggest_for(name: str, budget: int, embed, classifier: Callable) -> dict:
    """Rank dataset `name`'s unlabeled samples (not tagged 'exclude') with `embed(paths,
    sha256s)` and `classifier` (see rank_to_label), write RANK_FIELD and the saved view VIEW;
    returns a summary. Multiclass datasets only (refuse_multilabel)."""
    from shotlab.core import store
    from shotlab.curate.checks.run import load_samples

    dataset = store.load(name)
    refuse_multilabel(dataset)
    samples = load_samples(dataset)
    unlabeled = [i for i, labels in enumerate(samples.labels) if not labels]
    if not unlabeled:
        raise InputError(f"dataset '{name}' has no unlabeled samples to suggest from; import "
                         f"{UNLABELED_HOW.get(store.kind_of(dataset), UNLABELED_HOW['image'])}")
    known = [i for i, labels in enumerate(samples.labels) if labels]
    pool, copies = split_copies(unlabeled, known, samples)
    if not pool:
        raise InputError(f"dataset '{name}': its {len(copies)} unlabeled samples are all byte "
                         f"copies of labelled ones (first: {samples.paths[copies[0]]}); nothing "
                         f"to learn from labelling them: tag them 'exclude' in the App and run "
                         f"`shotlab curate apply {name}`")
    vectors = embed(samples.inputs, samples.sha256s)  # image paths, or a text dataset's comments
    picked = rank_to_label(vectors[known], [samples.labels[i] for i in known], vectors[pool],
                           budget, classifier=classifier, multilabel=samples.task == "multilabel")
    ids = [samples.ids[pool[j]] for j in picked.order]
    write_ranks(dataset, ids)
    return {"name": name, "pool": len(pool), "labelled": len(known), "budget": budget,
            "view": VIEW, "copies": [samples.paths[i] for i in copies],
            "changed": list(samples.changed), "suggested": [
                {"id": samples.ids[pool[j]], "filepath": samples.paths[pool[j]],
                 "uncertainty": round(float(picked.uncertainty[j]), 4),
                 "coverage": round(float(c), 4), "density": round(float(picked.density[j]), 4)}
                for j, c in zip(picked.order, picked.coverage)]}


def split_copies(unlabeled: list[int], known: list[int], samples) -> tuple[list[int], list[int]]:
    """The unlabeled samples to rank, and those left out as byte copies (same sha256) of a
    labelled sample: labelling one teaches nothing its twin has not (they would score coverage
    0 and sort last anyway, taking a pick once the rest is covered)."""
    labelled = {samples.sha256s[i] for i in known} - {None, ""}
    copies = [i for i in unlabeled if samples.sha256s[i] in labelled]
    return [i for i in unlabeled if samples.sha256s[i] not in labelled], copies


def refuse_multilabel(dataset) -> None:
    """A multilabel sample without classes is a labelled negative for every class (train uses
    it), not unlabeled: there is no pool to rank."""
    from shotlab.core import store

    if store.task_of(dataset) == "multilabel":
        raise InputError(f"`curate suggest` needs a multiclass dataset; '{dataset.name}' is "
                         f"multilabel, where a sample without labels is a negative for every "
                         f"class, not unlabeled: there is no pool to suggest from")


def write_ranks(dataset, ids: list[str]) -> None:
    """RANK_FIELD 1..len(ids) on `ids` (None elsewhere) and the saved view VIEW in that order."""
    from shotlab.core import store

    store.fiftyone()
    from fiftyone import ViewField as F

    rank = {sample_id: i + 1 for i, sample_id in enumerate(ids)}
    dataset.set_values(RANK_FIELD, [rank.get(i) for i in dataset.values("id")])
    view = dataset.match(F(RANK_FIELD) != None).sort_by(RANK_FIELD)  # noqa: E711 (a query)
    dataset.save_view(VIEW, view, overwrite=True)
