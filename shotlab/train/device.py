"""Where models run: one rule for the device, mixed precision and memory layout.

CUDA gets bf16 autocast (no loss scaling needed) and channels_last; the CPU gets neither, since
both would only slow it down.
"""

from __future__ import annotations

from shotlab.core.errors import InputError

KINDS = ("cpu", "cuda")  # what autocast, channels_last and pinning below are written for


def resolve(device: str | None = None) -> str:
    """`device` once checked to exist here, else cuda when available, else cpu."""
    import torch

    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in KINDS:
        raise InputError(f"--device {device!r} is not a device shotlab trains on; use cpu, cuda "
                         f"or cuda:N, or leave it out (cuda if available, else cpu)")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if parsed.type == "cuda" and (parsed.index or 0) >= visible:
        raise InputError(f"--device {device}: no such CUDA device here ({visible} visible); use "
                         f"--device cpu, or leave --device out to use what is there")
    return device


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
