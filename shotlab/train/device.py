"""Where models run: one rule for the device, mixed precision and memory layout.

CUDA gets bf16 autocast (no loss scaling needed) and channels_last; the CPU gets neither, since
both would only slow it down.
"""

from __future__ import annotations


def resolve(device: str | None = None) -> str:
    """`device`, else cuda when available, else cpu."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def on_gpu(device: str) -> bool:
    return device.startswith("cuda")


def autocast(device: str):
    import torch

    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu(device))


def place_model(model, device: str):
    import torch

    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if on_gpu(device) else model


def to_device(inputs, device: str):
    import torch

    inputs = inputs.to(device, non_blocking=on_gpu(device))
    return inputs.contiguous(memory_format=torch.channels_last) if on_gpu(device) else inputs
