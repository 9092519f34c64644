"""Fixed-seed runs of a sample of generated projects: do they compute the same metrics?

A template refactoring must not change what generated projects compute. This script
generates a fixed sample of combinations (every task, every data source, both loops,
simple_cnn / mlp / mobilenet_v3_small) with the kgen checkout given by --kgen-root, writes
the data each one needs (a tiny deterministic dataset), trains each briefly with a fixed
seed and deterministic ops through the project's own command line, and records the final
metrics it writes (metrics.json and every row of history.csv) in a JSON file.

Only what a user sees is used: `kgen new` flags (no --num-classes: the documented
defaults 10/2/4/1 outputs by task are what the data is written for), the project's
documented `train` flags (--config, --epochs, --steps-per-epoch, --batch-size,
--output-dir, --data-dir) and the documented config key `train.deterministic`. The tfds
combinations run the project's CLI under `tfds.testing.mock_data`, as the generated
project's own tests do, so nothing is downloaded. Each combination is generated into a
temporary directory with a private template store (KGEN_HOME); about 2.5 minutes in all
on 2 CPU cores, one combination at a time.

    .venv/bin/python benchmarks/fixed_seed.py --kgen-root /path/to/kgen --out FILE.json
        [--only NAME,...] [--keep DIR] [--python INTERPRETER]
    .venv/bin/python benchmarks/fixed_seed.py --compare BEFORE.json AFTER.json
        [--rtol R] [--atol A]

benchmarks/results/fixed_seed_before.json is the baseline, recorded before the templates
were split into per-task / per-data-source modules. --compare prints a table (final
metrics, and every history.csv cell that is not bit-identical) and exits 1 if a
combination failed or is missing, a metric was added or removed, or a value differs by
more than the tolerance: |a - b| > atol + rtol * max(|a|, |b|).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# The interpreter that runs kgen and the generated projects (TensorFlow, tfds installed).
DEFAULT_PYTHON = "/work/main/.venv/bin/python"
PYTHON = DEFAULT_PYTHON if Path(DEFAULT_PYTHON).exists() else sys.executable
EPOCHS, STEPS_PER_EPOCH, BATCH_SIZE = 2, 5, 16
DATA_SEED = 20240601  # the datasets this script writes
# Documented `kgen new` defaults for npz, folder and synthetic data (README: --num-classes).
OUTPUTS = {"multiclass": 10, "binary": 2, "multilabel": 4, "regression": 1}
# Measured on the 2-core build machine: two runs of the same code give bit-identical
# metrics and history (all 20 combinations, twice; 5 of them also twice with
# train.deterministic off). The
# same code with train.deterministic off differs from it by up to 2.6e-6 relative (other
# kernels), a semantic change (BatchNormalization momentum 1e-6 -> 1e-5 ** (1/steps)) by
# 1e-2 to 2e-1. So 1e-6 relative lets float-rounding noise (an op reordered) through as
# "close" and flags anything bigger; values that are not bit-identical are counted.
RTOL, ATOL = 1e-6, 1e-9


@dataclass(frozen=True)
class Combo:
    name: str  # also the project's directory and package name
    arch: str
    task: str
    loop: str
    data: str
    kgen_args: tuple[str, ...] = field(default=())  # more `kgen new` flags


COMBOS = [
    # Every task with every data source; both loops for every task and data source.
    Combo("fs_sample_multiclass_fit", "simple_cnn", "multiclass", "fit", "sample"),
    Combo("fs_sample_binary_custom", "mlp", "binary", "custom", "sample"),
    Combo(
        "fs_sample_multilabel_fit", "mobilenet_v3_small", "multilabel", "fit", "sample"
    ),
    Combo(
        "fs_sample_regression_custom", "simple_cnn", "regression", "custom", "sample"
    ),
    Combo(
        "fs_npz_multiclass_custom",
        "mlp",
        "multiclass",
        "custom",
        "npz",
        ("--optimizer", "sgd", "--lr-schedule", "constant"),
    ),
    Combo("fs_npz_binary_fit", "mlp", "binary", "fit", "npz"),
    Combo("fs_npz_multilabel_custom", "simple_cnn", "multilabel", "custom", "npz"),
    Combo("fs_npz_regression_fit", "simple_cnn", "regression", "fit", "npz"),
    Combo(
        "fs_folder_multiclass_custom",
        "mobilenet_v3_small",
        "multiclass",
        "custom",
        "folder",
        ("--image-size", "32"),
    ),
    Combo("fs_folder_binary_fit", "simple_cnn", "binary", "fit", "folder"),
    Combo("fs_folder_multilabel_fit", "simple_cnn", "multilabel", "fit", "folder"),
    Combo(
        "fs_folder_regression_custom",
        "simple_cnn",
        "regression",
        "custom",
        "folder",
        ("--loss", "huber"),
    ),
    Combo("fs_synthetic_multiclass_fit", "mlp", "multiclass", "fit", "synthetic"),
    Combo(
        "fs_synthetic_binary_fit",
        "simple_cnn",
        "binary",
        "fit",
        "synthetic",
        ("--augment",),
    ),
    Combo(
        "fs_synthetic_multilabel_custom",
        "mobilenet_v3_small",
        "multilabel",
        "custom",
        "synthetic",
        ("--image-size", "32"),
    ),
    Combo("fs_synthetic_regression_custom", "mlp", "regression", "custom", "synthetic"),
    Combo("fs_tfds_multiclass_fit", "simple_cnn", "multiclass", "fit", "tfds"),
    Combo("fs_tfds_binary_custom", "simple_cnn", "binary", "custom", "tfds"),
    Combo("fs_tfds_multilabel_custom", "mlp", "multilabel", "custom", "tfds"),
    Combo("fs_tfds_regression_fit", "mlp", "regression", "fit", "tfds"),
]

# `python -m PKG ARGS...` under tfds's mock data (what the generated tfds tests use).
TFDS_MOCK = """
import runpy, sys
import tensorflow_datasets as tfds
sys.argv = sys.argv[1:]
with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


