"""Tier 1: a Grad-CAM for every flagged or review-queue decision, stored as `shotlab predict
--explain` makes the decisions (one forward and one backward per batch on the PyTorch
checkpoint the bundle was exported from: cheap enough to run inline).

    stored = record_flagged(bundle, decisions, inputs, "out/explanations.sqlite")

Every class a reviewer is asked about is explained (`attention_classes`): each flagged class and
each class in its review band, one map each; a decision with none of them (an appeal) gets its
`target_class`'s. Deeper explanations (LIME, SHAP) are tier 2 (`shotlab explain --pending`),
queued by `shotlab explain appeal`.
"""

from __future__ import annotations

from pathlib import Path

from shotlab.core.errors import ShotlabError

METHOD = "gradcam"


def target_class(decision: dict) -> str:
    """The class an explanation of `decision` is about: the highest-scoring flagged class, else
    the highest-scoring class whose score is inside its review band (what a reviewer is asked
    about), else the top score."""
    scores = decision["scores"]
    candidates = ([c for c in decision.get("flagged") or [] if c in scores]
                  or [c for c in decision.get("review_classes") or [] if c in scores]
                  or list(scores))
    return max(candidates, key=lambda c: scores[c])


def attention_classes(decision: dict) -> list[str]:
    """The classes an explanation of `decision` is stored for: its flagged classes and those in
    their review band (a comment flagged for harassment and reviewed for violence needs both),
    highest score first; else `target_class`'s one."""
    scores = decision["scores"]
    asked = dict.fromkeys(c for c in [*(decision.get("flagged") or []),
                                      *(decision.get("review_classes") or [])] if c in scores)
    return sorted(asked, key=lambda c: -scores[c]) or [target_class(decision)]


def expanded_targets(decisions: list[dict], targets: list) -> tuple[list[int], list[str]]:
    """One row per decision and class to explain: (the decision's index, the class). A
    decision whose target is None has a row per `attention_classes`; a named one keeps it (a
    clip's frame, explained for the class it is the top frame of)."""
    rows = [(i, name) for i, (d, t) in enumerate(zip(decisions, targets))
            for name in ([t] if t else attention_classes(d))]
    return [i for i, _ in rows], [name for _, name in rows]


def attention_rows(decisions: list[dict]) -> tuple[list[int], list[str]]:
    """`expanded_targets` with no target named: every class a reviewer is asked about."""
    return expanded_targets(decisions, [None] * len(decisions))


NEEDS_CHECKPOINT = {"image": "Grad-CAM", "text": "Integrated Gradients",
                    "image+text": "Grad-CAM and Integrated Gradients"}


def gradient_methods(bundle) -> str:
    """The methods that need the bundle's PyTorch model, by what it reads (for messages)."""
    return NEEDS_CHECKPOINT.get(bundle.input_kind, "Grad-CAM")


def load_bundle_checkpoint(bundle):
    """The PyTorch model the bundle was exported from; a ShotlabError naming the methods that
    need it (gradient_methods) when it is gone, or when the file there now holds another model
    (the run trained again)."""
    from shotlab.train.checkpoint import load_checkpoint

    problem = checkpoint_problem(bundle, hashed=False)  # the hash: on the bytes loaded
    if problem:
        raise ShotlabError(problem)
    return load_checkpoint(Path(bundle.checkpoint_path),
                           expected_sha256=bundle.manifest["source"].get("checkpoint_sha256"),
                           mismatch=other_checkpoint(bundle, Path(bundle.checkpoint_path)))


def other_checkpoint(bundle, path: Path) -> str:
    return (f"{path}: not the checkpoint bundle {bundle.origin} was exported from (its sha256 "
            f"differs: the run was trained or resumed since); {gradient_methods(bundle)} would "
            f"explain another model: re-export the bundle")


def checkpoint_problem(bundle, *, hashed: bool = True) -> str | None:
    """Why the bundle's source checkpoint cannot be used (missing, or, `hashed`, not the file
    exported: its sha256 differs), in one line with the fix; None when it can. Reads the
    file's hash, never torch: the service asks at start-up, before any explanation is due."""
    from shotlab.core.images import sha256_file

    needs = gradient_methods(bundle)
    named = (bundle.manifest.get("source") or {}).get("checkpoint")
    if not named:
        return (f"{bundle.origin}: the bundle names no checkpoint it was exported from; {needs} "
                f"needs the PyTorch model (re-export the bundle from a run)")
    path = Path(named)
    if not path.is_file():
        return (f"{path}: the checkpoint bundle {bundle.origin} was exported from is "
                f"missing; {needs} needs the PyTorch model (restore the run folder, "
                f"or re-export the bundle from an existing run)")
    expected = bundle.manifest["source"].get("checkpoint_sha256")
    if hashed and expected and sha256_file(path) != expected:
        return other_checkpoint(bundle, path)
    return None


def record_flagged(bundle, decisions: list[dict], inputs, store_path, *,
                   checkpoint=None, targets=None, params=None) -> int:
    """Store a Grad-CAM for each decision and class it is flagged or reviewed for
    (`attention_classes`); returns how many were stored.

    `inputs` are the decisions' preprocessed float32 (N, 3, H, W) images, in the same order.
    `checkpoint` is the bundle's loaded checkpoint when the caller keeps it (the service's
    worker), else it is loaded here. A clip's decision may come several times, once per
    flagged class with that class's top frame: `targets` then names the class of each row (a
    row whose target is None is explained for each of its `attention_classes`) and `params`
    adds to each row's stored parameters (its timestamp)."""
    import numpy as np

    from shotlab.explain import explain
    from shotlab.explain.store import ExplanationStore

    if not decisions:
        return 0
    checkpoint = checkpoint or load_bundle_checkpoint(bundle)
    classes = list(bundle.classes)
    # a decision without a named target: a row per class a reviewer is asked about
    rows, names = expanded_targets(decisions, targets or [None] * len(decisions))
    decisions, inputs = [decisions[i] for i in rows], np.asarray(inputs, np.float32)[rows]
    params = [params[i] for i in rows] if params else None
    maps = explain(checkpoint.model, inputs, [classes.index(n) for n in names], method=METHOD)
    common = {"target_layer": "auto", "model": "checkpoint", "checkpoint": str(checkpoint.path)}
    extra = params or [None] * len(decisions)
    model_sha256 = checkpoint.sha256  # of the bytes the model was loaded from
    bundle_path = getattr(bundle, "origin", None) or bundle.path
    with ExplanationStore(store_path) as store, store.transaction():  # all stored, or none
        for decision, name, heatmap, more in zip(decisions, names, maps, extra):
            store.add_decision(decision, bundle_path)
            store.put(decision["decision_id"], METHOD, heatmap, target=name,
                      params={**common, **(more or {})}, model_sha256=model_sha256,
                      input_sha256=decision.get("sha256"))
    return len(decisions)
