"""End-to-end training speed through the command line: fit vs custom, float32 vs bf16.

What a user waits for, not a train step in isolation: each case is a generated project
(bundled sample, its default batch size) trained from scratch twice through
`python -m <pkg> train`, for a short and a long run; the difference of the two wall
times, divided by the extra epochs, is the steady-state time of one epoch *including*
its validation pass, checkpoint, history row and callbacks, while start-up, data
loading and tracing cancel out (images/s counts one pass over the training split per
epoch; fit's epoch may be a few steps longer, see loop.py). Also prints the validation
accuracy of the long run, so a faster precision that learns less shows up next to its
speed.

    python benchmarks/cli_speed.py [--cases simple_cnn,mobilenet_v3_small,resnet50]
        [--json build/bench/cli_speed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generator.render import create_project
from generator.spec import ProjectSpec

# arch -> (short run epochs, long run epochs, [(loop, precision), ...])
CASES = {
    "simple_cnn": (
        5,
        45,
        [
            ("fit", "float32"),
            ("custom", "float32"),
            ("fit", "mixed_bfloat16"),
            ("custom", "mixed_bfloat16"),
        ],
    ),
    "mobilenet_v3_small": (
        3,
        13,
        [("fit", "float32"), ("custom", "float32"), ("custom", "mixed_bfloat16")],
    ),
    "resnet50": (
        2,
        8,
        [("fit", "float32"), ("custom", "float32"), ("custom", "mixed_bfloat16")],
    ),
}


def train_seconds(project: Path, out: Path, epochs: int, precision: str) -> tuple:
    """Wall time of one `train` from scratch, and its final validation metrics."""
    config = out.with_suffix(".json")
    config.write_text(json.dumps({"train": {"precision": precision}}))
    command = [sys.executable, "-m", "proj", "train", "--epochs", str(epochs)]
    command += ["--config", str(config), "--output-dir", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"train failed in {project}:\n{result.stderr[-2000:]}")
    metrics = dict(re.findall(r"^(val_\w+): ([0-9.]+)$", result.stdout, re.MULTILINE))
    train_images = re.search(r"^data cache: \w+ \(train ([\d,]+) ", result.stdout, re.M)
    metrics["train_images"] = train_images.group(1).replace(",", "")
    return seconds, {name: float(value) for name, value in metrics.items()}


def measure(parent: Path, arch: str, loop: str, precision: str) -> dict:
    short, long, _ = CASES[arch]
    project = parent / f"{arch}-{loop}"
    if not project.exists():
        create_project(ProjectSpec(project_name="proj", arch=arch, loop=loop), project)
    runs = parent / "runs" / f"{arch}-{loop}-{precision}"
    runs.mkdir(parents=True)
    short_s, _ = train_seconds(project, runs / "short", short, precision)
    long_s, metrics = train_seconds(project, runs / "long", long, precision)
    history = (runs / "long" / "history.csv").read_text().splitlines()
    config = json.loads((runs / "long" / "config.json").read_text())
    steps = -(-int(metrics.pop("train_images")) // config["data"]["batch_size"])
    epoch_s = (long_s - short_s) / (long - short)
    return {
        "arch": arch,
        "loop": loop,
        "precision": precision,
        "epochs": [short, long],
        "seconds": [round(short_s, 2), round(long_s, 2)],
        "epoch_seconds": round(epoch_s, 3),
        "images_per_second": round(steps * config["data"]["batch_size"] / epoch_s),
        "steps_per_epoch": steps,
        "steps_per_execution": config["train"]["steps_per_execution"],
        "history_rows": len(history) - 1,
        **metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--json", type=Path, default=Path("build/bench/cli_speed.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kgen-cli-speed-") as tmp:
        for arch in args.cases.split(","):
            for loop, precision in CASES[arch][2]:
                rows.append(measure(Path(tmp), arch, loop, precision))
                row = rows[-1]
                print(
                    f"{arch:<20}{loop:<8}{precision:<16}"
                    f"{row['epoch_seconds']:>8.2f} s/epoch"
                    f"{row['images_per_second']:>9,} img/s"
                    f"  val_accuracy {row.get('val_accuracy', float('nan')):.4f}",
                    flush=True,
                )
    for arch in dict.fromkeys(row["arch"] for row in rows):
        base = next(r for r in rows if r["arch"] == arch and r["loop"] == "custom")
        for row in rows:
            if row["arch"] == arch and row is not base:
                ratio = base["epoch_seconds"] / row["epoch_seconds"]
                print(
                    f"{arch}: {row['loop']} {row['precision']} runs at {ratio:.2f}x "
                    f"the speed of custom {base['precision']}"
                )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