# ---------------------------------------------------------------- data ----


def _patterned(
    rng: np.random.Generator, weights: np.ndarray, size: int, channels: int
) -> np.ndarray:
    """uint8 images [N, size, size, channels]: one random pattern per output, weighted
    by `weights` [N, outputs], plus noise (learnable, like the projects' test data)."""
    patterns = rng.normal(0, 60, size=(weights.shape[1], size, size, channels))
    noise = rng.normal(0, 20, size=(len(weights), size, size, channels))
    images = 128 + np.tensordot(weights, patterns, axes=1) + noise
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def _labels(rng: np.random.Generator, task: str, count: int) -> np.ndarray:
    """y as the README documents it: class indices, 0/1 per label, or targets."""
    outputs = OUTPUTS[task]
    if task in ("multiclass", "binary"):
        return rng.integers(0, outputs, size=count)
    if task == "multilabel":
        return rng.integers(0, 2, size=(count, outputs))
    return rng.uniform(0, 1, size=(count, outputs)).round(4)


def _weights(task: str, y: np.ndarray) -> np.ndarray:
    if task in ("multiclass", "binary"):
        return np.eye(OUTPUTS[task])[y]
    return y.astype(np.float64)


def write_npz(directory: Path, task: str) -> None:
    """DATA_DIR/data.npz: x [N, 12, 12] uint8 (grayscale), y, class_names."""
    rng = np.random.default_rng(DATA_SEED)
    y = _labels(rng, task, 120)
    x = _patterned(rng, _weights(task, y), 12, 1)[..., 0]
    arrays = {"x": x, "y": y}
    if task != "regression":
        arrays["class_names"] = np.array([f"c{i}" for i in range(OUTPUTS[task])])
    directory.mkdir(parents=True)
    np.savez(directory / "data.npz", **arrays)


def write_folder(directory: Path, task: str) -> None:
    """One subfolder of PNGs per class, or PNGs and labels.csv (multilabel, regression)."""
    rng = np.random.default_rng(DATA_SEED)
    count = 80
    y = _labels(rng, task, count)
    images = _patterned(rng, _weights(task, y), 12, 3)
    directory.mkdir(parents=True)
    if task in ("multiclass", "binary"):
        for index, (image, label) in enumerate(zip(images, y, strict=True)):
            folder = directory / f"class_{label}"
            folder.mkdir(exist_ok=True)
            (folder / f"{index:03d}.png").write_bytes(png(image))
        return
    prefix = "label" if task == "multilabel" else "target"
    header = ["filename", *(f"{prefix}_{i}" for i in range(y.shape[1]))]
    rows = [",".join(header)]
    for index, (image, values) in enumerate(zip(images, y, strict=True)):
        (directory / f"{index:03d}.png").write_bytes(png(image))
        rows.append(",".join([f"{index:03d}.png", *map(str, values)]))
    (directory / "labels.csv").write_text("\n".join(rows) + "\n")


