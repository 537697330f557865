"""What the benchmark scripts share."""

from __future__ import annotations

from contextlib import contextmanager


class Counter:
    """Inputs through a torch model's forward and backward passes, counted by hooks on it."""

    def __init__(self, model):
        self.forward = self.backward = 0
        self.handle = model.register_forward_hook(self.on_forward)

    def on_forward(self, module, inputs, output):
        self.forward += len(output)
        if output.requires_grad:
            output.register_hook(self.on_backward)

    def on_backward(self, grad):
        self.backward += len(grad)

    def reset(self):
        self.forward = self.backward = 0


def backward_ratio(model, inputs, *, layer=None, repeats: int = 3) -> float:
    """Seconds of one backward pass over one forward pass of `model(inputs)`, median of repeats.

    The backward is the one the gradient explainers run: `torch.autograd.grad` towards one tensor
    only (the input, or `layer`'s output where the input is token ids, as Integrated Gradients
    on a layer takes it), so no weight gradient is computed. A full `.backward()` also fills
    every weight's gradient (MiniLM's 30522 x 384 word table among them) and costs about twice
    as much."""
    import time

    import torch

    held = []

    def keep(module, args, output):  # the layer's output becomes the tensor differentiated
        held.append(output.detach().requires_grad_(True))
        return held[-1]

    hook = layer.register_forward_hook(keep) if layer is not None else None
    ratios = []
    try:
        for _ in range(repeats):
            held.clear()
            x = inputs if layer is not None else inputs.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                start = time.perf_counter()
                out = model(x)
                forward = time.perf_counter() - start
                start = time.perf_counter()
                torch.autograd.grad(out[:, 0].sum(), held[0] if layer is not None else x)
                ratios.append((time.perf_counter() - start) / forward)
    finally:
        if hook is not None:
            hook.remove()
    return float(sorted(ratios)[len(ratios) // 2])


def busy_note(result: dict) -> list[str]:
    """A warning line when other work was loading the machine.

    Judged on the load average when the run began where it was recorded: a benchmark that keeps
    every core busy raises the load average itself, so the value at its end says little about
    other work."""
    loads = result["load_average_1m"]
    load = loads["before"] if "before" in loads else max(loads.values())
    if load < 0.5 * (result["machine"]["cpu_count"] or 1):
        return []
    return [f"> The machine was busy (load average up to {load:.1f} on "
            f"{result['machine']['cpu_count']} CPUs): absolute times are inflated, and ratios of "
            f"unlike work (measured side by side) can move too: compare them with runs at a "
            f"similar load.", ""]


def header(title: str, result: dict, how: str) -> list[str]:
    """A result page's first lines: the title, where and how it was measured with the load
    average around it, and the busy note. `how` follows the platform, e.g. "; median of 9"."""
    m, load = result["machine"], result["load_average_1m"]
    return [f"# {title}", "",
            f"Measured {result['date']} on {m['cpu_count']} CPUs ({m['platform']}){how}. Load "
            f"average (1 min) {load['before']} before, {load['after']} after.", "",
            *busy_note(result)]


def machine() -> dict:
    """The facts every result records about where it was measured."""
    import os
    import platform

    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def stamp(load_before: float, **extra) -> dict:
    """What every result records beside its figures: when (UTC), the machine, the load average
    before the run and now, and `extra` (e.g. rounds)."""
    import os
    from datetime import datetime, timezone

    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), **extra,
            "load_average_1m": {"before": round(load_before, 2),
                                "after": round(os.getloadavg()[0], 2)}}


def save_results(name: str, result: dict, markdown: str) -> None:
    """benchmarks/results/NAME.json and NAME.md, and the Markdown on stdout."""
    import json
    from pathlib import Path

    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / f"{name}.md").write_text(markdown)
    print(markdown)


@contextmanager
def bench_home(kept, prefix: str):
    """The bench's scratch folder: `kept` (a --workspace the user keeps) or a temporary folder
    removed afterwards, with a shotlab workspace activated at its `ws/`."""
    import tempfile
    from pathlib import Path

    from shotlab.core import workspace

    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        home = Path(kept) if kept else Path(scratch)
        workspace.activate(home / "ws")
        yield home


def bench_parser(doc: str, kept: str):
    """An argument parser described by the script's docstring, with --workspace (`kept`: what a
    kept workspace holds and reuses)."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--workspace", type=Path,
                        help=f"Keep the bench workspace here ({kept}) [default: a temporary "
                             f"folder, removed].")
    return parser



def whole_number(low: int, high: int | None, what: str):
    """An argparse type: a whole number from `low` to `high` (None: no upper end), else one
    clear line naming `what` it is."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what}: give a whole number "
                                             f"{span}")
        return value

    return parse


seed = whole_number(0, 2**32 - 1, "seed")  # what numpy's generators take
positive = whole_number(1, None, "count")
