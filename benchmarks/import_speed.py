"""How fast `shotlab curate import` gets images into the store, and where the time goes.

Generates a seeded folder of small images (PNG and JPEG, 10 class folders, random patterns), then
measures, side by side in each of several rounds:

    a  inspect_image, one thread         the raw cost of hashing and fully decoding every file
    b  inspect_all, default thread pool  the same through the importer's pool
    c  import_path into a fresh dataset  everything: scan, inspect, database writes, duplicate scan
    d  import_path again, same folder    adds nothing; the cost of an idempotent re-import

and reports images/s for each (median over the rounds), and for c and d how the time splits
between scanning, inspecting, building samples and the database. Everything happens in a
throwaway workspace with its own MongoDB server, started by shotlab itself (core/database.py) as
for any user, and deleted at the end.

    .venv/bin/python benchmarks/import_speed.py [--images 2000] [--rounds 5] [--profile]

Writes benchmarks/results/import_speed.json and import_speed.md (and, with --profile,
import_speed_profile.txt: cProfile of an extra fresh import and re-import).
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import hashlib
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from common import busy_note  # benchmarks/common.py (scripts run from this folder)

RESULTS = Path(__file__).resolve().parent / "results"
CLASSES = 10
SEED = 20240601


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "machine": platform.machine(), "processor": platform.processor() or None}


def make_images(root: Path, count: int, seed: int = SEED) -> dict:
    """`count` images in CLASSES folders: sizes 64x64 to 128x96, half PNG, half JPEG, seeded."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(64, 64), (80, 64), (96, 64), (96, 80), (96, 96), (112, 80), (128, 80), (128, 96)]
    total_bytes, kinds = 0, defaultdict(int)
    for index in range(count):
        folder = root / f"class_{index % CLASSES:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        width, height = sizes[rng.integers(len(sizes))]
        # A coarse random colour grid, upsampled smoothly, plus pixel noise: compresses like a
        # photo (neither flat nor pure noise).
        grid = rng.integers(0, 256, size=(rng.integers(3, 9), rng.integers(3, 9), 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(grid).resize((width, height), Image.BILINEAR), np.int16)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        if index % 2:
            path = folder / f"img_{index:05d}.jpg"
            image.save(path, "JPEG", quality=90)
        else:
            path = folder / f"img_{index:05d}.png"
            image.save(path, "PNG")
        total_bytes += path.stat().st_size
        kinds[path.suffix] += 1
    return {"images": count, "classes": CLASSES, "bytes": total_bytes, "by_extension": dict(kinds),
            "sizes": [f"{w}x{h}" for w, h in sizes], "seed": seed}


class Timers:
    """Wraps functions the importer calls, so one import_path run splits into its stages.

    The wrappers only add up wall time (about a microsecond a call); behaviour is unchanged.
    Only stages called from the importer's own thread are wrapped.
    """

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._restore = []
        self._depth = [0]  # timed calls under way (the importer calls these from one thread)

    def wrap(self, owner, attribute: str, label: str, inner: bool = False) -> None:
        """Time owner.attribute under `label`; an `inner` timer measures part of another stage."""
        original = getattr(owner, attribute)
        own = attribute in vars(owner)  # else inherited: unwrap deletes ours instead
        totals, calls = self.totals, self.calls

        depth = self._depth

        def timed_inner(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals[label] += time.perf_counter() - start
                calls[label] += 1

        def timed(*args, **kwargs):
            # Only the outermost timed call counts, so nested ones are not counted twice.
            depth[0] += 1
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    totals[label] += time.perf_counter() - start
                    calls[label] += 1

        setattr(owner, attribute, timed_inner if inner else timed)
        self._restore.append((owner, attribute, original, own))

    def reset(self) -> None:
        self.totals.clear()
        self.calls.clear()

    def unwrap(self) -> None:
        for owner, attribute, original, own in reversed(self._restore):
            if own:
                setattr(owner, attribute, original)
            else:
                delattr(owner, attribute)
        self._restore.clear()


def install_timers(timers: Timers) -> None:
    import fiftyone as fo
    from pymongo.collection import Collection

    from shotlab.core import store
    from shotlab.curate import importer

    timers.wrap(importer, "read", "scan")                         # list the folder's files
    timers.wrap(importer, "inspect_all", "inspect")                # hash + decode, thread pool
    timers.wrap(store, "find", "db_open")                          # load the dataset, if any
    timers.wrap(store, "create", "db_open")                        # or create it
    timers.wrap(importer, "make_sample", "build_samples")          # fo.Sample objects, in Python
    timers.wrap(fo.Dataset, "add_samples", "db_insert")            # the database writes
    timers.wrap(fo.Dataset, "values", "db_read")                   # existing paths, sha256s, labels
    # Inside db_insert: the time pymongo spends sending the documents to mongod and waiting.
    timers.wrap(Collection, "insert_many", "mongo_insert_many", inner=True)


def split_stages(totals: dict[str, float], wall: float) -> dict[str, float]:
    stages = {k: totals.get(k, 0.0) for k in ("scan", "inspect", "db_open", "build_samples",
                                               "db_insert", "db_read")}
    # add_samples builds each sample's document before inserting it; that is database work
    # as FiftyOne does it, so it stays in db_insert. make_sample runs outside it.
    stages["other"] = max(0.0, wall - sum(stages.values()))
    stages["of_which_mongo_insert_many"] = totals.get("mongo_insert_many", 0.0)  # within db_insert
    return stages


def database_share(stages: dict[str, float], wall: float) -> float:
    return (stages["db_open"] + stages["db_insert"] + stages["db_read"]) / wall


def check_own_database(workspace_home: Path) -> str:
    """The mongod we talk to must keep its data inside our throwaway workspace.

    A benchmark must never write into someone else's store (FiftyOne's own database service
    would attach to any running FiftyOne database; shotlab runs one server per workspace).
    """
    import fiftyone.core.odm.database as fod

    opts = fod.get_db_client().admin.command("getCmdLineOpts")
    dbpath = opts.get("parsed", {}).get("storage", {}).get("dbPath", "")
    if not Path(dbpath).resolve().is_relative_to(workspace_home.resolve()):
        raise SystemExit(f"FiftyOne connected to a mongod whose data is in {dbpath!r}, not in the "
                         f"benchmark's workspace {workspace_home}; stopping before writing to it")
    return dbpath


def parallel_headroom(workers: int, rounds: int = 3) -> dict:
    """The speed-up `workers` threads get on work that releases the GIL (sha256 of 32 MB).

    A control for b: if this is near 1, the machine had no spare cores (other load, a CPU quota),
    and the thread pool cannot show a gain whatever the GIL does.
    """
    data = bytes(32 << 20)

    def job(_):
        hashlib.sha256(data).digest()

    def timed(threads: int) -> float:
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(job, range(workers * 2)))
        return time.perf_counter() - start

    one = statistics.median(timed(1) for _ in range(rounds))
    many = statistics.median(timed(workers) for _ in range(rounds))
    return {"workers": workers, "one_thread_s": one, "pool_s": many, "speedup": one / many}


def count_of(items) -> str:
    return f"{len(items):,}"


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def run(opts) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="shotlab-bench-import-"))
    # Deleted at exit, after shotlab's own exit handler (registered later, so run first) has
    # stopped the workspace's mongod.
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return measure(opts, tmp)


