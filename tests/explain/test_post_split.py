"""The modality split of a post model's score (explain/post_split.py) on a real late-fusion
model: frozen lite0 + MiniLM with a seeded linear head (no training needed for the identities)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "sample"
CLASSES = ["off_topic", "on_topic"]
CAPTIONS = ["For sale: 20 euros, message me", "Saw this bird by the lake this morning",
            "Cheap boat, cash only"]


@pytest.fixture(scope="module")
def post():
    """(PostClassifier, parts, inputs of three posts): built once for the module (MiniLM
    takes ~15 s of CPU to load)."""
    import torch

    from shotlab.runtime.kinds import load_parts
    from shotlab.train.post_fit import image_backbone_of
    from shotlab.train.post_model import PostClassifier
    from shotlab.train.text_model import ENCODER_DIM, load_encoder, text_preprocessing

    created = image_backbone_of("lite0")
    torch.manual_seed(0)
    head = torch.nn.Linear(created.model.num_features + ENCODER_DIM, len(CLASSES))
    with torch.no_grad():  # scores well inside (0, 1), both halves mattering
        head.weight.mul_(20)
    model = PostClassifier(created.model.eval(), load_encoder(), head).eval()
    parts = {"image": created.preprocessing.with_classes(CLASSES),
             "text": text_preprocessing(CLASSES)}
    images = [sorted((SAMPLE / "test" / c).glob("*.png"))[0] for c in ("fish", "bird", "boat")]
    inputs = load_parts({"image": images, "text": CAPTIONS}, parts)
    assert inputs.kept == [0, 1, 2]
    return model, parts, inputs.arrays


def runner_of(model, parts):
    from shotlab.runtime.contract import input_specs
    from shotlab.runtime.runners import TorchRunner

    return TorchRunner(model, "multiclass", len(CLASSES), specs=input_specs(parts))


def test_the_split_sums_to_the_score_difference_and_matches_each_pass(post):
    from shotlab.explain.post_split import modality_split, neutral_text_ids

    model, parts, inputs = post
    runner = runner_of(model, parts)
    splits = modality_split(runner, inputs, [0, 1, 0], parts, CLASSES)
    assert [s.target for s in splits] == ["off_topic", "on_topic", "off_topic"]
    empty = neutral_text_ids(parts["text"])[None]
    for i, split in enumerate(splits):
        assert split.phi_image + split.phi_text == pytest.approx(split.both - split.neither,
                                                                abs=1e-12)
        target = CLASSES.index(split.target)
        image, ids = inputs["image"][i:i + 1], inputs["text"][i:i + 1]
        ids = ids[:, :np.flatnonzero(ids[0])[-1] + 1]
        alone = {"both": runner({"image": image, "text": ids}),
                 "image_only": runner({"image": image, "text": empty}),
                 "text_only": runner({"image": np.zeros_like(image), "text": ids}),
                 "neither": runner({"image": np.zeros_like(image), "text": empty})}
        for name, probs in alone.items():  # the batched coalitions are the single passes
            assert getattr(split, name) == pytest.approx(float(probs[0, target]), abs=1e-5)
        assert split.forward_passes == 4
    # The neutral post is one input: the same score for the same class, whatever the post.
    assert splits[0].neither == pytest.approx(splits[2].neither, abs=1e-6)
    assert splits[0].neither + splits[1].neither == pytest.approx(1.0, abs=1e-6)
    assert any(abs(s.phi_image) > 1e-3 for s in splits)
    assert any(abs(s.phi_text) > 1e-3 for s in splits)


def test_the_neutral_inputs_are_the_mean_image_and_the_empty_comment(post):
    from shotlab.explain.post_split import coalition_batch, neutral_text_ids

    _, parts, inputs = post
    empty = neutral_text_ids(parts["text"])
    assert empty.tolist() == [101, 102]  # [CLS] [SEP]
    batch = coalition_batch({k: v[:1] for k, v in inputs.items()}, empty)
    assert batch["image"].shape[0] == batch["text"].shape[0] == 4
    np.testing.assert_array_equal(batch["image"][0], inputs["image"][0])
    assert not batch["image"][2].any() and not batch["image"][3].any()
    assert batch["text"][1][:3].tolist() == [101, 102, 0] and not batch["text"][1][2:].any()


@pytest.mark.parametrize("ignored", ["text", "image"])
def test_a_model_that_ignores_one_part_gets_all_of_the_split_on_the_other(post, ignored):
    import copy

    import torch

    from shotlab.explain.post_split import modality_split

    model, parts, inputs = post
    deaf = copy.deepcopy(model)
    with torch.no_grad():
        half = (slice(deaf.image_dim, None) if ignored == "text"
                else slice(0, deaf.image_dim))
        deaf.head.weight[:, half] = 0
    splits = modality_split(runner_of(deaf, parts), inputs, [0, 0, 1], parts, CLASSES)
    for split in splits:
        zero, other = ((split.phi_text, split.phi_image) if ignored == "text"
                       else (split.phi_image, split.phi_text))
        assert abs(zero) < 1e-6
        assert other == pytest.approx(split.both - split.neither, abs=1e-12)
        share = split.image_share
        assert share is not None and (share > 0.999 if ignored == "text" else share < 0.001)


def test_gradcam_on_the_picture_with_the_caption_held_fixed(post):
    from shotlab.explain.post_tier1 import image_cam

    model, _, inputs = post
    heatmap, layer = image_cam(model, inputs["image"][0], inputs["text"][0], 0)
    assert layer.startswith("post.image_backbone.")
    assert heatmap.shape == inputs["image"].shape[-2:]
    assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0) and heatmap.std() > 0.01
