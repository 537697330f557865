"""Tier 2: the deeper explanations an appeal asks for, processed in batches, apart from prediction.

    shotlab explain appeal out/explanations.sqlite 3f2a... --method lime,shap   # queue
    shotlab explain --pending out/explanations.sqlite --batch 8                 # process

Each queued appeal names its decision, image and bundle. Appeals are grouped by bundle (its ONNX
runner is loaded once), `batch` images at a time; LIME and SHAP run through the ONNX runner (the
deployed model), gradient methods on the checkpoint the bundle names. Each map is stored with its
deletion/insertion AUC against the random reference. An appeal whose image or bundle cannot be
read is marked failed with the reason; the others go on. So is one whose image is no longer the
one decided (its sha256 differs from the stored decision's): its map would be another picture's;
and one whose bundle did not make the stored decision (`--bundle` another model): its map would
be another model's.

One run at a time per store (`sole_run`): two runs together each took every queued appeal and
stored every map twice. The second one is refused in one line; the lock is the kernel's, so a
killed run leaves none behind.
"""

from __future__ import annotations

from contextlib import contextmanager
from itertools import groupby
from pathlib import Path

from shotlab.core.errors import ShotlabError

DEFAULT_METHODS = ("lime", "shap")  # an appeal deserves the model-agnostic, perturbation methods
# The methods here explain one image; a clip's frames are picked, decoded and explained by predict.
CLIPS_EXPLAINED = ("clips are explained by `shotlab predict BUNDLE CLIP --explain` (Grad-CAM of "
                   "their top frames) and shown by `shotlab explain show DECISION_ID --store "
                   "STORE`")


def clip_reason(path) -> str | None:
    """Why `path` cannot be explained here when it is a clip (by its suffix), else None."""
    from shotlab.core.clips import is_clip_path

    if path and is_clip_path(path):
        return f"{path}: a clip, not an image; {CLIPS_EXPLAINED}"
    return None


def process_pending(store_path, *, methods=None, batch: int = 8, score: bool = True,
                    options: dict | None = None, open_source=None, progress=None) -> dict:
    """Process every queued appeal; {"processed", "failed", "stored", "errors": [...]}.

    `methods` overrides what each appeal asked for; `options` maps a method to its `explain`
    options (e.g. {"lime": {"num_samples": 500}}); `open_source(bundle_path) -> Source` defaults
    to `shotlab.explain.sources.open_source` (runs work too, for appeals queued against a run)."""
    from shotlab.explain.sources import open_source as default_open
    from shotlab.explain.store import ExplanationStore

    open_source = open_source or default_open
    summary = new_summary()
    with ExplanationStore(store_path, create=False) as store, sole_run(store_path):
        for bundle_path, batches in appeal_batches(store, batch):
            try:
                source = open_source(bundle_path)
            except ShotlabError as exc:
                for appeal in (a for appeals in batches for a in appeals):
                    fail(store, appeal, str(exc), summary)
                continue
            for appeals in batches:
                process_batch(store, source, appeals, methods, score, options or {}, summary)
                if progress:
                    progress(len(appeals))
    return summary


@contextmanager
def sole_run(store_path):
    """Hold the store's appeal queue for this run (an exclusive lock on a file beside it); an
    InputError when another run holds it."""
    import fcntl

    from shotlab.core.errors import InputError
    from shotlab.core.files import open_lock

    path = Path(store_path).resolve()  # one lock per file, whatever link names it
    try:
        lock = open_lock(path.with_name(f".{path.name}.pending-lock"))
    except OSError as exc:  # a read-only folder: the store could not take the results either
        raise InputError(f"{store_path}: cannot write beside the store ({exc.strerror}); "
                         f"processing appeals writes into it: copy it to a writable folder"
                         ) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{store_path}: another `shotlab explain pending` is processing "
                             f"this store's appeals; wait for it to finish (each appeal is "
                             f"explained once)") from None
        yield  # closing the file releases the lock


def new_summary() -> dict:
    return {"processed": 0, "failed": 0, "stored": 0, "errors": []}


def appeal_batches(store, batch: int):
    """The queued appeals by bundle, oldest first: (bundle_path, [up to `batch` appeals, ...])."""
    appeals = sorted(store.appeals("queued"), key=lambda a: (a.bundle_path, a.id))
    for bundle_path, group in groupby(appeals, key=lambda a: a.bundle_path):
        group = list(group)
        yield bundle_path, [group[start:start + batch] for start in range(0, len(group), batch)]


def fail(store, appeal, reason: str, summary: dict) -> None:
    store.finish(appeal.id, error=reason)
    summary["failed"] += 1
    summary["errors"].append({"decision_id": appeal.decision_id, "error": reason})


def appeal_target(store, source, appeal, probs) -> int:
    """The class tier 1 explained for the appealed decision (the store keeps no
    review_classes: they are read again off its scores and the bundle's thresholds)."""
    from shotlab.explain.tier1 import target_class
    from shotlab.runtime.decide import review_classes

    decision = store.decision(appeal.decision_id)
    if decision and decision.get("scores"):
        review = review_classes(decision["scores"], source.thresholds)
        return source.classes.index(target_class({**decision, "review_classes": review}))
    return int(probs.argmax())


def process_batch(store, source, appeals, methods, score: bool, options: dict,
                  summary: dict) -> None:
    appeals = [a for a in appeals if not failed_as_foreign(store, source, a, summary)
               and not failed_as_clip(store, a, summary)]
    if source.preprocessing.kind == "text":
        from shotlab.explain.text_pending import process_text_batch

        return process_text_batch(store, source, appeals, methods, score, options, summary,
                                  fail=fail, finish_rows=finish_rows,
                                  appeal_target=appeal_target)
    rows = loaded_rows(store, source, appeals, summary)
    if rows:
        errors = explain_rows(store, source, rows, methods, score, options, summary)
        finish_rows(store, rows, errors, summary)


