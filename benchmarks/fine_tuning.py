"""Does a pretrained start help? `kgen new --weights PATH`, measured offline.

The bundled digits are split by class. Digits 0-4 train a model from scratch; its
backbone's weights are saved as a weights file. Digits 5-9, with few training images
(data.validation_split 0.8: about 36 per class), then train two projects alike but for
their start: from scratch, and from that file with kgen's two-phase fine-tuning (the
head on the frozen backbone, then the backbone at a lower rate), with its defaults and
with keras-io's more cautious values. ImageNet weights
need a download, which these machines cannot make; the pretrained digits are a stand-in.

Prints a Markdown table and writes JSON.

    python benchmarks/fine_tuning.py [--arch mobilenet_v2] [--epochs N] [--json FILE]
                                     [--no-cautious]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from generator import registry
from generator.render import create_project
from generator.spec import ProjectSpec

SAMPLE = next(
    Path(__file__).resolve().parents[1].glob("templates/project/*/*/digits.npz")
)
SIZE = 32  # the sample's size for keras.applications models
# keras-io's EfficientNet example: the top 20 layers at a hundredth of the rate, after a
# long head phase (here a third of the run).
CAUTIOUS = [
    "train.fine_tune_layers=20",
    "train.fine_tune_factor=0.01",
    "train.head_epochs=5",
]

# Run inside the pretrained project: its backbone's weights as a weights file that a
# freshly built keras.applications backbone loads (the layers share their names).
EXTRACT = """
import sys
import keras
trained = keras.models.load_model(sys.argv[1], compile=False)
backbone = getattr(keras.applications, sys.argv[3])(
    include_top=False, weights=None, input_shape=(int(sys.argv[4]),) * 2 + (3,),
    pooling="avg",
)
for layer in backbone.layers:
    if layer.weights:
        layer.set_weights(trained.get_layer(layer.name).get_weights())
backbone.save_weights(sys.argv[2])
"""


def write_split(path: Path, digits: range) -> None:
    """data.npz of the sample's `digits`, relabelled 0..n-1."""
    sample = np.load(SAMPLE)
    keep = np.isin(sample["y"], list(digits))
    path.mkdir(parents=True)
    np.savez(
        path / "data.npz",
        x=sample["x"][keep],
        y=sample["y"][keep] - digits.start,
        output_names=np.array([str(d) for d in digits]),
    )


def train(project: Path, out: Path, *settings: str) -> tuple[dict, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "proj", "train", "--output-dir", str(out), *settings],
        cwd=project,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{project.name} failed:\n{result.stderr[-3000:]}")
    seconds = time.perf_counter() - start
    return json.loads((out / "metrics.json").read_text()), seconds


def project(parent: Path, name: str, arch: str, epochs: int | None, **options) -> Path:
    spec = ProjectSpec(
        project_name="proj",
        arch=arch,
        data="npz",
        num_classes=5,
        image_size=SIZE,
        epochs=epochs,
        **options,
    )
    create_project(spec.resolve(), parent / name)
    return parent / name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mobilenet_v2")
    parser.add_argument("--epochs", type=int, help="default: the family's recipe")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument(
        "--set", nargs="*", default=[], help="KEY=VALUE settings of the fine-tuned run"
    )
    parser.add_argument("--keep", type=Path, help="work here, and keep the projects")
    parser.add_argument(
        "--no-cautious",
        action="store_true",
        help="leave out the run with keras-io's cautious values",
    )
    args = parser.parse_args()
    keras_class = registry.ARCHITECTURES[args.arch].keras_class
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        parent = args.keep or Path(tmp)
        write_split(parent / "first" / "data", range(0, 5))
        write_split(parent / "second" / "data", range(5, 10))
        pre = project(parent, "pretrain", args.arch, args.epochs)
        data = f"data.data_dir={parent / 'first' / 'data'}"
        metrics, seconds = train(pre, parent / "pre-run", data)
        rows.append(("digits 0-4, from scratch", metrics, seconds))
        weights = parent / "digits-0-4.weights.h5"
        subprocess.run(
            [
                sys.executable,
                "-c",
                EXTRACT,
                str(parent / "pre-run" / "model.keras"),
                str(weights),
                keras_class,
                str(SIZE),
            ],
            cwd=pre,
            check=True,
            capture_output=True,
        )
        few = [
            f"data.data_dir={parent / 'second' / 'data'}",
            "data.validation_split=0.8",
        ]
        scratch = project(parent, "scratch", args.arch, args.epochs)
        tuned = project(parent, "tuned", args.arch, args.epochs, weights=str(weights))
        runs = [
            (scratch, "from scratch", []),
            (tuned, "from digits 0-4 (--weights PATH), defaults", args.set),
        ]
        if not args.no_cautious:
            runs.append(
                (tuned, "from digits 0-4, keras-io's cautious values", CAUTIOUS)
            )
        for target, start, settings in runs:
            out = parent / f"run-{len(rows)}"
            metrics, seconds = train(target, out, *few, *settings)
            rows.append((f"digits 5-9, 20 % for training, {start}", metrics, seconds))
    lines = [
        f"{args.arch} at {SIZE}x{SIZE}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores",
        "",
        "| run | val accuracy | val loss | wall time |",
        "|---|---|---|---|",
    ]
    for name, metrics, seconds in rows:
        lines.append(
            f"| {name} | {metrics['val_accuracy']:.3f} | {metrics['val_loss']:.3f} "
            f"| {seconds:.0f} s |"
        )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(
            json.dumps(
                [{"run": n, **m, "seconds": round(s, 1)} for n, m, s in rows], indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
