"""Label issues: cleanlab's confident learning on out-of-fold predicted probabilities.

A logistic regression on the embeddings is cross-validated, so every sample's probabilities come
from a model that never saw it. Few-shot sets break plain 5-fold (a class of 3 images cannot
appear in 5 folds), so the folds adapt to the smallest class: K = min(5, smallest class), at least
2, stratified and repeated with different shuffles, the repeats averaged. A class with fewer than
`MIN_CLASS_SIZE` samples cannot be held out and learnt at once: it is reported as too small to
judge and its samples are never flagged.

Samples that belong together (`groups`: byte copies, duplicate clusters, a clip's frames, a
comment thread; core/groups.py) are held out together and are not each other's neighbours, and a
class counts its groups, not its samples: a copy learnt in the other folds vouched for its twin,
so an image uploaded twice with the same wrong label was rarely flagged (on Fashion-MNIST with
4% of the images copied and both copies mislabelled, 40% of them were flagged; held out
together, 91%: benchmarks/label_check_copies.py).

Beside the classifier, a neighbour score: the share of each sample's `KNN_NEIGHBOURS` nearest
others (cosine, on centred embeddings) given each class, blended in at `KNN_WEIGHT` where every
class has more than `KNN_NEIGHBOURS` samples (with fewer, a small class's samples could never
find enough of their own). The samples flagged are the lowest self-confidence ones, `FLAG_SHARE`
times as many as cleanlab estimates are mislabelled. These settings were chosen on three public
sets (Fashion-MNIST, the sample set, scikit-image's LFW faces), by how many reach F1 0.85 at 20%
flipped labels and then the lowest F1, and checked on draws they were not chosen on
(`benchmarks/label_check_grid.py`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from shotlab.core.folds import repeated_folds
from shotlab.core.groups import grouped_count
from shotlab.curate.checks.base import CheckResult, empty_result

NAME = "label"
# One sample to learn from and one to hold out: the least a class needs to be judged at all.
MIN_CLASS_SIZE = 2
MAX_FOLDS = 5  # cleanlab's own default for cross-validated pred_probs
# Repeats average out the luck of one split; with few samples per class a single 2- or 3-fold
# split moves scores a lot, and the classifier is cheap. Measured in benchmarks/label_errors.py.
REPEATS = 3
# L2 penalty per training sample (sklearn's C = 1 / (alpha * n_train)), so the strength does not
# drift with the dataset's size. Strong, because with tens of images per class and 1,000+
# dimensions a weakly regularised model fits the noisy labels it is meant to question
# (benchmarks/label_errors.md, 20% noise: F1 0.77 at alpha 0.03, 0.85 at alpha 1).
DEFAULT_ALPHA = 1.0
# Flag the lowest self-confidence samples, not cleanlab's default (prune_by_noise_rate), which
# also flags samples the model itself confuses (benchmarks/label_errors.md, all filters) ...
DEFAULT_FILTER = "low_self_confidence"
# ... 0.9 times as many as cleanlab estimates are mislabelled: its estimate runs high on few-shot
# sets (flags 0.76 precise at 0.94 recall on Fashion-MNIST at 20%).
FLAG_SHARE = 0.9
KNN_NEIGHBOURS = 10
KNN_WEIGHT = 0.25  # of the neighbour score against the classifier's probabilities


def fold_count(class_sizes) -> int:
    return max(2, min(MAX_FOLDS, min(class_sizes)))


def make_classifier(alpha: float, n_train: int):
    """Standardised embeddings into an L2 logistic regression with penalty `alpha` per sample."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(),
                         LogisticRegression(C=1.0 / (alpha * n_train), max_iter=2000))


def out_of_fold_probs(features: np.ndarray, y: np.ndarray, *, folds: int, repeats: int = REPEATS,
                      alpha: float = DEFAULT_ALPHA, seed: int = 0,
                      groups: np.ndarray | None = None) -> np.ndarray:
    """(n, k) probabilities, each row from models that did not see that sample (nor, with
    `groups`, any sample of its group), averaged over `repeats` stratified K-fold splits. Every
    class in `y` needs at least `folds` samples (groups)."""
    probs = np.zeros((len(y), int(y.max()) + 1))
    with one_blas_thread():
        for train, test in repeated_folds(y, folds=folds, repeats=repeats, seed=seed,
                                          groups=groups):
            model = make_classifier(alpha, len(train)).fit(features[train], y[train])
            # grouped folds may leave a class out of a fit; its column stays 0 there
            probs[np.ix_(test, model.classes_)] += model.predict_proba(features[test])
    return probs / repeats