def loaded_rows(store, source, appeals, summary: dict) -> list[tuple]:
    """(appeal, input array) for each appeal whose image is still the one decided and loads;
    the others are marked failed with their reason."""
    from shotlab.explain.sources import load_inputs

    appeals = [a for a in appeals if not failed_as_changed(store, a, summary)]
    good, arrays, bad = load_inputs(source, list(dict.fromkeys(a.image_path for a in appeals)))
    by_path = {}
    for appeal in appeals:
        by_path.setdefault(appeal.image_path, []).append(appeal)
    for path, reason in bad:
        for appeal in by_path.pop(path, []):
            fail(store, appeal, f"{path}: {reason}", summary)
    return [(appeal, array) for path, array in zip(good, arrays)
            for appeal in by_path.get(str(path), [])]


def explain_rows(store, source, rows, methods, score: bool, options: dict,
                 summary: dict) -> dict[int, str]:
    """Each wanted method's maps of the rows, stored with their faithfulness; {row: error}."""
    import numpy as np

    from shotlab.explain import METHODS, explain, method_settings
    from shotlab.explain.faithfulness import faithfulness, random_reference
    from shotlab.explain.inputs import forward_probabilities

    images = np.stack([array for _, array in rows])
    forward = forward_probabilities(source.forward_model, multilabel=source.multilabel)
    targets = [appeal_target(store, source, a, p) for (a, _), p in zip(rows, forward(images))]
    reference = random_reference(forward, images, targets) if score else None
    wanted = sorted({m for a, _ in rows for m in (methods or a.methods or DEFAULT_METHODS)},
                    key=list(METHODS).index)
    digests = {a.image_path: sha256_or_none(a) for a, _ in rows}  # once, not once a method
    errors: dict[int, str] = {}
    for method in wanted:
        keep = [i for i, (a, _) in enumerate(rows) if method in (methods or a.methods
                                                                    or DEFAULT_METHODS)]
        try:
            chosen = {**forward_options(method, source), **options.get(method, {})}
            maps = explain(source.model_for(method), images[keep], [targets[i] for i in keep],
                           method=method, **chosen)
        except ShotlabError as exc:
            errors.update({i: str(exc) for i in keep})
            continue
        scores = (faithfulness(source.forward_model, images[keep], [targets[i] for i in keep],
                               maps, multilabel=source.multilabel,
                               reference=[reference[i] for i in keep]) if score
                  else [{}] * len(keep))
        model_sha256, model = source.made_by(method)
        for i, heatmap, faith in zip(keep, maps, scores):
            appeal = rows[i][0]
            store.put(appeal.decision_id, method, heatmap, target=source.classes[targets[i]],
                      params={"tier": 2, **model, **method_settings(method, chosen)},
                      scores=faith, model_sha256=model_sha256,
                      input_sha256=digests[appeal.image_path])
            summary["stored"] += 1
    return errors


def failed_as_changed(store, appeal, summary: dict) -> bool:
    """Whether the appeal's image is no longer the one decided (its bytes changed since
    `predict`): then it is marked failed, as `explain show` refuses to draw over it."""
    reason = changed_image(store.decision(appeal.decision_id), appeal)
    if reason:
        fail(store, appeal, reason, summary)
    return bool(reason)


def failed_as_clip(store, appeal, summary: dict) -> bool:
    """Whether the appeal names a clip (queued before `appeal` refused them): then it is marked
    failed with what explains clips, not read as an image that is "not an image"."""
    reason = clip_reason(appeal.image_path)
    if reason:
        fail(store, appeal, reason, summary)
    return bool(reason)


def failed_as_foreign(store, source, appeal, summary: dict) -> bool:
    """Whether the appeal's bundle is not the one that made the stored decision (`--bundle`
    another bundle): then it is marked failed, not explained with a model that never decided
    it."""
    decision = store.decision(appeal.decision_id)
    reason = source.foreign(decision) if decision and source.foreign else None
    if reason:
        fail(store, appeal, reason, summary)
    return bool(reason)


def changed_image(decision: dict | None, appeal) -> str | None:
    """Why the appeal's image is not the one `decision` was made on, or None (same bytes,
    nothing to compare with, or not a readable file: load_inputs says why then)."""
    from shotlab.core.images import sha256_file

    decided, path = (decision or {}).get("sha256"), appeal.image_path
    if not (decided and path and Path(path).is_file()):  # never hash a pipe: it would wait
        return None
    try:
        if sha256_file(path) == decided:
            return None
    except OSError:
        return None
    return (f"not the image decided: {path} changed since decision {appeal.decision_id} "
            f"(its sha256 differs); queue the appeal again with the original image (--image)")


def finish_rows(store, rows, errors: dict, summary: dict) -> None:
    """Each appeal of `rows` ((appeal, input) pairs) marked done, or failed with its error
    (`errors`: row index -> reason)."""
    for i, (appeal, _) in enumerate(rows):
        if i in errors:
            fail(store, appeal, errors[i], summary)
        else:
            store.finish(appeal.id)
            summary["processed"] += 1


def forward_options(method: str, source) -> dict:
    return {"multilabel": source.multilabel} if method in ("lime", "shap") else {}


def sha256_or_none(appeal) -> str | None:
    from shotlab.core.images import sha256_file

    try:
        return sha256_file(appeal.image_path)
    except OSError:
        return None
