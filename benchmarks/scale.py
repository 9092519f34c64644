"""Does a generated folder-data project scale with the number of images? Prints tables and
writes JSON.

For each size N it makes a folder of N synthetic JPEGs (10 class subfolders, RGB, 128-224 px
a side, textured so files are 5-15 KB; kept in --work and reused by later runs), generates
one project (`kgen new --data folder --arch simple_cnn --image-size 64 --channels 3
--num-classes 10`, run with `python -m scale_bench` from its directory, never installed),
and measures:

- listing: `os.walk` over the folder, seconds;
- decode: a tf.data pipeline read_file -> decode_jpeg (no model), images/s after warm-up,
  also per core (os.cpu_count()); decode+resize: the same plus a resize to 64x64;
  each the median of 3 windows (3,000 images and 3 s together, at most 10 s) over at most
  3,000 distinct files, which are in the page cache;
- pipeline: the project's own `benchmark` command with its data cache off (every image
  read, decoded and resized, as in a first epoch), its "input pipeline alone" images/s;
- train: the project's `train --epochs 1` as a child process: wall time (start-up, listing,
  one epoch, validation, saving), peak RSS of that child (ru_maxrss from os.wait4 on its
  pid, so no other process counts), and the `time to first step:` and `data cache:` lines
  it prints ("n/a" when it prints none). The project config gets data.cache = "auto" and
  data.cache_budget = --cache-budget (a fraction of RAM) when it accepts them; the default
  0.0005 (~13 MB of 24 GiB) is below 5,000 images at 64x64x3, so the policy must use the
  on-disk cache; --cache-budget 0.25 is the everyday case. It also gets
  train.steps_per_execution = 1: Keras reports the first batch after a whole execution,
  and the project's default (the largest divisor of the epoch's steps up to 16) changes
  with N, which would put 1 to 16 steps of compute into "time to first step".

Targets (largest N vs smallest N; exit code 1 when one is missed):
- time to first step minus the listing time grows by at most max(1 s, 15 %);
- peak RSS of train grows by less than 15 %;
- pipeline >= 0.70 x decode+resize, at every N.

    python benchmarks/scale.py [--sizes 5000,20000,80000] [--work DIR]
                               [--cache-budget 0.0005] [--json build/bench/scale.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from generator.render import create_project
from generator.spec import ProjectSpec

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NUM_CLASSES = 10
IMAGE_SIZE = 64
PACKAGE = "scale_bench"  # the project directory is scale-bench
FILE_BYTES = 20_000  # on-disk upper bound of one JPEG (they average ~10 KB)
CACHE_BYTES = IMAGE_SIZE**2 * 3 + 512  # one example in the project's disk cache
SPARE_BYTES = 512 * 2**20  # project, runs, logs
DECODE_IMAGES, DECODE_BATCH = 3_000, 64  # distinct files; images per batch
# A decode rate: the median of 3 windows, together >= 3,000 images and >= 3 s, <= 10 s.
WINDOWS, MIN_SECONDS, DECODE_SECONDS = 3, 3.0, 10.0
BENCH_STEPS = 25  # `benchmark --steps`: it times 25 then 75 batches of 64, subtracts
CHILD_TIMEOUT = 3_600
PIPELINE_TARGET, RSS_GROWTH, FIRST_STEP_GROWTH, FIRST_STEP_SLACK = 0.70, 0.15, 0.15, 1.0


# Run in the project directory: which candidate config files its load_config accepts.
def sizes_option(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list like 500,2000"
        ) from None
    if sizes[0] < 10 * NUM_CLASSES:
        raise argparse.ArgumentTypeError(f"sizes must be >= {10 * NUM_CLASSES}")
    return sizes


def fraction_option(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in (0, 1)")
    return value


def folder_for(work: Path, n: int) -> Path:
    return work / f"images-{n}"


def is_complete(folder: Path, n: int) -> bool:
    marker = folder / ".complete"  # hidden: the project does not take it for a class
    return marker.is_file() and marker.read_text().strip() == str(n)


def fitting_sizes(work: Path, sizes: list[int]) -> tuple[list[int], list[dict]]:
    """The sizes whose images (unless already there) and disk cache fit the free disk,
    smallest first; the others with the reason."""
    free = shutil.disk_usage(work).free - SPARE_BYTES
    kept, skipped = [], []
    for n in sizes:
        files = 0 if is_complete(folder_for(work, n), n) else n * FILE_BYTES
        needed = files + n * CACHE_BYTES
        if needed <= free:
            kept.append(n)
            free -= needed
        else:
            reason = f"needs {needed / 1e9:.1f} GB, {max(free, 0) / 1e9:.1f} GB free"
            print(f"skipped N={n:,}: {reason}", file=sys.stderr)
            skipped.append({"n": n, "reason": reason})
    return kept, skipped


def generate_folder(folder: Path, n: int) -> float | None:
    """Write N JPEGs into folder/class_<k>/ with tf.data (parallel encode and write);
    seconds taken, or None when a complete folder is reused."""
    if is_complete(folder, n):
        return None
    import tensorflow as tf

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for label in range(NUM_CLASSES):
        (partial / f"class_{label}").mkdir(parents=True)
    colors = tf.constant(
        [
            [random.Random(k).uniform(0, 255) for _ in range(3)]
            for k in range(NUM_CLASSES)
        ]
    )

    def write(index: tf.Tensor) -> tf.Tensor:
        seed = tf.stack([index, tf.constant(20_240, tf.int64)])
        size = tf.random.stateless_uniform([2], seed, 128, 225, dtype=tf.int32)
        grid = tf.random.stateless_uniform([2], seed + 1, 6, 24, dtype=tf.int32)
        blobs = tf.random.stateless_uniform(tf.concat([grid, [3]], 0), seed + 2)
        label = index % NUM_CLASSES
        small = 0.6 * 255.0 * blobs + 0.4 * tf.gather(colors, label)  # a class tint
        image = tf.image.resize(small[None], size)[0]
        image += tf.random.stateless_normal(tf.shape(image), seed + 3, stddev=6.0)
        jpeg = tf.io.encode_jpeg(
            tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), quality=90
        )
        name = tf.strings.join(
            [
                str(partial),
                "/class_",
                tf.strings.as_string(label),
                "/",
                tf.strings.as_string(index, width=7, fill="0"),
                ".jpg",
            ]
        )
        tf.io.write_file(name, jpeg)
        return tf.strings.length(jpeg)

    start = time.perf_counter()
    written = tf.data.Dataset.range(n).map(write, num_parallel_calls=tf.data.AUTOTUNE)
    for _ in written.batch(1024):
        pass
    seconds = time.perf_counter() - start
    (partial / ".complete").write_text(f"{n}\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return seconds


def list_folder(folder: Path) -> tuple[float, list[str], int]:
    """Seconds `os.walk` takes to list the folder, the JPEG paths, their total bytes."""
    start = time.perf_counter()
    paths = [
        os.path.join(directory, name)
        for directory, _, names in os.walk(folder)
        for name in names
        if name.endswith(".jpg")
    ]
    seconds = time.perf_counter() - start
    return seconds, paths, sum(os.path.getsize(path) for path in paths)


def decode_rate(paths: list[str], resize: bool) -> float:
    """Images/s of read_file -> decode_jpeg (-> resize), parallel, no model, after a
    warm-up; the median of WINDOWS windows over at most DECODE_IMAGES distinct files."""
    import tensorflow as tf

    def load(path: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        if resize:
            return tf.image.resize(image, (IMAGE_SIZE, IMAGE_SIZE))
        return tf.size(image)  # needs the whole decode; decoded sizes differ

    sample = random.Random(0).sample(paths, min(len(paths), DECODE_IMAGES))
    batches = iter(
        tf.data.Dataset.from_tensor_slices(sample)
        .repeat()
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(DECODE_BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    for _ in range(3):  # warm-up: tracing, autotuning
        next(batches)
    rates = []
    for _ in range(WINDOWS):  # the median window: a burst of other work hits one
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < DECODE_SECONDS / WINDOWS and (
            count < DECODE_IMAGES / WINDOWS or elapsed < MIN_SECONDS / WINDOWS
        ):
            next(batches)
            count += DECODE_BATCH
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def make_project(work: Path) -> Path:
    """A fresh project from kgen, for folder data at 64x64x3, 10 classes."""
    project = work / "scale-bench"
    shutil.rmtree(project, ignore_errors=True)
    spec = ProjectSpec(
        project_name=project.name,
        data="folder",
        arch="simple_cnn",
        image_size=IMAGE_SIZE,
        channels=3,
        num_classes=NUM_CLASSES,
    )
    create_project(spec.resolve(), project)
    return project


def child_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}


def project_configs(budget: float) -> tuple[dict, dict]:
    """Config files for train (cache policy "auto" under the budget, one step per
    execution so that "time to first step" is one step) and for benchmark (no cache:
    every image decoded, as in a first epoch)."""
    train = {
        "data": {"cache": "auto", "cache_budget": budget},
        "train": {"steps_per_execution": 1},
    }
    bench = {"data": {"cache": "none", "cache_budget": budget}}
    return train, bench


def run_child(command: list[str], cwd: Path, log: Path) -> dict:
    """Run `python ARGS` in cwd, output to log.out/log.err; exit code, wall seconds, and
    the child's own peak RSS (os.wait4 returns the rusage of that one process)."""
    with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, *command], cwd=cwd, env=child_env(), stdout=out, stderr=err
        )
        timer = threading.Timer(CHILD_TIMEOUT, child.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return {
        "returncode": child.returncode,
        "wall_s": seconds,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "stdout": Path(f"{log}.out").read_text(errors="replace"),
        "stderr": Path(f"{log}.err").read_text(errors="replace"),
    }


def printed(text: str, prefix: str) -> str | None:
    """What follows `prefix` on the last line that starts with it."""
    found = None
    for line in re.split(r"[\r\n]+", text):
        if line.strip().startswith(prefix):
            found = line.strip()[len(prefix) :].strip()
    return found


def failure(what: str, run: dict) -> str:
    lines = run["stderr"].strip().splitlines() or ["(no output)"]
    return f"{what} exited {run['returncode']}: {lines[-1]}"


def measure_pipeline(project: Path, folder: Path, config: Path, log: Path) -> dict:
    run = run_child(
        [
            "-m",
            PACKAGE,
            "benchmark",
            "--data-dir",
            str(folder),
            "--config",
            str(config),
            "--steps",
            str(BENCH_STEPS),
        ],
        project,
        log,
    )
    if run["returncode"] != 0:
        return {"pipeline_error": failure("benchmark", run)}
    numbers = {}
    for key, label in (
        ("pipeline_images_per_second", "input pipeline alone"),
        ("train_step_images_per_second", "train step alone"),
    ):
        value = printed(run["stdout"], label)
        numbers[key] = float(value.split()[0].replace(",", "")) if value else None
    return numbers


def measure_train(
    project: Path, folder: Path, config: Path, run_dir: Path, log: Path
) -> dict:
    shutil.rmtree(run_dir, ignore_errors=True)  # a leftover run would resume, not train
    run = run_child(
        [
            "-m",
            PACKAGE,
            "train",
            "--data-dir",
            str(folder),
            "--output-dir",
            str(run_dir),
            "--epochs",
            "1",
            "--config",
            str(config),
        ],
        project,
        log,
    )
    first_step = printed(run["stdout"], "time to first step:")
    cache = printed(run["stdout"], "data cache:")
    return {
        "train_wall_s": run["wall_s"],
        "train_peak_rss_mib": run["peak_rss_mib"],
        "time_to_first_step_s": float(first_step.split()[0]) if first_step else None,
        "data_cache": cache.split()[0] if cache else None,
        "data_cache_line": cache,
        **({"train_error": failure("train", run)} if run["returncode"] else {}),
    }


def measure(
    n: int, generation: float | None, project: Path, configs: dict, work: Path
) -> dict:
    """Every figure for one size: listing, decode rates, pipeline, one epoch of train."""
    cores = os.cpu_count() or 1
    folder = folder_for(work, n)
    listing, paths, total = list_folder(folder)
    row = {
        "n": n,
        "generation_s": generation,  # None: reused
        "files": len(paths),
        "files_mb": total / 1e6,
        "listing_s": listing,
    }
    for key, resize in (("decode", False), ("decode_resize", True)):
        rate = decode_rate(paths, resize)
        row[f"{key}_images_per_second"] = rate
        row[f"{key}_per_core"] = rate / cores
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    row.update(measure_pipeline(project, folder, configs["bench"], logs / f"bench-{n}"))
    pipeline = row.get("pipeline_images_per_second")
    row["pipeline_ratio"] = (
        pipeline / row["decode_resize_images_per_second"] if pipeline else None
    )
    row.update(
        measure_train(
            project,
            folder,
            configs["train"],
            work / "runs" / f"n{n}",
            logs / f"train-{n}",
        )
    )
    return row


def show(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_tables(rows: list[dict]) -> None:
    print(
        f"\n{'N':>8}{'gen s':>8}{'files MB':>10}{'list s':>8}{'decode/s':>10}"
        f"{'/core':>8}{'dec+resize/s':>14}{'/core':>8}{'pipeline/s':>12}{'ratio':>7}"
    )
    for row in rows:
        generated = (
            "reused" if row["generation_s"] is None else f"{row['generation_s']:.1f}"
        )
        print(
            f"{row['n']:>8,}{generated:>8}{row['files_mb']:>10.1f}{row['listing_s']:>8.3f}"
            f"{row['decode_images_per_second']:>10,.0f}{row['decode_per_core']:>8,.0f}"
            f"{row['decode_resize_images_per_second']:>14,.0f}"
            f"{row['decode_resize_per_core']:>8,.0f}"
            f"{show(row.get('pipeline_images_per_second'), ',.0f'):>12}"
            f"{show(row['pipeline_ratio'], '.2f'):>7}"
        )
    print(
        f"\n{'N':>8}{'first step s':>14}{'train wall s':>14}{'peak RSS MiB':>14}  data cache"
    )
    for row in rows:
        print(
            f"{row['n']:>8,}{show(row['time_to_first_step_s'], '.1f'):>14}"
            f"{row['train_wall_s']:>14.1f}{row['train_peak_rss_mib']:>14,.0f}  "
            f"{row['data_cache_line'] or 'n/a'}"
        )
    for row in rows:
        for key in ("pipeline_error", "train_error"):
            if key in row:
                print(f"N={row['n']:,}: {row[key]}")


def check(measured: str | None, target: str, ok: bool | None) -> dict[str, str]:
    verdict = "n/a" if ok is None else "ok" if ok else "MISSED"
    return {"measured": measured or "n/a", "target": target, "verdict": verdict}


def check_targets(rows: list[dict]) -> dict[str, dict]:
    """The targets, each with what was measured and ok / MISSED / n/a (not measured:
    one size only, a line the project does not print, a failed run)."""
    small, large = rows[0], rows[-1]
    pair = f"from N={small['n']:,} to N={large['n']:,}"
    compared = len(rows) > 1 and not any("train_error" in row for row in rows)
    checks = {}

    ratios = [row["pipeline_ratio"] for row in rows]
    target = f">= {PIPELINE_TARGET:.2f} at every N"
    if None in ratios:
        checks["pipeline_vs_decode_resize"] = check(None, target, None)
    else:
        checks["pipeline_vs_decode_resize"] = check(
            f"min {min(ratios):.2f}", target, min(ratios) >= PIPELINE_TARGET
        )

    target = (
        f"first step - listing: at most +max({FIRST_STEP_SLACK:.0f} s, "
        f"{FIRST_STEP_GROWTH:.0%}) {pair}"
    )
    firsts = small["time_to_first_step_s"], large["time_to_first_step_s"]
    if compared and None not in firsts:
        before = firsts[0] - small["listing_s"]
        after = firsts[1] - large["listing_s"]
        allowed = max(FIRST_STEP_SLACK, FIRST_STEP_GROWTH * before)
        checks["first_step_growth"] = check(
            f"{before:.1f} s -> {after:.1f} s ({after - before:+.1f} s)",
            target,
            after - before <= allowed,
        )
    else:
        checks["first_step_growth"] = check(None, target, None)

    target = f"< +{RSS_GROWTH:.0%} {pair}"
    if compared:
        growth = large["train_peak_rss_mib"] / small["train_peak_rss_mib"] - 1
        checks["peak_rss_growth"] = check(f"{growth:+.1%}", target, growth < RSS_GROWTH)
    else:
        checks["peak_rss_growth"] = check(None, target, None)
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=sizes_option, default=[5_000, 20_000, 80_000], help="images"
    )
    parser.add_argument(
        "--work", type=Path, help="scratch dir, kept: image folders are reused"
    )
    parser.add_argument(
        "--cache-budget",
        type=fraction_option,
        default=0.0005,
        help="data.cache_budget: a fraction of RAM, in (0, 1)",
    )
    parser.add_argument("--json", type=Path, default=Path("build/bench/scale.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kgen-scale-") as tmp:
        work = (args.work or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        sizes, skipped = fitting_sizes(work, args.sizes)
        if not sizes:
            print("no size fits on the disk", file=sys.stderr)
            return 2
        generation = {}
        for n in sizes:
            generation[n] = generate_folder(folder_for(work, n), n)
            how = "reused" if generation[n] is None else f"{generation[n]:.1f} s"
            print(f"images N={n:,}: {folder_for(work, n)} ({how})", flush=True)

        project = make_project(work)
        train_config, bench_config = project_configs(args.cache_budget)
        configs = {"train": work / "train.json", "bench": work / "bench.json"}
        configs["train"].write_text(json.dumps(train_config))
        configs["bench"].write_text(json.dumps(bench_config))
        print(
            f"project {project}: train config {train_config}, benchmark {bench_config}"
        )

        rows = []
        for n in sizes:
            rows.append(measure(n, generation[n], project, configs, work))
            print(f"measured N={n:,}", flush=True)

    print_tables(rows)
    checks = check_targets(rows)
    print(f"\n{'target':<28}{'measured':<32}  rule")
    for name, result in checks.items():
        print(
            f"{name:<28}{result['measured']:<32}  {result['target']}  {result['verdict']}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {"cpu_count": os.cpu_count()},
        "cache_budget": args.cache_budget,
        "project_configs": {"train": train_config, "benchmark": bench_config},
        "sizes": rows,
        "skipped": skipped,
        "checks": checks,
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    if any("train_error" in row or "pipeline_error" in row for row in rows):
        return 2
    return 1 if any(c["verdict"] == "MISSED" for c in checks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
