"""Slow: crash-safe training. SIGKILL mid-run then the same command resumes and ends with
the weights of an uninterrupted run; deterministic runs repeat exactly; NaN stops cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_python, train

pytestmark = pytest.mark.slow

# Long enough epochs to kill mid-epoch; deterministic ops so runs can be compared exactly.
RUN_CONFIG = {
    "train": {"epochs": 4, "steps_per_epoch": 60, "deterministic": True},
    "data": {"batch_size": 32},
}
WEIGHT_ATOL = 1e-6


def train_command(project: Path, out: Path, config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "proj",
        "train",
        "--config",
        str(config),
        "--output-dir",
        str(out),
    ]


def final_weights(out: Path) -> list[np.ndarray]:
    code = (
        "import sys, numpy as np, keras\n"
        "m = keras.models.load_model(sys.argv[1], compile=False)\n"
        "np.savez(sys.argv[2], *m.get_weights())\n"
    )
    target = out / "weights.npz"
    result = run_python("-c", code, str(out / "model.keras"), str(target), cwd=out)
    assert result.returncode == 0, result.stderr[-2000:]
    with np.load(target) as weights:
        return [weights[key] for key in weights.files]


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(RUN_CONFIG))
    return path


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_sigkill_then_resume_equals_uninterrupted(
    project_factory, tmp_path, config_file, loop
):
    project = project_factory("proj", loop=loop)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    straight = tmp_path / "straight"
    train(project, straight, "--config", str(config_file))

    resumed = tmp_path / "resumed"
    process = subprocess.Popen(
        train_command(project, resumed, config_file),
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (resumed / "checkpoints" / "ckpt-1.index").exists():
        assert process.poll() is None, "training ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # during epoch 2 of 4
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (resumed / "metrics.json").exists()

    again = train(project, resumed, "--config", str(config_file))
    assert "Epoch 1/4" not in again.stdout and "Epoch 2/4" in again.stdout  # resumed
    history = (resumed / "history.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1", "2", "3"]

    for a, b in zip(final_weights(straight), final_weights(resumed), strict=True):
        np.testing.assert_allclose(a, b, atol=WEIGHT_ATOL, rtol=0)
    assert json.loads((resumed / "metrics.json").read_text()) == pytest.approx(
        json.loads((straight / "metrics.json").read_text()), abs=1e-6
    )


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_deterministic_runs_give_identical_weights(project_factory, tmp_path, loop):
    project = project_factory("proj", loop=loop)
    config = tmp_path / "det.json"
    config.write_text(
        json.dumps(
            {"train": {"epochs": 2, "steps_per_epoch": 10, "deterministic": True}}
        )
    )
    weights = []
    for name in ("first", "second"):
        out = tmp_path / name
        train(project, out, "--config", str(config))
        weights.append(final_weights(out))
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
    project_factory, tmp_path, loop
):
    project = project_factory("proj", loop=loop)
    out = tmp_path / "run"
    train(project, out, "--epochs", "1")
    model_bytes = (out / "model.keras").read_bytes()

    diverge = tmp_path / "diverge.json"
    diverge.write_text(json.dumps({"train": {"epochs": 3, "learning_rate": 1e12}}))
    result = run_python(
        "-m",
        "proj",
        "train",
        "--config",
        str(diverge),
        "--output-dir",
        str(out),
        cwd=project,
    )
    assert result.returncode == 3
    error = [
        line for line in result.stderr.splitlines() if line.startswith("proj: error:")
    ]
    assert len(error) == 1 and "the loss became" in error[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    checkpoints = (out / "checkpoints" / "checkpoint").read_text()
    assert 'model_checkpoint_path: "ckpt-1"' in checkpoints  # the last good one
    assert (out / "model.keras").read_bytes() == model_bytes  # not overwritten


def test_resuming_from_another_architecture_is_refused(project_factory, tmp_path):
    cnn = project_factory("proj", loop="fit")
    out = tmp_path / "run"
    assert (
        run_python(
            "-m", "proj", "train", "--epochs", "1", "--output-dir", str(out), cwd=cnn
        ).returncode
        == 0
    )
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    mlp = project_factory("other", arch="mlp")
    result = run_python("-m", "other", "train", "--output-dir", str(out), cwd=mlp)
    assert result.returncode == 2
    assert (
        "cannot resume from" in result.stderr and "holds another model" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
