"""Baselines: each learns what it should on synthetic data, and follows the sklearn contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import cross_val_predict

from shotlab.core.errors import InputError
from shotlab.train.baselines import (BASELINES, CLASSIFIERS, FewShotKNN, FewShotLinearSVC,
                                     make_baseline, make_classifier)
from shotlab.train.features import HogFeatures

PER_CLASS = 10  # training images per class: few-shot, as in use


# --- synthetic images, each set separable by exactly one kind of cue ---------------------------

def tinted(gray: np.ndarray, rng) -> Image.Image:
    """Gray levels in a random tint and brightness, so colour carries no class information."""
    gain = rng.uniform(0.6, 1.0, size=3)
    return Image.fromarray((gray[..., None] * gain).clip(0, 255).astype(np.uint8))


def stripes(angle: float, rng, size: int = 48) -> Image.Image:
    """A grating at `angle` degrees, random period and phase, with noise: a cue for HOG."""
    yy, xx = np.mgrid[:size, :size]
    theta = math.radians(angle + rng.normal(0, 4))
    period, phase = rng.uniform(6, 10), rng.uniform(0, 2 * math.pi)
    wave = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period + phase)
    return tinted(128 + 90 * wave + rng.normal(0, 20, wave.shape), rng)


def colour(rgb, rng, size: int = 24) -> Image.Image:
    """A noisy patch of colour `rgb`: a cue for the colour histogram."""
    pixels = np.asarray(rgb, float) + rng.normal(0, 12, 3) + rng.normal(0, 20, (size, size, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def bright_half(side: str, rng, size: int = 32) -> Image.Image:
    """Dark noise with one half (left, right, top, bottom) brighter: a cue for raw pixels."""
    gray = rng.uniform(30, 90) + rng.normal(0, 25, (size, size))
    half = {"left": np.s_[:, : size // 2], "right": np.s_[:, size // 2:],
            "top": np.s_[: size // 2, :], "bottom": np.s_[size // 2:, :]}[side]
    gray[half] += rng.uniform(70, 130)
    return tinted(gray, rng)


CUES = {
    "hog": (stripes, [0, 45, 90, 135]),
    "color-histogram": (colour, [(200, 40, 40), (40, 180, 40), (40, 60, 200), (210, 200, 40)]),
    "pixels": (bright_half, ["left", "right", "top", "bottom"]),
}


def image_set(features: str, per_class: int, seed: int):
    make, classes = CUES[features]
    rng = np.random.default_rng(seed)
    images = [make(c, rng) for c in classes for _ in range(per_class)]
    return images, np.repeat([f"class{i}" for i in range(len(classes))], per_class)


@pytest.mark.parametrize("features", ["hog", "color-histogram", "pixels"])
def test_each_feature_with_logreg_learns_its_cue_and_not_shuffled_labels(features):
    train, y_train = image_set(features, PER_CLASS, seed=1)
    test, y_test = image_set(features, 10, seed=2)
    model = make_baseline(features, "logreg")
    assert (model.fit(train, y_train).predict(test) == y_test).mean() >= 0.9
    # Control: the same pipeline on shuffled labels is at chance (0.25) on held-out images.
    shuffled = np.random.default_rng(0).permutation(y_train)
    control = make_baseline(features, "logreg").fit(train, shuffled)
    assert (control.predict(test) == y_test).mean() < 0.6


def test_image_baseline_fits_on_paths_and_works_with_sklearn_tools(tmp_path):
    images, y = image_set("color-histogram", 4, seed=3)
    paths = []
    for i, image in enumerate(images):
        image.save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    model = make_baseline("color-histogram", "knn").fit(paths, y)
    assert np.array_equal(model.predict_proba(paths), model.predict_proba(images))
    predicted = cross_val_predict(make_baseline("color-histogram", "logreg"), images, y, cv=2)
    assert (predicted == y).mean() >= 0.9


def test_make_baseline_takes_a_transformer_or_embeddings():
    model = make_baseline(HogFeatures(size=32), "knn", n_neighbors=1)
    assert [name for name, _ in model.steps] == ["features", "center", "normalize", "classifier"]
    assert model.get_params()["features__size"] == 32 and model[-1].n_neighbors == 1
    on_embeddings = make_baseline("embeddings", "linear-svm", seed=3)
    assert [name for name, _ in on_embeddings.steps] == ["center", "normalize", "classifier"]
    assert on_embeddings[-1].random_state == 3


def test_default_baselines():
    assert BASELINES == (("embeddings", "logreg"), ("embeddings", "linear-svm"),
                         ("embeddings", "knn"), ("pixels", "logreg"),
                         ("color-histogram", "logreg"), ("hog", "logreg"))
    assert CLASSIFIERS == ("logreg", "linear-svm", "knn")


# --- classifiers on embeddings ------------------------------------------------------------------

def blobs(per_class: int, seed: int, n_classes: int = 4, dim: int = 64):
    # cluster_std 6: separable enough for > 0.95 at 10 shots, not so far apart that 1.0 is free.
    X, y = make_blobs(n_samples=[per_class] * n_classes, n_features=dim, cluster_std=6.0,
                      centers=np.random.default_rng(0).normal(0, 3, (n_classes, dim)),
                      random_state=seed)
    names = np.array(["cat", "dog", "fox", "owl", "yak"])[:n_classes]
    return X.astype(np.float32) + 5.0, names[y]  # + 5: an offset like post-ReLU features


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_embedding_classifier_separates_gaussian_blobs(name):
    X, y = blobs(PER_CLASS, seed=1)
    X_test, y_test = blobs(50, seed=2)
    model = make_classifier(name).fit(X, y)
    assert (model.predict(X_test) == y_test).mean() > 0.9


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_sklearn_contract(name):
    X, y = blobs(6, seed=1)
    model = make_classifier(name)
    assert model.fit(X, y) is model
    assert model.classes_.tolist() == ["cat", "dog", "fox", "owl"]
    proba = model.predict_proba(X[:7])
    assert proba.shape == (7, 4) and np.allclose(proba.sum(axis=1), 1) and (proba >= 0).all()
    assert np.array_equal(model.predict(X[:7]), model.classes_[proba.argmax(axis=1)])
    assert clone(model).get_params().keys() == model.get_params().keys()


@pytest.mark.parametrize("name", ["linear-svm", "knn"])
def test_two_samples_per_class(name):
    X, y = blobs(2, seed=1)
    X_test, y_test = blobs(20, seed=2)
    model = make_classifier(name).fit(X, y)
    assert model.predict_proba(X_test).shape == (80, 4)
    assert (model.predict(X_test) == y_test).mean() > 0.7


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_a_class_with_one_sample_does_not_crash(name):
    X, y = blobs(5, seed=1)
    owl = np.flatnonzero(y == "owl")
    keep = np.r_[np.flatnonzero(y != "owl"), owl[:1]]  # owl keeps a single sample
    model = make_classifier(name).fit(X[keep], y[keep])
    proba = model.predict_proba(X)
    assert proba.shape == (20, 4) and np.allclose(proba.sum(axis=1), 1)
    assert model.predict(X[owl[:1]])[0] == "owl"


def test_svm_folds_and_knn_neighbours_follow_the_smallest_class():
    X, y = blobs(12, seed=1)
    three = np.concatenate([np.flatnonzero(y == c)[:3] for c in np.unique(y)])
    two = np.concatenate([np.flatnonzero(y == c)[:2] for c in np.unique(y)])
    assert make_classifier("linear-svm").fit(X, y)[-1].n_folds_ == 5  # cross-validated
    assert make_classifier("linear-svm").fit(X[three], y[three])[-1].n_folds_ == 1  # in-sample
    lowered = make_classifier("linear-svm", min_class_size_for_cv=2).fit(X[three], y[three])
    assert lowered[-1].n_folds_ == 3
    assert make_classifier("knn").fit(X, y)[-1].n_neighbors_ == 5
    assert make_classifier("knn").fit(X[two], y[two])[-1].n_neighbors_ == 2


# --- multilabel ---------------------------------------------------------------------------------

def multilabel_blobs(n: int, seed: int, k: int = 3, dim: int = 32):
    """Each label adds its own direction to the embedding; labels are independent coin flips."""
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(0).normal(0, 3, (k, dim))
    Y = rng.integers(0, 2, (n, k))
    Y[:k] = np.eye(k, dtype=int)  # every label present at least once, and absent too
    return (Y @ directions + rng.normal(0, 3, (n, dim)) + 5).astype(np.float32), Y


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_multilabel_gives_one_probability_per_label(name):
    X, Y = multilabel_blobs(30, seed=1)
    X_test, Y_test = multilabel_blobs(60, seed=2)
    model = make_classifier(name, task="multilabel").fit(X, Y)
    proba = model.predict_proba(X_test)
    assert proba.shape == (60, 3) and ((proba >= 0) & (proba <= 1)).all()
    assert ((proba > 0.5) == Y_test).mean() > 0.9
    assert model.predict(X_test).shape == (60, 3)


def test_multilabel_targets_without_the_multilabel_task_are_refused():
    X, Y = multilabel_blobs(10, seed=1)
    with pytest.raises(InputError, match="multilabel-indicator targets.*task='multilabel'"):
        make_classifier("knn").fit(X, Y)


# --- determinism and errors ---------------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSIFIERS)
def test_same_seed_gives_identical_probabilities(name):
    X, y = blobs(12, seed=1)  # 12 a class: linear-svm shuffles its calibration folds
    first = make_classifier(name, seed=7).fit(X, y).predict_proba(X)
    again = make_classifier(name, seed=7).fit(X, y).predict_proba(X)
    assert np.array_equal(first, again)


def test_same_seed_gives_identical_image_baselines():
    images, y = image_set("hog", 3, seed=1)
    first = make_baseline("hog", "logreg", seed=1).fit(images, y).predict_proba(images)
    assert np.array_equal(first, make_baseline("hog", "logreg", seed=1).fit(images, y)
                          .predict_proba(images))


@pytest.mark.parametrize("call, message", [
    (lambda: make_classifier("svm"), "unknown classifier 'svm'; choose one of: logreg, "
                                     "linear-svm, knn"),
    (lambda: make_classifier("knn", task="multiclas"), "unknown task 'multiclas'; choose one of: "
                                                       "multiclass, multilabel"),
    (lambda: make_classifier("knn", k=3), "classifier 'knn' has no parameter k; its parameters "
                                          "are: n_neighbors, weights"),
    (lambda: make_classifier("logreg", seed=-1), "The 'seed' parameter of make_classifier must "
                                                 "be an int in the range [0, inf). Got -1"),
    (lambda: make_baseline("sift", "logreg"), "unknown features 'sift'; choose one of: "
                                              "embeddings, pixels, color-histogram, hog"),
    (lambda: make_baseline("hog", "forest"), "unknown classifier 'forest'"),
])
def test_unknown_names_raise_input_error_listing_the_choices(call, message):
    with pytest.raises(InputError) as caught:
        call()
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("estimator, message", [
    (FewShotKNN(n_neighbors=0), "The 'n_neighbors' parameter of FewShotKNN must be an int in the "
                                "range [1, inf). Got 0 instead."),
    (FewShotKNN(weights="cosine"), "The 'weights' parameter of FewShotKNN must be a str among"),
    (FewShotLinearSVC(max_folds=1), "The 'max_folds' parameter of FewShotLinearSVC must be an "
                                    "int in the range [2, inf). Got 1 instead."),
])
def test_bad_parameters_fail_on_fit_in_sklearn_words(estimator, message):
    X, y = blobs(3, seed=1)
    with pytest.raises(InputError) as caught:
        estimator.fit(X, y)
    assert str(caught.value).startswith(message)
