"""Slow: data at scale. The cache policy, prepared TFRecord shards and the remembered
image check change where examples come from, never which: a folder project trained from
memory, from an on-disk cache (killed and resumed on the way) and from prepared shards
ends with the same history, and a restart decodes no image twice.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_python, train

pytestmark = pytest.mark.slow

RUN = {"train": {"epochs": 2, "deterministic": True}, "data": {"batch_size": 16}}


def write_folder(root: Path, classes: int = 4, per_class: int = 40) -> None:
    """JPEGs of several sizes with a learnable colour pattern per class."""
    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True)
        colour = rng.uniform(0, 255, size=3)
        for index in range(per_class):
            side = int(rng.integers(20, 48))
            noisy = colour + rng.normal(0, 40, size=(side, side, 3))
            image = tf.constant(np.clip(noisy, 0, 255).astype(np.uint8))
            (folder / f"{index}.jpg").write_bytes(tf.io.encode_jpeg(image).numpy())


def history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as file:
        return list(csv.DictReader(file))


def config(tmp_path: Path, name: str, **data: object) -> Path:
    path = tmp_path / f"{name}.json"
    values = {**RUN, "data": {**RUN["data"], **data}}
    path.write_text(json.dumps(values))
    return path


@pytest.fixture
def folder_project(project_factory, tmp_path):
    project = project_factory(
        "proj", data="folder", num_classes=4, channels=3, image_size=32
    )
    write_folder(project / "data")
    return project


def test_memory_disk_cache_and_prepared_shards_train_alike(folder_project, tmp_path):
    project = folder_project
    # Both cached runs stop after one epoch and are resumed for the second (the
    # learning-rate schedule follows --epochs, so both must take the same path).
    in_memory = config(tmp_path, "memory")
    train(project, tmp_path / "memory", "--config", str(in_memory), "--epochs", "1")
    memory = train(project, tmp_path / "memory", "--config", str(in_memory))
    assert "data cache: memory" in memory.stdout
    assert "time to first step:" in memory.stdout

    # The cache in files in the run directory (what "auto" picks for data larger than
    # the budget): written in the first run, read by the resumed one.
    on_disk = config(tmp_path, "disk", cache="disk")
    disk = tmp_path / "disk"
    first = train(project, disk, "--config", str(on_disk), "--epochs", "1")
    assert "data cache: disk" in first.stdout
    assert any(path.suffix == ".index" for path in (disk / "cache").iterdir())
    train(project, disk, "--config", str(on_disk))

    shards = tmp_path / "shards"
    prepared = run_python(
        "-m",
        "proj",
        "prepare",
        "--config",
        str(on_disk),
        "--output",
        str(shards),
        cwd=project,
    )
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    assert "prepared 128 train and 32 val examples" in prepared.stdout
    from_shards = tmp_path / "from_shards"
    for epochs in ("1", "2"):
        train(
            project,
            from_shards,
            "--config",
            str(config(tmp_path, "prepared")),
            "--prepared",
            str(shards),
            "--epochs",
            epochs,
        )

    expected = history(tmp_path / "memory")
    assert len(expected) == 2
    for run in (disk, from_shards):
        for row, expected_row in zip(history(run), expected, strict=True):
            for key, value in expected_row.items():
                assert float(row[key]) == pytest.approx(float(value), rel=1e-5), (
                    run,
                    key,
                )


def test_prepared_data_of_another_size_or_damaged_is_refused(folder_project, tmp_path):
    project = folder_project
    shards = tmp_path / "shards"
    result = run_python("-m", "proj", "prepare", "--output", str(shards), cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]

    def train_from_shards(*args: str) -> str:
        """stderr of a train that must be refused: exit 2, no traceback."""
        result = run_python(
            "-m",
            "proj",
            "train",
            "--prepared",
            str(shards),
            *args,
            "--output-dir",
            str(tmp_path / "run"),
            cwd=project,
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr
        return result.stderr

    bigger = tmp_path / "bigger.json"
    bigger.write_text(json.dumps({"data": {"image_size": 40}}))
    refused = train_from_shards("--config", str(bigger))
    assert "was prepared at 32x32x3, but the model takes 40x40x3" in refused

    shard = next(shards.glob("train-*.tfrecord"))
    shard.write_bytes(shard.read_bytes()[:-10])
    assert "has changed since it was prepared" in train_from_shards()
    assert not (tmp_path / "run").exists()


def test_a_restart_decodes_only_new_or_changed_images(folder_project, tmp_path):
    """The image check of a 160-image folder is remembered: the second start decodes
    nothing, and after one file changes, that file only (counted by TensorFlow's own
    decode calls, through a wrapper installed in the child process)."""
    project = folder_project
    code = (
        "import sys, tensorflow as tf\n"
        "from proj import sources\n"
        "original = sources._undecodable\n"
        "def counted(paths):\n"
        "    print('decoding', len(paths))\n"
        "    return original(paths)\n"
        "sources._undecodable = counted\n"
        "from proj.__main__ import main\n"
        "sys.exit(main(['check-data']))\n"
    )

    def decoded() -> list[str]:
        result = run_python("-c", code, cwd=project)
        return [
            line for line in result.stdout.splitlines() if line.startswith("decoding")
        ]

    assert decoded() == ["decoding 160"]
    assert decoded() == []
    (project / "data" / "class_1" / "3.jpg").write_bytes(b"damaged")
    assert decoded() == ["decoding 1"]
    remembered = project / "data" / ".image-check.json"
    assert json.loads(remembered.read_text())["files"]["class_1/3.jpg"][2] is False
    remembered.write_bytes(b"\xff{damaged")  # then nothing is known: all are checked
    assert decoded() == ["decoding 160"]
