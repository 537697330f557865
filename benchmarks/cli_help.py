"""How long `shotlab --help` takes, beside the interpreter's own start-up, and what it imports.

Runs, interleaved in one session so they share the machine's state:

    python -c pass             the floor: the interpreter starting and stopping
    python -c "import click"   the floor plus the one library the CLI needs
    shotlab --help             the console script, as users run it

and reports median, p90 and min of each, shotlab's overhead over both baselines (a difference and
a ratio), and whether the median meets the target. It then checks, in a real `--help` run, that
torch, fiftyone and cv2 are never imported (DESIGN.md: heavy imports stay out of the CLI's path).

    .venv/bin/python benchmarks/cli_help.py [--runs 20] [--warmups 2]

Writes benchmarks/results/cli_help.json and cli_help.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import busy_note  # benchmarks/common.py (scripts run from this folder)

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 0.3  # a --help that takes longer than this feels sluggish at the prompt
HEAVY = ("torch", "fiftyone", "cv2")  # must never load for --help
NOTED = ("numpy", "PIL", "tqdm", "yaml", "mongoengine", "pymongo")  # reported, not forbidden

# Imports the real `shotlab --help` path and prints what got loaded, as JSON.
_MODULES_PROBE = """
import json, sys
from shotlab.cli import cli
try:
    cli.main(args=sys.argv[1:], prog_name="shotlab", standalone_mode=False)
except SystemExit:
    pass
tops = sorted({m.split(".")[0] for m in sys.modules})
print("\\n@@MODULES@@" + json.dumps(tops))
"""


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "machine": platform.machine(), "processor": platform.processor() or None}


def shotlab_script() -> str:
    """The console script beside this interpreter (how users run it), else the one on PATH."""
    beside = Path(sys.executable).parent / "shotlab"
    if beside.exists():
        return str(beside)
    found = shutil.which("shotlab")
    if not found:
        raise SystemExit("cannot find the `shotlab` console script; run `make install` first")
    return found


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def stats(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_s": statistics.median(ordered),
            "p90_s": statistics.quantiles(ordered, n=10, method="inclusive")[-1],
            "min_s": ordered[0], "max_s": ordered[-1], "mean_s": statistics.fmean(ordered),
            "samples_s": [round(s, 6) for s in samples]}


def measure(commands: dict[str, list[str]], runs: int, warmups: int) -> dict[str, dict]:
    """Round-robin over the commands, so drift in the machine's load hits all of them alike."""
    for _ in range(warmups):
        for argv in commands.values():
            time_once(argv)
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, argv in commands.items():
            samples[label].append(time_once(argv))
    return {label: {"argv": argv, **stats(samples[label])} for label, argv in commands.items()}


def loaded_modules(args: list[str]) -> list[str]:
    """Top-level modules loaded by a real `shotlab <args>` run, read from sys.modules at its end."""
    done = subprocess.run([sys.executable, "-c", _MODULES_PROBE, *args],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.rsplit("@@MODULES@@", 1)[1])


