"""The work behind `shotlab explain RUN_OR_BUNDLE IMAGE...`: maps, pictures and scores.

For each readable image: the model's prediction, one map per method for the target (the given
`--target`, else the class decided: the bundle's rule, unsafe-class thresholds included, as
`predict` applies it; multilabel: the highest-scoring class flagged, else predicted), an overlay
PNG per method and a side-by-side figure in `out`, and with `score` the deletion/insertion AUC of
each map against the random reference plus the cascading model-randomisation check for Grad-CAM
and Grad-CAM++ (one more map per stage of the network; IG, LIME and SHAP would cost 50 to 1000
forward passes per stage, so the CLI leaves them to `faithfulness.sanity_check`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError


def parse_methods(text: str, kind: str = "image") -> list[str]:
    """The methods named in `text` (comma-separated) for a model of input `kind`."""
    from shotlab.explain import METHODS_BY_KIND

    table = METHODS_BY_KIND.get(kind, METHODS_BY_KIND["image"])
    methods = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in table]
    if unknown or not methods:
        what = "" if kind == "image" else f" for {kind} models"
        raise InputError(f"--method {text}: unknown method {', '.join(unknown) or '(none)'}"
                         f"{what}; methods: {', '.join(table)} (comma-separated)")
    return list(dict.fromkeys(methods))


def explain_images(source, paths, methods, *, target=None, out=None, score=False,
                   progress=None) -> dict:
    from shotlab.explain.sources import load_inputs

    good, arrays, bad = load_inputs(source, paths)
    if out is not None:  # before any map: a user's file or a folder it cannot write refused
        check_pictures(Path(out), picture_stems(good), methods)
    result = {"source": str(source.origin), "kind": source.kind, "methods": methods,
              "images": [], "bad_files": [{"path": p, "reason": r} for p, r in bad]}
    if not good:
        return result
    from shotlab.explain.inputs import forward_probabilities

    images = np.stack(arrays)
    forward = forward_probabilities(source.forward_model, multilabel=source.multilabel)
    probs = forward(images)
    decided = source.decided(probs)
    targets = [source.target_index(target)] * len(good) if target is not None else decided
    maps, seconds = compute_maps(source, images, targets, methods, progress)
    scores = score_maps(source, forward, images, targets, maps) if score else {}
    for i, (path, stem) in enumerate(zip(good, picture_stems(good))):
        entry = image_entry(source, path, i, probs[i], decided[i], targets[i], maps, seconds,
                            scores)
        if out is not None:
            entry["files"] = write_pictures(source, path, {m: maps[m][i] for m in maps}, entry,
                                            Path(out), stem)
        result["images"].append(entry)
    if score:
        result["sanity"] = sanity(source, images, targets, methods)
    return result


def compute_maps(source, images, targets, methods, progress):
    from shotlab.explain import explain

    maps, seconds = {}, {}
    for method in methods:
        options = {"multilabel": source.multilabel} if method in ("lime", "shap") else {}
        started = time.perf_counter()
        maps[method] = explain(source.model_for(method), images, targets, method=method,
                               **options)
        seconds[method] = (time.perf_counter() - started) / len(images)
        if progress:
            progress(method)
    return maps, seconds


def score_maps(source, forward, images, targets, maps) -> dict:
    from shotlab.explain.faithfulness import faithfulness, random_reference

    reference = random_reference(forward, images, targets)
    return {method: faithfulness(source.forward_model, images, targets, method_maps,
                                 multilabel=source.multilabel, reference=reference)
            for method, method_maps in maps.items()}


def sanity(source, images, targets, methods) -> dict:
    from shotlab.explain.faithfulness import sanity_check

    out = {}
    for method in [m for m in methods if m in ("gradcam", "gradcampp")]:
        check = sanity_check(source.torch_model(), images, targets, method)
        out[method] = {"spearman": check["spearman"], "passed": check["passed"],
                       "threshold": check["threshold"]}
    return out


def picture_stems(paths) -> list[str]:
    """A file-name stem per image for `--out`: its own, or `stem-2`, `stem-3`, ... where images
    share one (a/cat.jpg and b/cat.jpg; Cat.png too, for case-blind file systems). An image's
    own stem is never given to another (`b/cat.jpg` does not take `cat-2.jpg`'s name)."""
    own = [Path(path).stem for path in paths]
    reserved = {stem.casefold() for stem in own}
    used, stems = set(), []
    for stem in own:
        name, n = stem, 1
        while name.casefold() in used or (name != stem and name.casefold() in reserved):
            n += 1
            name = f"{stem}-{n}"
        used.add(name.casefold())
        stems.append(name)
    return stems


def image_entry(source, path: Path, i: int, probs, top: int, target: int, maps, seconds,
                scores) -> dict:
    entry = {"path": str(path), "predicted": source.classes[top], "score": float(probs[top]),
             "target": source.classes[target], "target_score": float(probs[target]),
             "seconds": {m: round(s, 4) for m, s in seconds.items()}}
    if scores:
        entry["faithfulness"] = {m: s[i] for m, s in scores.items()}
    return entry


def picture_files(out: Path, stem: str, methods) -> dict[str, str]:
    """What `write_pictures` writes in `out` for one image: an overlay per method, LIME's
    superpixels, the side-by-side figure."""
    files = {method: str(out / f"{stem}.{method}.png") for method in methods}
    if "lime" in methods:
        files["lime_superpixels"] = str(out / f"{stem}.lime-superpixels.png")
    files["figure"] = str(out / f"{stem}.methods.png")
    return files


def check_pictures(out: Path, stems, methods) -> None:
    """Refuse, before any map is computed, an --out where a picture would replace a file
    explain did not write (a user's own, a link, a folder) or that cannot be written in."""
    from shotlab.core.files import check_own_output
    from shotlab.explain.plots import is_own_figure

    for stem in stems:
        for path in map(Path, picture_files(out, stem, methods).values()):
            check_own_output(path, "--out", is_own_figure,
                             f"--out {out}: {path} exists and is not a picture `shotlab "
                             f"explain` wrote; explain replaces only its own output: choose "
                             f"another --out")


def write_pictures(source, path: Path, maps: dict, entry: dict, out: Path, stem: str) -> dict:
    from shotlab.explain.plots import image_png, lime_superpixels, methods_figure, overlay
    from shotlab.explain.sources import display_image

    rgb = display_image(source, path)
    files = picture_files(out, stem, maps)
    for method, heatmap in maps.items():
        image_png(overlay(rgb, heatmap), files[method])
    if "lime" in maps:
        image_png(lime_superpixels(rgb, maps["lime"]), files["lime_superpixels"])
    captions = {m: f"deletion {f['deletion_auc']:.2f} (random {f['random_deletion_auc']:.2f})"
                for m, f in entry.get("faithfulness", {}).items()}
    methods_figure(rgb, maps, files["figure"], captions=captions,
                   title=f"{path.name}: why {entry['target']} ({entry['target_score']:.2f})")
    return files
