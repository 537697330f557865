"""`shotlab train benchmark`: every method x backbone x shots, side by side, repeated.

A text dataset (manifest kind "text") runs the same table with its own methods: TF-IDF word
1-2 grams and character 2-5 grams with logistic regression (`baselines.TEXT_BASELINES`),
classifiers on the MiniLM embeddings, and SetFit (`text_fit`, fine-tune mode "setfit").

For each repeat and shot count, `shots` images per class are drawn (seeded) from the train split;
every method trains on exactly those and is measured on the same held-out test split. Methods:
the classical baselines (no network), classifiers on each backbone's embeddings, and the
fine-tuning modes (which early-stop on the full val split). Results: one CSV row per
(method, backbone, shots, repeat), a Markdown table of mean +- std, a learning-curve PNG.
Embeddings are cached, so their one-time extraction is timed apart from the methods.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from shotlab.core.errors import InputError
from shotlab.core.progress import progress_bar
from shotlab.train.manifest import Entry, Manifest

FINETUNE_METHODS = ("linear", "partial", "full", "setfit", "auto")
# "auto": what `shotlab train` without --mode trains (train/auto_choice.py): the linear head on
# the backbone with offline weights (whatever --backbones says) that cross-validates best on each
# draw of shots; its row names what it chose.
AUTO = "auto"
# What --backbones and --finetune mean when not given, per dataset kind.
DEFAULTS = {"image": ("lite0", "linear,partial,auto"), "text": ("minilm", "setfit")}


@dataclass
class Row:
    method: str
    backbone: str
    shots: int
    repeat: int
    accuracy: float
    macro_f1: float
    seconds: float
    chose: str = ""  # the automatic choice's pick ("lite2 linear"); empty for other methods


def sample_shots(manifest: Manifest, shots: int, seed: int) -> list[Entry]:
    """`shots` train entries per class (all of a smaller class), drawn with `seed`."""
    rng = np.random.default_rng(seed)
    train = manifest.split("train")
    picked = []
    for name in manifest.classes:
        members = [e for e in train if e.labels[0] == name]
        picked += [members[i] for i in sorted(rng.permutation(len(members))[:shots])]
    return picked


def scores(y_true, y_pred) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return float(accuracy_score(y_true, y_pred)), float(f1_score(y_true, y_pred, average="macro"))


def check_kind(manifest: Manifest, backbones, finetune) -> None:
    """Every backbone and fine-tuning mode must read the dataset's kind of input."""
    from shotlab.train.backbones import get_backbone
    from shotlab.train.choices import MODE_KINDS

    MODE_KINDS = {**MODE_KINDS, AUTO: "image"}  # the automatic choice picks image modes
    for backbone in backbones:
        get_backbone(backbone, manifest.kind)
    wrong = [mode for mode in finetune if MODE_KINDS[mode] != manifest.kind]
    if wrong:
        fits = ", ".join(m for m in FINETUNE_METHODS if MODE_KINDS[m] == manifest.kind)
        raise InputError(f"--finetune {wrong[0]} trains {MODE_KINDS[wrong[0]]} models and "
                         f"dataset '{manifest.dataset}' holds {manifest.kind}s; give "
                         f"--finetune {fits} (or an empty value for none)")


def check_splits(manifest: Manifest, finetune) -> None:
    """Two classes to tell apart (as `train` checks them), and the val split the fine-tune
    rows early-stop on when there are any: refused before the first row, not at it."""
    from shotlab.train.finetune import check_classes

    check_classes(manifest)
    if finetune and not manifest.split("val"):
        raise InputError(f"dataset '{manifest.dataset}' has no val split, which the fine-tune "
                         f"rows (--finetune {','.join(finetune)}) early-stop on; assign val "
                         f"samples (a val/ folder or a split column when importing), or give "
                         f"--finetune '' for the other methods alone")


