"""The post classifier: late fusion of an image backbone's embedding and the text encoder's.

    model = PostClassifier(image_backbone, text_encoder, head)
    logits = model(image, text)        # float32 (N, 3, H, W), int64 token ids (N, L) -> (N, K)
    model = build_post_model(meta)     # rebuilt from a checkpoint's meta (weights loaded after)

A post is an image with a caption. The image backbone is a timm model without its head (pooled
features, as `train/embeddings.py` extracts them), the text encoder is `train/text_model`'s
MiniLM (mean pooling, unit length); the head is one linear layer over their concatenation,
fitted as a logistic regression (train/post_fit.py) and copied into torch, with the
standardisation of each half folded into its weights. Both encoders stay frozen.
"""

from __future__ import annotations

import torch
from torch import nn

MODEL_KIND = "post"  # the checkpoint's `model_kind`: what load_checkpoint rebuilds
PARTS = ("image", "text")  # the contract's part names, in the model's argument order


class PostClassifier(nn.Module):
    """(image, token ids) -> logits: head(concat(image embedding, text embedding))."""

    def __init__(self, image_backbone: nn.Module, text_encoder: nn.Module, head: nn.Linear):
        super().__init__()
        self.image_backbone = image_backbone
        self.text_encoder = text_encoder
        self.head = head

    @property
    def image_dim(self) -> int:
        return self.head.in_features - self.text_dim

    @property
    def text_dim(self) -> int:
        from shotlab.train.text_model import ENCODER_DIM

        return ENCODER_DIM

    def get_classifier(self) -> nn.Linear:
        """The head (calibration folds its temperature here, as for a timm model)."""
        return self.head

    def embed(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.image_backbone(image), self.text_encoder(text)], dim=1)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(image, text))


class ImageBranch(nn.Module):
    """The post model seen from its image alone, the caption's embedding held fixed: what
    Grad-CAM explains (`explain/post_split.py`). `text_embedding` is (1, D) or (N, D)."""

    def __init__(self, post: PostClassifier, text_embedding: torch.Tensor):
        super().__init__()
        self.post = post
        self.register_buffer("text_embedding", text_embedding.detach())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        text = self.text_embedding.expand(len(image), -1)
        return self.post.head(torch.cat([self.post.image_backbone(image), text], dim=1))


def build_post_model(meta: dict) -> PostClassifier:
    """An untrained PostClassifier shaped as `meta` says (timm_name, classes, image_dim); the
    checkpoint's state dict is loaded into it afterwards."""
    import timm

    from shotlab.train.text_model import ENCODER_DIM, load_encoder

    backbone = timm.create_model(meta["timm_name"], pretrained=False, num_classes=0)
    head = nn.Linear(int(meta["image_dim"]) + ENCODER_DIM, len(meta["classes"]))
    return PostClassifier(backbone, load_encoder(), head).eval()
