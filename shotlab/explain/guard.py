"""Leave the caller's model as it was: modes, `requires_grad` and hooks, even when a method raises.

pytorch-grad-cam calls `model.eval()` on your model and leaves it so; a training loop that asks
for a Grad-CAM between epochs then trains with dropout off. Here every explanation runs inside
`preserved(model)`, which puts the model in eval mode and, on the way out (also on an exception,
which it never swallows), restores each module's `training` flag, each parameter's
`requires_grad`, and removes any hook added to any module meanwhile.

    with preserved(model), capture(layer) as seen:
        logits = model(x)          # seen.activation is the layer's output
"""

from __future__ import annotations

from contextlib import contextmanager

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
               "_backward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks_with_kwargs", "_state_dict_hooks", "_load_state_dict_pre_hooks")


@contextmanager
def preserved(model):
    """Eval mode inside; on exit every module's mode, parameter flag and hook set as before."""
    modules = list(model.modules())
    modes = [m.training for m in modules]
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    hooks = [{name: set(getattr(m, name, {}) or ()) for name in _HOOK_DICTS} for m in modules]
    model.eval()
    try:
        yield model
    finally:
        for module, mode, before in zip(modules, modes, hooks):
            module.training = mode
            for name, keys in before.items():
                table = getattr(module, name, None)
                for key in [k for k in (table or {}) if k not in keys]:
                    del table[key]
        for param, flag in zip(params, flags):
            param.requires_grad_(flag)


class Captured:
    """What a forward hook saw: the target layer's output, kept in the autograd graph."""

    activation = None


@contextmanager
def capture(layer):
    """Record `layer`'s output during the forward passes inside; the hook is removed on exit."""
    seen = Captured()

    def hook(module, inputs, output):
        seen.activation = output[0] if isinstance(output, (tuple, list)) else output

    handle = layer.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()