class Benchmark:
    def __init__(self, manifest: Manifest, *, backbones, finetune, epochs: int, workers,
                 progress):
        if manifest.task != "multiclass":
            raise InputError(f"the benchmark compares multiclass methods; dataset "
                             f"'{manifest.dataset}' is {manifest.task}")
        self.manifest, self.backbones, self.finetune = manifest, backbones, finetune
        self.epochs, self.workers, self.progress = epochs, workers, progress
        check_kind(manifest, backbones, finetune)
        check_splits(manifest, finetune)
        self.test = manifest.split("test")
        if not self.test:
            raise InputError(f"dataset '{manifest.dataset}' has no test split to measure on")
        self.y_test = manifest.targets(self.test)
        self.text_of = self.read_texts() if manifest.kind == "text" else {}
        self.embeddings: dict[str, dict[str, np.ndarray]] = {}
        self.embedding_seconds: dict[str, float] = {}

    def read_texts(self) -> dict[str, str]:
        """The comment of every train and test entry, by sha256 (read once)."""
        from shotlab.train.text_fit import read_texts

        entries = self.manifest.split("train") + self.test
        return dict(zip((e.sha256 for e in entries), read_texts([e.filepath for e in entries])))

    def texts(self, entries: list[Entry]) -> list[str]:
        return [self.text_of[e.sha256] for e in entries]

    def embed(self, backbone: str) -> dict[str, np.ndarray]:
        """Embeddings of every train and test image by sha256 (extracted once, cached)."""
        if backbone not in self.embeddings and self.manifest.kind == "text":
            from shotlab.train.text_model import embed_texts

            start = time.perf_counter()
            vectors = embed_texts(list(self.text_of.values()), progress=self.progress)
            self.embedding_seconds[backbone] = time.perf_counter() - start
            self.embeddings[backbone] = dict(zip(self.text_of, vectors))
        if backbone not in self.embeddings:
            from shotlab.train.backbones import create_model
            from shotlab.train.embeddings import extract

            entries = self.manifest.split("train") + self.test
            start = time.perf_counter()
            vectors = extract(create_model(backbone, num_classes=0), [e.filepath for e in entries],
                              [e.sha256 for e in entries], workers=self.workers,
                              progress=self.progress)
            self.embedding_seconds[backbone] = time.perf_counter() - start
            self.embeddings[backbone] = {e.sha256: v for e, v in zip(entries, vectors)}
        return self.embeddings[backbone]

    def classical(self, features: str, classifier: str, train: list[Entry], seed: int):
        from shotlab.train.baselines import make_baseline

        model = make_baseline(features, classifier, seed=seed)
        model.fit([e.filepath for e in train], self.manifest.targets(train))
        return scores(self.y_test, model.predict([e.filepath for e in self.test]))

    def on_texts(self, features: str, classifier: str, train: list[Entry], seed: int):
        from shotlab.train.baselines import make_text_baseline

        model = make_text_baseline(features, classifier, seed=seed)
        model.fit(self.texts(train), self.manifest.targets(train))
        return scores(self.y_test, model.predict(self.texts(self.test)))

    def set_fit(self, backbone: str, train: list[Entry], seed: int):
        from shotlab.train.finetune import TrainConfig
        from shotlab.train.text_fit import fit, predict_texts

        subset = replace(self.manifest, entries=tuple(train + self.manifest.split("val") + self.test))
        config = TrainConfig(backbone=backbone, mode="setfit", seed=seed)
        with tempfile.TemporaryDirectory(prefix="shotlab-bench-") as run_dir:
            fitted = fit(subset, config, Path(run_dir), progress=False)
        probs = predict_texts(fitted.model, self.texts(self.test), "multiclass",
                              max_tokens=fitted.created.preprocessing.max_tokens)
        return scores(self.y_test, probs.argmax(axis=1))

    def on_embeddings(self, backbone: str, classifier: str, train: list[Entry], seed: int):
        from shotlab.train.baselines import make_classifier

        table = self.embed(backbone)
        model = make_classifier(classifier, seed=seed)
        model.fit(np.stack([table[e.sha256] for e in train]), self.manifest.targets(train))
        return scores(self.y_test, model.predict(np.stack([table[e.sha256] for e in self.test])))

    def fine_tuned(self, backbone: str, mode: str, train: list[Entry], seed: int):
        from shotlab.train.finetune import TrainConfig, fit, predict

        if mode == "setfit":
            return self.set_fit(backbone, train, seed)
        subset = replace(self.manifest, entries=tuple(train + self.manifest.split("val") + self.test))
        # The learning rate `shotlab train` uses, so the rows (and "auto") are what users get.
        config = TrainConfig(backbone=backbone, mode=mode, epochs=self.epochs, seed=seed,
                             workers=self.workers)
        with tempfile.TemporaryDirectory(prefix="shotlab-bench-") as run_dir:
            fitted = fit(subset, config, Path(run_dir), progress=False)
        if mode == "linear":  # backbone untouched: its head on the cached test embeddings
            return scores(self.y_test, self.head_predictions(fitted.model, backbone))
        probs = predict(fitted.model, [e.filepath for e in self.test], fitted.created, "multiclass",
                        device=fitted.device, workers=self.workers, progress=self.progress)
        return scores(self.y_test, probs.argmax(axis=1))

    def auto_backbones(self) -> list[str]:
        from shotlab.train.auto_choice import offline_backbones

        return offline_backbones() or list(self.backbones)

    def automatic(self, train: list[Entry], seed: int):
        """What `shotlab train` would choose, cross-validated on `train` (these shots) alone,
        trained as its fine-tune row would be; and what it chose."""
        from shotlab.train.auto_choice import decide

        features = {b: np.stack([self.embed(b)[e.sha256] for e in train])
                    for b in self.auto_backbones()}
        choice = decide(features, self.manifest.targets(train), self.manifest.task, seed)
        accuracy, macro_f1 = self.fine_tuned(choice["backbone"], choice["mode"], train, seed)
        return accuracy, macro_f1, f"{choice['backbone']} {choice['mode']}"

    def head_predictions(self, model, backbone: str) -> np.ndarray:
        import torch

        table = self.embed(backbone)
        features = torch.as_tensor(np.stack([table[e.sha256] for e in self.test]))
        with torch.inference_mode():
            return model.get_classifier().cpu()(features).argmax(dim=1).numpy()

    def methods(self):
        """(method, backbone, callable(train, seed)) for everything to compare."""
        from shotlab.train.baselines import BASELINES, EMBEDDINGS, TEXT_BASELINES

        if self.manifest.kind == "text":
            for features, classifier in TEXT_BASELINES:
                yield (f"{features} + {classifier}", "-",
                       lambda t, s, f=features, c=classifier: self.on_texts(f, c, t, s))
        for features, classifier in BASELINES if self.manifest.kind == "image" else ():
            if features != EMBEDDINGS:
                yield (f"{features} + {classifier}", "-",
                       lambda t, s, f=features, c=classifier: self.classical(f, c, t, s))
        for backbone in self.backbones:
            for features, classifier in BASELINES:
                if features == EMBEDDINGS:
                    yield (f"embeddings + {classifier}", backbone,
                           lambda t, s, b=backbone, c=classifier: self.on_embeddings(b, c, t, s))
            for mode in self.finetune:
                if mode != AUTO:
                    yield (f"fine-tune {mode}", backbone,
                           lambda t, s, b=backbone, m=mode: self.fine_tuned(b, m, t, s))
        if AUTO in self.finetune:
            yield AUTO, "-", self.automatic

    def run(self, shots: list[int], repeats: int) -> list[Row]:
        for backbone in self.backbones + (self.auto_backbones() if AUTO in self.finetune else []):
            self.embed(backbone)  # timed once, apart from the methods
        rows = []
        plan = [(s, r, m) for s in shots for r in range(repeats) for m in self.methods()]
        for shot, repeat, (method, backbone, train_and_score) in progress_bar(
                plan, enabled=self.progress, unit="run", desc="Benchmark"):
            train = sample_shots(self.manifest, shot, seed=repeat)
            start = time.perf_counter()
            accuracy, macro_f1, *chose = train_and_score(train, repeat)
            rows.append(Row(method, backbone, shot, repeat, accuracy, macro_f1,
                            time.perf_counter() - start, *chose))
        return rows