def png(image: np.ndarray) -> bytes:
    """A uint8 [H, W, 1 or 3] array as PNG bytes (no dependencies, same bytes each time)."""
    height, width, channels = image.shape
    color = {1: 0, 3: 2}[channels]
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return (
            struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------- runs ----


def _run(command: list[str], cwd: Path, env: dict[str, str], what: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return seconds


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def run_combo(combo: Combo, kgen_root: Path, work: Path, kgen_home: Path) -> dict:
    """Generate, write data, train; return the recorded metrics and timings."""
    env = {
        **os.environ,
        "KGEN_HOME": str(kgen_home),  # a private template store, not the user's
        "PYTHONHASHSEED": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_DETERMINISTIC_OPS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    kgen_command = [
        PYTHON,
        "-m",
        "generator",
        "new",
        str(work / combo.name),
        "--arch",
        combo.arch,
        "--task",
        combo.task,
        "--loop",
        combo.loop,
        "--data",
        combo.data,
        *combo.kgen_args,
        "--defaults",
    ]
    generate_seconds = _run(
        kgen_command,
        kgen_root,
        {**env, "PYTHONPATH": str(kgen_root)},
        f"{combo.name}: kgen new",
    )
    project = work / combo.name
    config = work / f"{combo.name}-config.json"
    config.write_text(json.dumps({"train": {"deterministic": True}}) + "\n")
    out = project / "runs" / "fixed_seed"
    train_args = [
        "train",
        "--config",
        str(config),
        "--epochs",
        str(EPOCHS),
        "--steps-per-epoch",
        str(STEPS_PER_EPOCH),
        "--batch-size",
        str(BATCH_SIZE),
        "--output-dir",
        str(out),
    ]
    data_dir = work / f"{combo.name}-data"
    if combo.data == "npz":
        write_npz(data_dir, combo.task)
    elif combo.data == "folder":
        write_folder(data_dir, combo.task)
    elif combo.data == "tfds":
        data_dir.mkdir()  # mock data: nothing is downloaded or written there
    if combo.data in ("npz", "folder", "tfds"):
        train_args += ["--data-dir", str(data_dir)]
    if combo.data == "tfds":
        command = [PYTHON, "-c", TFDS_MOCK, combo.name, *train_args]
    else:
        command = [PYTHON, "-m", combo.name, *train_args]
    project_env = {**env, "PYTHONPATH": str(project)}
    train_seconds = _run(command, project, project_env, f"{combo.name}: train")
    metrics = json.loads((out / "metrics.json").read_text())
    with (out / "history.csv").open(newline="") as file:
        history = [
            {key: _number(value) for key, value in row.items()}
            for row in csv.DictReader(file)
        ]
    run_config = out / "config.json"
    return {
        **asdict(combo),
        "kgen_args": list(combo.kgen_args),
        "train_args": [
            a.replace(str(work), "$WORK") for a in train_args
        ],  # for the record
        "metrics": metrics,
        "history": history,
        # What the run resolved (for diagnosing a difference; not compared).
        "run_config": (
            json.loads(run_config.read_text().replace(str(work), "$WORK"))
            if run_config.is_file()
            else None
        ),
        "generate_seconds": round(generate_seconds, 1),
        "train_seconds": round(train_seconds, 1),
    }


def _describe(kgen_root: Path) -> dict:
    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=kgen_root, capture_output=True, text=True
        )
        return result.stdout.strip()

    versions = subprocess.run(
        [
            PYTHON,
            "-c",
            "import sys, numpy, tensorflow as tf, keras; "
            "print(sys.version.split()[0], tf.__version__, keras.__version__, "
            "numpy.__version__)",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout.split()
    return {
        "kgen_root": str(kgen_root),
        "kgen_commit": git("rev-parse", "HEAD"),
        "kgen_dirty": bool(
            git("status", "--porcelain", "--", "generator", "templates")
        ),
        "python": versions[0] if versions else None,
        "tensorflow": versions[1] if len(versions) > 1 else None,
        "keras": versions[2] if len(versions) > 2 else None,
        "numpy": versions[3] if len(versions) > 3 else None,
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "epochs": EPOCHS,
        "steps_per_epoch": STEPS_PER_EPOCH,
        "batch_size": BATCH_SIZE,
        "data_seed": DATA_SEED,
    }


def record(kgen_root: Path, out: Path, only: set[str] | None, keep: Path | None) -> int:
    combos = [c for c in COMBOS if only is None or c.name in only]
    if not combos:
        sys.exit(
            f"--only matches nothing; combinations: {', '.join(c.name for c in COMBOS)}"
        )
    report = {**_describe(kgen_root), "combinations": {}}
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kgen-fixed-seed-"))
    failed = 0
    try:
        for combo in combos:
            try:
                row = run_combo(combo, kgen_root.resolve(), work, work / "kgen-home")
            except RuntimeError as error:
                print(error, file=sys.stderr, flush=True)
                report["combinations"][combo.name] = {
                    **asdict(combo),
                    "error": str(error),
                }
                failed += 1
            else:
                report["combinations"][combo.name] = row
                shown = ", ".join(f"{k} {v:.6g}" for k, v in row["metrics"].items())
                print(
                    f"{combo.name}: {shown} ({row['generate_seconds']} s + "
                    f"{row['train_seconds']} s)",
                    flush=True,
                )
            out.write_text(json.dumps(report, indent=2) + "\n")  # after each one
    finally:
        if keep is not None:
            shutil.copytree(work, keep, dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out}")
    return 1 if failed else 0


# ------------------------------------------------------------- compare ----


def _values(row: dict) -> dict[str, float | str]:
    """Every compared value: final metrics, then each history cell."""
    values: dict[str, float | str] = dict(row.get("metrics", {}))
    for epoch, entry in enumerate(row.get("history", [])):
        for key, value in entry.items():
            values[f"history[{epoch}].{key}"] = value
    return values


def _status(a: float | str | None, b: float | str | None, rtol: float, atol: float):
    """(status, relative difference): identical, close (within tolerance), DIFFERS,
    REMOVED (only before) or ADDED (only after)."""
    if a is None or b is None:
        return ("REMOVED" if b is None else "ADDED"), None
    if a == b:
        return "identical", 0.0
    if isinstance(a, str) or isinstance(b, str):
        return "DIFFERS", None
    if math.isnan(a) or math.isnan(b):
        return ("identical" if math.isnan(a) and math.isnan(b) else "DIFFERS"), None
    gap, scale = abs(a - b), max(abs(a), abs(b))
    return ("close" if gap <= atol + rtol * scale else "DIFFERS"), gap / scale


def compare(before_path: Path, after_path: Path, rtol: float, atol: float) -> int:
    before = json.loads(before_path.read_text())["combinations"]
    after = json.loads(after_path.read_text())["combinations"]
    lines = [
        f"{'combination':<32} {'metric':<30} {'before':>12} {'after':>12} "
        f"{'rel diff':>9}  status"
    ]
    counts = {"identical": 0, "close": 0, "bad": 0}
    for name, old in before.items():
        new = after.get(name)
        if "error" in old:
            lines.append(f"{name:<32} (no baseline: it failed before)")
            continue
        if new is None or "error" in new:
            what = "MISSING" if new is None else "FAILED: " + _first_line(new["error"])
            lines.append(f"{name:<32} {what}")
            counts["bad"] += 1
            continue
        old_values, new_values = _values(old), _values(new)
        history_identical = True
        for key in sorted(set(old_values) | set(new_values), key=_order):
            a, b = old_values.get(key), new_values.get(key)
            status, rel = _status(a, b, rtol, atol)
            counts[status if status in counts else "bad"] += 1
            in_history = key.startswith("history")
            if in_history and status == "identical":
                continue  # shown: final metrics, and history cells that are not identical
            history_identical &= not in_history
            rel_text = "" if rel is None else f"{rel:.1e}"
            lines.append(
                f"{name:<32} {key:<30} {_fmt(a):>12} {_fmt(b):>12} {rel_text:>9}  {status}"
            )
        if history_identical:
            rows = len(old.get("history", []))
            label = f"history.csv ({rows} epochs)"
            lines.append(f"{name:<32} {label:<30} {'':>35}  identical")
    for name in after:
        if name not in before:
            lines.append(f"{name:<32} (new combination, no baseline)")
    print("\n".join(lines))
    print(
        f"\n{len(before)} combinations; tolerance rtol {rtol:g}, atol {atol:g}: "
        f"{counts['identical']} values bit-identical, {counts['close']} close "
        f"(within tolerance, not bit-identical), {counts['bad']} differ or are missing"
    )
    if counts["bad"]:
        print("FAIL: the generated projects compute something else")
    elif counts["close"]:
        print("PASS within tolerance (some values changed at float-rounding level)")
    else:
        print("PASS: every value is bit-identical")
    return 1 if counts["bad"] else 0


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "(no message)"


def _order(key: str) -> tuple[int, str]:
    return (key.startswith("history"), key)


def _fmt(value: float | str | None) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else f"{value:.8g}"


def main() -> int:
    global PYTHON
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kgen-root", type=Path, help="kgen checkout to generate with")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    parser.add_argument("--only", help="comma-separated combination names")
    parser.add_argument("--keep", type=Path, help="copy the projects and runs here")
    parser.add_argument(
        "--python", help=f"interpreter for kgen and the projects [default: {PYTHON}]"
    )
    parser.add_argument(
        "--compare", nargs=2, type=Path, metavar=("BEFORE.json", "AFTER.json")
    )
    parser.add_argument("--rtol", type=float, default=RTOL)
    parser.add_argument("--atol", type=float, default=ATOL)
    args = parser.parse_args()
    if args.compare:
        return compare(*args.compare, args.rtol, args.atol)
    if not (args.kgen_root and args.out):
        parser.error("give --kgen-root and --out, or --compare BEFORE AFTER")
    if args.python:
        PYTHON = args.python
    only = set(args.only.split(",")) if args.only else None
    return record(args.kgen_root, args.out, only, args.keep)


if __name__ == "__main__":
    sys.exit(main())
