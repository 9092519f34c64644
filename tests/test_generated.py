"""Slow: generated projects run their own test suites and really train (offline)."""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import learning
import numpy as np
import pytest

from conftest import generate, run_commands, run_python, train
from generator import registry

pytestmark = pytest.mark.slow

TRAINING_OPTIONS = dict(
    randaugment=True,
    class_weights=True,
    lr_schedule="plateau",
    ema=True,
    keep_best=True,
)
# Each suite is one project's whole generated test suite (train, resume, evaluate,
# predict, every export against the model, health, lr-find, the options' own tests).
# Together they cover every (task, loop) pair, every data source in both loops
# (synthetic: fit), each precision, the mirrored strategy, every optimizer and every
# training option; options share suites where their code paths meet (CI time:
# tests/README.md).
SUITES = [
    dict(arch="simple_cnn", loop="fit", data="sample"),  # the default project
    # Every training option at once, in each loop (each is also rendered alone).
    dict(
        arch="simple_cnn",
        loop="custom",
        data="sample",
        optimizer="sgd",
        augment=True,
        mix="mixup",
        **TRAINING_OPTIONS,
        tune=True,
        tracking="mlflow",
    ),
    dict(
        arch="simple_cnn",
        loop="fit",
        data="folder",
        task="binary",
        image_size=32,
        mix="cutmix",
        **TRAINING_OPTIONS,
    ),
    dict(
        arch="simple_cnn",
        loop="custom",
        data="tfds",
        tfds_name="cifar10",
        channels=3,
        precision="mixed_float16",
    ),
    dict(arch="simple_cnn", loop="fit", data="synthetic", precision="mixed_bfloat16"),
    dict(
        arch="simple_cnn",
        loop="fit",
        data="npz",
        augment=True,
        label_smoothing=0.1,
        strategy="mirrored",
        ema=True,
    ),
    dict(
        arch="mlp",
        loop="fit",
        data="sample",
        task="multilabel",
        optimizer="rmsprop",
        jit_compile=True,
    ),
    dict(arch="mlp", loop="custom", data="npz", task="binary", lr_schedule="constant"),
    # Pretrained start (offline: the suite's conftest stands a fresh backbone's weights
    # in for ImageNet's), two-phase fine-tuning in the custom loop. MobileNet (v1): the
    # same template code as MobileNetV3Small's suite at about half its time (141 s
    # against 271 s in CI).
    dict(
        arch="mobilenet",
        loop="custom",
        data="npz",
        task="multilabel",
        weights="imagenet",
        ema=True,
        image_size=32,  # npz's default is the model's 224: 532 s of CI, not 32 px's
    ),
    dict(arch="simple_cnn", loop="fit", data="tfds", task="regression", keep_best=True),
    dict(arch="mlp", loop="custom", data="folder", task="regression", loss="huber"),
    dict(arch="simple_cnn", loop="fit", data="tfrecord", task="binary"),
    # Label smoothing, the best epoch kept and EMA in a multilabel custom loop (a suite
    # of their own on tfds before: tfds's multilabel data trains in the loss matrix).
    dict(
        arch="mlp",
        loop="custom",
        data="tfrecord",
        task="multilabel",
        label_smoothing=0.1,
        keep_best=True,
        ema=True,
    ),
]


# Generated tests whose code no option of the pretrained-start suite reaches: runs and
# resume, the settings, the benchmark command, the health report and lr-find (none of
# their modules names the weights option or the architecture). The 12 other suites run
# them; in that suite each rebuilt and traced the backbone (MobileNetV3Small: 120 s
# of CI in all). And the batch-learning test: with the head phase's frozen backbone
# standing in random weights for ImageNet's, 60 steps are too few to fit the batch
# (it failed twice in CI on MobileNet); test_learning's pretrained start, which
# fine-tunes from a trained backbone's weights file and must beat training from
# scratch by 0.10, is the guard that a pretrained start learns.
NOT_WITH_WEIGHTS = [
    "tests/test_runs.py::test_each_train_is_a_new_run_and_resume_continues_it",
    "tests/test_train.py::test_benchmark_reports_pipeline_and_step_throughput",
    "tests/test_health.py::test_a_run_ends_with_a_health_report_and_lr_find_leaves_it_alone",
    "tests/test_train.py::test_model_learns_a_batch_in_inference_mode_too",
]


@pytest.mark.parametrize(
    "options", SUITES, ids=["-".join(str(v) for v in o.values()) for o in SUITES]
)
def test_generated_project_passes_its_own_tests(project_factory, options):
    project = project_factory("proj", **options)
    deselected = NOT_WITH_WEIGHTS if "weights" in options else []
    result = run_python(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *(f"--deselect={test}" for test in deselected),
        cwd=project,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # pytest's closing line: every test passed, none was skipped, and the deselected
    # tests exist (pytest counts only those it found).
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary) and "skipped" not in summary, summary
    assert (f"{len(deselected)} deselected" in summary) == bool(deselected), summary
    # Avoidable warnings are fixed; TensorFlow's own are filtered by message.
    assert "warnings summary" not in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize("loop", ["fit", "custom"])