def summarise(rows: list[Row]) -> list[dict]:
    """Mean and std over repeats for each (method, backbone, shots)."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault((row.method, row.backbone, row.shots), []).append(row)
    return [{"method": m, "backbone": b, "shots": s, "repeats": len(g),
             "accuracy_mean": float(np.mean([r.accuracy for r in g])),
             "accuracy_std": float(np.std([r.accuracy for r in g])),
             "macro_f1_mean": float(np.mean([r.macro_f1 for r in g])),
             "macro_f1_std": float(np.std([r.macro_f1 for r in g])),
             "seconds_mean": float(np.mean([r.seconds for r in g])),
             "chose": dict(Counter(r.chose for r in g if r.chose))}
            for (m, b, s), g in groups.items()]


def method_label(method: str, summary: list[dict]) -> str:
    """The method's name in the table; the automatic choice's names what it chose, with how
    often where the draws of shots did not all agree: "auto (chose lite2 linear 7/9, ...)"."""
    if method != AUTO:
        return method
    picks = Counter()
    for r in summary:
        if r["method"] == AUTO:
            picks.update(r["chose"])
    total = sum(picks.values())
    shown = ", ".join(name if n == total else f"{name} {n}/{total}"
                      for name, n in picks.most_common())
    return f"auto (chose {shown})"


def markdown(summary: list[dict], shots: list[int], embedding_seconds: dict) -> str:
    lines = ["| method | backbone | " + " | ".join(f"{s} shots: accuracy / macro-F1 / s" for s in shots) + " |",
             "|---|---|" + "---|" * len(shots)]
    keys = dict.fromkeys((r["method"], r["backbone"]) for r in summary)
    for method, backbone in keys:
        cells = []
        for shot in shots:
            r = next((x for x in summary if (x["method"], x["backbone"], x["shots"]) ==
                      (method, backbone, shot)), None)
            cells.append("-" if r is None else
                         f"{r['accuracy_mean']:.3f} ± {r['accuracy_std']:.3f} / "
                         f"{r['macro_f1_mean']:.3f} ± {r['macro_f1_std']:.3f} / {r['seconds_mean']:.1f}")
        lines.append(f"| {method_label(method, summary)} | {backbone} | " + " | ".join(cells) + " |")
    lines += ["", "Embedding extraction, once per backbone for the train pool and test split "
              "(cached; not in the per-method seconds): "
              + ", ".join(f"{b} {s:.1f} s" for b, s in embedding_seconds.items())]
    return "\n".join(lines)


def write_results(rows: list[Row], out: Path, shots: list[int], embedding_seconds: dict) -> dict:
    from shotlab.train.plots import learning_curve_png

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    summary = summarise(rows)
    (out / "results.md").write_text(markdown(summary, shots, embedding_seconds) + "\n")
    learning_curve_png([{"method": f"{r['method']} ({r['backbone']})", "shots": r["shots"],
                         "mean": r["accuracy_mean"], "std": r["accuracy_std"]} for r in summary],
                       out / "learning_curve.png", ylabel="test accuracy")
    return {"summary": summary, "files": [str(out / n) for n in
                                          ("results.csv", "results.md", "learning_curve.png")]}
