"""Sentence embeddings of comments for `curate check` and `curate suggest`, cached like image
embeddings: one .npy per text's sha256 in a folder named by the encoder, its package version and
its token limit (`WORKSPACE/cache/embeddings/text-minilm-0.1.0-128/`), so a re-check embeds only
new comments and another encoder or version misses the old files.

In the CLI layer because the encoder is `shotlab.train`'s and the callers are curate's commands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def cache_folder() -> Path:
    from importlib.metadata import version

    from shotlab.core import workspace
    from shotlab.train.text_model import ENCODER_NAME, MAX_TOKENS, PACKAGE

    return (workspace.current().cache_dir / "embeddings"
            / f"text-{ENCODER_NAME}-{version(PACKAGE)}-{MAX_TOKENS}")


def embed_cached(texts: list[str], sha256s: list[str], *, progress=None) -> np.ndarray:
    """float32 (n, 384) unit-length embeddings of `texts` (whose UTF-8 bytes have `sha256s`);
    a text seen before costs no forward pass."""
    from shotlab.train.embeddings import cache_files, load_cached, save_atomic
    from shotlab.train.text_model import ENCODER_DIM, embed_texts

    if not texts:
        return np.zeros((0, ENCODER_DIM), np.float32)
    files, missing = cache_files(cache_folder(), sha256s)
    if missing:
        vectors = embed_texts([texts[i] for i in missing.values()], progress=progress)
        for digest, vector in zip(missing, vectors):
            save_atomic(files[digest], vector)
    return load_cached(files, sha256s)
