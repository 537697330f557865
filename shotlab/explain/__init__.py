"""Explanations: Grad-CAM, Integrated Gradients, LIME, SHAP and their store (see shared/DESIGN.md).

    from shotlab.explain import explain, explain_text
    maps = explain(model, images, targets=[3, 0], method="gradcam")   # (2, H, W) in [0, 1]
    words = explain_text(model, ["this joke kills me"], preprocessing=prep, method="ig")

This module stays light (no torch, numpy or matplotlib at import): `shotlab --help` imports the
CLI, and the CLI imports this package. Each method's implementation is imported when it runs.
"""

from __future__ import annotations

# name -> (module, function): the one table of methods; the CLI lists these in its messages.
METHODS = {
    "gradcam": ("shotlab.explain.cam", "gradcam"),
    "gradcampp": ("shotlab.explain.cam", "gradcampp"),
    "ig": ("shotlab.explain.integrated", "integrated_gradients"),
    "lime": ("shotlab.explain.lime_method", "lime"),
    "shap": ("shotlab.explain.shap_method", "shap"),
}
GRADIENT_METHODS = ("gradcam", "gradcampp", "ig")  # need a torch.nn.Module
FORWARD_METHODS = ("lime", "shap")  # need only forward passes: a torch module or any callable
# The methods for text models (kind "text"), in the same shape. A separate table, not a kind
# column on METHODS: the names are the same three ideas (IG, LIME, SHAP) but a text method takes
# strings and returns one score per word, an image method takes float32 (N, 3, H, W) and returns
# an (H, W) map; `explain()`'s contract (maps scaled to [0, 1]) cannot hold both.
TEXT_METHODS = {
    "ig": ("shotlab.explain.text_methods", "integrated_gradients"),
    "shap": ("shotlab.explain.text_methods", "shap"),
    "lime": ("shotlab.explain.text_methods", "lime"),
}
METHODS_BY_KIND = {"image": METHODS, "clip": METHODS, "text": TEXT_METHODS}


def explain(model, images, targets, method: str = "gradcam", **options):
    """Attribution maps of `images` for their `targets`, one (H, W) map per image and target.

    Args:
        model: a `torch.nn.Module` returning logits (N, K), for every method. For the
            forward-only methods ("lime", "shap") it may also be any callable
            `f(batch float32 (N, 3, H, W)) -> probabilities (N, K)`, e.g. an ONNX Runtime runner.
            The model is never left changed: each module's training flag, each parameter's
            `requires_grad` and its hooks are restored on return, also when a method raises.
        images: preprocessed float32 array or tensor (N, 3, H, W), as `Preprocessing.to_array`
            makes them.
        targets: one class index per image. For multilabel models an entry may be a list of
            class indices; then one map per (image, target) pair is returned, in order.
        method: "gradcam", "gradcampp" (Grad-CAM++), "ig" (Captum Integrated Gradients),
            "lime" (`lime`'s LimeImageExplainer on superpixels) or "shap" (`shap`'s Partition
            explainer with an image masker).
        **options: per method (defaults in brackets):
            all: `raw` [False] return the signed, unscaled maps instead of [0, 1] maps;
                `batch_size` images (or perturbations) per model call [per method].
            gradcam/gradcampp: `target_layer` a module or dotted name [auto: the last
                convolutional stage before global pooling; for ViTs the last block, tokens
                reshaped to the patch grid].
            ig: `n_steps` [50], `internal_batch_size` [16], `baseline` ["zero": the mean colour
                in normalised space], `smooth` [1/56 of the longer side: Gaussian sigma in
                pixels applied to the signed map, sum kept; 0 = Captum's per-pixel map];
                `return_delta` [False] also return Captum's convergence deltas as
                `(maps, deltas)`.
            lime: `num_samples` [1000], `n_segments` [50 SLIC superpixels], `fill` ["mean":
                switched-off superpixels take the mean colour; "superpixel": their own mean
                colour, lime's default], `seed` [0], `multilabel` [False] sigmoid instead of
                softmax when `model` is a torch module.
            shap: `max_evals` [500], `blur` [half the image side], `multilabel` [False].

    Returns:
        float32 numpy array (M, H, W), M = number of (image, target) pairs, same H, W as the
        images. Each map is scaled to [0, 1] (its positive part divided by its maximum; an
        all-zero map stays zero): higher means more evidence for the target class.
    """
    from shotlab.core.errors import InputError

    implementation = method_function(method)
    accepted = list(option_defaults(implementation))
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(f"method '{method}' has no option {', '.join(unknown)}; its options: "
                         f"{', '.join(accepted)}")
    from shotlab.explain.inputs import expand_targets, scale01, to_tensor

    batch, flat_targets = expand_targets(to_tensor(images), targets)
    result = implementation(model, batch, flat_targets, **options)
    maps, extra = result if options.get("return_delta") else (result, None)
    maps = maps if options.get("raw") else scale01(maps)
    return (maps, extra) if options.get("return_delta") else maps


