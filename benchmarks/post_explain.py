"""What a post's explanation costs: the modality split, Grad-CAM on the picture, beside the
decision itself.

Model: the late-fusion post classifier (`train/post_model.PostClassifier`): frozen lite0 and
MiniLM, a logistic-regression head fitted by `train/post_fit.fitted_head` on the train posts of
`datasets/posts.py` (its recipe images and captions), no workspace needed. Posts: the recipe's
val and test posts. Runner: the PyTorch reference (`TorchRunner`, the same runner protocol the
bundle's ONNX model is called through).

Cost is counted, not guessed: a forward hook on each encoder counts the posts each forward pass
carries. Per post: the decision is 1 forward pass; the split 4 (both, image only, text only,
neither: exact two-player Shapley values); Grad-CAM on the picture 1 forward + 1 backward of the
image branch (forward-pass equivalents = forwards + 2 x backwards). Times are medians of
interleaved rounds (decision, split, Grad-CAM, ...). There is no target: these are the figures
docs/text.md quotes.

    .venv/bin/python benchmarks/post_explain.py [--rounds 3]

Writes benchmarks/results/post_explain.json and post_explain.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import header, save_results, stamp  # benchmarks/common.py (scripts run from this folder)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLASSES = ["off_topic", "on_topic"]


def load_recipe():
    import importlib.util

    spec = importlib.util.spec_from_file_location("posts", ROOT / "datasets" / "posts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(folder: Path):
    """(model, parts, held-out inputs, their targets) from the recipe."""
    import torch

    from shotlab.runtime.kinds import load_parts
    from shotlab.train.post_fit import fitted_head, image_backbone_of
    from shotlab.train.post_model import PostClassifier
    from shotlab.train.text_model import load_encoder, text_preprocessing

    rows = load_recipe().build_posts(folder)
    created = image_backbone_of("lite0")
    parts = {"image": created.preprocessing.with_classes(CLASSES),
             "text": text_preprocessing(CLASSES)}
    model = PostClassifier(created.model.eval(), load_encoder(), torch.nn.Linear(1, 1)).eval()
    loaded = {}
    for group, splits in (("train", ("train",)), ("heldout", ("val", "test"))):
        chosen = [r for r in rows if r["split"] in splits]
        inputs = load_parts({"image": [folder / r["image_path"] for r in chosen],
                             "text": [r["text"] for r in chosen]}, parts)
        loaded[group] = (inputs.arrays, np.array([CLASSES.index(chosen[i]["label"])
                                                  for i in inputs.kept]))
    x, y = loaded["train"]
    with torch.inference_mode():
        features = torch.cat([model.image_backbone(torch.from_numpy(x["image"])),
                              model.text_encoder(torch.from_numpy(x["text"]))], 1).numpy()
    model.head = fitted_head(features, y, "multiclass", created.model.num_features, CLASSES)
    return model, parts, *loaded["heldout"]


class Counter:
    """Posts through each encoder's forward (hooks); reset per measurement."""

    def __init__(self, model):
        self.seen = {"image": 0, "text": 0}
        model.image_backbone.register_forward_hook(self.hook("image"))
        model.text_encoder.register_forward_hook(self.hook("text"))

    def hook(self, name):
        def count(_module, inputs, _output):
            self.seen[name] += len(inputs[0])
        return count

    def take(self) -> dict:
        seen, self.seen = dict(self.seen), {"image": 0, "text": 0}
        return seen


def measure(model, parts, inputs, targets, rounds: int) -> dict:
    from shotlab.explain.post_split import modality_split
    from shotlab.explain.post_tier1 import image_cam
    from shotlab.runtime.contract import input_specs
    from shotlab.runtime.runners import TorchRunner, run_batched

    runner = TorchRunner(model, "multiclass", len(CLASSES), specs=input_specs(parts))
    n = len(targets)
    tasks = {
        "decision": lambda: run_batched(runner, inputs),
        "modality_split": lambda: modality_split(runner, inputs, targets, parts, CLASSES),
        "gradcam_image": lambda: [image_cam(model, inputs["image"][i], inputs["text"][i],
                                            int(targets[i])) for i in range(n)],
    }
    counter = Counter(model)
    passes = {}
    for name, task in tasks.items():  # warm-up round, counting the passes
        task()
        seen = counter.take()
        passes[name] = {part: count / n for part, count in seen.items()}
    times = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            times[name].append((time.perf_counter() - start) / n)
    splits = modality_split(runner, inputs, targets, parts, CLASSES)
    return {"posts": n, "rounds": rounds, "forward_passes_per_post": passes,
            "seconds_per_post": {k: statistics.median(v) for k, v in times.items()},
            "mean_image_share": statistics.mean(s.image_share for s in splits
                                                if s.image_share is not None)}


def markdown(result: dict) -> str:
    seconds, passes = result["seconds_per_post"], result["forward_passes_per_post"]
    base = seconds["decision"]
    lines = header("Post explanation cost", result,
                   f"; PyTorch reference on CPU, {result['posts']} held-out posts of "
                   f"datasets/posts.py, median of {result['rounds']} interleaved rounds")
    lines += ["| per post | forward passes (image, text) | seconds | x decision |",
              "|---|---|---|---|"]
    for name in ("decision", "modality_split", "gradcam_image"):
        p = passes[name]
        lines.append(f"| {name} | {p['image']:g}, {p['text']:g} | {seconds[name]:.3f} | "
                     f"{seconds[name] / base:.1f} |")
    lines += ["", f"The decision and the split run batched (32 rows a call; the split's 4 "
                  f"passes a post are 4 rows of the same batch); Grad-CAM runs one post at a "
                  f"time (its image branch holds that post's caption embedding, computed once) "
                  f"and adds one backward pass through the image branch. Mean image share of the "
                  f"split: {result['mean_image_share']:.2f}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown-only", action="store_true",
                        help="rewrite results/post_explain.md from the saved JSON")
    args = parser.parse_args(argv)
    if args.markdown_only:
        import json

        saved = Path(__file__).resolve().parent / "results" / "post_explain.json"
        result = json.loads(saved.read_text())
        return save_results("post_explain", result, markdown(result)) or 0
    load_before = os.getloadavg()[0]
    import torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        model, parts, inputs, targets = build(Path(folder))
        figures = measure(model, parts, inputs, targets, args.rounds)
    result = {**stamp(load_before), **figures}
    save_results("post_explain", result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