def measure(opts, tmp: Path) -> dict:
    # The workspace first: FiftyOne reads its configuration once, on import.
    from shotlab.core import workspace

    home = tmp / "workspace"
    workspace.activate(home)
    from shotlab.core.images import inspect_image
    from shotlab.curate import importer

    folder, warm = tmp / "images", tmp / "warmup"
    start = time.perf_counter()
    data = make_images(folder, opts.images)
    make_images(warm, 50, seed=SEED + 1)
    generate_s = time.perf_counter() - start
    print(f"generated {data['images']} images ({data['bytes'] / 1e6:.1f} MB) in {generate_s:.1f} s")

    # Paid once per process, measured apart from the imports: shotlab starting the workspace's
    # mongod (core/database.py), then importing fiftyone and connecting.
    from shotlab.core import database, store

    startup = Timers()
    startup.wrap(database, "connect", "start_database")
    start = time.perf_counter()
    fo = store.fiftyone()
    fo.list_datasets()
    first_use_s = time.perf_counter() - start
    startup.unwrap()
    start_db_s = startup.totals["start_database"]
    import_fiftyone_s = first_use_s - start_db_s
    dbpath = check_own_database(home)
    print(f"start the workspace's mongod {start_db_s:.2f} s, import fiftyone and connect "
          f"{import_fiftyone_s:.2f} s ({dbpath})")

    records = importer.read(folder, "folder", False).records
    assert len(records) == opts.images, (len(records), opts.images)
    candidates, _ = importer.unique_records(records)
    workers = min(8, os.cpu_count() or 1)  # import_path's default

    # Warm-up: page cache, PIL plugins, thread pool, FiftyOne's first-dataset costs.
    for record in records:
        record.path.read_bytes()
    importer.import_path(warm, "bench-warmup", progress=False)
    importer.import_path(warm, "bench-warmup", progress=False)

    timers = Timers()
    install_timers(timers)
    rounds: dict[str, list] = defaultdict(list)
    cpu_rounds: dict[str, list] = defaultdict(list)  # this process's CPU time (all its threads)
    load_before = os.getloadavg()
    stage_rounds: dict[str, list[dict]] = defaultdict(list)
    headroom: list[float] = []  # GIL-free control for b, measured in the same rounds
    reports = {}
    try:
        for r in range(opts.rounds):
            start, cpu = time.perf_counter(), time.process_time()
            for record in records:
                inspect_image(record.path)
            rounds["a_inspect_single_thread"].append(time.perf_counter() - start)
            cpu_rounds["a_inspect_single_thread"].append(time.process_time() - cpu)

            start, cpu = time.perf_counter(), time.process_time()
            valid, skipped = importer.inspect_all(candidates, max_pixels=importer.DEFAULT_MAX_PIXELS,
                                                  workers=workers, progress=False)
            rounds["b_inspect_all_pool"].append(time.perf_counter() - start)
            cpu_rounds["b_inspect_all_pool"].append(time.process_time() - cpu)
            assert len(valid) == opts.images and not skipped
            headroom.append(parallel_headroom(workers, rounds=1)["speedup"])

            name = f"bench-{r}"
            for key, label in (("c_import_fresh", "fresh"), ("d_reimport", "again")):
                timers.reset()
                start, cpu = time.perf_counter(), time.process_time()
                report = importer.import_path(folder, name, progress=False)
                wall = time.perf_counter() - start
                rounds[key].append(wall)
                cpu_rounds[key].append(time.process_time() - cpu)
                stage_rounds[key].append(split_stages(timers.totals, wall))
                reports[label] = report.to_dict()
            assert reports["fresh"]["added"] == opts.images, reports["fresh"]
            assert reports["again"]["added"] == 0, reports["again"]
            assert reports["again"]["already_present"] == opts.images, reports["again"]
            fo.delete_dataset(name)  # every round starts from the same database
            print(f"round {r + 1}/{opts.rounds}: " + ", ".join(
                f"{k.split('_', 1)[0]} {rounds[k][-1]:.2f} s" for k in rounds))
    finally:
        timers.unwrap()

    profile_text = None
    if opts.profile:
        sections = []
        for title in ("fresh import", "re-import (adds nothing)"):
            profiler = cProfile.Profile()
            profiler.enable()
            importer.import_path(folder, "bench-profile", progress=False)
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(25)
            sections.append(f"===== cProfile: {title} of {count_of(records)} images =====\n"
                            + out.getvalue())
        profile_text = "\n".join(sections)
        # Shorter lines: library files relative to site-packages, the standard library's to its
        # folder, shotlab's to the repository.
        paths = sysconfig.get_paths()
        for prefix in (paths["purelib"], paths["stdlib"], str(Path(__file__).resolve().parents[1])):
            profile_text = profile_text.replace(prefix + os.sep, "")

    for name in fo.list_datasets():
        if name.startswith("bench-"):
            fo.delete_dataset(name)

    count = opts.images
    results = {}
    for key, samples in rounds.items():
        median = statistics.median(samples)
        entry = {"median_s": median, "min_s": min(samples), "max_s": max(samples),
                 "samples_s": [round(s, 4) for s in samples],
                 "images_per_s": rate(count, median),
                 # CPU seconds per wall second: about 1 means one core did the work
                 "cores_busy": statistics.median(c / w for c, w in zip(cpu_rounds[key], samples))}
        if key in stage_rounds:
            stages = {s: statistics.median(row[s] for row in stage_rounds[key])
                      for s in stage_rounds[key][0]}
            entry["stages_median_s"] = stages
            entry["database_share"] = statistics.median(
                database_share(row, wall) for row, wall in zip(stage_rounds[key], samples))
        results[key] = entry
    a = results["a_inspect_single_thread"]["median_s"]
    b = results["b_inspect_all_pool"]["median_s"]
    c = results["c_import_fresh"]["median_s"]
    d = results["d_reimport"]["median_s"]
    return {
        "benchmark": "import_speed",
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "data": data,
        "rounds": opts.rounds,
        "workers": workers,
        "database": {"dbpath": dbpath,
                     "mongod_version": fo.core.odm.database.get_db_client().server_info()["version"]},
        "startup": {"generate_images_s": generate_s, "import_fiftyone_s": import_fiftyone_s,
                    "start_database_s": start_db_s},
        "results": results,
        "ratios": {"pool_speedup_over_single_thread": a / b,
                   "gil_free_control_speedup": statistics.median(headroom),
                   "fresh_import_over_inspect_all": c / b,
                   "reimport_over_inspect_all": d / b,
                   "reimport_over_fresh_import": d / c},
        "last_reports": {k: {f: v for f, v in rep.items() if f != "skipped"} | {
            "skipped": len(rep["skipped"])} for k, rep in reports.items()},
        "profile": profile_text,
    }


