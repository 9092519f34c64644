"""Slow: tf.distribute on CPU. Mirrored over 2 logical devices matches one device; two
multi-worker processes on 127.0.0.1 train together and only the chief keeps outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import free_ports, run_python

pytestmark = pytest.mark.slow

# Trains a few steps on N logical CPU devices and saves the final weights.
DRIVER = """
import json, sys
from pathlib import Path
import numpy as np
import tensorflow as tf

devices, out = int(sys.argv[1]), Path(sys.argv[2])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)

import keras
from proj.config import load_config
from proj.distribute import make_strategy
from proj.train import train_and_evaluate

overrides = {
    "train.epochs": 2, "train.steps_per_epoch": 4, "data.batch_size": 32,
    "model.dropout": 0.0, "output_dir": str(out), **json.loads(sys.argv[3]),
}
metrics = train_and_evaluate(load_config(overrides=overrides), out)
model = keras.models.load_model(out / "model.keras", compile=False)
np.savez(out / "weights.npz", *model.get_weights())
print(json.dumps({"replicas": make_strategy().num_replicas_in_sync, **metrics}))
"""

# Absolute tolerance on every weight after 8 Adam steps: all-reduce changes only the order
# of float32 sums, so 1 and 2 replicas agree far below the size of one update (lr 1e-3).
WEIGHT_ATOL = 2e-5


def _train_on_one_and_two_devices(project: Path, tmp_path: Path, overrides: dict):
    """(summary, weights) of the same run on 1 and on 2 mirrored logical devices."""
    results = {}
    for devices in (1, 2):
        out = tmp_path / f"run{devices}"
        result = run_python(
            "-c", DRIVER, str(devices), str(out), json.dumps(overrides), cwd=project
        )
        assert result.returncode == 0, result.stderr[-3000:]
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["replicas"] == devices
        with np.load(out / "weights.npz") as weights:
            results[devices] = (summary, [weights[key] for key in weights.files])
    return results[1], results[2]


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_mirrored_two_devices_match_one(project_factory, tmp_path, loop):
    project = project_factory("proj", loop=loop, strategy="mirrored")
    (one, weights_one), (two, weights_two) = _train_on_one_and_two_devices(
        project, tmp_path, {}
    )
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
    assert two["val_accuracy"] == pytest.approx(one["val_accuracy"], abs=1e-6)
    for a, b in zip(weights_one, weights_two, strict=True):
        np.testing.assert_allclose(a, b, atol=WEIGHT_ATOL, rtol=0)


def test_sync_batchnorm_makes_two_devices_match_one(project_factory, tmp_path):
    """Synchronized BatchNormalization normalizes with the global batch's statistics, so
    2 replicas train the same weights and moving statistics as 1 device; without it each
    replica's moving statistics come from its own half of every batch."""
    project = project_factory(
        "proj", arch="mobilenet_v3_small", loop="custom", strategy="mirrored"
    )
    overrides = {"model.sync_batchnorm": True, "train.learning_rate": 1e-4}
    (_, weights_one), (_, weights_two) = _train_on_one_and_two_devices(
        project, tmp_path, overrides
    )
    for a, b in zip(weights_one, weights_two, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-3)