def import_times(args: list[str]) -> dict:
    """`python -X importtime -m shotlab <args>`: every import the run made, the slowest first."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "shotlab", *args],
                          capture_output=True, text=True, check=True)
    entries = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|", 2)
        name = name[1:]  # the format puts one space after the bar, then two per nesting level
        depth = (len(name) - len(name.lstrip())) // 2
        entries.append({"module": name.strip(), "self_us": int(self_us), "cumulative_us":
                        int(cumulative_us), "depth": depth})
    roots = [e for e in entries if e["depth"] == 0]  # imports made directly by the run
    tops = {e["module"].split(".")[0] for e in entries}
    return {"modules_imported": len(entries),
            "total_import_ms": round(sum(e["cumulative_us"] for e in roots) / 1000, 1),
            "slowest_top_level": [{"module": e["module"], "cumulative_ms":
                                   round(e["cumulative_us"] / 1000, 1)}
                                  for e in sorted(roots, key=lambda e: -e["cumulative_us"])[:8]],
            "top_level_packages": sorted(tops)}


def import_check(args: list[str]) -> dict:
    modules = loaded_modules(args)
    timing = import_times(args)
    seen = set(modules) | set(timing["top_level_packages"])
    return {"command": "shotlab " + " ".join(args),
            "heavy_checked": list(HEAVY), "heavy_loaded": [m for m in HEAVY if m in seen],
            "ok": not any(m in seen for m in HEAVY), "also_loaded": [m for m in NOTED if m in seen],
            "modules_imported": timing["modules_imported"],
            "total_import_ms": timing["total_import_ms"],
            "slowest_top_level": timing["slowest_top_level"]}


def write_markdown(result: dict, path: Path) -> None:
    c = result["commands"]
    o = result["overhead"]
    lines = [
        "# `shotlab --help` start-up time",
        "",
        f"{result['timestamp']} · {result['runs']} runs after {result['warmups']} warm-ups, "
        f"interleaved · Python {result['machine']['python']} · {result['machine']['cpu_count']} "
        f"CPUs · load average {result['load_average_1m']['before']:.1f} before, "
        f"{result['load_average_1m']['after']:.1f} after · {result['machine']['platform']}",
        "",
        *busy_note(result),
        "| command | median | p90 | min |",
        "|---|---:|---:|---:|",
    ]
    for label, row in c.items():
        lines.append(f"| `{label}` | {row['median_s'] * 1000:.1f} ms | {row['p90_s'] * 1000:.1f} ms "
                     f"| {row['min_s'] * 1000:.1f} ms |")
    verdict = "meets" if result["meets_target"] else "MISSES"
    lines += [
        "",
        f"- shotlab's own cost over a bare interpreter: +{o['over_python_s'] * 1000:.1f} ms "
        f"(x{o['ratio_to_python']:.2f}); over `import click`: +{o['over_click_s'] * 1000:.1f} ms "
        f"(x{o['ratio_to_click']:.2f}).",
        f"- Target: median under {result['target_s']} s: **{verdict}** "
        f"({c['shotlab --help']['median_s']:.3f} s).",
        "",
        "## Imports on the `--help` path",
        "",
        "| command | torch / fiftyone / cv2 loaded | also loaded | modules imported | "
        "import time (one `-X importtime` run) |",
        "|---|---|---|---:|---:|",
    ]
    for check in result["import_checks"]:
        heavy = ", ".join(check["heavy_loaded"]) or "none (ok)"
        lines.append(f"| `{check['command']}` | {heavy} | {', '.join(check['also_loaded']) or '-'} "
                     f"| {check['modules_imported']} | {check['total_import_ms']:.1f} ms |")
    first = result["import_checks"][0]
    lines += ["", "The import time is the sum of one `-X importtime` run's top-level imports: that "
              "run's own overhead and the start-up imports `python -c pass` also pays (site, "
              "encodings) are in it, so it can exceed the median wall time above.",
              "", f"Slowest imports of `{first['command']}` (cumulative, from `-X importtime`): "
              + ", ".join(f"{e['module']} {e['cumulative_ms']:.1f} ms"
                          for e in first["slowest_top_level"][:5]) + ".", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    opts = parser.parse_args()

    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "shotlab --help": [shotlab_script(), "--help"],
    }
    load_before = os.getloadavg()[0]
    rows = measure(commands, opts.runs, opts.warmups)
    shot = rows["shotlab --help"]["median_s"]
    bare = rows["python -c pass"]["median_s"]
    click_ = rows["python -c 'import click'"]["median_s"]
    checks = [import_check(["--help"]), import_check(["curate", "--help"]),
              import_check(["curate", "import", "--help"])]
    result = {
        "benchmark": "cli_help",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "runs": opts.runs, "warmups": opts.warmups,
        "commands": rows,
        "overhead": {"over_python_s": shot - bare, "ratio_to_python": shot / bare,
                     "over_click_s": shot - click_, "ratio_to_click": shot / click_},
        "target_s": TARGET_S, "meets_target": shot < TARGET_S,
        "import_checks": checks,
        "no_heavy_imports": all(c["ok"] for c in checks),
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "cli_help.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, opts.out / "cli_help.md")

    for label, row in rows.items():
        print(f"{label:28s} median {row['median_s'] * 1000:7.1f} ms   p90 {row['p90_s'] * 1000:7.1f} ms"
              f"   min {row['min_s'] * 1000:7.1f} ms")
    o = result["overhead"]
    print(f"shotlab overhead: +{o['over_python_s'] * 1000:.1f} ms over python (x{o['ratio_to_python']:.2f}), "
          f"+{o['over_click_s'] * 1000:.1f} ms over import click (x{o['ratio_to_click']:.2f}); "
          f"target < {TARGET_S} s: {'met' if result['meets_target'] else 'MISSED'}")
    for check in checks:
        print(f"{check['command']}: heavy imports {check['heavy_loaded'] or 'none'}; "
              f"{check['modules_imported']} modules, {check['total_import_ms']:.1f} ms of imports")
    print(f"wrote {opts.out / 'cli_help.json'} and {opts.out / 'cli_help.md'}")
    return 0 if result["no_heavy_imports"] else 1


if __name__ == "__main__":
    sys.exit(main())
