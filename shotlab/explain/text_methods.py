"""Per-word attribution for a text model: Integrated Gradients, SHAP and LIME.

Every method explains the target class's **probability** (softmax, or sigmoid for multilabel):
the number a decision's threshold is applied to and the faithfulness scores measure, so a word's
score reads "this word moved the score by this much". Each returns, per comment, one signed
score per word (`text_words.Comment`: sub-word tokens merged by summing, specials dropped) and a
dict of what it reports beside it: the model calls it made (`forward_passes`) and, for IG,
Captum's convergence delta.

**Integrated Gradients** (tier 1: inline) runs Captum's `LayerIntegratedGradients` on the token
embedding layer (`model.encoder.word_embeddings` for `train.text_model.TextClassifier`). The
baseline is the same comment with every word's tokens replaced by [PAD] ([CLS] and [SEP]
kept); the path only changes the embedding layer's output, so the model attends to the same
positions all along the path (the mask comes from the real ids). The convergence delta is
`sum(attributions) - (f(comment) - f(baseline))`, with f(baseline) computed the same way (the
baseline embeddings fed at the real ids' positions): Captum's own delta would run the baseline's
PAD ids, whose positions the model then masks out, a different input from the path's start.
Cost per comment, counted in forward-pass equivalents (a backward pass costs about two forward
passes): 2 forward passes Captum makes to read the layer's input and baseline values, `n_steps`
forward + backward passes on the path, 2 for the delta: `3 * n_steps + 4` = 52 at the default
16 steps, under the 60 the issue allows. Gauss-Legendre quadrature (Captum's default) at 16 steps
keeps the delta small (benchmarks/results/text_attribution.md measures it).

**SHAP** (tier 2: appeals) runs `shap`'s Partition explainer with its Text masker over the
comment's words (not sub-words: a masked word disappears whole), `max_evals` = 500 model calls
at most, `batch_size` masked texts per call. A masked word is deleted, like every "absent" here.

**LIME** (tier 2) runs `lime`'s LimeTextExplainer over the same words (bow=False: each
occurrence is its own feature; a switched-off word is deleted), `num_samples` perturbed texts
sent through the model `batch_size` at a time (lime hands all of them to the classifier at once).
"""

from __future__ import annotations

import numpy as np

from shotlab.core.errors import InputError
from shotlab.explain.guard import preserved

N_STEPS = 16  # 3 * 16 + 4 = 52 forward-pass equivalents per comment (<= 60); delta measured small
IG_METHOD = "gausslegendre"  # Captum's default quadrature: converges in far fewer steps than riemann
INTERNAL_BATCH = 16  # path points per forward/backward: one comment's path in one call
SHAP_EVALS = 500  # shap's default for Partition (the budget)
LIME_SAMPLES = 500  # lime's text default is 5000; a comment has tens of words, 500 samples cover them
BATCH = 50  # texts per model call for SHAP and LIME


def embedding_layer(model, layer=None):
    """The token embedding module: `layer` (a module or dotted name), else the model's
    `encoder.word_embeddings` or `word_embeddings`, else its only `nn.Embedding`."""
    import torch

    if isinstance(layer, torch.nn.Module):
        return layer
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError:
            raise InputError(f"layer '{layer}' is not a submodule of the model") from None
    for owner in (getattr(model, "encoder", None), model):
        found = getattr(owner, "word_embeddings", None) if owner is not None else None
        if isinstance(found, torch.nn.Module):
            return found
    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    if len(embeddings) != 1:
        raise InputError(f"cannot tell the model's token embedding layer ({len(embeddings)} "
                         f"nn.Embedding modules); pass layer='dotted.name'")
    return embeddings[0]


def probability_of(model, multilabel: bool):
    def forward(ids):
        logits = model(ids)
        return logits.sigmoid() if multilabel else logits.softmax(dim=-1)

    return forward


def baseline_ids(ids, comments):
    """`ids` with every word's tokens set to [PAD]; specials ([CLS], [SEP]) and padding kept."""
    from shotlab.runtime.text import PAD_ID

    baseline = ids.clone()
    for row, comment in enumerate(comments):
        for positions in comment.positions:
            baseline[row, positions] = PAD_ID
    return baseline


