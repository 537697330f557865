"""Seeded cross-validation folds, stratified by class where the labels allow it and holding each
group of samples that belong together (core/groups.py) out whole. One home for the label check's
folds (curate) and the thresholds' and automatic choice's folds (train), which may not import
each other.

    for fit, held in splitter(folds, seed, stratified=True, grouped=True).split(x, y, groups): ...
    for fit, held in repeated_folds(y, folds=3, repeats=3, seed=0, groups=groups): ...
"""

from __future__ import annotations

import numpy as np


def splitter(folds: int, seed: int, *, stratified: bool = True, grouped: bool = False):
    """A scikit-learn splitter of `folds` shuffled folds: stratified by class (multiclass class
    indices; not multilabel targets) and, if `grouped`, each group held out whole (its `split`
    then takes the groups)."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    kinds = {(True, True): StratifiedGroupKFold, (True, False): StratifiedKFold,
             (False, True): GroupKFold, (False, False): KFold}
    return kinds[stratified, grouped](folds, shuffle=True, random_state=seed)


def repeated_folds(y: np.ndarray, *, folds: int, repeats: int, seed: int,
                   groups: np.ndarray | None = None, stratified: bool = True):
    """(fit, held) positions of `repeats` shuffled K-fold splits, stratified by class where
    `stratified` (y: class indices), each of `groups` held out whole where given."""
    from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

    rows = np.zeros(len(y))
    if groups is None:
        kind = RepeatedStratifiedKFold if stratified else RepeatedKFold
        yield from kind(n_splits=folds, n_repeats=repeats, random_state=seed).split(rows, y)
        return
    for repeat in range(repeats):
        yield from splitter(folds, seed + repeat, stratified=stratified,
                            grouped=True).split(rows, y, groups)
