"""Maps, faithfulness and the sanity check for one decided input, through `shotlab.explain`.

    result = explain_decided(model, decided, ["gradcam", "lime"], score=True,
                             progress=lambda fraction, text: ...)

The same functions as `shotlab explain RUN_OR_BUNDLE IMAGE --score` (explain.report's
`compute_maps`, `score_maps`, `sanity`): one map per method for the decision's class (tier 1's
choice, `tier1.target_class`: its highest-scoring flagged class, else the class its review is
about, else its top class), deletion/insertion AUC against random maps, and the cascading
model-randomisation check for the CAM methods.

`progress(fraction, text)` is called after each method and, for the forward-only methods (LIME,
SHAP, the faithfulness curves), after each batch the model runs; the page's progress bar is
where a cancelled run stops (Streamlit interrupts a script at its next page update).
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext

DEFAULT_METHODS = ["gradcam"]  # cheap: one forward and one backward pass


def target_index(model, decided) -> int:
    from shotlab.explain.tier1 import target_class

    return list(model.bundle.classes).index(target_class(decided.record))


def forward_budget(method: str) -> int:
    """How many inputs a forward-only method runs through the model (its sample budget)."""
    from shotlab.explain import method_function, option_defaults

    defaults = option_defaults(method_function(method))
    return int(defaults.get("num_samples") or defaults.get("max_evals") or 1)


class Counter:
    """The forward model, counting the inputs it runs so a long method can report progress."""

    def __init__(self, forward, report):
        self.forward, self.report, self.seen = forward, report, 0

    def __call__(self, batch):
        out = self.forward(batch)
        self.seen += len(batch)
        self.report(self.seen)
        return out


def explain_decided(model, decided, methods, *, score: bool = False, progress=None) -> dict:
    """{"target", "maps": {method: (H, W)}, "seconds", "faithfulness": {method: {...}},
    "sanity": {method: {...}}} for one decided input."""
    from shotlab.explain import FORWARD_METHODS, GRADIENT_METHODS
    from shotlab.explain.inputs import forward_probabilities
    from shotlab.explain.report import compute_maps, sanity, score_maps

    progress = progress or (lambda fraction, text: None)
    images, target = decided.array[None], target_index(model, decided)
    steps = len(methods) + (2 if score else 0)
    maps, seconds = {}, {}
    for step, method in enumerate(methods):
        budget = forward_budget(method) if method in FORWARD_METHODS else 0
        source = counted_source(model.source, lambda seen, s=step, b=budget, m=method: progress(
            (s + min(seen / b, 1)) / steps, f"{m}: {seen}/{b} model runs")) if budget \
            else model.source
        with model.gradient_lock if method in GRADIENT_METHODS else nullcontext():
            done, took = compute_maps(source, images, [target], [method], None)
        maps[method], seconds[method] = done[method][0], took[method]
        progress((step + 1) / steps, f"{method} done")
    result = {"target": model.bundle.classes[target], "maps": maps,
              "seconds": {m: round(s, 3) for m, s in seconds.items()}}
    if score:
        forward = forward_probabilities(model.source.forward_model,
                                        multilabel=model.source.multilabel)
        scored = score_maps(model.source, forward, images, [target],
                            {m: maps[m][None] for m in maps})
        result["faithfulness"] = {m: s[0] for m, s in scored.items()}
        progress((len(methods) + 1) / steps, "faithfulness done")
        with model.gradient_lock:
            result["sanity"] = sanity(model.source, images, [target], methods)
        progress(1.0, "sanity check done")
    return result


def counted_source(source, report):
    """The source with its forward model counted (`report(seen)` after each batch)."""
    return dataclasses.replace(source, forward_model=Counter(source.forward_model, report))


def text_budget(method: str) -> int:
    """How many texts a forward-only text method runs through the model (its sample budget)."""
    from shotlab.explain import TEXT_METHODS, method_function, option_defaults

    defaults = option_defaults(method_function(method, TEXT_METHODS))
    return int(defaults.get("num_samples") or defaults.get("max_evals") or 1)


def explain_comment(model, decided, methods, *, score: bool = True, progress=None) -> dict:
    """{"target", "words": {method: text_words.WordScores}, "seconds"} for one decided comment:
    `shotlab explain BUNDLE --text ...`'s work (`explain.text_report.explain_texts`) for the
    decision's class, each method with its faithfulness (ERASER comprehensiveness and
    sufficiency against random word rankings: tens of model runs, so always scored). IG runs
    on the checkpoint (under `gradient_lock`), SHAP and LIME on the bundle's ONNX runner."""
    from shotlab.explain import GRADIENT_METHODS
    from shotlab.explain.text_report import explain_texts
    from shotlab.explain.tier1 import target_class
    from shotlab.runtime.text import decided_passage

    progress = progress or (lambda fraction, text: None)
    target = target_class(decided.record)
    text = decided_passage(decided.record, target)  # a long comment: the window that scored
    words, seconds = {}, {}
    for step, method in enumerate(methods):
        budget = 0 if method in GRADIENT_METHODS else text_budget(method)
        source = counted_source(model.source, lambda seen, s=step, b=budget, m=method: progress(
            (s + min(seen / b, 1)) / len(methods), f"{m}: {seen}/{b} model runs")) if budget \
            else model.source
        with model.gradient_lock if method in GRADIENT_METHODS else nullcontext():
            (entry,) = explain_texts(source, [text], [method], target=target,
                                     score=score)["comments"]
        words[method] = entry["explanations"][method]
        seconds[method] = words[method].info.get("seconds", 0.0)
        progress((step + 1) / len(methods), f"{method} done")
    return {"target": target, "words": words, "seconds": seconds}


def explain_post(model, decided, methods, *, progress=None) -> dict:
    """{"target", "split", "maps": {"gradcam"}, "words": {"ig"}} for one decided post: what
    `shotlab predict --explain` stores for a flagged post (`explain.post_tier1`): the modality
    split through the bundle's runner (4 model runs), and on the checkpoint the Grad-CAM of the
    picture (caption held fixed) and IG over the caption's words (picture held fixed, with
    their faithfulness), for the methods asked ("gradcam", "ig")."""
    from shotlab.explain.post_split import modality_split
    from shotlab.explain.post_tier1 import caption_words, image_cam
    from shotlab.explain.tier1 import target_class

    progress = progress or (lambda fraction, text: None)
    bundle, inputs = model.bundle, decided.array
    classes = list(bundle.classes)
    target = classes.index(target_class(decided.record))
    (split,) = modality_split(model.runner, inputs, [target], bundle.parts, classes)
    result = {"target": classes[target], "split": split.as_dict(), "maps": {}, "words": {}}
    image, ids = inputs["image"][0], inputs["text"][0]
    for step, method in enumerate(methods):
        with model.gradient_lock:
            post = model.source.torch_model()
            if method == "gradcam":
                result["maps"]["gradcam"] = image_cam(post, image, ids, target)[0]
            elif method == "ig":
                words = caption_words(post, image, decided.record["text"], target,
                                      bundle.parts["text"], multilabel=bundle.task == "multilabel")
                if words is not None:
                    result["words"]["ig"] = words
        progress((step + 1) / len(methods), f"{method} done")
    return result