def integrated_gradients(model, comments, targets, *, forward, n_steps: int = N_STEPS,
                         quadrature: str = IG_METHOD, internal_batch_size: int = INTERNAL_BATCH,
                         layer=None, multilabel: bool = False):
    """[(word scores, {"convergence_delta", "forward_passes", ...})] per comment."""
    import torch
    from captum.attr import LayerIntegratedGradients

    if not isinstance(model, torch.nn.Module):
        raise InputError("Integrated Gradients needs the PyTorch model (a run, or the checkpoint "
                         "a bundle was exported from); use --method shap or lime on ONNX alone")
    if n_steps < 1:
        raise InputError(f"n_steps must be at least 1; got {n_steps}")
    results = []
    with preserved(model):
        embedding = embedding_layer(model, layer)
        explainer = LayerIntegratedGradients(probability_of(model, multilabel), embedding)
        for comment, target in zip(comments, targets):
            ids = torch.from_numpy(forward.ids([comment.text]))
            base = baseline_ids(ids, [comment])
            attributions = explainer.attribute(ids, baselines=base, target=int(target),
                                               n_steps=n_steps, method=quadrature,
                                               internal_batch_size=internal_batch_size)
            tokens = attributions.detach().sum(dim=-1)[0].numpy()
            scores = comment.merge(tokens)
            start, end = endpoints(model, embedding, ids, base, int(target), multilabel)
            results.append((scores, {
                "convergence_delta": float(tokens.sum() - (end - start)),
                "score": end, "baseline_score": start, "n_steps": n_steps,
                "forward_passes": 3 * n_steps + 4}))
    return results


def endpoints(model, embedding, ids, base, target: int, multilabel: bool) -> tuple[float, float]:
    """(f(baseline), f(comment)) for `target`: the baseline's embeddings at the comment's ids."""
    import torch

    forward = probability_of(model, multilabel)
    with torch.no_grad():
        replacement = embedding(base)
        end = float(forward(ids)[0, target])
        handle = embedding.register_forward_hook(lambda _m, _i, _o: replacement)
        try:
            start = float(forward(ids)[0, target])
        finally:
            handle.remove()
    return start, end


class WordSplitter:
    """A tokenizer for shap's Text masker whose tokens are a comment's words (offsets from
    `Comment`): masked words are deleted (`mask_token` empty; the id only tells shap not to
    tokenize the mask token, which has no words)."""

    mask_token = ""
    mask_token_id = -1

    def __init__(self, comment):
        self.comment = comment

    def __call__(self, text, return_offsets_mapping=True):
        if text != self.comment.text:  # shap tokenizes "" (to find prefix tokens), nothing else
            return {"input_ids": [], "offset_mapping": []}
        return {"input_ids": list(range(len(self.comment))),
                "offset_mapping": list(self.comment.spans)}


def each_comment(comments, targets, forward, explain_one, settings: dict) -> list:
    """[(word scores, {"forward_passes", **settings})]: `explain_one(comment, target)` per
    comment, counting the model calls it makes; an empty comment scores nothing."""
    results = []
    for comment, target in zip(comments, targets):
        if len(comment) == 0:
            results.append((np.zeros(0, np.float32), {"forward_passes": 0}))
            continue
        before = forward.calls
        scores = explain_one(comment, int(target))
        results.append((scores, {"forward_passes": forward.calls - before, **settings}))
    return results


def shap(model, comments, targets, *, forward, max_evals: int = SHAP_EVALS,
         multilabel: bool = False):
    """[(word scores, {"forward_passes"})]: Owens values of shap's Partition explainer."""
    import shap as shap_package

    def one(comment, target):
        masker = shap_package.maskers.Text(WordSplitter(comment), collapse_mask_token=True)
        explainer = shap_package.explainers.Partition(lambda texts: forward(list(texts)), masker)
        values = explainer([comment.text], max_evals=max_evals, batch_size=forward.batch_size,
                           outputs=np.array([target]), silent=True).values
        return np.asarray(values[0])[:, 0].astype(np.float32)

    return each_comment(comments, targets, forward, one, {"max_evals": max_evals})


def lime(model, comments, targets, *, forward, num_samples: int = LIME_SAMPLES, seed: int = 0,
         multilabel: bool = False):
    """[(word scores, {"forward_passes"})]: LIME's ridge weights per word occurrence."""
    from lime.lime_text import LimeTextExplainer

    def one(comment, target):
        explainer = LimeTextExplainer(split_expression=lambda _text, c=comment: list(c.words),
                                      bow=False, mask_string="", random_state=seed)
        explanation = explainer.explain_instance(
            comment.text, lambda texts: forward(list(texts)), labels=(target,),
            num_features=len(comment), num_samples=num_samples)
        weights = np.zeros(len(comment), np.float32)
        for index, weight in explanation.local_exp[target]:
            weights[index] = weight
        return weights

    return each_comment(comments, targets, forward, one, {"num_samples": num_samples})