def method_function(method: str, table: dict | None = None):
    """The function implementing `method` in `table` (default: the image methods); an
    InputError naming the methods when unknown."""
    import importlib

    from shotlab.core.errors import InputError

    table = METHODS if table is None else table
    if method not in table:
        raise InputError(f"unknown explanation method '{method}'; methods: {', '.join(table)}")
    module, function = table[method]
    return getattr(importlib.import_module(module), function)


def explain_text(model, texts, targets=None, method: str = "ig", *, preprocessing,
                 score: bool = False, batch_size: int = 50, forward=None, **options):
    """One score per word of each comment in `texts`, for its target class.

    Args:
        model: a `torch.nn.Module` taking int64 token ids (N, L) and returning logits (N, K)
            (`shotlab.train.text_model.TextClassifier`), for every method; for "shap" and "lime"
            also any callable `f(ids int64 (N, L)) -> probabilities (N, K)` (an ONNX runner).
            The model is never left changed (modes, flags and hooks restored).
        texts: the comments (str).
        targets: one class index per comment [default: the predicted class].
        method: "ig" (Captum LayerIntegratedGradients on the token embeddings; tier 1),
            "shap" (shap's Partition explainer with a Text masker over words) or "lime"
            (lime's LimeTextExplainer), see `shotlab.explain.text_methods`.
        preprocessing: the model's text contract (`runtime.contract.Preprocessing`, kind
            "text"): its tokenizer, max tokens and class names.
        score: also score each explanation's faithfulness (ERASER comprehensiveness and
            sufficiency against random word rankings, `text_faithfulness`).
        batch_size: texts per model call; forward: a `text_words.TextForward` to reuse (its
            model answers the predictions; `model` is what the method explains).
        **options: per method: ig `n_steps` [16], `quadrature` ["gausslegendre"],
            `internal_batch_size` [16], `layer` [the token embeddings]; shap `max_evals` [500];
            lime `num_samples` [500], `seed` [0]; all `multilabel` [False] (sigmoid scores).

    Returns:
        a `text_words.WordScores` per comment: `words`, `scores` (float32, signed: positive is
        evidence for the target), `info` (model calls made; IG's convergence delta) and, with
        `score`, `faithfulness`.
    """
    from shotlab.core.errors import InputError
    from shotlab.explain.text_explain import word_scores

    implementation = method_function(method, TEXT_METHODS)
    accepted = [name for name in option_defaults(implementation) if name != "forward"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(f"method '{method}' has no option {', '.join(unknown)}; its options: "
                         f"{', '.join(accepted)}")
    return word_scores(implementation, model, texts, targets, method,
                       preprocessing=preprocessing, score=score, batch_size=batch_size,
                       forward=forward, **options)


def option_defaults(implementation) -> dict:
    """A method function's options (every parameter after model, images, targets) and defaults."""
    import inspect

    return {name: p.default for name, p in
            list(inspect.signature(implementation).parameters.items())[3:]}


def method_settings(method: str, options: dict) -> dict:
    """What a map was made with, for the store: the method's plain (JSON) defaults overridden by
    `options`, so a later change of a default does not make old maps look like new ones."""
    plain = (str, int, float, bool, type(None))
    defaults = {name: value for name, value in option_defaults(method_function(method)).items()
                if isinstance(value, plain) and name not in ("raw", "return_delta")}
    return {**defaults, **options}