def one_blas_thread():
    """Fits this small run faster on one BLAS thread: on a busy 2-core machine a 500 x 1280
    logistic regression took 5 s with the default threads and 0.15 s with one."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def too_small_note(small: dict[str, int], sizes: Counter) -> list[str]:
    """Why each of `small` ({class: its groups}) is not judged; `sizes`: its samples."""
    return [f"class '{c}' has {sizes[c]} sample{'s' * (sizes[c] != 1)}"
            + (f" that all belong together (copies, a duplicate cluster, a clip or a thread): "
               f"too small to judge its labels (needs {MIN_CLASS_SIZE} unrelated ones)"
               if sizes[c] > k else f": too small to judge its labels (needs {MIN_CLASS_SIZE})")
            + "; add more images" for c, k in sorted(small.items())]


def class_groups(labels: list[str | None], groups: np.ndarray | None) -> Counter:
    """Per class, how many groups hold it (its samples, where `groups` is None)."""
    if groups is None:
        return Counter(l for l in labels if l is not None)
    return Counter(l for l, _ in {(l, g) for l, g in zip(labels, groups) if l is not None})


def find_label_issues(labels: list[str | None], features: np.ndarray, *, repeats: int = REPEATS,
                      alpha: float = DEFAULT_ALPHA, seed: int = 0,
                      groups: np.ndarray | None = None) -> CheckResult:
    """Label issues of a multiclass set: `labels[i]` is sample i's class (None: unlabeled);
    `groups[i]` its group (None: every sample alone; module docstring).

    Writes `label_score` (1 - cleanlab's self-confidence quality), `is_label_issue`,
    `label_suggestion` (the class the out-of-fold model prefers) and
    `label_suggestion_confidence` (its probability) on flagged samples.
    """
    import cleanlab.rank

    n = len(labels)
    sizes = class_groups(labels, groups)
    small = {c: k for c, k in sizes.items() if k < MIN_CLASS_SIZE}
    classes = sorted(c for c in sizes if c not in small)
    judged = np.array([l in classes for l in labels], bool)
    notes = too_small_note(small, class_groups(labels, None))
    if len(classes) < 2:
        return empty_result(NAME, n, "fewer than 2 classes with enough samples: label issues "
                                     "not judged") if not small else \
            CheckResult(NAME, np.full(n, np.nan), np.zeros(n, bool), notes=notes)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[l] for l in np.asarray(labels, object)[judged]])
    held = None if groups is None else np.asarray(groups)[judged]
    folds = fold_count([sizes[c] for c in classes])
    probs = out_of_fold_probs(features[judged], y, folds=folds, repeats=repeats, alpha=alpha,
                              seed=seed, groups=held)
    knn = knn_weight(np.bincount(y))
    if knn:
        probs = (1 - knn) * probs + knn * neighbour_shares(features[judged], y, groups=held)
    quality = cleanlab.rank.get_label_quality_scores(y, probs, method="self_confidence")
    flagged = lowest_self_confidence(y, probs, quality)
    return judged_result(n, judged, flagged, 1.0 - quality, probs.argmax(1), probs.max(1), classes,
                         notes=notes,
                         details={"folds": folds, "repeats": repeats, "alpha": alpha,
                                  "filter_by": DEFAULT_FILTER, "flag_share": FLAG_SHARE,
                                  "knn_weight": knn, "classes_judged": classes,
                                  "too_small": small, "grouped": grouped_count(held)})


def knn_weight(class_sizes) -> float:
    """The neighbour score's weight: KNN_WEIGHT where every class has more than KNN_NEIGHBOURS
    samples, else 0."""
    return KNN_WEIGHT if min(class_sizes) > KNN_NEIGHBOURS else 0.0


def neighbour_shares(features: np.ndarray, y: np.ndarray, k: int = KNN_NEIGHBOURS,
                     chunk: int = 512, groups: np.ndarray | None = None) -> np.ndarray:
    """(n, classes): for each sample, the share of its k nearest others (cosine similarity on
    centred embeddings) labelled with each class, never itself nor (with `groups`) a sample of
    its group; `chunk` rows at a time, so memory stays O(chunk x n), not O(n^2)."""
    x = features - features.mean(axis=0)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    shares = np.zeros((len(y), int(y.max()) + 1))
    k = min(k, len(y) - 1)
    for start in range(0, len(y), chunk):
        similarity = x[start:start + chunk] @ x.T
        rows = np.arange(len(similarity))
        similarity[rows, start + rows] = -np.inf  # not its own neighbour
        if groups is not None:
            similarity[groups[start:start + chunk, None] == groups[None, :]] = -np.inf
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        counted = np.isfinite(np.take_along_axis(similarity, nearest, axis=1))
        for c in range(shares.shape[1]):
            shares[start:start + chunk, c] = ((y[nearest] == c) & counted).sum(axis=1) / \
                np.maximum(counted.sum(axis=1), 1)
    return shares


def lowest_self_confidence(y: np.ndarray, probs: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Positions of the FLAG_SHARE x cleanlab's estimate of mislabelled samples with the lowest
    `quality` (each sample's probability of its given class), lowest first."""
    import cleanlab.count

    count = int(round(FLAG_SHARE * cleanlab.count.num_label_issues(y, probs)))
    return np.argsort(quality, kind="stable")[:count]


def judged_result(n: int, judged: np.ndarray, flagged, scores, suggested, confidence, classes,
                  *, notes: list[str], details: dict) -> CheckResult:
    """Spread the results on the judged samples back over all n samples."""
    all_scores = np.full(n, np.nan)
    all_scores[judged] = scores
    issues = np.zeros(n, bool)
    issues[np.flatnonzero(judged)[flagged]] = True
    suggestion: list = [None] * n
    suggestion_conf: list = [None] * n
    for row, position in enumerate(np.flatnonzero(judged)):
        if issues[position]:
            suggestion[position] = suggested[row] if isinstance(suggested[row], str) \
                else classes[suggested[row]]
            suggestion_conf[position] = round(float(confidence[row]), 4)
    return CheckResult(NAME, all_scores, issues, {"label_suggestion": suggestion,
                                                  "label_suggestion_confidence": suggestion_conf},
                       notes=notes, details=details)
