"""Slow: data at scale. The cache policy, prepared TFRecord shards and the remembered
image check change where examples come from, never which: a folder project trained from
memory, from an on-disk cache (killed and resumed on the way) and from prepared shards
(by the folder project, and by a project generated with `--data tfrecord`) ends with the
same history, and a restart decodes no image twice.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import free_ports, run_commands, run_python, train

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
            image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
            image.save(folder / f"{index}.jpg", quality=95)


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


def test_memory_disk_cache_and_prepared_shards_train_alike(
    folder_project, project_factory, tmp_path
):
    """Every command in one process (conftest.run_commands), each as its command line
    runs it: one TensorFlow import, not nine."""
    project = folder_project
    # A project generated with --data tfrecord has the shards as its data source.
    streaming = project_factory(
        "tfr", data="tfrecord", num_classes=4, channels=3, image_size=32
    )
    memory, disk = tmp_path / "memory", tmp_path / "disk"
    from_shards, from_source = tmp_path / "from_shards", tmp_path / "from_source"
    shards = tmp_path / "shards"
    in_memory, on_disk = config(tmp_path, "memory"), config(
        tmp_path, "disk", cache="disk"
    )
    from_prepared = config(tmp_path, "prepared")

    def train_args(out: Path, settings: Path, *args: str) -> list[str]:
        return ["train", "--output-dir", str(out), "--config", str(settings), *args]

    # Both cached runs stop after one epoch and are resumed for the second (the
    # learning-rate schedule follows --epochs, so both must take the same path). The
    # cache in files in the run directory (what "auto" picks for data larger than the
    # budget) is written by the first run and read by the resumed one.
    commands = [
        ("proj", train_args(memory, in_memory, "--epochs", "1"), project),
        ("proj", train_args(memory, in_memory), project),
        ("proj", train_args(disk, on_disk, "--epochs", "1"), project),
        ("proj", train_args(disk, on_disk), project),
        (
            "proj",
            ["prepare", "--config", str(on_disk), "--output", str(shards)],
            project,
        ),
    ]
    for epochs in ("1", "2"):
        prepared = f"data.prepared={shards}"
        commands += [
            (
                "proj",
                train_args(from_shards, from_prepared, prepared, "--epochs", epochs),
                project,
            ),
            (
                "tfr",
                train_args(
                    from_source,
                    from_prepared,
                    "--epochs",
                    epochs,
                    "--data-dir",
                    str(shards),
                ),
                streaming,
            ),
        ]
    results = run_commands([project, streaming], commands, tmp_path / "commands")
    for result in results:
        assert result.returncode == 0, result.stderr[-3000:]
    assert "data cache: memory" in results[1].stdout
    assert "time to first step:" in results[1].stdout
    assert "data cache: disk" in results[2].stdout
    assert any(path.suffix == ".index" for path in (disk / "cache").iterdir())
    assert "prepared 128 train and 32 val examples" in results[4].stdout

    expected = history(tmp_path / "memory")
    assert len(expected) == 2
    for run in (disk, from_shards, from_source):
        for row, expected_row in zip(history(run), expected, strict=True):
            for key, value in expected_row.items():
                assert float(row[key]) == pytest.approx(float(value), rel=1e-5), (
                    run,
                    key,
                )


def test_random_resized_crops_of_jpegs_learn_and_reproduce(folder_project, tmp_path):
    """data.crop_area: each epoch every training JPEG is decoded within a new random box
    (decode_and_crop_jpeg). Two runs, each stopped after one epoch and resumed, end with
    the same history (the boxes follow seeds, not process state), and the model learns
    the 4 colour classes."""
    crops = str(config(tmp_path, "crops", crop_area=0.3))
    runs = [tmp_path / "first", tmp_path / "second"]
    for run in runs:
        for epochs in ("1", "2"):
            result = train(folder_project, run, "--config", crops, "--epochs", epochs)
    assert "training crops are read each epoch" in result.stdout
    first, second = (history(run) for run in runs)
    assert first == second and len(first) == 2
    assert float(first[-1]["val_accuracy"]) > 0.5, first  # chance: 0.25


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
            f"data.prepared={shards}",
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
        "def counted(paths, channels):\n"
        "    print('decoding', len(paths))\n"
        "    return original(paths, channels)\n"
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
    assert json.loads(remembered.read_text())["files"]["class_1/3.jpg"][-1] is False
    # Damaged in place with its size and modification time kept: its change time is
    # not, so it is decoded again.
    image = project / "data" / "class_1" / "4.jpg"
    times = image.stat()
    image.write_bytes(b"\0" * times.st_size)
    os.utime(image, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert decoded() == ["decoding 1"]
    assert json.loads(remembered.read_text())["files"]["class_1/4.jpg"][-1] is False
    remembered.write_bytes(b"\xff{damaged")  # then nothing is known: all are checked
    assert decoded() == ["decoding 160"]


# The training split's examples read locally and through the tf.data service.
SERVICE_EXAMPLES = """
import json, sys
from proj.config import load_config
from proj.data import build_datasets