def _run_two_workers(arguments: list[str], cwd: Path) -> list[str]:
    """Run `python ARGUMENTS` as the two workers of a cluster on 127.0.0.1; their
    outputs, once both exited with 0."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        tf_config = {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
        }
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, *arguments],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    return [stdout for stdout, _ in outputs]


def test_multiworker_two_processes_train_and_only_the_chief_writes(
    project_factory, tmp_path
):
    project = project_factory("proj", loop="custom", strategy="multiworker")
    out = tmp_path / "run"
    # 353 validation images: the last batch of 16 holds 1, fewer than the workers.
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"data": {"validation_split": 353 / 1797}}))
    _run_two_workers(
        [
            "-m",
            "proj",
            "train",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "3",
            "--batch-size",
            "16",
            "--config",
            str(config),
            "--output-dir",
            str(out),
        ],
        project,
    )
    for name in ["model.keras", "metrics.json", "history.csv", "config.json"]:
        assert (out / name).is_file(), name
    import keras

    model = keras.models.load_model(out / "model.keras", compile=False)
    assert model.output_shape == (None, 10)
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["val_loss"])
    assert len((out / "history.csv").read_text().splitlines()) == 2  # written once
    # Both workers resume at epoch 1 (the others from a copy of the chief's run): a
    # worker that started over would run other steps, and the collectives would hang.
    resume = ["--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "16"]
    options = ["--config", str(config), "--output-dir", str(out)]
    _run_two_workers(["-m", "proj", "train", *resume, *options], project)
    assert len((out / "history.csv").read_text().splitlines()) == 3
    metrics = json.loads((out / "metrics.json").read_text())
    # The workers' validation metrics are those of the whole split: one process
    # evaluating the saved model on it agrees.
    result = run_python("-m", "proj", "evaluate", "--output-dir", str(out), cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    alone = json.loads((out / "metrics.json").read_text())
    assert alone["val_accuracy"] == pytest.approx(metrics["val_accuracy"], abs=1e-6)
    assert alone["val_loss"] == pytest.approx(metrics["val_loss"], rel=1e-5)


# One worker's share of the training stream: the pixel value (the image's id) of every
# example it trains on in two epochs, read through the loop's own distributed dataset,
# from step 0 and resumed at the second epoch.
SHARD_DRIVER = """
import json, sys
import numpy as np
from proj.config import load_config
from proj.data import build_datasets, normalize
from proj.distribute import input_pipeline, make_strategy
from proj.loop import distributed_train

strategy = make_strategy()
cfg = load_config(overrides=json.loads(sys.argv[1])).data
datasets = build_datasets(cfg, *input_pipeline(strategy))

def ids(start_step, steps):
    stream = iter(distributed_train(datasets, strategy, start_step))
    seen = []
    for _ in range(steps):
        images, _ = next(stream)
        for local in strategy.experimental_local_results(images):
            seen += np.asarray(local)[:, 0, 0, 0].tolist()
    return seen

values = np.asarray(normalize(np.arange(256, dtype=np.uint8)[:, None, None, None]))
steps = datasets.steps_per_epoch
print(json.dumps({
    "values": values[:, 0, 0, 0].tolist(),
    "epochs": ids(0, 2 * steps),
    "resumed": ids(steps, steps),
    "mid_epoch": ids(3, 2),
    "steps": steps,
    "num_train": datasets.num_train,
    "val": [float(x) for images, _ in datasets.val for x in images[:, 0, 0, 0]],
}))
"""


def test_two_workers_each_read_half_and_together_every_example_once_per_epoch(
    project_factory, tmp_path
):
    """An index split of a folder: each worker trains on its own 20 of the 40 training
    images per epoch, and together on all of them once; a stream resumed at a step
    (an epoch's start, or 3 steps into one) goes on where the uninterrupted one was."""
    project = project_factory(
        "proj", data="folder", loop="custom", strategy="multiworker"
    )
    from PIL import Image

    for index in range(50):  # image i: every pixel i, so pixels name the image
        folder = tmp_path / "data" / f"class_{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.full((8, 8, 3), index, np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")
    overrides = {
        "data.data_dir": str(tmp_path / "data"),
        "data.num_outputs": 2,
        "data.batch_size": 8,
        "data.validation_split": 0.2,
        "data.image_size": 32,
    }
    outputs = _run_two_workers(["-c", SHARD_DRIVER, json.dumps(overrides)], project)
    workers = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    value_ids = {
        round(value, 5): pixel for pixel, value in enumerate(workers[0]["values"])
    }

    def named(values: list[float]) -> list[int]:
        return [value_ids[round(value, 5)] for value in values]

    training = set(range(50)) - set(named(workers[0]["val"]))
    assert len(training) == 40
    per_epoch = 20  # 5 steps of 4 images on each worker
    for worker in workers:
        assert worker["steps"] == 5 and worker["num_train"] == per_epoch
        assert named(worker["resumed"]) == named(worker["epochs"])[per_epoch:]
        assert named(worker["mid_epoch"]) == named(worker["epochs"])[12:20]
    for epoch in range(2):
        parts = [
            named(worker["epochs"])[epoch * per_epoch : (epoch + 1) * per_epoch]
            for worker in workers
        ]
        assert all(len(set(part)) == per_epoch for part in parts)  # each image once
        assert not set(parts[0]) & set(parts[1])  # the workers' parts are disjoint
        assert set(parts[0]) | set(parts[1]) == training
