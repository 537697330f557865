"""Which layer a CAM method reads, chosen automatically for timm CNNs, timm ViTs and plain modules.

CNNs (EfficientNet, ResNet, ConvNeXt, ...): the last top-level child that holds parameters
before the model's pooling or head, which in timm is the output `forward_features` returns
(EfficientNet `bn2`, ResNet `layer4`, ConvNeXt `stages`). ViTs (a `patch_embed` and `blocks`):
the last block's input norm (`blocks[-1].norm1`, as pytorch-grad-cam advises), its tokens
reshaped to the patch grid after dropping the class and other prefix tokens: with class-token
pooling the last block's *output* patch tokens never reach the head, so their gradients are zero;
its input tokens reach it through the block's attention. Anything else: its last `Conv2d`. `target_layer=` (a module or a dotted name) overrides.
"""

from __future__ import annotations

from dataclasses import dataclass

from shotlab.core.errors import InputError

POOLING_NAMES = ("global_pool", "head", "fc_norm", "pool", "avgpool", "classifier", "fc")


@dataclass
class TargetLayer:
    module: object  # torch.nn.Module
    name: str
    prefix_tokens: int | None = None  # set for ViTs: tokens to drop before the grid reshape
    grid: tuple[int, int] | None = None  # ViTs: the patch grid (rows, columns), when known


def find_target_layer(model, target_layer=None) -> TargetLayer:
    if target_layer is not None:
        return explicit_layer(model, target_layer)
    if hasattr(model, "patch_embed") and hasattr(model, "blocks") and len(model.blocks):
        prefix = int(getattr(model, "num_prefix_tokens", 1))
        last = f"blocks.{len(model.blocks) - 1}"
        if hasattr(model.blocks[-1], "norm1"):
            return TargetLayer(model.blocks[-1].norm1, f"{last}.norm1", prefix, vit_grid(model))
        return TargetLayer(model.blocks[-1], last, prefix, vit_grid(model))
    before_pool = last_child_before_pooling(model)
    if before_pool is not None:
        return before_pool
    return last_conv(model)


def explicit_layer(model, target_layer) -> TargetLayer:
    if isinstance(target_layer, str):
        try:
            module = model.get_submodule(target_layer)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n][-5:]
            raise InputError(f"target_layer '{target_layer}' is not a module of the model "
                             f"(its last modules: {', '.join(names)})") from None
        return TargetLayer(module, target_layer, vit_prefix(model, target_layer), vit_grid(model))
    name = next((n for n, m in model.named_modules() if m is target_layer), None)
    if name is None:
        raise InputError("target_layer is not a module of the model; pass one of its modules "
                         "or its dotted name")
    return TargetLayer(target_layer, name, vit_prefix(model, name), vit_grid(model))


def vit_prefix(model, name: str) -> int | None:
    if hasattr(model, "patch_embed") and name.startswith("blocks"):
        return int(getattr(model, "num_prefix_tokens", 1))
    return None


def vit_grid(model) -> tuple[int, int] | None:
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    return tuple(int(g) for g in grid) if grid else None


def last_child_before_pooling(model) -> TargetLayer | None:
    children = list(model.named_children())
    names = [n for n, _ in children]
    stop = next((i for i, n in enumerate(names) if n in POOLING_NAMES), None)
    if stop is None or stop == 0:
        return None
    for name, module in reversed(children[:stop]):
        if any(True for _ in module.parameters()):
            return TargetLayer(module, name)
    return None


def last_conv(model) -> TargetLayer:
    import torch

    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise InputError("cannot choose a Grad-CAM layer: the model has no Conv2d and is not a "
                         "timm CNN or ViT; pass target_layer= (a module or its dotted name)")
    name, module = convs[-1]
    return TargetLayer(module, name)


def token_grid(count: int, layer: TargetLayer) -> tuple[int, int]:
    if layer.grid and layer.grid[0] * layer.grid[1] == count:
        return layer.grid
    side = int(round(count ** 0.5))
    if side * side != count:
        raise InputError(f"layer {layer.name}: {count} patch tokens do not form the patch grid; "
                         f"pass target_layer= a layer with a spatial output")
    return side, side


def as_feature_map(activation, layer: TargetLayer):
    """(N, C, h, w) from a CNN activation or a ViT's (N, tokens, C) output."""
    if activation.ndim == 4:
        return activation
    if activation.ndim == 3 and layer.prefix_tokens is not None:
        tokens = activation[:, layer.prefix_tokens:, :]
        rows, cols = token_grid(tokens.shape[1], layer)
        return tokens.transpose(1, 2).reshape(len(tokens), -1, rows, cols)
    raise InputError(f"layer {layer.name} gives a {activation.ndim}-D output "
                     f"{tuple(activation.shape)}; Grad-CAM needs a spatial (N, C, h, w) map or "
                     f"ViT tokens; pass target_layer= another layer")
