"""Does each architecture family learn from scratch? One representative per family is
generated with its default recipe, trained on the bundled digits sample at its default
size and epochs through the project's own CLI, and scored on the validation split.

Prints a Markdown table (the README's) and writes JSON. Targets: every family >= 0.90
final validation accuracy, no final train-minus-validation gap > 0.10, simple_cnn >= 0.985,
and inference-mode accuracy on training batches at most 0.05 below training-mode accuracy
(stale normalization statistics make it far lower; dropout and stochastic depth, which
run in training mode only, can make it higher).

    python benchmarks/learning.py [--only resnet50,mlp] [--loop fit|custom]
                                  [--epochs N] [--json FILE] [--table FILE]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from generator.render import create_project
from generator.spec import ProjectSpec

# One architecture per family, cheapest member first; kgen's own models last.
REPRESENTATIVES = {
    "resnet": "resnet50",
    "resnet_v2": "resnet50_v2",
    "densenet": "densenet121",
    "efficientnet": "efficientnet_b0",
    "efficientnet_v2": "efficientnet_v2_b0",
    "convnext": "convnext_tiny",
    "mobilenet": "mobilenet",
    "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3": "mobilenet_v3_small",
    "nasnet": "nasnet_mobile",
    "inception_v3": "inception_v3",
    "inception_resnet_v2": "inception_resnet_v2",
    "xception": "xception",
    "vgg": "vgg16",
    "simple_cnn": "simple_cnn",
    "mlp": "mlp",
}
FLOOR, MAX_GAP, SIMPLE_CNN_FLOOR, MAX_MODE_GAP = 0.90, 0.10, 0.985, 0.05

# The run's own health report measures the saved model's main metric on its first
# training images in inference mode and in training mode: stale normalization statistics
# separate the two.
MODES = re.compile(r"([0-9.]+) in inference mode and ([0-9.]+) in training mode")


def train_once(
    arch: str, loop: str, epochs: int | None, parent: Path, **options: object
) -> dict:
    """Generate `arch` with its recipe (and kgen new's `options`), train it with
    `python -m proj train`, score it."""
    spec = ProjectSpec(
        project_name="proj", arch=arch, loop=loop, epochs=epochs, **options
    )
    project = parent / "-".join([arch, loop, *(f"{k}={v}" for k, v in options.items())])
    create_project(spec.resolve(), project)
    out = project / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "proj", "train", "--output-dir", str(out)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{arch} ({loop}) failed:\n{result.stderr[-3000:]}")
    with (out / "history.csv").open(newline="") as file:
        history = list(csv.DictReader(file))
    final_val = json.loads((out / "metrics.json").read_text())["val_accuracy"]
    final_train = float(history[-1]["accuracy"])
    accuracy = modes(out)
    return {
        "arch": arch,
        "loop": loop,
        "image_size": spec.resolve().image_size,
        "epochs": len(history),
        "final_val_accuracy": round(final_val, 4),
        "best_val_accuracy": round(max(float(r["val_accuracy"]) for r in history), 4),
        "train_minus_val": round(final_train - final_val, 4),
        "inference_minus_training_mode": round(
            accuracy["inference"] - accuracy["training"], 4
        ),
        "seconds": round(seconds, 1),
    }


def modes(run: Path) -> dict[str, float]:
    """The accuracies of the run's normalization check (its health.json)."""
    checks = json.loads((run / "health.json").read_text())["checks"]
    (found,) = [check["found"] for check in checks if check["name"] == "normalization"]
    match = MODES.search(found)
    if match is None:
        raise RuntimeError(f"{run}: no accuracies in its normalization check: {found}")
    return {"inference": float(match[1]), "training": float(match[2])}


def verdict(row: dict) -> str:
    floor = SIMPLE_CNN_FLOOR if row["arch"] == "simple_cnn" else FLOOR
    ok = (
        row["final_val_accuracy"] >= floor
        and row["train_minus_val"] <= MAX_GAP
        and row["inference_minus_training_mode"] >= -MAX_MODE_GAP
    )
    return "ok" if ok else "MISSED"


def table(rows: list[dict]) -> str:
    lines = [
        "| family | model (size) | epochs | final val acc | best val acc "
        "| train - val | inference - training mode | wall time | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for family, row in rows:
        lines.append(
            f"| {family} | {row['arch']} ({row['image_size']}) | {row['epochs']} "
            f"| {row['final_val_accuracy']:.3f} | {row['best_val_accuracy']:.3f} "
            f"| {row['train_minus_val']:+.3f} | {row['inference_minus_training_mode']:+.3f} "
            f"| {row['seconds']:.0f} s | {verdict(row)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated families or architectures")
    parser.add_argument("--loop", default="fit", choices=["fit", "custom"])
    parser.add_argument("--epochs", type=int, help="override every recipe's epochs")
    parser.add_argument("--json", type=Path, default=Path("learning.json"))
    parser.add_argument("--table", type=Path, help="also write the Markdown table here")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    chosen = [
        (family, arch)
        for family, arch in REPRESENTATIVES.items()
        if wanted is None or family in wanted or arch in wanted
    ]
    if not chosen:
        parser.error(f"--only matches nothing; families: {', '.join(REPRESENTATIVES)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="kgen-learning-") as tmp:
        for family, arch in chosen:
            row = train_once(arch, args.loop, args.epochs, Path(tmp))
            rows.append((family, row))
            print(f"{family}: {row}", flush=True)
            report = {
                "machine": f"{platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} cores",
                "rows": [{"family": f, **r} for f, r in rows],
            }
            args.json.write_text(json.dumps(report, indent=2) + "\n")  # after each row
    text = table(rows)
    print(text)
    if args.table:
        args.table.write_text(text + "\n")
    return 0 if all(verdict(row) == "ok" for _, row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