LABELS = {
    "a_inspect_single_thread": "a. `inspect_image`, 1 thread (hash + decode)",
    "b_inspect_all_pool": "b. `inspect_all`, thread pool",
    "c_import_fresh": "c. `import_path`, fresh dataset",
    "d_reimport": "d. `import_path` again (adds nothing)",
}


def write_markdown(result: dict, path: Path) -> None:
    m, data, res = result["machine"], result["data"], result["results"]
    load = result["load_average_1m"]
    lines = [
        "# Import speed",
        "",
        f"{result['timestamp']} · {data['images']} images ({data['bytes'] / 1e6:.1f} MB, "
        f"{data['by_extension'].get('.png', 0)} PNG + {data['by_extension'].get('.jpg', 0)} JPEG, "
        f"64x64 to 128x96, {data['classes']} classes) · median of {result['rounds']} interleaved "
        f"rounds · {result['workers']} workers · Python {m['python']} · {m['cpu_count']} CPUs · "
        f"load average {load['before']:.1f} before, {load['after']:.1f} after · {m['platform']}",
        "",
        *busy_note(result),
        "| stage | median | images/s | database share | cores busy |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in LABELS.items():
        row = res[key]
        share = f"{row['database_share']:.0%}" if "database_share" in row else "-"
        lines.append(f"| {label} | {row['median_s']:.2f} s | {row['images_per_s']:,.0f} | {share} "
                     f"| {row['cores_busy']:.2f} |")
    r = result["ratios"]
    lines += [
        "",
        f"- Thread pool over one thread: x{r['pool_speedup_over_single_thread']:.2f} "
        f"({result['workers']} workers on {m['cpu_count']} CPUs). Control, measured in the same "
        f"rounds: sha256 of 32 MB buffers (releases the GIL) in {result['workers']} threads "
        f"over one: x{r['gil_free_control_speedup']:.2f}; near 1 means the machine had no "
        f"spare core, so b cannot show a gain.",
        f"- Full import over inspect alone: x{r['fresh_import_over_inspect_all']:.2f}; "
        f"re-import over inspect alone: x{r['reimport_over_inspect_all']:.2f}; "
        f"re-import over fresh import: x{r['reimport_over_fresh_import']:.2f}.",
        f"- Paid once per process, not above: starting the workspace's mongod "
        f"{result['startup']['start_database_s']:.2f} s, importing fiftyone and connecting "
        f"{result['startup']['import_fiftyone_s']:.2f} s.",
        "- cores busy: this process's CPU seconds per wall second (mongod not counted); about 1 "
        "means one core did the work.",
        "",
        "## Where an import's time goes (median seconds)",
        "",
        "| stage | scan | inspect | db_open | build_samples | db_insert | (mongod writes) "
        "| db_read | other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in ("c_import_fresh", "d_reimport"):
        s = res[key]["stages_median_s"]
        lines.append(f"| {LABELS[key]} | " + " | ".join(
            f"{s[k]:.2f}" for k in ("scan", "inspect", "db_open", "build_samples", "db_insert",
                                   "of_which_mongo_insert_many", "db_read", "other")) + " |")
    lines += [
        "",
        "scan: listing the folder; inspect: hashing and decoding (thread pool); db_open: loading or "
        "creating the dataset; build_samples: `fo.Sample` objects in Python (`make_sample`); "
        "db_insert: `Dataset.add_samples` (FiftyOne validates and converts each sample, then "
        "writes); (mongod writes): the part of db_insert spent in pymongo's `insert_many`; "
        "db_read: `values()` queries (existing paths, then sha256s and labels for the duplicate "
        "report); other: the rest (resolving paths, format detection, duplicate grouping). "
        "Database share = db_open + db_insert + db_read over the whole import.",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one fresh import; writes import_speed_profile.txt")
    parser.add_argument("--out", type=Path, default=RESULTS)
    opts = parser.parse_args()
    if opts.images < CLASSES:
        parser.error(f"--images must be at least {CLASSES}")

    result = run(opts)
    profile = result.pop("profile")
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "import_speed.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    write_markdown(result, opts.out / "import_speed.md")
    if profile:
        (opts.out / "import_speed_profile.txt").write_text(profile)

    for key, label in LABELS.items():
        row = result["results"][key]
        share = f", database {row['database_share']:.0%}" if "database_share" in row else ""
        print(f"{label:48s} {row['median_s']:6.2f} s  {row['images_per_s']:8,.0f} img/s{share}")
    print(f"wrote {opts.out / 'import_speed.json'} and {opts.out / 'import_speed.md'}"
          + (f" and {opts.out / 'import_speed_profile.txt'}" if profile else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
