"""Slow: generated projects run their own test suites and really train (offline)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_python, train

pytestmark = pytest.mark.slow

SUITES = [
    dict(arch="simple_cnn", loop="fit", data="sample"),
    dict(arch="simple_cnn", loop="custom", data="sample"),
    dict(arch="simple_cnn", loop="fit", data="tfds"),
    dict(
        arch="simple_cnn", loop="custom", data="tfds", tfds_name="cifar10", channels=3
    ),
    dict(arch="simple_cnn", loop="custom", data="synthetic"),
    dict(arch="mlp", loop="fit", data="synthetic"),
    dict(arch="mobilenet_v2", loop="custom", data="sample"),
    dict(arch="resnet50", loop="fit", data="tfds", image_size=32),
    dict(arch="simple_cnn", loop="custom", data="sample", precision="mixed_bfloat16"),
    dict(arch="simple_cnn", loop="fit", data="synthetic", precision="mixed_bfloat16"),
    dict(arch="simple_cnn", loop="custom", data="synthetic", precision="mixed_float16"),
    dict(arch="simple_cnn", loop="custom", data="sample", jit_compile=True),
    dict(arch="mlp", loop="fit", data="sample", jit_compile=True),
    dict(arch="simple_cnn", loop="fit", data="sample", strategy="mirrored"),
    dict(
        arch="simple_cnn",
        loop="custom",
        data="sample",
        optimizer="sgd",
        lr_schedule="cosine",
    ),
    dict(arch="simple_cnn", loop="fit", data="synthetic", optimizer="adamw"),
    dict(
        arch="mlp", loop="fit", data="sample", optimizer="rmsprop", lr_schedule="cosine"
    ),
    dict(arch="simple_cnn", loop="fit", data="folder", image_size=32),
    dict(arch="simple_cnn", loop="custom", data="sample", augment=True),
    dict(arch="simple_cnn", loop="fit", data="npz"),
    dict(arch="simple_cnn", loop="custom", data="sample", task="binary"),
    dict(arch="mobilenet_v2", loop="fit", data="folder", task="binary", image_size=32),
    dict(arch="mlp", loop="custom", data="npz", task="binary"),
    dict(arch="mlp", loop="custom", data="npz", num_classes=4),
    dict(arch="mobilenet_v3_small", loop="fit", data="synthetic", augment=True),
    dict(arch="efficientnet_b0", loop="custom", data="folder", image_size=32),
]


@pytest.mark.parametrize(
    "options", SUITES, ids=["-".join(str(v) for v in o.values()) for o in SUITES]
)
def test_generated_project_passes_its_own_tests(project_factory, options):
    project = project_factory("proj", **options)
    result = run_python("-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_default_project_learns_the_sample_digits(project_factory, loop):
    """The default project reaches >= 0.90 validation accuracy in its default epochs."""
    project = project_factory("my-digits", loop=loop)
    result = run_python("-m", "my_digits", "train", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((project / "runs" / "latest" / "metrics.json").read_text())
    assert metrics["val_accuracy"] >= 0.90, metrics
    assert f"val_accuracy: {metrics['val_accuracy']:.4f}" in result.stdout
    history = (project / "runs" / "latest" / "history.csv").read_text().splitlines()
    assert history[0].split(",") == [
        "epoch",
        "accuracy",
        "loss",
        "top5_accuracy",
        "val_accuracy",
        "val_loss",
        "val_top5_accuracy",
    ]
    assert len(history) == 1 + 15  # header + the default 15 epochs


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_early_stopping_ends_training_and_keeps_the_best_weights(
    project_factory, tmp_path, loop
):
    """With a learning rate far too high, val_loss stops improving and training stops."""
    project = project_factory("proj", loop=loop)
    config = tmp_path / "early.json"
    config.write_text(
        json.dumps(
            {
                "train": {
                    "epochs": 15,
                    "learning_rate": 0.5,
                    "early_stopping_patience": 2,
                }
            }
        )
    )
    out = tmp_path / "run"
    train(project, out, "--config", str(config))
    with (out / "history.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert 3 <= len(rows) < 15, rows
    best = min(float(row["val_loss"]) for row in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["val_loss"] == pytest.approx(best, rel=1e-3)  # best weights restored


# Runs the project's CLI in-process, under tfds mock data when the source is tfds.
TRAIN_DRIVER = """
import sys
from proj.__main__ import main
if sys.argv[1] == "tfds":
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=128, policy=tfds.testing.MockPolicy.USE_CODE):
        sys.exit(main(sys.argv[2:]))
sys.exit(main(sys.argv[2:]))
"""


def _write_source_data(data: str, root: Path, classes: int) -> None:
    """Small learnable data for the npz and folder sources, under root/data."""
    rng = np.random.default_rng(0)
    prototypes = rng.uniform(0, 255, size=(classes, 12, 12))
    labels = np.arange(200) % classes
    images = np.clip(prototypes[labels] + rng.normal(0, 25, (200, 12, 12)), 0, 255)
    images = images.astype(np.uint8)
    if data == "npz":
        (root / "data").mkdir()
        np.savez(root / "data" / "data.npz", x=images, y=labels)
    elif data == "folder":
        import zlib

        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / "data" / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index}.png").write_bytes(_png(image, zlib))


def _png(image: np.ndarray, zlib) -> bytes:
    """A grayscale PNG, written by hand so the test process needs no TensorFlow."""
    import struct

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body))
        )

    height, width = image.shape
    rows = b"".join(b"\x00" + image[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


SOURCES = [
    (task, data)
    for task in ("multiclass", "binary")
    for data in ("sample", "tfds", "npz", "folder", "synthetic")
    if not (task == "binary" and data == "tfds")
]


@pytest.mark.parametrize("task, data", SOURCES, ids=["-".join(s) for s in SOURCES])
@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_every_task_loop_and_source_trains_and_the_loss_decreases(
    project_factory, tmp_path, loop, task, data
):
    classes = 2 if task == "binary" else 10
    project = project_factory(
        "proj", task=task, loop=loop, data=data, image_size=16, num_classes=classes
    )
    _write_source_data(data, tmp_path, classes)
    out = tmp_path / "run"
    argv = [
        "train",
        "--epochs",
        "4",
        "--steps-per-epoch",
        "5",
        "--batch-size",
        "16",
        "--output-dir",
        str(out),
    ]
    result = run_python(
        "-c", TRAIN_DRIVER, data, *argv, cwd=tmp_path, package_root=project
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with (out / "history.csv").open() as file:
        losses = [float(row["loss"]) for row in csv.DictReader(file)]
    assert len(losses) == 4
    assert losses[-1] < losses[0], losses


def test_installed_console_script_trains(project_factory, tmp_path):
    """`pip install` gives a console script named after the package that trains."""
    project = project_factory("my-digits")
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(project),
        ],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    assert (site / "my_digits" / "sample_data" / "digits.npz").is_file()  # package data
    out = tmp_path / "run"
    result = subprocess.run(
        [
            str(site / "bin" / "my_digits"),
            "train",
            "--epochs",
            "1",
            "--output-dir",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site), "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val_accuracy:" in result.stdout and (out / "model.keras").is_file()
