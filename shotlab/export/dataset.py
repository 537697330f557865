"""`shotlab predict --dataset NAME`: decisions written into a FiftyOne dataset.

Samples are matched by file path (added when new, with their sha256); each gets `predictions`
(label(s) with confidence and all scores), `decision_id`, `needs_review` and `flagged` (and
`segments` for a clip: a clip dataset is a FiftyOne video dataset). The `review-queue` saved
view holds the samples flagged or in the review band, lowest confidence first.
"""

from __future__ import annotations

from shotlab.core import store
from shotlab.core.errors import InputError

PREDICTION_FIELD = "predictions"
REVIEW_VIEW = "review-queue"


def prediction_label(decision: dict, task: str, bundle_name: str):
    fo = store.fiftyone()
    scores = decision["scores"]
    if task == "multilabel":
        return fo.Classifications(classifications=[
            fo.Classification(label=name, confidence=scores[name], bundle=bundle_name,
                              decision_id=decision["decision_id"])
            for name in decision["labels"]])
    (label,) = decision["labels"]
    return fo.Classification(label=label, confidence=scores[label],
                             scores=list(scores.values()), bundle=bundle_name,
                             decision_id=decision["decision_id"])


def ensure_dataset(name: str, task: str, media: str = "image"):
    dataset = store.find(name)
    if dataset is None:
        return store.create(name, task, media=media)
    check_fits(dataset, task, media)
    return dataset


def check_fits(dataset, task: str, media: str) -> None:
    """Refuse a run whose task or media type (image, video) dataset `dataset` does not hold."""
    store.require_task(dataset, task)
    if store.media_of(dataset) != media:
        kind = "clips" if media == "video" else "images"
        raise InputError(f"dataset '{dataset.name}' holds {store.media_of(dataset)}s, not "
                         f"{kind}; give --dataset another name for the {kind}")


def check_dataset(name: str, bundle, images: list, clips: list) -> None:
    """Refuse, before anything is predicted, files and a bundle dataset `name` cannot take:
    images beside clips (an animated GIF or PNG is a clip), a media type or task other than
    its own, or other classes (`check_classes`). Before, these failed after the whole run."""
    media = "video" if clips and not images else "image"
    if images and clips:  # what opens decides: a truncated upload is a bad file, not a kind
        clip = first_readable(clips, opens_as_clip)
        image = first_readable(images, opens_as_image) if clip is not None else None
        if clip is not None and image is not None:
            raise InputError(mixed_media(f"first clip: {clip}; an animated GIF or PNG is a "
                                         f"clip, as every frame is scored"))
        media = "video" if clip is not None else "image"
    dataset = store.find(name)
    if dataset is not None:
        check_fits(dataset, bundle.task, media)
    check_classes(name, bundle.classes)


def first_readable(paths: list, opens) -> object:
    """The first of `paths` that `opens` (raising BadImageError when it does not), or None:
    a file that does not open (a truncated upload) is a bad file later, and must not keep the
    rest of a run out of a dataset."""
    from shotlab.core.errors import BadImageError

    for path in paths:
        try:
            opens(path)
            return path
        except BadImageError:
            continue
    return None


def opens_as_clip(path) -> None:
    from shotlab.core.clips import ClipReader

    with ClipReader(path):
        pass


def opens_as_image(path) -> None:
    from shotlab.core.images import open_image, read_bytes

    open_image(path, read_bytes(path)).close()


def mixed_media(why: str) -> str:
    return (f"--dataset takes images or clips, not both in one run (a FiftyOne dataset holds "
            f"one media type; {why}); predict them in two runs")


def check_classes(name: str, classes) -> None:
    """Refuse, before anything is predicted, a bundle whose classes are not those of dataset
    `name` (its samples' labels): its predictions replaced the ones training wrote with
    another model's labels. A dataset not made yet, or with no labels (an inbox predict
    made), takes any bundle; an inbox whose reviewers have labelled some samples takes a
    bundle whose classes hold those labels, as long as no training run wrote its predictions."""
    dataset = store.find(name)
    have = set(store.class_names(dataset)) if dataset is not None else set()
    if not have or have == set(classes):
        return
    if have <= set(classes) and not trained_on(dataset):
        return
    raise InputError(f"--dataset {name}: its classes are {', '.join(sorted(have))}, the "
                     f"bundle's are {', '.join(classes)}; its predictions would replace those "
                     f"of another model: give the dataset the bundle was trained on, or a new "
                     f"--dataset name")


def trained_on(dataset) -> bool:
    """Whether a training run wrote predictions into `dataset` (they name their run; a
    bundle's, written by predict, name the bundle). One count in the database."""
    return (PREDICTION_FIELD in dataset.get_field_schema()
            and len(dataset.exists(f"{PREDICTION_FIELD}.run")) > 0)


def media_of(decisions: list[dict]) -> str:
    kinds = {d.get("kind", "image") for d in decisions}
    if len(kinds) > 1:
        raise InputError(mixed_media("the files decided were both"))
    return "video" if kinds == {"clip"} else "image"


def write_to_dataset(name: str, decisions: list[dict], *, task: str, bundle_name: str) -> dict:
    """Store the decisions on dataset `name`; returns {added, updated, review_queue}. Clip
    decisions go to a video dataset and also set `segments` (what a reviewer watches)."""
    fo = store.fiftyone()
    media = media_of(decisions)
    dataset = ensure_dataset(name, task, media)
    known = set(dataset.values("filepath"))
    new = [d for d in decisions if d["path"] not in known]
    # progress=False: FiftyOne draws its bar on stdout, which --json keeps for the summary
    dataset.add_samples([fo.Sample(filepath=d["path"], sha256=d["sha256"]) for d in new],
                        progress=False)
    for field_name, kind in (("needs_review", fo.BooleanField), ("decision_id", fo.StringField)):
        if field_name not in dataset.get_field_schema():
            dataset.add_sample_field(field_name, kind)
    by_path = {d["path"]: d for d in decisions}
    # the sample's key to its decision, explanation and appeals (multilabel had none)
    dataset.set_values("decision_id", {p: d["decision_id"] for p, d in by_path.items()},
                       key_field="filepath")
    dataset.set_values(PREDICTION_FIELD, {p: prediction_label(d, task, bundle_name)
                                          for p, d in by_path.items()}, key_field="filepath")
    dataset.set_values("needs_review", {p: d["needs_review"] for p, d in by_path.items()},
                       key_field="filepath")
    dataset.set_values("flagged", {p: d["flagged"] for p, d in by_path.items()},
                       key_field="filepath")
    if media == "video":
        dataset.set_values("segments", {p: d["segments"] for p, d in by_path.items()},
                           key_field="filepath")
    F = fo.ViewField
    # $and short-circuits: samples never predicted (no `flagged`) are not sized.
    flagged = F("flagged").exists() & (F("flagged").length() > 0)
    view = dataset.match((F("needs_review") == True) | flagged)  # noqa: E712
    # least confident first: multilabel, by its most confident label (none predicted: first)
    view = view.sort_by(f"{PREDICTION_FIELD}.confidence" if task == "multiclass" else
                        F(f"{PREDICTION_FIELD}.classifications").map(F("confidence")).max())
    dataset.save_view(REVIEW_VIEW, view, overwrite=True)
    return {"dataset": name, "added": len(new), "updated": len(decisions) - len(new),
            "review_queue": len(view)}