def test_default_project_learns_the_sample_digits(project_factory, loop):
    """The default project reaches the learning benchmark's simple_cnn target (0.985) in
    its default epochs, with either loop."""
    project = project_factory("my-digits", loop=loop)
    result = run_python("-m", "my_digits", "train", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((project / "runs" / "latest" / "metrics.json").read_text())
    assert metrics["val_accuracy"] >= learning.SIMPLE_CNN_FLOOR, metrics
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
    assert len(history) == 1 + registry.RECIPES["simple_cnn"].epochs  # header + epochs
    # The learning benchmark's other floors (test_learning leaves simple_cnn to this).
    last = dict(zip(history[0].split(","), history[-1].split(","), strict=True))
    assert float(last["accuracy"]) - metrics["val_accuracy"] <= learning.MAX_GAP, last
    modes = learning.modes(project / "runs" / "latest")
    assert modes["inference"] - modes["training"] >= -learning.MAX_MODE_GAP, modes


@pytest.mark.parametrize(
    "task, loop, metric, bound",
    [
        ("binary", "custom", "val_accuracy", 0.90),
        ("multilabel", "fit", "val_binary_accuracy", 0.90),
        ("multilabel", "custom", "val_auc", 0.95),
        ("regression", "fit", "val_mae", -1.8),  # predicting the mean digit: MAE 2.5
    ],
)
def test_every_task_learns_the_bundled_sample(
    project_factory, task, loop, metric, bound
):
    """The default epochs on the sample digits; a negative bound is an upper bound."""
    project = project_factory("proj", task=task, loop=loop)
    result = run_python("-m", "proj", "train", cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((project / "runs" / "latest" / "metrics.json").read_text())
    if bound >= 0:
        assert metrics[metric] >= bound, metrics
    else:
        assert metrics[metric] <= -bound, metrics


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


def _write_source_data(data: str, root: Path, task: str, outputs: int) -> None:
    """Small learnable data for the npz and folder sources, under root/data: one pattern
    per class; or, for multilabel and regression, patterns weighted by the labels/targets.
    """
    rng = np.random.default_rng(0)
    if task in ("multiclass", "binary"):
        prototypes = rng.uniform(0, 255, size=(outputs, 12, 12))
        labels = np.arange(200) % outputs
        images = prototypes[labels] + rng.normal(0, 25, (200, 12, 12))
    else:
        labels = (
            rng.integers(0, 2, size=(200, outputs))
            if task == "multilabel"
            else rng.uniform(0, 1, size=(200, outputs)).round(4)
        )
        patterns = rng.normal(0, 60, size=(outputs, 12, 12))
        images = (
            128
            + np.tensordot(labels, patterns, axes=1)
            + rng.normal(0, 20, (200, 12, 12))
        )
    images = np.clip(images, 0, 255).astype(np.uint8)
    (root / "data").mkdir()
    if data == "npz":
        np.savez(root / "data" / "data.npz", x=images, y=labels)
    elif data == "folder":
        import zlib

        rows = ["filename," + ",".join(f"column_{index}" for index in range(outputs))]
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            if task in ("multiclass", "binary"):
                name = f"class_{label}/{index}.png"
            else:
                name = f"{index}.png"
                rows.append(",".join([name, *map(str, label)]))
            (root / "data" / name).parent.mkdir(exist_ok=True)
            (root / "data" / name).write_bytes(_png(image, zlib))
        if task in ("multilabel", "regression"):
            (root / "data" / "labels.csv").write_text("\n".join(rows) + "\n")


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


# Every task with every source, the loops in turn: each (task, loop) and (source, loop)
# pair trains here (tfrecord in the suites and test_data_scale). The generated suites'
# own "learns a batch" test trains their (task, loop, source) through the same pipeline.
SOURCES = [
    (("fit", "custom")[index % 2], task, data)
    for index, (task, data) in enumerate(
        itertools.product(
            ("multiclass", "binary", "multilabel", "regression"),
            ("sample", "tfds", "npz", "folder", "synthetic"),
        )
    )
]
# Classes, labels or targets per task; tfds uses each task's default dataset.
OUTPUTS = {"multiclass": 10, "binary": 2, "multilabel": 4, "regression": 2}


def test_every_task_loop_and_source_trains_and_the_loss_decreases(tmp_path):
    """Each case's project trains 4 short epochs and its last loss is below its first;
    the failures are listed by case."""
    runs = []  # (project, the directory it trains in)
    for index, (loop, task, data) in enumerate(SOURCES):
        outputs = None if data in ("sample", "tfds") else OUTPUTS[task]  # the data's
        project = generate(
            tmp_path,
            f"proj_{index}",
            task=task,
            loop=loop,
            data=data,
            image_size=16,
            num_classes=outputs,
        )
        case = tmp_path / f"case_{index}"
        case.mkdir()
        _write_source_data(data, case, task, OUTPUTS[task])
        runs.append((project, case))
    train_briefly = [
        "train",
        "--epochs",
        "4",
        "--steps-per-epoch",
        "5",
        "--batch-size",
        "16",
        "--output-dir",
    ]
    # One process for the 20 trainings (TensorFlow's import once), under tfds's mock data.
    results = run_commands(
        [project for project, _ in runs],
        [
            (project.name, [*train_briefly, str(case / "run")], case)
            for project, case in runs
        ],
        tmp_path / "run",
        mock_tfds=True,
    )
    failures = {}
    for (_, case), combination, result in zip(runs, SOURCES, results, strict=True):
        if result.returncode != 0:
            failures[combination] = result.stderr[-2000:]
            continue
        with (case / "run" / "history.csv").open() as file:
            losses = [float(row["loss"]) for row in csv.DictReader(file)]
        if len(losses) != 4 or losses[-1] >= losses[0]:
            failures[combination] = losses
    assert not failures, failures


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
    # TensorFlow's start-up lines (oneDNN, no CUDA driver, cuInit) are not printed.
    assert result.stderr == "", result.stderr[-3000:]


# "save START OTHER": saves a freshly built MobileNet backbone's weights to START and a
# MobileNetV2's (another model's) to OTHER. "check START MODEL EXPECTED ...": compares
# each trained MODEL's backbone with START's weights, EXPECTED "same" or "tuned".
BACKBONE_CHECK = """
import sys
import keras
import numpy as np

def backbone(application):
    return application(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )

if sys.argv[1] == "save":
    backbone(keras.applications.MobileNet).save_weights(sys.argv[2])
    backbone(keras.applications.MobileNetV2).save_weights(sys.argv[3])
    sys.exit()
start = backbone(keras.applications.MobileNet)
start.load_weights(sys.argv[2])
for model, expected in zip(sys.argv[3::2], sys.argv[4::2], strict=True):
    trained = keras.models.load_model(model, compile=False).get_layer("backbone")
    # Equal but for float32 rounding: the saved model holds the weights' moving average
    # (--ema), which of a constant weight is that weight within rounding.
    equal = [
        np.allclose(a, b, rtol=1e-6, atol=0)
        for a, b in zip(trained.weights, start.weights, strict=True)
    ]
    normalization = [
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in trained.layers
        for _ in layer.weights
    ]
    if expected == "same":
        assert all(equal), f"{model}: the backbone changed in the head's phase"
    else:
        assert not all(equal), f"{model}: no backbone weight was fine-tuned"
        assert all(e for e, bn in zip(equal, normalization) if bn), "BN was trained"
"""


def test_fine_tuning_from_a_weights_file_with_model_fit(project_factory, tmp_path):
    """--weights PATH in the fit loop: the file is what the backbone starts from, frozen
    for train.head_epochs, then fine-tuned (the train function traced anew), BN never.
    Three processes: the weights files made, every command run, the models checked.
    """
    weights, other = tmp_path / "start.weights.h5", tmp_path / "other.weights.h5"
    made = run_python(
        "-c", BACKBONE_CHECK, "save", str(weights), str(other), cwd=tmp_path
    )
    assert made.returncode == 0, made.stderr[-3000:]
    project = project_factory(
        "proj",
        arch="mobilenet",
        loop="fit",
        data="sample",
        weights=str(weights),
        ema=True,  # its averages cover phase 2's variables, even in phase 1
    )
    short = ["--steps-per-epoch", "3", "--batch-size", "16", "train.head_epochs=1"]
    runs = {epochs: tmp_path / f"run-{epochs}" for epochs in (1, 2)}
    commands = [
        ("proj", ["train", "--epochs", str(epochs), *short, "--output-dir", str(out)])
        for epochs, out in runs.items()
    ]
    # A damaged file, a .keras zip without weights, or another model's file is
    # refused before the run writes anything.
    damaged = tmp_path / "damaged.weights.h5"
    damaged.write_bytes(weights.read_bytes()[:5000])
    archive = tmp_path / "notes.keras"
    with zipfile.ZipFile(archive, "w") as file:
        file.writestr("notes.txt", "not weights")
    refused = [
        (damaged, "cannot read"),
        (archive, "cannot read"),
        (other, "does not fit"),
    ]
    bad = tmp_path / "refused"
    commands += [
        ("proj", ["train", "--output-dir", str(bad), f"model.weights={path}"])
        for path, _ in refused
    ]
    results = run_commands(
        project,
        [(package, argv, project) for package, argv in commands],
        tmp_path / "cmd",
    )
    for epochs, result in zip(runs, results[: len(runs)], strict=True):
        assert result.returncode == 0, result.stderr[-3000:]
        assert "training the head on the frozen backbone" in result.stdout
        assert ("fine-tuning the whole backbone" in result.stdout) == (epochs == 2)
    for (_, message), result in zip(refused, results[len(runs) :], strict=True):
        assert result.returncode == 2, result.stderr[-3000:]
        assert message in result.stderr.splitlines()[-1], result.stderr[-3000:]
    assert not bad.exists()
    checked = run_python(
        "-c",
        BACKBONE_CHECK,
        "check",
        str(weights),
        *(str(runs[1] / "model.keras"), "same", str(runs[2] / "model.keras"), "tuned"),
        cwd=project,
    )
    assert checked.returncode == 0, checked.stderr[-3000:]
