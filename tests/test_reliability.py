"""Slow: crash-safe training. SIGKILL mid-run then the same command resumes and ends with
the weights of an uninterrupted run; deterministic runs repeat exactly; NaN stops cleanly.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import (
    assert_project_refused,
    listing,
    run_commands,
    run_python,
    train,
)

pytestmark = pytest.mark.slow

# Long enough epochs to kill mid-epoch; deterministic ops so runs can be compared exactly.
RUN_CONFIG = {
    "train": {"epochs": 4, "steps_per_epoch": 60, "deterministic": True},
    "data": {"batch_size": 32},
}


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


def final_weights(*outs: Path) -> list[list[np.ndarray]]:
    """Each run's model.keras weights, read in one process."""
    code = (
        "import sys, numpy as np, keras\n"
        "for out in sys.argv[1:]:\n"
        "    m = keras.models.load_model(out + '/model.keras', compile=False)\n"
        "    np.savez(out + '/weights.npz', *m.get_weights())\n"
    )
    result = run_python("-c", code, *map(str, outs), cwd=outs[0])
    assert result.returncode == 0, result.stderr[-2000:]
    weights = []
    for out in outs:
        with np.load(out / "weights.npz") as saved:
            weights.append([saved[key] for key in saved.files])
    return weights


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(RUN_CONFIG))
    return path


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_sigkill_then_resume_equals_uninterrupted(
    project_factory, tmp_path, config_file, loop
):
    """With train.deterministic, the run killed in epoch 2 and resumed ends with the
    uninterrupted run's weights and metrics, bit for bit: the resume is exact, and two
    processes training alike compute alike (the determinism test this replaced trained
    two uninterrupted runs and asked the same)."""
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

    for a, b in zip(*final_weights(straight, resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads(
        (straight / "metrics.json").read_text()
    )


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
    project_factory, tmp_path, loop
):
    project = project_factory("proj", loop=loop)
    out = tmp_path / "run"
    train(project, out, "--epochs", "1")
    model_bytes = (out / "model.keras").read_bytes()

    # A resumed run keeps its settings: the run's own config.json gets a learning rate
    # that diverges, as if the rate had turned out too high after the first epoch.
    saved = json.loads((out / "config.json").read_text())
    saved["train"]["learning_rate"] = 1e12
    (out / "config.json").write_text(json.dumps(saved))
    result = run_python(
        "-m", "proj", "train", "--epochs", "3", "--output-dir", str(out), cwd=project
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
    del before[".lock"]  # the lock names whichever process holds the directory

    mlp = project_factory("other", arch="mlp")
    result = run_python("-m", "other", "train", "--output-dir", str(out), cwd=mlp)
    assert result.returncode == 2
    assert "cannot resume from" in result.stderr and "another model" in result.stderr
    assert "Traceback" not in result.stderr
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert {name: data for name, data in after.items() if name != ".lock"} == before


# Fault injection: each file a run writes, damaged three ways, then the next command.
DAMAGE = {
    "garbage": lambda data: b"\x00garbage\xff" * 3,
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "pipe": None,  # a named pipe in its place: reading it would block
}
# split.json's own: JSON of the wrong types, JSON nested past Python's recursion limit,
# a link to nothing.
SPLIT_DAMAGE = {
    "booleans": lambda data: b'{"train": true, "val": true}',
    "nested": lambda data: b"[" * 100_000 + b"]" * 100_000,
    "dangling link": Path("/nonexistent/split.json"),
}
RUN_FILES = {  # file -> the command that reads it next
    "checkpoints/checkpoint": "train",
    "checkpoints/ckpt-2.index": "train",
    "checkpoints/ckpt-2.data-00000-of-00001": "train",
    "history.csv": "train",
    "trace.json": "train",
    "split.json": "train",
    "config.json": "evaluate",
    "model.keras": "evaluate",
    "output_names.json": "predict",
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """A project and a 2-epoch run of it, to be copied and damaged."""
    from conftest import generate

    parent = tmp_path_factory.mktemp("faults")
    project = generate(parent, "proj")
    out = parent / "run"
    train(project, out, "--epochs", "2", "--steps-per-epoch", "3")
    (parent / "digit.png").write_bytes(grey_png(8))
    return project, out


def grey_png(side: int) -> bytes:
    """A valid side x side mid-grey 8-bit grayscale PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x80" * side for _ in range(side)))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + (chunk(b"IEND", b""))
    )


def test_a_damaged_run_file_gives_a_clear_outcome(finished_run, tmp_path):
    """Each file a run writes, damaged each way, then the command that reads it next:
    it either succeeds (resuming from an older checkpoint counts) or fails with one line
    and exit code 2; never a traceback, never a silent restart. One test, one process
    for the 39 commands (conftest.run_commands): it reports every case that failed."""
    project, finished = finished_run
    next_command = {
        "train": ["train", "--epochs", "3", "--steps-per-epoch", "3"],
        "evaluate": ["evaluate"],
        "predict": ["predict", str(finished.parent / "digit.png")],
    }
    runs = {}
    damages = [(name, damage) for name in RUN_FILES for damage in DAMAGE]
    damages += [("split.json", damage) for damage in SPLIT_DAMAGE]
    for name, damage in damages:
        out = runs[name, damage] = tmp_path / f"{name.replace('/', '-')}-{damage}"
        shutil.copytree(finished, out)
        target = out / name
        change = {**DAMAGE, **SPLIT_DAMAGE}[damage]
        if change is None:
            target.unlink()
            os.mkfifo(target)
        elif isinstance(change, Path):
            target.unlink()
            target.symlink_to(change)
        else:
            target.write_bytes(change(target.read_bytes()))
    commands = [
        ("proj", [*next_command[RUN_FILES[name]], "--output-dir", str(out)], project)
        for (name, _), out in runs.items()
    ]
    results = run_commands(project, commands, tmp_path / "run", timeout=600)
    failures = {}
    for ((name, damage), out), result in zip(runs.items(), results, strict=True):
        errors = [line for line in result.stderr.splitlines() if "proj: error:" in line]
        if "Traceback" in result.stderr:
            failures[name, damage] = result.stderr[-1500:]
        elif name == "split.json" and result.returncode != 0:
            # A record that cannot be read says nothing of the data: never a refusal.
            failures[name, damage] = "refused: " + result.stderr[-1500:]
        elif result.returncode == 0 and RUN_FILES[name] == "train":
            # Resumed, not restarted: epochs 0 and 1 are kept.
            rows = (out / "history.csv").read_text().splitlines()[1:]
            epochs = [row.split(",")[0] for row in rows]
            if "Epoch 1/3" in result.stdout or epochs != ["0", "1", "2"]:
                failures[name, damage] = f"restarted: epochs {epochs}"
            # The split's record cannot be checked against: said, not silent.
            elif (
                name == "split.json" and f"warning: '{out / name}'" not in result.stderr
            ):
                failures[name, damage] = "no warning: " + result.stderr[-1500:]
        elif result.returncode != 0 and (result.returncode != 2 or len(errors) != 1):
            failures[name, damage] = result.stderr[-1500:]
    assert not failures, failures


def test_a_second_train_on_a_busy_directory_is_refused_then_takes_over(
    project_factory, tmp_path
):
    project = project_factory("proj")
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proj",
            "train",
            "--epochs",
            "50",
            "--output-dir",
            str(out),
        ],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "ckpt-1.index").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        second = run_python(
            "-m", "proj", "train", "--output-dir", str(out), cwd=project
        )
        assert first.poll() is None  # the first run continues
    finally:
        first.send_signal(signal.SIGKILL)  # its lock dies with it
        first.wait()
    # Catalogue P94: one line, exit 2.
    assert_project_refused(
        second,
        rf"^proj: error: output directory '{re.escape(str(out))}' is in use by process "
        rf"{first.pid}; wait for it to finish or use another --output-dir$",
    )
    # The dead run's lock is taken over: the run goes on for one more epoch (a resumed
    # run keeps its settings, so only train.epochs changes).
    # The newest checkpoint by name, as the run finds it: a kill between writing
    # ckpt-N and updating TensorFlow's `checkpoint` index leaves the index at N-1.
    done = max(
        int(path.name.removeprefix("ckpt-").removesuffix(".index"))
        for path in (out / "checkpoints").glob("ckpt-*.index")
    )
    rest = ["--epochs", str(done + 1), "--output-dir", str(out)]
    again = run_python("-m", "proj", "train", *rest, cwd=project)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"from epoch {done + 1} of {done + 1}" in again.stdout


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_train_killed_at_a_random_point_resumes_and_leaves_no_scratch_files(
    project_factory, tmp_path, seed
):
    project = project_factory("proj")
    out = tmp_path / "run"
    delay = random.Random(seed).uniform(3.0, 12.0)
    victim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proj",
            "train",
            "--epochs",
            "3",
            "--output-dir",
            str(out),
        ],
        cwd=project,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    train(project, out, "--epochs", "3")
    rows = (out / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]
    leftovers = [
        p.name for p in out.rglob("*") if p.name.startswith(".") and p.name != ".lock"
    ]
    assert leftovers + [p.name for p in out.rglob("*_temp")] == []


def test_scratch_of_a_killed_writer_is_removed_by_the_next(project_factory, tmp_path):
    """A command killed outright (SIGKILL, a power cut) leaves its scratch: prepare's
    shards directory, an atomic write's temporary file. The next command that writes
    the same path removes the scratch of processes that are gone, and only that: a
    running process's scratch and the user's look-alike files are kept."""
    project = project_factory("proj")
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = os.getpid()  # this test's own process: running
    run = project / "run"
    epoch = ["--steps-per-epoch", "2", "--batch-size", "16", "--output-dir", str(run)]
    left = [project / f".shards.{dead.pid}.tmp"]
    kept = [project / f".shards.{live}.tmp", project / ".shards.notes.tmp"]
    for path in [*left, *kept]:
        (path / "part").mkdir(parents=True)
    first = [("proj", ["prepare", "--output", "shards"], project)]
    first.append(("proj", ["train", "--epochs", "1", *epoch], project))
    for result in run_commands(project, first, tmp_path / "first"):
        assert result.returncode == 0, result.stderr[-3000:]
    assert (project / "shards" / "manifest.json").is_file()
    # A train killed while it wrote metrics.json; the next train writes it again.
    left += [run / f".metrics.json.{dead.pid}.x1y_2z.tmp"]
    kept += [run / f".metrics.json.{live}.a3b4.tmp", run / ".metrics.json.mine"]
    for path in left[1:] + kept[2:]:
        path.write_text("{")
    again = run_commands(
        project, [("proj", ["train", "--epochs", "2", *epoch], project)], tmp_path / "2"
    )
    assert again[0].returncode == 0, again[0].stderr[-3000:]
    assert [path for path in left if path.exists()] == []
    assert [path for path in kept if not path.exists()] == []


def test_a_full_disk_is_one_line_and_leaves_no_temporary_model(
    project_factory, tmp_path
):
    """ENOSPC while saving the model (injected: a tmpfs needs privileges): exit code 2,
    one line naming the problem, no `.model.tmp.keras` left behind."""
    project = project_factory("proj")
    out = tmp_path / "run"
    code = (
        "import errno, sys, keras\n"
        "from proj.__main__ import main\n"
        "def full(self, *args, **kwargs):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device', str(args[0]))\n"
        "keras.Model.save = full\n"
        "sys.exit(main(['train', '--epochs', '1', '--steps-per-epoch', '2',"
        " '--output-dir', sys.argv[1]]))\n"
    )
    result = run_python("-c", code, str(out), cwd=project)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if "proj: error:" in line]
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert "Traceback" not in result.stderr
    assert not list(out.glob(".*.tmp.keras")) and not (out / "model.keras").exists()


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A real 32 MB file system (tmpfs) to fill: every writer, TensorFlow's C++ ones
    included, then meets ENOSPC. Mounting needs root, which CI has."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", disk], check=True
    )
    yield disk
    subprocess.run(["umount", "-l", disk], check=True)


def fill(disk: Path, free: int) -> None:
    """Fill `disk` but for about `free` bytes (a file `filler`)."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    with filler.open("wb", buffering=0) as file:  # nothing left to flush at close
        try:
            while True:
                file.write(b"\0" * 65536)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    os.truncate(filler, max(0, filler.stat().st_size - free))


def test_every_writing_command_on_a_full_disk_is_one_line_and_leaves_nothing(
    finished_run, tmp_path, small_disk
):
    """Each command that writes, on a full disk: exit 2, one line, no traceback, and
    nothing of its own left or changed on that disk. Then export with room for its
    first files but not the rest (the SavedModel): none of them is left, and an export
    made before is left as it was; lr-find with room for its result only: none left;
    train with room for a new run's first files, not its first checkpoint: no run
    left."""
    project, finished = finished_run
    run = small_disk / "run"
    shutil.copytree(finished, run, symlinks=True)
    digit = str(finished.parent / "digit.png")
    epoch = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16"]
    commands = {
        "train": ["train", *epoch, "--output-dir", str(small_disk / "new")],
        "evaluate": ["evaluate", "--output-dir", str(run)],
        "predict": ["predict", digit, "--output-dir", str(run)],
        "predict --output": [
            "predict",
            digit,
            "--output",
            str(small_disk / "p.csv"),
            "--output-dir",
            str(run),
        ],
        "export": ["export", "--output-dir", str(run)],
        "doctor": ["doctor", str(run)],
        "lr-find": ["lr-find", "--steps", "10", "--output-dir", str(small_disk / "lr")],
        "lr-find --apply": [
            "lr-find",
            "--steps",
            "10",
            "--output-dir",
            str(tmp_path / "lr"),
            "--apply",
            str(small_disk / "lr.json"),
        ],
        "prepare": ["prepare", "--output", str(small_disk / "shards")],
    }
    fill(small_disk, 0)
    before = listing(small_disk, skip=("filler",))
    results = run_commands(
        project,
        [("proj", argv, project) for argv in commands.values()],
        tmp_path / "full",
        timeout=600,
    )
    unclear = {}
    for name, result in zip(commands, results, strict=True):
        errors = [line for line in result.stderr.splitlines() if "proj: error:" in line]
        if result.returncode != 2 or len(errors) != 1 or "Traceback" in result.stderr:
            unclear[name] = (result.returncode, result.stderr[-1500:])
    assert unclear == {}
    assert listing(small_disk, skip=("filler",)) == before

    def refused_with_room(free: int, command: str, scratch: str) -> None:
        """`command` with about `free` bytes left: refused, nothing changed there."""
        fill(small_disk, free)
        before = listing(small_disk, skip=("filler",))
        (result,) = run_commands(
            project, [("proj", commands[command], project)], tmp_path / scratch
        )
        assert_project_refused(result, r"No space left on device")
        assert listing(small_disk, skip=("filler",)) == before

    # Room for labels.txt and model.keras, not for the SavedModel.
    refused_with_room(
        (run / "model.keras").stat().st_size + 64 * 1024, "export", "partly"
    )
    # The same over a whole export made before: it is left as it was.
    (small_disk / "filler").unlink()
    export = [("proj", commands["export"], project)]
    (result,) = run_commands(project, export, tmp_path / "whole")
    assert result.returncode == 0, result.stderr[-3000:]
    refused_with_room(250 * 1024, "export", "again")  # less than a new export needs
    # Room for lr-find's result, not for its figure.
    refused_with_room(30 * 1024, "lr-find", "sweep")
    # Room for a new run's first files, not for its first checkpoint.
    refused_with_room(64 * 1024, "train", "first-epoch")


# In the project: for every file given, whether the image check (check-data's and
# training's) accepts it, and whether each reader of training and serving decodes it:
# the whole image, a random crop (data.crop_area), the SavedModel's `encoded` input.
# Prints the disagreements as JSON.
DECODERS_AGREE = """
import json, sys
import tensorflow as tf
from proj import sources
from proj.config import load_config
from proj.images import decode, decode_random_crop
from proj.serving import decoded_batch

cfg = load_config().data
paths = sys.argv[1:]
refused = set(sources._undecodable(paths, cfg.channels))
readers = {
    "decode": lambda image: decode(image, cfg.channels),
    "crop": lambda image: decode_random_crop(
        image, cfg.channels, 0.5, tf.constant([1, 2], tf.int64)
    ),
    "encoded": lambda image: decoded_batch(image[tf.newaxis], cfg),
}
disagree = []
for path in paths:
    for name, reader in readers.items():
        try:
            reader(tf.io.read_file(path))
            decoded = True
        except tf.errors.OpError:
            decoded = False
        if decoded == (path in refused):
            disagree.append([path, name, "decodes" if decoded else "fails"])
print(json.dumps(disagree))
"""


@pytest.mark.parametrize("channels", [1, 3])
def test_every_image_format_trains_at_either_channel_count(project_factory, channels):
    """PNG, JPEG, BMP and GIF in grayscale, palette, RGB, RGBA, CMYK and 16-bit modes
    all decode to the project's channels (TensorFlow reads BMP, GIF and CMYK JPEG as RGB
    only) and train. What the image check accepts, every reader decodes, and what it
    refuses (damaged files, formats TensorFlow does not read) none does."""
    from PIL import Image

    project = project_factory("proj", data="folder", task="binary", channels=channels)
    rng = np.random.default_rng(0)
    formats = {"png": ["L", "LA", "RGB", "RGBA", "P", "I;16"]}
    formats |= {"jpeg": ["L", "RGB", "CMYK"], "bmp": ["L", "RGB", "RGBA", "P"]}
    formats |= {"gif": ["L", "RGB", "P"]}
    for label in ("a", "b"):
        folder = project / "data" / label
        folder.mkdir(parents=True)
        for fmt, modes in formats.items():
            for mode in modes:
                pixels = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
                image = Image.fromarray(pixels).convert(mode)
                name = mode.replace(";", "")
                image.save(folder / f"{name}.{fmt}", format=fmt.upper())
        Image.fromarray(pixels).save(folder / "progressive.jpeg", progressive=True)
    check = run_python("-m", "proj", "check-data", cwd=project)
    assert check.returncode == 0 and "0 unreadable" in check.stdout, check.stdout
    train(project, project / "run", "--epochs", "1", "--batch-size", "4")
    refused = project / "refused"
    refused.mkdir()
    cmyk = (project / "data" / "a" / "CMYK.jpeg").read_bytes()
    (refused / "truncated.jpeg").write_bytes(cmyk[: len(cmyk) // 2])
    Image.fromarray(pixels).save(refused / "tiff.png", format="TIFF")
    Image.fromarray(pixels).save(refused / "webp.jpg", format="WEBP")
    paths = sorted(map(str, [*(project / "data").rglob("*.*"), *refused.iterdir()]))
    result = run_python("-c", DECODERS_AGREE, *paths, cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == []
