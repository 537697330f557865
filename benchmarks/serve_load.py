"""`shotlab serve` under load on loopback, beside the offline batch path of the same bundle.

Trains a quick lite0 run on datasets/sample (`--mode linear --epochs 1`, `fish` unsafe at target
recall 0.8, review margin 0.02, in a throwaway bench workspace) and exports it, unless `--bundle`
names one. Then starts four real servers (`python -m shotlab serve`, subprocesses, cache off as
the issue asks):

    batched     the defaults (--max-batch 32 --max-wait-ms 5), --no-explain
    unbatched   --max-batch 1, --no-explain
    explain     the defaults with tier-1 explanations on
    ray         `--ray --replicas 2`: Ray Serve (a local Ray shotlab starts on loopback), two
                replicas with one ONNX Runtime thread each, --no-explain

and measures, interleaved round by round on the same cores:

    offline     `predict_paths` over the images (decode + preprocess + ORT at batch 32), bare ORT
                at batch 32 on preprocessed arrays, and bare ORT batch-1 latency
    served      a closed-loop httpx load generator at concurrency 1, 8 and 32 against batched and
                unbatched: throughput, p50 and p99 latency (client side)
    tier 1      batched vs explain at concurrency 32 on a mix with 10% flagged images; the
                explain figure counts the time until its explanation queue is drained too
    ray         the Ray Serve deployment at concurrency 8 and 32, beside batched in each round,
                in a phase of its own once the other servers have stopped (Ray's processes are
                never idle, and would weigh on the other figures)

The load generator runs in this process, on the same two cores as the server: its own CPU cost
is part of what the served figures pay.

    .venv/bin/python benchmarks/serve_load.py [--bundle DIR] [--rounds 3] [--workspace DIR]

Writes benchmarks/results/serve_load.json and serve_load.md.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import bench_home, bench_parser, busy_note, machine, save_results  # benchmarks/common.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LEVELS = {1: 40, 8: 160, 32: 320}  # concurrency: requests per measurement (bounded)
REVIEW_MARGIN = 0.02
# `fish`'s target recall. The conformal rule flags target x (n + 1) of the 16 train + val fish,
# at most all 16: at 0.95 or 0.9 all of them, and the one-epoch probe scores one fish near 0, so
# the threshold (0.003) flagged 116 of the 120 images (2026-12-01) and the tier-1 mix had no
# unflagged image. At 0.8, 14 of 16: 48 flagged, 12 in review (5 of them flagged too), 65 calm,
# a mix of 7 flagged in 72 (9.7%). A bundle kept in a reused --workspace keeps its own policy.
TARGET_RECALL = 0.8
FLAGGED_SHARE = 0.10  # the tier-1 mix: 10% of images flagged, as the target says
TARGETS = {"served_vs_offline": 0.7, "batching_gain": 2.0, "p50_factor": 1.5, "p50_slack_ms": 5,
           "tier1_cost": 0.10, "ray_vs_embedded": 0.5}
RAY_READY = re.compile(r"Ray Serve answering on http://127\.0\.0\.1:(\d+)")
RAY_STARTUP_S = 300  # Ray, its Serve controller and proxy, two replicas, on a busy machine


def quick_bundle(home: Path) -> Path:
    """A lite0 linear-probe run on the sample set with `fish` unsafe, exported."""
    from shotlab.core import workspace as ws

    ws.activate(home / "ws")
    from shotlab.curate.importer import import_path
    from shotlab.export.exporter import export_run
    from shotlab.train.finetune import TrainConfig
    from shotlab.train.runs import train_run

    from shotlab.core import store
    from shotlab.core.policy import Policy, set_policy

    import_path(ROOT / "datasets" / "sample", "sample", progress=False)
    # A review margin of 0.02, not the default 0.1: a one-epoch probe puts `fish` near its
    # threshold (about 0.07, read at target recall 0.95 before run 7) for every image, and a 0.1
    # band would send all of them to review, leaving no unflagged images for the 10%-flagged mix.
    set_policy(store.load("sample"), Policy(("fish",), TARGET_RECALL, REVIEW_MARGIN))
    config = TrainConfig(backbone="lite0", mode="linear", epochs=1, workers=0, unsafe=["fish"])
    run_dir = train_run("sample", config, track=False, writeback=False, progress=False).run_dir
    return export_run(run_dir, out=home / "bundle", explain=False, progress=False).path


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- offline ---------------------------------------------------------------------------------------

def offline(bundle, files, arrays) -> dict:
    """predict's batch path, bare ORT at batch 32, and bare ORT batch-1 latency."""
    import numpy as np

    from shotlab.export.predict import predict_paths
    from shotlab.runtime.runners import OnnxRunner, run_batched

    runner = OnnxRunner(bundle)
    runner(arrays[:1])
    run_batched(runner, arrays[:32])  # warm at both batch sizes, as the servers are warmed
    started = time.perf_counter()  # the session is open: the served side never pays its start
    predict_paths(bundle, files, progress=False, runner=runner)
    predict_s = time.perf_counter() - started
    started = time.perf_counter()
    run_batched(runner, arrays)
    bare_s = time.perf_counter() - started
    single = []
    for row in arrays[:40]:
        started = time.perf_counter()
        runner(np.ascontiguousarray(row[None]))
        single.append(time.perf_counter() - started)
    return {"predict_images_per_s": len(files) / predict_s,
            "ort_batch32_images_per_s": len(arrays) / bare_s,
            "ort_batch1_p50_ms": statistics.median(single) * 1000}


# --- served ----------------------------------------------------------------------------------------

async def load(url: str, bodies: list[bytes], concurrency: int, requests: int) -> dict:
    """A closed loop: `concurrency` clients send `requests` in all, each waiting for its answer."""
    import httpx

    latencies, codes, counter = [], {}, iter(range(requests))

    async def client(http):
        for i in counter:
            started = time.perf_counter()
            response = await http.post(url + "/v1/moderate", content=bodies[i % len(bodies)])
            latencies.append(time.perf_counter() - started)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(headers={"Content-Type": "image/png"}, timeout=120,
                                 limits=limits) as http:
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"images_per_s": requests / wall, "p50_ms": percentile(latencies, .5) * 1000,
            "p99_ms": percentile(latencies, .99) * 1000, "codes": codes,
            "client_cpu_ms": cpu / requests * 1000}


def pending(url: str) -> float:
    import httpx

    text = httpx.get(url + "/metrics").text
    return next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith("shotlab_explanations_pending "))


def tier1(servers: dict, mix: list[bytes]) -> dict:
    """Batched vs explain at concurrency 32 on the 10%-flagged mix; explain waits for its queue."""
    requests = LEVELS[32]
    plain = asyncio.run(load(servers["batched"].url, mix, 32, requests))
    started = time.perf_counter()
    explained = asyncio.run(load(servers["explain"].url, mix, 32, requests))
    while pending(servers["explain"].url) > 0:
        time.sleep(0.1)
    drained_s = time.perf_counter() - started
    return {"plain": plain, "explain": explained,
            "explain_with_drain_images_per_s": requests / drained_s}


# --- the run ---------------------------------------------------------------------------------------

SETTINGS = {"batched": ["--no-explain"], "unbatched": ["--max-batch", "1", "--no-explain"],
            "explain": [], "ray": ["--ray", "--replicas", "2", "--no-explain"]}


def start_servers(servers: dict, bundle: Path, scratch: Path, names, warm: list[bytes]) -> None:
    """Start `names` into `servers` one by one (the caller's dict: each is stopped by the
    caller's clean-up even when a later one fails), then warm them."""
    sys.path.insert(0, str(ROOT))
    from tests.serve.conftest import Server

    from shotlab.core.addresses import free_port

    for name in names:
        server = Server(bundle, scratch / name, "--no-cache", *SETTINGS[name],
                        env={"SHOTLAB_HOME": str(scratch / "ws"), "SHOTLAB_API_KEY": ""})
        if name == "ray":  # Ray's proxy does not take port 0, and says it is up in its own words
            server.port, server.ready, server.startup_s = free_port(), RAY_READY, RAY_STARTUP_S
        servers[name] = server
        server.start()
    for name in names:  # warm: first requests, and torch in the worker
        asyncio.run(load(servers[name].url, warm, 4, 16))


def measure_served(samples: dict, servers: dict, names, bodies, *, label: str = "") -> None:
    for name in names:
        for concurrency, requests in LEVELS.items():
            if name == "ray" and concurrency == 1:
                continue  # the ratio the issue asks for is one of throughput
            result = asyncio.run(load(servers[name].url, bodies, concurrency, requests))
            samples["served"].append({"server": name + label, "concurrency": concurrency,
                                      **result})


def stop(servers: dict, names) -> None:
    for name in names:
        if name in servers:
            servers.pop(name).stop()


def images(bundle) -> tuple[list[Path], object, list[bytes], float]:
    """The sample set's photos, their preprocessed arrays, the 10%-flagged mix and its share."""
    from shotlab.export.predict import predict_paths
    from shotlab.runtime.kinds import load_inputs

    from shotlab.export.predict import collect_paths

    files = collect_paths([ROOT / "datasets" / "sample"])
    arrays = load_inputs(files, bundle.preprocessing, progress=False).arrays
    decisions = predict_paths(bundle, files, progress=False).decisions
    flagged = [Path(d["path"]) for d in decisions if d["flagged"] or d["needs_review"]]
    calm = [Path(d["path"]) for d in decisions if not (d["flagged"] or d["needs_review"])]
    # Every calm image, and as many flagged ones as make FLAGGED_SHARE of the mix.
    wanted = min(len(flagged), max(1, round(len(calm) * FLAGGED_SHARE / (1 - FLAGGED_SHARE))))
    mix = calm + flagged[:wanted]
    return files, arrays, [p.read_bytes() for p in mix], wanted / len(mix)


def measure(bundle_path: Path, rounds: int, scratch: Path) -> dict:
    from shotlab.export import speed
    from shotlab.runtime.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    files, arrays, mix, flagged_share = images(bundle)
    bodies = [p.read_bytes() for p in files]
    load_before = speed.load_average()
    samples = {"offline": [], "served": [], "tier1": []}
    # Ray's own processes are never idle: the Ray server runs only in its own phase, beside the
    # batched server measured again, so its load does not weigh on the offline/served ratios.
    servers = {}
    try:
        start_servers(servers, bundle_path, scratch, ("batched", "unbatched", "explain"), mix)
        while pending(servers["explain"].url) > 0:
            time.sleep(0.1)
        for _ in range(rounds):
            samples["offline"].append(offline(bundle, files, arrays))
            measure_served(samples, servers, ("batched", "unbatched"), bodies)
            samples["tier1"].append(tier1(servers, mix))
        stop(servers, ("unbatched", "explain"))
        start_servers(servers, bundle_path, scratch, ("ray",), mix)
        for _ in range(rounds):
            measure_served(samples, servers, ("batched",), bodies, label=" (beside ray)")
            measure_served(samples, servers, ("ray",), bodies)
    finally:
        stop(servers, list(servers))
    return {"samples": samples, "images": len(files), "flagged_share": flagged_share,
            "input_size": list(bundle.preprocessing.input_size),
            "load_average_1m": {"before": load_before[0], "after": speed.load_average()[0]}}


def summarise(result: dict) -> dict:
    samples = result["samples"]
    median = statistics.median
    off = {key: median(s[key] for s in samples["offline"]) for key in samples["offline"][0]}
    served = {}
    for row in samples["served"]:
        served.setdefault(row["server"], {}).setdefault(str(row["concurrency"]), []).append(row)
    served = {name: {c: {key: median(r[key] for r in rows)
                         for key in ("images_per_s", "p50_ms", "p99_ms", "client_cpu_ms")}
                     for c, rows in levels.items()} for name, levels in served.items()}
    t1 = samples["tier1"]
    tier = {"plain_images_per_s": median(s["plain"]["images_per_s"] for s in t1),
            "explain_images_per_s": median(s["explain"]["images_per_s"] for s in t1),
            "explain_with_drain_images_per_s": median(s["explain_with_drain_images_per_s"]
                                                      for s in t1)}
    batched32 = served["batched"]["32"]["images_per_s"]
    checks = {
        "served_vs_offline": batched32 / off["predict_images_per_s"],
        "served_vs_bare_ort": batched32 / off["ort_batch32_images_per_s"],
        "batching_gain": batched32 / served["unbatched"]["32"]["images_per_s"],
        "p50_c1_ms": served["batched"]["1"]["p50_ms"],
        "p50_c1_limit_ms": TARGETS["p50_factor"] * off["ort_batch1_p50_ms"]
        + TARGETS["p50_slack_ms"],
        "ray_vs_embedded": served["ray"]["32"]["images_per_s"]
        / served["batched (beside ray)"]["32"]["images_per_s"],
        "tier1_cost": 1 - tier["explain_images_per_s"] / tier["plain_images_per_s"],
        "tier1_cost_with_drain": 1 - tier["explain_with_drain_images_per_s"]
        / tier["plain_images_per_s"]}
    return {"offline": off, "served": served, "tier1": tier, "checks": checks}


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def markdown(result: dict) -> str:
    s, c = result["summary"], result["summary"]["checks"]
    off = s["offline"]
    lines = ["# Serving under load: `shotlab serve` vs the offline batch path (CPU, lite0)", "",
             f"Measured {result['date']} on {result['machine']['cpu_count']} CPUs "
             f"({result['machine']['platform']}), input {result['input_size'][0]}x"
             f"{result['input_size'][1]}, {result['images']} images (PNG) from datasets/sample, "
             f"median of {result['rounds']} interleaved rounds; cache off; load generator "
             f"(httpx, closed loop) on the same cores. Load average (1 min) "
             f"{result['load_average_1m']['before']} before, "
             f"{result['load_average_1m']['after']} after.", ""]
    lines += busy_note(result)
    lines += ["| path | concurrency | images/s | p50 ms | p99 ms | load generator CPU ms a "
              "request |", "|---|---|---|---|---|---|",
              f"| offline `predict` (decode + batch 32) | - | "
              f"{off['predict_images_per_s']:.1f} | - | - | - |",
              f"| bare ORT, batch 32 (preprocessed) | - | {off['ort_batch32_images_per_s']:.1f} "
              f"| - | - | - |",
              f"| bare ORT, batch 1 | 1 | - | {off['ort_batch1_p50_ms']:.1f} | - | - |"]
    for name, levels in s["served"].items():
        for concurrency, row in levels.items():
            lines.append(f"| serve {name} | {concurrency} | {row['images_per_s']:.1f} | "
                         f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
                         f"{row['client_cpu_ms']:.1f} |")
    t = s["tier1"]
    lines += ["", "`serve ray`: Ray Serve, two replicas with one ONNX Runtime thread each behind "
              "Ray's HTTP proxy (a request goes client -> proxy -> replica actor and back); the "
              "embedded server is one process whose ONNX Runtime session uses both cores. Ray's "
              "processes are never idle, so the Ray server runs in a phase of its own, after the "
              "others have stopped, beside the batched server measured again (`serve batched "
              "(beside ray)`, the ratio's denominator). The load generator's CPU (last column) is "
              "spent on the same two cores as the server's."]
    lines += ["", f"Tier 1 at concurrency 32 with {result['flagged_share']:.0%} of images "
              f"flagged or in review: {t['plain_images_per_s']:.1f} images/s without "
              f"explanations, {t['explain_images_per_s']:.1f} with them during the load, "
              f"{t['explain_with_drain_images_per_s']:.1f} counting the time until every "
              f"Grad-CAM was stored.", "", "Targets (issue 14):", "",
              f"- served throughput at concurrency 32 >= {TARGETS['served_vs_offline']} x "
              f"offline batch: {c['served_vs_offline']:.2f} x `predict` "
              f"{verdict(c['served_vs_offline'] >= TARGETS['served_vs_offline'])} "
              f"({c['served_vs_bare_ort']:.2f} x bare ORT on preprocessed arrays)",
              f"- micro-batching >= {TARGETS['batching_gain']}x `--max-batch 1` at concurrency "
              f"32: {c['batching_gain']:.2f}x "
              f"{verdict(c['batching_gain'] >= TARGETS['batching_gain'])}",
              f"- p50 at concurrency 1 <= 1.5 x bare batch-1 + 5 ms = "
              f"{c['p50_c1_limit_ms']:.1f} ms: {c['p50_c1_ms']:.1f} ms "
              f"{verdict(c['p50_c1_ms'] <= c['p50_c1_limit_ms'])}",
              f"- tier-1 explanations with ~10% flagged cost <= 10% of throughput: "
              f"{c['tier1_cost']:.1%} during the load "
              f"{verdict(c['tier1_cost'] <= TARGETS['tier1_cost'])}, "
              f"{c['tier1_cost_with_drain']:.1%} counting the drain "
              f"{verdict(c['tier1_cost_with_drain'] <= TARGETS['tier1_cost'])}",
              f"- Ray Serve with 2 replicas >= {TARGETS['ray_vs_embedded']} x the embedded server "
              f"at concurrency 32: {c['ray_vs_embedded']:.2f} x "
              f"{verdict(c['ray_vs_embedded'] >= TARGETS['ray_vs_embedded'])}", ""]
    return "\n".join(lines)


def arguments():
    parser = bench_parser(__doc__, "a bundle already in it is reused")
    parser.add_argument("--bundle", type=Path, help="Serve this bundle instead of training one.")
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    with bench_home(args.workspace, "shotlab-bench-serve-") as scratch:
        kept = scratch / "bundle"
        bundle = args.bundle or (kept if (kept / "manifest.json").is_file()
                                 else quick_bundle(scratch))
        result = measure(bundle, args.rounds, scratch)
    result.update({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "rounds": args.rounds, "bundle": str(args.bundle or "lite0 linear, 1 epoch"),
                   "machine": machine(), "levels": LEVELS})
    result["summary"] = summarise(result)
    save_results("serve_load", result, markdown(result))


if __name__ == "__main__":
    main()
