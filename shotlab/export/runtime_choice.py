"""Which of a bundle's models a command runs: `--runtime NAME`, or `--fp16` for onnx-fp16.

One pair of options and one rule for `shotlab predict` and `shotlab serve`, so an INT8 or FP16
model exported for a CPU box is run the same way by both."""

from __future__ import annotations

import click

RUNTIME_HELP = ("Which of the bundle's models to run: onnx, onnx-fp16, onnx-int8 (exported with "
                "--to onnx-int8) or tensorrt [default: onnx].")


def runtime_options(command):
    """The --fp16 and --runtime options (in that order of arguments: fp16, runtime)."""
    command = click.option("--runtime", default=None, metavar="NAME", help=RUNTIME_HELP)(command)
    return click.option("--fp16", is_flag=True,
                        help="Run the bundle's FP16 ONNX model (--runtime onnx-fp16).")(command)


def runtime_name(runtime: str | None, fp16: bool) -> str:
    """--runtime, or onnx-fp16 for --fp16, else onnx (refusing the two at odds)."""
    if runtime and fp16 and runtime != "onnx-fp16":
        raise click.BadParameter(f"--fp16 means --runtime onnx-fp16; drop one of them "
                                 f"(given --runtime {runtime})", param_hint="--runtime")
    return runtime or ("onnx-fp16" if fp16 else "onnx")


def chosen_runtime(runtime: str | None, fp16: bool, bundle) -> str:
    """`runtime_name`, refused unless the bundle has that model (before any decoding)."""
    from shotlab.runtime.runners import check_runtime

    name = runtime_name(runtime, fp16)
    check_runtime(bundle, name)
    return name


def warn_regression(bundle, runtime: str) -> None:
    """One line on stderr when `runtime` is a model of `bundle` its export's gate failed and
    `--allow-regression` shipped anyway (the failures are in the signed manifest,
    `validation.gate`): predict and serve ran it without a word. Nothing otherwise."""
    gate = (bundle.manifest.get("validation") or {}).get("gate") or {}
    failures = [str(f) for f in gate.get("failures") or []
                if failed_runtime(str(f)) == runtime] if gate.get("allowed_regression") else []
    if failures:
        click.echo(f"Warning: {bundle.name()}: its {runtime} model was shipped with a regression "
                   f"(export --allow-regression): " + "; ".join(rule_of(f) for f in failures),
                   err=True)


def rule_of(failure: str) -> str:
    """What a gate failure says broke: 'recall on unsafe class ...', with ' (on clips)' when
    the clips were judged."""
    head, rule = failure.split(": ", 1)
    return rule + (" (on clips)" if head.endswith("(clips)") else "")


def failed_runtime(failure: str) -> str:
    """The runtime a gate failure names: 'onnx-int8' of 'onnx-int8: ...' and of
    'onnx-int8 (clips): ...' (a clip bundle judged on its clips)."""
    return failure.split(":", 1)[0].split(" (", 1)[0]
