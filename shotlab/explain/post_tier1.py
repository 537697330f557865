"""Tier 1 for posts: for every flagged or review-queue post, the modality split of its score, a
Grad-CAM on the picture and Integrated Gradients on the caption's words, stored by decision id.

    stored = record_flagged_posts(bundle, decisions, inputs, runner, "out/explanations.sqlite")

The classes explained are `tier1.attention_classes`' (each flagged class and each class in its
review band). Rows stored per decision and class (one store, one transaction: all or none):
    modality_split  map (1, 2) = [phi_image, phi_text]; `scores` holds the exact split
                    (both, image_only, text_only, neither, phi_image, phi_text, image_share)
                    and `params` the neutral inputs (explain/post_split.py)
    gradcam         the picture's map (H, W), the caption's embedding held fixed
                    (`post_model.ImageBranch`); `params.part` = "image"
    ig              the caption's word scores (the text explanations' own row, written by
                    `explain.text_store.put_words`), the picture's embedding held fixed
                    (`TextBranch`); `params.part` = "text"
Costs per post: 4 forward passes for the split (through `runner`, the bundle's ONNX model, so
`both` is the decision's score), one forward + backward for Grad-CAM, and IG's own count.
"""

from __future__ import annotations

import numpy as np

from shotlab.explain.post_split import METHOD, NEUTRAL, modality_split


def text_branch(post, image_embedding):
    """The post model seen from its caption alone, the picture's embedding held fixed: token ids
    -> logits, with `encoder` (the text encoder) where the word attribution finds the token
    embedding layer."""
    import torch

    class TextBranch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = post.text_encoder
            self.head = post.head
            self.register_buffer("image_embedding", image_embedding.detach())

        def forward(self, ids):
            image = self.image_embedding.expand(len(ids), -1)
            return self.head(torch.cat([image, self.encoder(ids)], dim=1))

    return TextBranch().eval()


def image_cam(post, image: np.ndarray, ids: np.ndarray, target: int) -> tuple[np.ndarray, str]:
    """Grad-CAM (explain's) of one post's picture for `target`, its caption held fixed; the
    map and the layer's name."""
    import torch

    from shotlab.explain import explain
    from shotlab.explain.layers import find_target_layer
    from shotlab.train.post_model import ImageBranch

    with torch.no_grad():
        text_embedding = post.text_encoder(torch.from_numpy(ids[None]))
    layer = "post.image_backbone." + find_target_layer(post.image_backbone).name
    branch = ImageBranch(post, text_embedding).eval()
    heatmap = explain(branch, image[None], [target], method="gradcam", target_layer=layer)[0]
    return heatmap, layer


def caption_words(post, image: np.ndarray, text: str, target: int, text_part, *,
                  multilabel: bool = False):
    """IG over the caption's words (the text explanations' function), the picture's embedding
    held fixed, with its faithfulness (ERASER against random word rankings); None where this
    shotlab has no text attribution yet."""
    import torch

    try:
        from shotlab.explain import explain_text
    except ImportError:  # the text explanations (explain/text_methods.py) are not installed
        return None
    with torch.no_grad():
        image_embedding = post.image_backbone(torch.from_numpy(image[None]))
    return explain_text(text_branch(post, image_embedding), [text], [target], "ig",
                        preprocessing=text_part, score=True, multilabel=multilabel)[0]


def record_flagged_posts(bundle, decisions: list[dict], inputs: dict, runner, store_path, *,
                         checkpoint=None) -> int:
    """Store the split, the Grad-CAM and the caption's word scores for each decision;
    `inputs` are the decisions' {"image", "text"} rows (token ids) in the same order and
    `runner` the bundle's runner. Returns how many decisions were explained."""
    from shotlab.explain.store import ExplanationStore
    from shotlab.explain.tier1 import attention_rows, load_bundle_checkpoint

    if not decisions:
        return 0
    classes = list(bundle.classes)
    rows, names = attention_rows(decisions)  # a row per class a reviewer is asked about
    decisions, targets = [decisions[i] for i in rows], [classes.index(n) for n in names]
    inputs = {part: np.asarray(given)[rows] for part, given in inputs.items()}
    splits = modality_split(runner, inputs, targets, bundle.parts, classes)
    checkpoint = checkpoint or load_bundle_checkpoint(bundle)
    post, model_sha256 = checkpoint.model, checkpoint.sha256  # of the bytes loaded
    explained = []
    for i, (decision, target) in enumerate(zip(decisions, targets)):
        image, ids = inputs["image"][i], inputs["text"][i]
        cam, layer = image_cam(post, image, ids, target)
        words = caption_words(post, image, decision["text"], target, bundle.parts["text"],
                              multilabel=bundle.task == "multilabel")
        explained.append((cam, layer, words))
    bundle_path = getattr(bundle, "origin", None) or bundle.path
    with ExplanationStore(store_path) as store, store.transaction():
        for decision, split, (cam, layer, words) in zip(decisions, splits, explained):
            store_post(store, decision, split, cam, layer, words, bundle_path=bundle_path,
                       model_sha256=model_sha256)
    return len(decisions)


def store_post(store, decision, split, cam, layer, words, *, bundle_path, model_sha256) -> None:
    decision_id, sha256 = decision["decision_id"], decision.get("sha256")
    store.add_decision(decision, bundle_path)
    store.put(decision_id, METHOD, np.array([[split.phi_image, split.phi_text]], np.float32),
              target=split.target, params={"kind": "post", "neutral": NEUTRAL,
                                           "model": "bundle"},
              scores=split.as_dict(), model_sha256=model_sha256, input_sha256=sha256)
    store.put(decision_id, "gradcam", cam, target=split.target,
              params={"kind": "post", "part": "image", "target_layer": layer,
                      "model": "checkpoint", "caption": "held fixed"},
              model_sha256=model_sha256, input_sha256=sha256)
    if words is not None:
        from shotlab.explain.text_store import put_words

        put_words(store, decision_id, words, model_sha256=model_sha256,
                  params={"part": "text", "model": "checkpoint", "image": "held fixed"})
