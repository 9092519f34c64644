"""Slow: tf.distribute on CPU. Mirrored over 2 logical devices matches one device; two
multi-worker processes on 127.0.0.1 train together and only the chief keeps outputs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_python

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


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_multiworker_two_processes_train_and_only_the_chief_writes(
    project_factory, tmp_path
):
    project = project_factory("proj", loop="custom", strategy="multiworker")
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    out = tmp_path / "run"
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
        command = [
            sys.executable,
            "-m",
            "proj",
            "train",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "3",
            "--batch-size",
            "16",
            "--output-dir",
            str(out),
        ]
        processes.append(
            subprocess.Popen(
                command,
                cwd=project,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    for name in ["model.keras", "metrics.json", "history.csv", "config.json"]:
        assert (out / name).is_file(), name
    import keras

    model = keras.models.load_model(out / "model.keras", compile=False)
    assert model.output_shape == (None, 10)
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["val_loss"])
    assert len((out / "history.csv").read_text().splitlines()) == 2  # written once


def test_fit_with_multiworker_is_refused_at_generation(tmp_path):
    from typer.testing import CliRunner

    from generator import cli

    result = CliRunner().invoke(
        cli.app,
        ["new", str(tmp_path / "proj"), "--defaults", "--strategy", "multiworker"],
    )
    assert result.exit_code == 2
    assert "--strategy multiworker needs --loop custom" in result.output
    assert not Path(tmp_path / "proj").exists()
