"""Is a word explanation faithful to the model? ERASER's comprehensiveness and sufficiency.

ERASER (DeYoung et al. 2020) scores a ranking of the words by what the model does without them.
Take the top k% of the words by attribution (most evidence for the target first):

- **comprehensiveness** = p(comment) - p(comment without those words): a faithful ranking
  removes the evidence first, so the score falls far. **Higher is better.**
- **sufficiency** = p(comment) - p(only those words): a faithful ranking keeps the evidence, so
  the score barely falls. **Lower is better.**

Each is an AOPC, the mean over the bins k = 1, 5, 10, 20, 50% (ERASER's), where k% of n words is
`ceil(k * n)` words, at least one: comments are short (at 10 words, 1%, 5% and 10% are all one
word; a rounding down would make them zero and the score say nothing). p is the target class's
probability; a removed word is deleted (`text_words.Comment`), as every method here removes it.
The reference is the same two scores for random word rankings (the mean over `n_random`
permutations) of the same comment and target: a ranking worth showing beats it on both.

This is `faithfulness.py`'s deletion/insertion idea for words, with its rule for ties (ranked in
random order, `faithfulness.pixel_order`); every perturbed text of every explanation is scored in
one batched pass, each distinct text once (bins that round to the same word count share it).
"""

from __future__ import annotations

import math

import numpy as np

BINS = (0.01, 0.05, 0.10, 0.20, 0.50)  # ERASER's AOPC bins
N_RANDOM = 5  # random rankings averaged for the reference


def bin_counts(n_words: int, bins=BINS) -> list[int]:
    """Words in each bin: ceil(k * n), at least 1 and at most n."""
    return [min(n_words, max(1, math.ceil(k * n_words))) for k in bins] if n_words else []


def curve_texts(comment, order, bins=BINS) -> tuple[list[str], list[str]]:
    """(texts without the top words, texts with only the top words), one per bin."""
    counts = bin_counts(len(comment), bins)
    return ([comment.without(order[:k]) for k in counts],
            [comment.only(order[:k]) for k in counts])


def aopc(full: float, perturbed) -> float:
    return float(np.mean([full - p for p in perturbed])) if len(perturbed) else 0.0


class Scorer:
    """Collects the texts a set of rankings needs, scores each distinct one once, then reads
    back (comprehensiveness, sufficiency) per ranking."""

    def __init__(self):
        self.texts: dict[str, int] = {}
        self.requests: list = []

    def add(self, comment, target: int, order, bins=BINS) -> int:
        removed, kept = curve_texts(comment, order, bins)
        for text in [comment.text, *removed, *kept]:
            self.texts.setdefault(text, len(self.texts))
        self.requests.append((comment.text, int(target), removed, kept))
        return len(self.requests) - 1

    def run(self, forward) -> list[tuple[float, float]]:
        probs = forward(list(self.texts)) if self.texts else np.zeros((0, 0), np.float32)
        out = []
        for text, target, removed, kept in self.requests:
            p = probs[:, target]
            full = float(p[self.texts[text]])
            out.append((aopc(full, [p[self.texts[t]] for t in removed]),
                        aopc(full, [p[self.texts[t]] for t in kept])))
        return out


def text_faithfulness(forward, explanations, *, bins=BINS, n_random: int = N_RANDOM,
                      seed: int = 0) -> list[dict]:
    """Per explanation (`text_words.WordScores`): comprehensiveness and sufficiency AOPC, the
    random rankings' (mean of `n_random`), whether each beats random, and the texts scored.

    `forward(texts) -> probabilities` (a `text_words.TextForward`). Explanations of the same
    comment and target share one random reference."""
    scorer, ours, reference = Scorer(), [], {}
    for index, explanation in enumerate(explanations):
        comment, target = explanation.comment, explanation.target
        ours.append(scorer.add(comment, target,
                               explanation.ranking(np.random.default_rng(seed + index)), bins))
        key = (comment.text, target)
        if key not in reference:
            rng = np.random.default_rng([seed, len(reference)])
            reference[key] = [scorer.add(comment, target, rng.permutation(len(comment)), bins)
                              for _ in range(n_random)]
    before = getattr(forward, "calls", 0)
    scores = scorer.run(forward)
    passes = getattr(forward, "calls", 0) - before
    results = []
    for explanation, mine in zip(explanations, ours):
        randoms = reference[(explanation.comment.text, explanation.target)]
        comp, suff = scores[mine]
        random_comp = float(np.mean([scores[r][0] for r in randoms]))
        random_suff = float(np.mean([scores[r][1] for r in randoms]))
        results.append({"comprehensiveness": comp, "sufficiency": suff,
                        "random_comprehensiveness": random_comp,
                        "random_sufficiency": random_suff,
                        "beats_random_comprehensiveness": comp > random_comp,
                        "beats_random_sufficiency": suff < random_suff,
                        "bins": list(bins), "n_random": n_random})
    for result in results:  # the batch's cost, shared: what scoring these explanations took
        result["forward_passes_batch"] = passes
    return results
