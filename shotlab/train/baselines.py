"""Baselines: the scikit-learn classifiers every fine-tuned model is benchmarked against.

    make_classifier("logreg")            # on precomputed embeddings, float32 (n, d)
    make_baseline("hog", "logreg")       # on PIL images or image paths
    for features, classifier in BASELINES: make_baseline(features, classifier, seed=seed)

Each is a Pipeline (so it follows the scikit-learn contract: `fit` returns self, `classes_`,
`predict_proba`), deterministic given `seed`, and works at 5-50 images per class, down to a class
with a single image. With task="multilabel", y is an (n, k) 0/1 matrix and each label gets its
own binary classifier (OneVsRestClassifier): `predict_proba` is then (n, k), one independent
probability per label.

Every classifier sees centred, L2-normalised features (SimpleShot's "CL2N", Wang et al. 2019):
- L2: feature scales differ from backbone to backbone (and between classical features); on unit
  vectors one C, and cosine k-NN, mean the same thing on all of them.
- Centring (on the training mean) first: features of ReLU networks are all positive, so raw
  cosines all sit near 1; removing the shared offset spreads them out. A mean of even a few
  samples is a stable estimate.
- Not StandardScaler: with 5-50 samples per class in 512-2048 dimensions, each dimension's std
  comes from a handful of values and near-constant dimensions are blown up into noise. Measured
  on lite0 embeddings (logreg, 12 random episodes): StandardScaler lost 0.12 accuracy at 2 shots
  on both a 6-class clip-art set and Fashion-MNIST (0.39 vs 0.51, 0.51 vs 0.63) and was still
  behind at 10; centring added to L2 changed accuracy by under 0.01 but cut log-loss by 6-9%.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from shotlab.core.errors import InputError
from shotlab.core.tasks import TASKS
from shotlab.train.features import (CLASSICAL_FEATURES, ImageFeatures, check_int,
                                    invalid_parameter, make_features)

EMBEDDINGS = "embeddings"  # the features name for precomputed backbone embeddings

# C for logistic regression on centred unit vectors. Accuracy is flat from C = 3 up; log-loss is
# what C changes. Measured on lite0 embeddings (12 random episodes per point, 2-50 shots, clip-art
# and Fashion-MNIST): C = 1 (sklearn's default) leaves probabilities far too flat (log-loss 1.24
# vs 0.76 at 10 shots). Larger C keeps helping at 2-5 shots, but the best C falls as shots grow:
# at 20 shots C = 100 is already past it, and at 50 C = 10 is within 2% of the best (C = 30).
# A moderate C also leans less on any one (possibly mislabelled) image.
LOGREG_C = 10.0


def class_counts(estimator: BaseEstimator, y) -> tuple[np.ndarray, np.ndarray]:
    """The classes in y and how many samples each has; y must be one label per sample."""
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass"):
        raise InputError(f"{type(estimator).__name__} needs one class label per sample; got "
                         f"{kind} targets (for an (n, k) 0/1 matrix use task='multilabel')")
    return np.unique(y, return_counts=True)


class FewShotLinearSVC(ClassifierMixin, BaseEstimator):
    """LinearSVC with Platt-scaled (sigmoid) probabilities that fits at any number of shots.

    The SVC is always trained on every sample. Its sigmoids are fitted on out-of-fold scores,
    with min(max_folds, smallest class count) stratified folds, once the smallest class has
    `min_class_size_for_cv` samples; below that, on the SVC's own training scores.

    Why not cross-validate at every size (CalibratedClassifierCV's default 5 folds fail outright
    below 5 samples in a class, and 2 folds are possible from 2)? At 2-5 shots the out-of-fold
    scores come from SVCs trained on half to four fifths of an already tiny set, and the
    sigmoids fitted to them re-rank classes. On lite0 embeddings (12 episodes each) accuracy fell
    from 0.51 to 0.36 at 2 shots and from 0.65 to 0.61 at 5 (6 clip-art classes, log-loss worse
    too); on Fashion-MNIST from 0.63 to 0.60 at 2 shots, for a 3-7% better log-loss at 2-5.
    The two were even at 10-20 shots; at 50, out-of-fold had the better log-loss (0.51 vs 0.56)
    at the same accuracy, hence cross-validation from 10 samples in every class. In-sample scores
    are optimistic, but Platt's smoothed targets ((n+ + 1) / (n+ + 2): 2/3 for a class of one)
    keep the sigmoids from claiming certainty. A class of a single sample cannot sit on both
    sides of any split, so it is always calibrated in-sample. `n_folds_` is 1 when in-sample.
    """

    def __init__(self, C: float = 1.0, max_folds: int = 5, min_class_size_for_cv: int = 10,
                 random_state: int | None = None):
        self.C = C
        self.max_folds = max_folds
        self.min_class_size_for_cv = min_class_size_for_cv
        self.random_state = random_state

    def fit(self, X, y) -> FewShotLinearSVC:
        max_folds = check_int(self, "max_folds", self.max_folds, 2)
        min_size = check_int(self, "min_class_size_for_cv", self.min_class_size_for_cv, 2)
        self.classes_, counts = class_counts(self, y)
        X, y = validate_data(self, X, y)
        svc = LinearSVC(C=self.C, random_state=self.random_state)
        smallest = int(counts.min())
        self.n_folds_ = min(max_folds, smallest) if smallest >= min_size else 1
        if self.n_folds_ > 1:
            folds = StratifiedKFold(self.n_folds_, shuffle=True, random_state=self.random_state)
            calibrated = CalibratedClassifierCV(svc, cv=folds, ensemble=False)
        else:  # one "split" that scores every sample with the SVC fitted on all of them
            everything = np.arange(len(y))
            calibrated = CalibratedClassifierCV(FrozenEstimator(svc.fit(X, y)),
                                                cv=[(everything, everything)])
        self.calibrated_ = calibrated.fit(X, y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.calibrated_.predict_proba(validate_data(self, X, reset=False))

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class FewShotKNN(ClassifierMixin, BaseEstimator):
    """Cosine k-NN whose k shrinks to the smallest class: k = min(n_neighbors, smallest count).

    With more neighbours than a class has samples, that class can never fill a neighbourhood, so
    it loses votes it should win. Votes are weighted by 1 / cosine distance so probabilities are
    not just multiples of 1/k. `n_neighbors_` is the k actually used.
    """

    def __init__(self, n_neighbors: int = 5, weights: str = "distance"):
        self.n_neighbors = n_neighbors
        self.weights = weights

    def fit(self, X, y) -> FewShotKNN:
        cap = check_int(self, "n_neighbors", self.n_neighbors, 1)
        if self.weights not in ("uniform", "distance"):
            raise invalid_parameter(self, "weights", "a str among {'uniform', 'distance'}",
                                    self.weights)
        self.classes_, counts = class_counts(self, y)
        X, y = validate_data(self, X, y)
        self.n_neighbors_ = int(min(cap, counts.min()))
        self.knn_ = KNeighborsClassifier(self.n_neighbors_, weights=self.weights,
                                         metric="cosine", algorithm="brute").fit(X, y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.knn_.predict_proba(validate_data(self, X, reset=False))

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _logreg(seed: int) -> BaseEstimator:
    # max_iter: lbfgs needs more than the default 100 steps at a large C on unit vectors.
    return LogisticRegression(C=LOGREG_C, max_iter=1000, random_state=seed)


def _linear_svm(seed: int) -> BaseEstimator:
    # C=1 (LinearSVC's default): Platt rescales the scores, so C only moves the boundary, and on
    # unit vectors C=1 already separates a few-shot set (it matched logreg's accuracy, 2-50 shots).
    return FewShotLinearSVC(C=1.0, max_folds=5, min_class_size_for_cv=10, random_state=seed)


def _knn(seed: int) -> BaseEstimator:
    # At most 5 neighbours: on lite0 embeddings k = 1, 3 and 5 were within 0.02 of each other in
    # accuracy at 2-10 shots; 10 lost 0.04 on the clip-art set at 10 shots. 5 rather than 1 so
    # distance-weighted probabilities are not all exactly 0 or 1.
    return FewShotKNN(n_neighbors=5)


_CLASSIFIERS = {"logreg": _logreg, "linear-svm": _linear_svm, "knn": _knn}
CLASSIFIERS = tuple(_CLASSIFIERS)

# What the benchmark runs by default, beside the fine-tuned models.
BASELINES: tuple[tuple[str, str], ...] = (
    *((EMBEDDINGS, name) for name in CLASSIFIERS),
    *((features, "logreg") for features in CLASSICAL_FEATURES),
)


# Text baselines: scikit-learn pipelines on the comments themselves (no encoder). TF-IDF rows are
# L2-normalised by the vectoriser already (and sparse: centring would densify them), so the
# classifier follows it directly. sublinear_tf: a word said three times is not three times the
# evidence. Word 1-2 grams catch short phrases ("kills me"); character 2-5 grams (inside word
# boundaries) catch spelling variants and word pieces a few-shot vocabulary misses.
def _word_tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)


def _char_ngrams():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)


TEXT_FEATURES = {"tfidf": _word_tfidf, "char-ngrams": _char_ngrams}
# What the benchmark runs on a text dataset, beside the encoder's embeddings and SetFit.
TEXT_BASELINES: tuple[tuple[str, str], ...] = (("tfidf", "logreg"), ("char-ngrams", "logreg"))


def make_text_baseline(features: str, classifier: str = "logreg", *, task: str = "multiclass",
                       seed: int = 0) -> Pipeline:
    """A baseline on comments (lists of str): TF-IDF of word 1-2 grams ("tfidf") or of
    character 2-5 grams ("char-ngrams"), then `classifier` ("logreg", "linear-svm", "knn")."""
    if features not in TEXT_FEATURES:
        raise InputError(f"unknown text features {features!r}; choose one of: "
                         f"{', '.join(TEXT_FEATURES)}")
    if classifier not in _CLASSIFIERS:
        raise InputError(f"unknown classifier {classifier!r}; choose one of: "
                         f"{', '.join(CLASSIFIERS)}")
    model = _CLASSIFIERS[classifier](check_int("make_text_baseline", "seed", seed, 0))
    if task == "multilabel":
        model = OneVsRestClassifier(model)
    return Pipeline([("features", TEXT_FEATURES[features]()), ("classifier", model)])


def centre_and_normalise() -> list[tuple[str, BaseEstimator]]:
    """The preprocessing steps every baseline classifier gets (see the module docstring)."""
    return [("center", StandardScaler(with_std=False)), ("normalize", Normalizer(norm="l2"))]


def make_classifier(name: str, *, task: str = "multiclass", seed: int = 0,
                    **params) -> Pipeline:
    """A baseline classifier on (n, d) features: centring, L2 normalisation, then `name`.

    name: "logreg", "linear-svm" or "knn". task: "multiclass" (y: one label per sample) or
    "multilabel" (y: (n, k) 0/1; one binary classifier per label). params override the
    classifier's own, e.g. make_classifier("logreg", C=1.0), make_classifier("knn", n_neighbors=1).
    """
    if name not in _CLASSIFIERS:
        raise InputError(f"unknown classifier {name!r}; choose one of: {', '.join(CLASSIFIERS)}")
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    classifier = _CLASSIFIERS[name](check_int("make_classifier", "seed", seed, 0))
    valid = sorted(classifier.get_params(deep=False))
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InputError(f"classifier {name!r} has no parameter {', '.join(unknown)}; its "
                         f"parameters are: {', '.join(valid)}")
    classifier.set_params(**params)
    if task == "multilabel":
        classifier = OneVsRestClassifier(classifier)
    return Pipeline([*centre_and_normalise(), ("classifier", classifier)])


def make_baseline(features: str | ImageFeatures, classifier: str = "logreg",
                  **kw) -> Pipeline:
    """A baseline on images: a classical feature transformer, then `make_classifier`.

    features: a name from CLASSICAL_FEATURES ("pixels", "color-histogram", "hog"), a transformer
    instance (HogFeatures(size=128)), or "embeddings": then the result is `make_classifier` alone
    and takes precomputed (n, d) embeddings. kw goes to make_classifier (task, seed, parameters).
    The pipeline fits and predicts on lists of PIL images or image paths.
    """
    model = make_classifier(classifier, **kw)
    if isinstance(features, ImageFeatures):
        transformer = features
    elif features == EMBEDDINGS:
        return model
    elif features in CLASSICAL_FEATURES:
        transformer = make_features(features)
    else:
        raise InputError(f"unknown features {features!r}; choose one of: "
                         f"{', '.join([EMBEDDINGS, *CLASSICAL_FEATURES])}")
    return Pipeline([("features", transformer), *model.steps])
