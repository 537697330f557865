"""Metrics against values computed by hand, bootstrap behaviour, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, fbeta_score

from shotlab.core.errors import InputError
from shotlab.runtime.decide import predict_labels, resolve_thresholds
from shotlab.train.metrics import (
    _bootstrap_statistic, _ranking, _weighted_average_precision, bootstrap_intervals,
    check_inputs, classification_metrics, expected_calibration_error, fbeta,
)

NAMES = ["safe", "nsfw", "gore"]
# Six samples, three classes. argmax predictions and what they get right:
#   row  true   probs (safe, nsfw, gore)   argmax
#   0    safe   0.7  0.2  0.1              safe  ok
#   1    safe   0.2  0.7  0.1              nsfw  wrong
#   2    nsfw   0.2  0.7  0.1              nsfw  ok
#   3    nsfw   0.6  0.3  0.1              safe  wrong
#   4    gore   0.1  0.1  0.8              gore  ok
#   5    gore   0.1  0.5  0.4              nsfw  wrong
# Confusion (rows true, cols predicted): safe [1 1 0], nsfw [1 1 0], gore [0 1 1]; accuracy 3/6.
#   safe: tp 1 fp 1 fn 1 -> P 1/2, R 1/2, F1 1/2, F2 1/2
#   nsfw: tp 1 fp 2 fn 1 -> P 1/3, R 1/2, F1 2PR/(P+R) = (1/3)/(5/6) = 2/5,
#                           F2 5PR/(4P+R) = (5/6)/(11/6) = 5/11
#   gore: tp 1 fp 0 fn 1 -> P 1,   R 1/2, F1 (1)/(3/2) = 2/3, F2 (5/2)/(9/2) = 5/9
# macro F1 = (1/2 + 2/5 + 2/3)/3 = 47/90; macro F2 = (1/2 + 5/11 + 5/9)/3 = 299/594.
# AUPRC of safe: scores by rank .7(+) .6(-) .2(+,- tied) .1 .1 -> precision 1 at recall 1/2,
#   then precision 2/4 when recall reaches 1: AP = 1/2*1 + 1/2*1/2 = 3/4.
# ROC AUC of safe: positives {.7, .2} vs negatives {.2, .6, .1, .1}: .7 wins 4, .2 ties 1 (1/2),
#   loses to .6, beats both .1 -> (4 + 2.5)/8 = 0.8125.
Y6 = np.array([0, 0, 1, 1, 2, 2])
P6 = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.2, 0.7, 0.1],
               [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.1, 0.5, 0.4]])


def softmax_case(n=60, k=4, seed=0, strength=1.5, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += strength
    if ties:
        logits = np.round(logits, 0)  # many tied scores, as from a coarse or quantised model
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def test_hand_computed_multiclass_metrics():
    m = classification_metrics(Y6, P6, NAMES, n_bootstrap=0)
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == [[1, 1, 0], [1, 1, 0], [0, 1, 1]]
    expected = {"safe": (1 / 2, 1 / 2, 1 / 2, 1 / 2), "nsfw": (1 / 3, 1 / 2, 2 / 5, 5 / 11),
                "gore": (1, 1 / 2, 2 / 3, 5 / 9)}
    for name, (p, r, f1, f2) in expected.items():
        c = m["per_class"][name]
        assert (c["precision"], c["recall"], c["f1"], c["f2"]) == pytest.approx((p, r, f1, f2))
        assert c["support"] == 2
    assert m["macro_f1"] == pytest.approx(47 / 90)
    assert m["macro_f2"] == pytest.approx(299 / 594)
    assert m["per_class"]["safe"]["auprc"] == pytest.approx(0.75)
    assert m["per_class"]["safe"]["roc_auc"] == pytest.approx(0.8125)
    assert "hamming_accuracy" not in m


def test_result_has_the_documented_keys_and_is_strict_json():
    m = classification_metrics(Y6, P6, NAMES, n_bootstrap=50)
    assert set(m) == {"task", "n", "class_names", "thresholds", "accuracy", "macro_f1", "macro_f2",
                      "macro_auprc", "roc_auc", "ece", "per_class", "confusion_matrix",
                      "intervals", "bootstrap"}
    assert set(m["per_class"]["nsfw"]) == {"precision", "recall", "f1", "f2", "auprc", "roc_auc",
                                           "support"}
    assert set(m["intervals"]) == {"accuracy", "macro_f1", "macro_auprc", "recall/safe",
                                   "recall/nsfw", "recall/gore"}
    json.dumps(m, allow_nan=False)  # plain floats and None only


def test_absent_class_gives_none_not_nan():
    y = np.array([0, 0, 1, 1])  # gore never occurs
    p = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    m = classification_metrics(y, p, NAMES, n_bootstrap=20)
    gore = m["per_class"]["gore"]
    assert gore["support"] == 0 and gore["precision"] == 0.0  # predicted once, wrongly
    assert gore["recall"] is None and gore["f1"] is None and gore["auprc"] is None
    assert gore["roc_auc"] is None and m["roc_auc"] is None
    # macro metrics average the two classes that occur
    f1s = [m["per_class"][c]["f1"] for c in ("safe", "nsfw")]
    assert m["macro_f1"] == pytest.approx(np.mean(f1s))
    assert m["intervals"]["recall/gore"] is None  # no positives: no recall, no interval
    json.dumps(m, allow_nan=False)


def test_fbeta_matches_sklearn_and_handles_zero():
    assert fbeta(0.5, 0.5, beta=2) == pytest.approx(0.5)
    assert fbeta(1 / 3, 1 / 2, beta=2) == pytest.approx(5 / 11)
    assert fbeta(0.0, 0.0) == 0.0
    assert np.isnan(fbeta(0.5, np.nan))
    y_pred = P6.argmax(axis=1)
    for beta in (1, 2):
        ours = fbeta([1 / 2, 1 / 3, 1], [1 / 2, 1 / 2, 1 / 2], beta=beta)
        assert ours == pytest.approx(fbeta_score(Y6, y_pred, beta=beta, average=None))


def test_ece_known_answers():
    # one bin: confidence 0.9, 3 of 4 right -> |0.75 - 0.9| = 0.15
    assert expected_calibration_error([0.9] * 4, [1, 1, 1, 0]) == pytest.approx(0.15)
    # two bins of equal weight: |1 - 0.9| = 0.1 and |0.5 - 0.3| = 0.2 -> 0.15
    assert expected_calibration_error([0.9, 0.9, 0.3, 0.3], [1, 1, 0, 1]) == pytest.approx(0.15)
    # perfectly calibrated: 0.25 confidence, 1 in 4 right
    assert expected_calibration_error([0.25] * 4, [1, 0, 0, 0]) == pytest.approx(0.0)


def test_ece_in_metrics_multiclass_and_multilabel():
    p = np.array([[0.9, 0.05, 0.05]] * 4)
    m = classification_metrics(np.array([0, 0, 0, 1]), p, NAMES, n_bootstrap=0)
    assert m["ece"] == pytest.approx(0.15)  # top-label confidence 0.9, accuracy 0.75
    # multilabel: every score counts. .9 (y 1): gap .1, weight 1/4; two .1 (y 0): gap .1,
    # weight 1/2; .3 (y 0): gap .3, weight 1/4 -> .025 + .05 + .075 = .15
    y = np.array([[1, 0], [0, 0]])
    p = np.array([[0.9, 0.1], [0.3, 0.1]])
    m = classification_metrics(y, p, ["a", "b"], task="multilabel", n_bootstrap=0)
    assert m["ece"] == pytest.approx(0.15)


def test_auprc_is_one_for_a_perfect_ranking():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    p = np.array([[0.5, 0.3, 0.2], [0.4, 0.35, 0.25], [0.3, 0.45, 0.25], [0.2, 0.6, 0.2],
                  [0.2, 0.2, 0.6], [0.1, 0.1, 0.8], [0.25, 0.25, 0.5]])
    m = classification_metrics(y, p, NAMES, n_bootstrap=100)
    assert m["macro_auprc"] == pytest.approx(1.0)
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["intervals"]["macro_auprc"] == pytest.approx([1.0, 1.0])


def test_multilabel_subset_versus_hamming_accuracy():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    p = np.array([[0.9, 0.2, 0.7],   # predicts 1 0 1: exact
                  [0.1, 0.8, 0.6],   # predicts 0 1 1: one label wrong
                  [0.7, 0.5, 0.4],   # predicts 1 1 0: exact (0.5 >= 0.5)
                  [0.6, 0.3, 0.9]])  # predicts 1 0 1: one label wrong
    m = classification_metrics(y, p, ["a", "b", "c"], task="multilabel", n_bootstrap=0)
    assert m["accuracy"] == pytest.approx(2 / 4)
    assert m["hamming_accuracy"] == pytest.approx(10 / 12)
    # per-class 2x2 [[tn, fp], [fn, tp]]; a: tn 1 (row 1), fp 1 (row 3), fn 0, tp 2
    assert m["confusion_matrix"]["a"] == [[1, 1], [0, 2]]
    assert m["per_class"]["c"]["precision"] == pytest.approx(2 / 3)
    # a stricter threshold on c removes its false positive (0.6) and keeps its positives
    strict = classification_metrics(y, p, ["a", "b", "c"], task="multilabel",
                                    thresholds={"c": 0.65}, n_bootstrap=0)
    assert strict["per_class"]["c"]["precision"] == 1.0
    assert strict["hamming_accuracy"] == pytest.approx(11 / 12)


def test_threshold_rule_changes_a_prediction():
    # row 3 (true nsfw, argmax safe) has nsfw 0.3: a 0.3 threshold on nsfw flips it to nsfw
    plain = classification_metrics(Y6, P6, NAMES, n_bootstrap=0)
    m = classification_metrics(Y6, P6, NAMES, thresholds={"nsfw": 0.3}, n_bootstrap=0)
    assert plain["per_class"]["nsfw"]["recall"] == 0.5
    assert m["per_class"]["nsfw"]["recall"] == 1.0
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"][1] == [0, 2, 0]
    assert m["thresholds"] == {"nsfw": 0.3}


def test_threshold_rule_highest_unsafe_score_wins():
    p = np.array([[0.20, 0.35, 0.45],   # both unsafe over 0.3: gore has the higher score
                  [0.50, 0.30, 0.20],   # nsfw at its threshold beats the safe argmax
                  [0.80, 0.10, 0.10]])  # none over: argmax
    cuts = {"nsfw": 0.3, "gore": 0.3}
    assert predict_labels(p, NAMES, thresholds=cuts).tolist() == [2, 1, 0]
    assert predict_labels(p, NAMES).tolist() == [2, 0, 0]
    # choose_thresholds-style entries are accepted too
    assert predict_labels(p, NAMES, thresholds={"nsfw": {"threshold": 0.3}}).tolist() == [1, 1, 0]


def test_bootstrap_intervals_contain_the_estimate_and_are_seeded():
    y, p = softmax_case(n=60, k=4, seed=3)
    names = ["a", "b", "c", "d"]
    m1 = classification_metrics(y, p, names, n_bootstrap=400, seed=7)
    m2 = classification_metrics(y, p, names, n_bootstrap=400, seed=7)
    m3 = classification_metrics(y, p, names, n_bootstrap=400, seed=8)
    assert m1["intervals"] == m2["intervals"]
    assert m1["intervals"] != m3["intervals"]
    for key in ("accuracy", "macro_f1", "macro_auprc"):
        low, high = m1["intervals"][key]
        assert low <= m1[key] <= high and low < high
    for name in names:
        low, high = m1["intervals"][f"recall/{name}"]
        assert low <= m1["per_class"][name]["recall"] <= high
    assert m1["bootstrap"]["valid"]["accuracy"] == 400


def test_recall_intervals_are_exact_binomial_and_never_collapse_on_few_positives():
    # 4 positives of 'b', all caught: a bootstrap says [1, 1]; the exact interval says [0.40, 1]
    y = np.array([0] * 8 + [1] * 4)
    p = np.where(y[:, None] == np.arange(2), 0.9, 0.1)
    m = classification_metrics(y, p, ["a", "b"], n_bootstrap=200, seed=0)
    low, high = m["intervals"]["recall/b"]
    assert m["per_class"]["b"]["recall"] == 1.0 and high == 1.0
    assert low == pytest.approx(0.025 ** 0.25, abs=1e-9)  # (alpha/2)^(1/n), all n caught
    # 3 of 4 caught: the textbook Clopper-Pearson bounds
    p[8] = [0.9, 0.1]
    low, high = classification_metrics(y, p, ["a", "b"], n_bootstrap=200)["intervals"]["recall/b"]
    assert (round(low, 4), round(high, 4)) == (0.1941, 0.9937)
    unasked = classification_metrics(y, p, ["a", "b"], n_bootstrap=0)["intervals"]
    assert unasked["recall/b"] is None and set(unasked.values()) == {None}  # no intervals asked


def test_bootstrap_helper_skips_undefined_resamples():
    x = np.arange(10, dtype=float)

    def statistic(weights):
        mean = weights @ x / weights.sum(axis=1)
        return {"mean": mean, "sometimes": np.where(weights[:, 0] > 0, mean, np.nan)}

    intervals, valid = bootstrap_intervals(statistic, 10, n_bootstrap=300, seed=1)
    assert intervals["mean"][0] < 4.5 < intervals["mean"][1]
    assert valid["mean"] == 300 and 0 < valid["sometimes"] < 300  # row 0 drawn in ~65%
    assert bootstrap_intervals(statistic, 10, n_bootstrap=300, seed=1) == (intervals, valid)
    assert bootstrap_intervals(statistic, 10, n_bootstrap=0)[0] == {"mean": None, "sometimes": None}


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_fast_bootstrap_statistic_equals_the_sklearn_point_estimates(task):
    # The bootstrap uses vectorised numpy; with every row drawn once it must equal sklearn.
    y, p = softmax_case(n=50, k=4, seed=5, ties=True)
    names = ["a", "b", "c", "d"]
    if task == "multilabel":
        y = (np.random.default_rng(5).random((50, 4)) < 0.4).astype(int)
    m = classification_metrics(y, p, names, task=task, n_bootstrap=0)
    Y, P, _ = check_inputs(y, p, names, task=task)
    from shotlab.runtime.decide import predict_indicator
    pred = predict_indicator(P, resolve_thresholds(None, names, task=task), task=task)
    stats = _bootstrap_statistic(Y, P, pred, names)(np.ones((1, len(Y))))
    for key in ("accuracy", "macro_f1", "macro_auprc"):
        assert stats[key][0] == pytest.approx(m[key])


def test_weighted_average_precision_matches_sklearn_on_resamples():
    rng = np.random.default_rng(2)
    y = (rng.random(40) < 0.3).astype(int)
    s = np.round(rng.random(40), 1)  # ties
    weights = rng.multinomial(40, np.full(40, 1 / 40), size=20)
    ours = _weighted_average_precision(weights.astype(float), *_ranking(y, s))
    for w, value in zip(weights, ours):
        rows = np.repeat(np.arange(40), w)
        if y[rows].sum() == 0:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(average_precision_score(y[rows], s[rows]))


@pytest.mark.parametrize("y, p, names, task, message", [
    (Y6[:5], P6, NAMES, "multiclass", "y_true must have shape (6,)"),
    (Y6, P6, ["safe", "nsfw"], "multiclass", "probs has 3 columns but class_names has 2"),
    (Y6, P6[:, :2], NAMES, "multiclass", "probs has 2 columns"),
    (Y6, np.where(P6 == 0.8, np.nan, P6), NAMES, "multiclass", "non-finite"),
    (Y6, P6 * 2, NAMES, "multiclass", "[0, 1]"),
    (Y6, P6 / 2, NAMES, "multiclass", "sum to 1"),
    (np.array([0, 0, 1, 1, 2, 3]), P6, NAMES, "multiclass", "class index 3"),
    (np.eye(3)[Y6], P6, NAMES, "multiclass", "y.argmax(1)"),
    (Y6, P6, NAMES, "binary", "task must be"),
    (Y6, P6, ["a", "a", "b"], "multiclass", "unique"),
    (Y6, P6[0], NAMES, "multiclass", "2-D"),
    (np.eye(3)[Y6][:, :2], P6, NAMES, "multilabel", "y_true must have shape (6, 3)"),
    (np.eye(3)[Y6] * 2, P6, NAMES, "multilabel", "0/1"),
])
def test_bad_input_raises_input_error(y, p, names, task, message):
    with pytest.raises(InputError) as info:
        classification_metrics(y, p, names, task=task, n_bootstrap=0)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_thresholds_raise_input_error():
    with pytest.raises(InputError, match="unknown class 'violence'.*safe, nsfw, gore"):
        classification_metrics(Y6, P6, NAMES, thresholds={"violence": 0.5})
    with pytest.raises(InputError, match="in \\[0, 1\\]"):
        classification_metrics(Y6, P6, NAMES, thresholds={"nsfw": 1.5})
    with pytest.raises(InputError, match="n_bootstrap"):
        classification_metrics(Y6, P6, NAMES, n_bootstrap=-1)


def test_importing_the_modules_loads_no_plotting_or_sklearn():
    code = ("import sys, shotlab.train.metrics, shotlab.train.thresholds, shotlab.train.plots; "
            "heavy = [m for m in ('matplotlib', 'sklearn') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