def examples(service):
    cfg = load_config(overrides={"data.service": service}).data
    split = build_datasets(cfg).train_examples
    return sorted((image.tobytes(), int(label)) for image, label in split.as_numpy_iterator())

served = examples(sys.argv[1])
if sys.argv[2:] == ["--compare"]:
    local = examples(None)
    print(json.dumps({"count": len(local), "same": local == served}))
"""


def _serving(project: Path, arguments: list[str]) -> subprocess.Popen:
    """`python -m proj data-service ARGUMENTS` in the background, once it listens."""
    command = [sys.executable, "-m", "proj", "data-service", *arguments]
    process = subprocess.Popen(
        command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    port = int(arguments[arguments.index("--port") + 1])
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, command
            time.sleep(0.2)


def test_the_tf_data_service_serves_the_same_examples_and_trains(
    folder_project, tmp_path
):
    """A dispatcher and two workers on 127.0.0.1: every training example arrives once
    per pass, the same ones as from the local pipeline, and a run trained through the
    service learns like a local one (the service's order is not fixed, so histories
    differ a little)."""
    project = folder_project
    ports = [str(port) for port in free_ports(3)]
    servers = [_serving(project, ["--port", ports[0], "--address", "127.0.0.1"])]
    dispatcher = f"127.0.0.1:{ports[0]}"
    try:
        for port in ports[1:]:
            servers.append(
                _serving(
                    project,
                    [
                        "--port",
                        port,
                        "--dispatcher",
                        dispatcher,
                        "--address",
                        "127.0.0.1",
                    ],
                )
            )
        result = run_python(
            "-c", SERVICE_EXAMPLES, f"grpc://{dispatcher}", "--compare", cwd=project
        )
        assert result.returncode == 0, result.stderr[-3000:]
        compared = json.loads(result.stdout.strip().splitlines()[-1])
        assert compared == {"count": 128, "same": True}
        runs = {}
        # Not RUN's deterministic ops: the service's order is not fixed.
        services = {"local": {}, "served": {"service": f"grpc://{dispatcher}"}}
        for name, service in services.items():
            runs[name] = tmp_path / name
            settings = tmp_path / f"{name}.json"
            settings.write_text(json.dumps({"data": {"batch_size": 16, **service}}))
            train(project, runs[name], "--config", str(settings), "--epochs", "2")
        # The examples come from the workers: without them, reading waits for them.
        for worker in servers[1:]:
            worker.terminate()
            worker.wait(timeout=60)
        with pytest.raises(subprocess.TimeoutExpired):
            run_python(
                "-c", SERVICE_EXAMPLES, f"grpc://{dispatcher}", cwd=project, timeout=20
            )
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=60)
    local, served = (history(runs[name]) for name in ("local", "served"))
    assert len(served) == len(local) == 2
    # Learned (chance is log(4) = 1.39), as well as locally: validation accuracy on 32
    # images moves in steps of 1/32, so compare the loss.
    assert float(served[-1]["val_loss"]) < 1.0
    assert float(served[-1]["val_loss"]) < 1.5 * float(local[-1]["val_loss"])


def test_resuming_after_the_data_changed_is_refused(folder_project, tmp_path):
    """Images added to the folder change the split: resuming would train on images
    the first epochs validated on, so the run refuses; a new run uses all of them."""
    project = folder_project
    settings = config(tmp_path, "disk", cache="disk")
    run = tmp_path / "run"
    train(project, run, "--config", str(settings), "--epochs", "1")
    write_folder(tmp_path / "more", classes=4, per_class=10)
    for folder in (tmp_path / "more").iterdir():
        for image in folder.iterdir():
            image.rename(project / "data" / folder.name / f"more-{image.name}")
    result = run_python(
        "-m", "proj", "train", "--config", str(settings), "--output-dir", str(run),
        cwd=project,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the data has changed since the run in" in result.stderr
    assert "train 128 and val 32 examples then, 160 and 40 now" in result.stderr
    new = train(project, tmp_path / "new", "--config", str(settings), "--epochs", "1")
    assert "data cache: disk (train 160 + val 40 images" in new.stdout
