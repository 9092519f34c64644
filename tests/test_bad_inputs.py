"""The bad-input catalogue (docs/bad-inputs.md): one test per entry.

Every entry must fail with its documented exit code and one clear line naming the bad
value and what is valid, with no traceback and nothing written or overwritten.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import REPO, generate, run_python
from generator import cli

# id -> (kgen new options, message pattern). The project directory is "proj".
GENERATOR = {
    "G01-unknown-arch": (
        ["--arch", "resnet"],
        r"unknown architecture 'resnet'.*valid: simple_cnn, mlp",
    ),
    "G02-misspelt-arch": (
        ["--arch", "mobilenetv2"],
        r"\(did you mean 'mobilenet_v2'\?\)",
    ),
    "G03-unknown-task": (
        ["--task", "segmentation"],
        r"unknown task 'segmentation'; valid: multiclass",
    ),
    "G04-misspelt-task": (["--task", "multiclas"], r"\(did you mean 'multiclass'\?\)"),
    "G05-misspelt-loop": (
        ["--loop", "custon"],
        r"unknown loop 'custon' \(did you mean 'custom'\?\); valid: fit, custom",
    ),
    "G06-misspelt-data": (
        ["--data", "tfsd"],
        r"unknown data source 'tfsd' \(did you mean 'tfds'\?\)",
    ),
    "G07-unknown-strategy": (
        ["--strategy", "horovod"],
        r"unknown strategy 'horovod'; valid: default, mirrored",
    ),
    "G08-unknown-precision": (
        ["--precision", "fp8"],
        r"unknown precision 'fp8'; valid: float32, mixed_float16, mixed_bfloat16",
    ),
    "G09-image-size-below-minimum": (
        ["--arch", "inception_v3", "--image-size", "32"],
        r"--image-size 32 is too small for inception_v3: the minimum is 75",
    ),
    "G10-image-size-below-nasnet-minimum": (
        ["--arch", "nasnet_mobile", "--image-size", "24"],
        r"--image-size 24 is too small for nasnet_mobile: the minimum is 32",
    ),
    "G11-image-size-too-large": (
        ["--image-size", "4096"],
        r"--image-size 4096 is too large: the maximum is 1024",
    ),
    "G12-one-channel-for-rgb-model": (
        ["--arch", "resnet50", "--channels", "1"],
        r"--channels 1 is not valid for resnet50: it needs 3",
    ),
    "G13-bad-channel-count": (
        ["--channels", "2"],
        r"--channels 2 is not valid: use 1 \(grayscale\) or 3 \(RGB\)",
    ),
    "G14-fewer-than-two-classes": (
        ["--data", "synthetic", "--num-classes", "1"],
        r"--num-classes must be at least 2",
    ),
    "G15-classes-differ-from-sample": (
        ["--num-classes", "5"],
        r"--num-classes 5 does not match the sample data, which has 10 classes",
    ),
    "G16-negative-epochs": (
        ["--epochs", "-1"],
        r"--epochs must be a positive integer, got -1",
    ),
    "G17-zero-batch-size": (
        ["--batch-size", "0"],
        r"--batch-size must be a positive integer, got 0",
    ),
    "G18-zero-learning-rate": (
        ["--learning-rate", "0"],
        r"--learning-rate must be > 0, got 0",
    ),
    "G19-bad-tfds-name": (
        ["--data", "tfds", "--tfds-name", "Not A Name"],
        r"--tfds-name 'Not A Name' is not a tfds dataset name",
    ),
    "G20-fit-with-multiworker": (
        ["--strategy", "multiworker"],
        r"--strategy multiworker needs --loop custom",
    ),
}

GENERATOR["G33-binary-with-other-class-count"] = (
    ["--task", "binary", "--data", "synthetic", "--num-classes", "3"],
    r"--num-classes 3 is not valid for binary: it is 2",
)
GENERATOR["G34-loss-not-for-task"] = (
    ["--loss", "huber"],
    r"--loss huber is not valid for multiclass: use crossentropy",
)
GENERATOR["G35-unknown-loss"] = (
    ["--task", "regression", "--loss", "msa"],
    r"unknown loss 'msa' \(did you mean 'mse'\?\); valid: crossentropy, mse, huber",
)
GENERATOR["G36-label-smoothing-for-regression"] = (
    ["--task", "regression", "--label-smoothing", "0.1"],
    r"--label-smoothing applies to classification tasks, not regression",
)
GENERATOR["G37-label-smoothing-out-of-range"] = (
    ["--label-smoothing", "1.5"],
    r"--label-smoothing must be in \[0, 1\), got 1.5",
)
GENERATOR["G38-multilabel-with-one-label"] = (
    ["--task", "multilabel", "--data", "synthetic", "--num-classes", "1"],
    r"--num-classes must be at least 2 labels for multilabel, got 1 "
    r"\(one label is --task binary\)",
)

GENERATOR["G39-tfds-name-without-tfds"] = (
    ["--data", "npz", "--tfds-name", "mnist"],
    r"--tfds-name applies to --data tfds only, not --data npz",
)

# id -> (project directory name, message pattern)
PROJECT_NAMES = {
    "G21-name-starts-with-digit": (
        "1digits",
        r"project name '1digits' is not valid: start with a letter",
    ),
    "G22-name-with-space": ("my digits", r"project name 'my digits' is not valid"),
    "G23-name-is-a-keyword": (
        "class",
        r"gives package 'class', not a valid Python name",
    ),
    "G24-name-shadows-stdlib": (
        "json",
        r"gives package 'json', which would shadow the module",
    ),
    "G25-name-shadows-tensorflow": (
        "tensorflow",
        r"gives package 'tensorflow', which would shadow",
    ),
}


def kgen(*args: str):
    return CliRunner().invoke(cli.app, list(args))


def assert_one_clear_line(output: str, pattern: str) -> None:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("kgen: error: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in output


@pytest.mark.parametrize("entry", GENERATOR)
def test_generator_option(tmp_path, entry):
    options, pattern = GENERATOR[entry]
    result = kgen("new", str(tmp_path / "proj"), "--defaults", *options)
    assert result.exit_code == 2
    assert_one_clear_line(result.output, pattern)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry", PROJECT_NAMES)
def test_generator_project_name(tmp_path, entry):
    name, pattern = PROJECT_NAMES[entry]
    result = kgen("new", str(tmp_path / name), "--defaults")
    assert result.exit_code == 2
    assert_one_clear_line(result.output, pattern)
    assert list(tmp_path.iterdir()) == []


def test_G26_destination_not_empty(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "notes.txt").write_text("mine")
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert result.exit_code == 2
    assert_one_clear_line(
        result.output, r"exists and is not empty; give a new or empty directory"
    )
    assert [p.name for p in (tmp_path / "proj").iterdir()] == ["notes.txt"]


def test_G27_destination_is_a_file(tmp_path):
    (tmp_path / "proj").write_text("x")
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert result.exit_code == 2
    assert_one_clear_line(result.output, r"is a file; give a new or empty directory")
    assert (tmp_path / "proj").read_text() == "x"


def test_G28_parent_directory_missing(tmp_path):
    result = kgen("new", str(tmp_path / "no" / "proj"), "--defaults")
    assert result.exit_code == 2
    assert_one_clear_line(
        result.output, r"parent directory .* does not exist; create it first"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def committed_project(tmp_path) -> Path:
    return generate(tmp_path, "proj")


def test_G29_update_with_uncommitted_changes(committed_project):
    (committed_project / "proj" / "model.py").write_text("# half-done\n")
    result = kgen("update", str(committed_project))
    assert result.exit_code == 2
    assert_one_clear_line(
        result.output, r"has uncommitted changes; commit or stash them"
    )
    assert (committed_project / "proj" / "model.py").read_text() == "# half-done\n"


def test_G30_update_to_unknown_version(committed_project):
    result = kgen("update", str(committed_project), "--to", "v9.9.9")
    assert result.exit_code == 2
    assert_one_clear_line(
        result.output,
        r"template version 'v9.9.9' is not in kgen's store .*available: v",
    )


def test_G31_update_outside_a_project(tmp_path):
    result = kgen("update", str(tmp_path))
    assert result.exit_code == 2
    assert_one_clear_line(
        result.output, r"is not a kgen project: no .copier-answers.yml"
    )


def test_G32_update_with_invalid_answer_change(committed_project):
    result = kgen("update", str(committed_project), "--arch", "resnet5O")
    assert result.exit_code == 2
    assert_one_clear_line(
        result.output, r"unknown architecture 'resnet5O' \(did you mean 'resnet50'\?\)"
    )
    assert (
        subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=committed_project,
            capture_output=True,
            text=True,
        ).stdout
        == ""
    )


# Generated project entries: id -> (train/evaluate arguments, files to create, pattern).
# "{tmp}" is replaced by a scratch directory; config files are written from the dicts.
PROJECT = {
    "P01-config-unknown-key": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"train": {"epoch": 3}}},
        r"unknown config key 'train.epoch' in .*; valid: epochs, steps_per_epoch",
    ),
    "P02-config-unknown-section": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"optimizer": {}}},
        r"unknown config key 'optimizer' in .*; valid: data, model, train, output_dir",
    ),
    "P03-config-wrong-type": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"train": {"epochs": "ten"}}},
        r"train.epochs in .* must be int, got 'ten'",
    ),
    "P04-config-section-not-an-object": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": 3}},
        r"data in .* must be an object, got 3",
    ),
    "P05-config-not-json": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": "{not json"},
        r"cannot read config file .*c.json",
    ),
    "P06-config-file-missing": (
        ["train", "--config", "{tmp}/missing.json"],
        {},
        r"cannot read config file .*missing.json",
    ),
    "P07-negative-epochs": (
        ["train", "--epochs", "-1"],
        {},
        r"train.epochs = -1 is not valid: must be >= 1",
    ),
    "P08-zero-batch-size": (
        ["train", "--batch-size", "0"],
        {},
        r"data.batch_size = 0 is not valid: must be >= 1",
    ),
    "P09-zero-steps-per-epoch": (
        ["train", "--steps-per-epoch", "0"],
        {},
        r"train.steps_per_epoch = 0 is not valid: must be null or >= 1",
    ),
    "P10-unknown-precision": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"train": {"precision": "fp8"}}},
        r"train.precision = 'fp8' is not valid: must be one of float32, mixed_float16",
    ),
    "P11-dropout-out-of-range": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"model": {"dropout": 1.5}}},
        r"model.dropout = 1.5 is not valid: must be in \[0, 1\)",
    ),
    "P12-validation-split-zero": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"validation_split": 0}}},
        r"data.validation_split = 0.0 is not valid: must be between 0 and 1",
    ),
    "P13-one-class": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"num_outputs": 1}}},
        r"data.num_outputs = 1 is not valid: must be >= 2",
    ),
    "P14-output-dir-is-a-file": (
        ["train", "--output-dir", "{tmp}/afile"],
        {"afile": "x"},
        r"output directory .*afile' is a file",
    ),
    "P15-missing-data-dir": (
        ["train", "--data-dir", "{tmp}/nowhere", "--output-dir", "{tmp}/out"],
        {},
        r"data file .*nowhere/digits.npz' does not exist",
    ),
    "P16-classes-differ-from-data": (
        ["train", "--config", "{tmp}/c.json", "--output-dir", "{tmp}/out"],
        {"c.json": {"data": {"num_outputs": 5}}},
        r"the data has 10 classes but data.num_outputs is 5; set it to 10",
    ),
    "P17-evaluate-without-a-model": (
        ["evaluate", "--output-dir", "{tmp}/empty"],
        {},
        r"no trained model at .*model.keras'; run train first",
    ),
}

# A 1x1 RGB PNG: a valid image for folder-source entries.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)

# Folder-source project entries: id -> ({relative path: bytes or None for a dir}, pattern).
FOLDER = {
    "P20-data-directory-missing": (
        {},
        r"data directory 'data' does not exist; it should hold one folder of images per class",
    ),
    "P21-single-class-folder": (
        {"data/cats/a.png": PNG},
        r"data directory 'data' has 1 class folder\(s\); at least 2 are needed",
    ),
    "P22-empty-class-folder": (
        {"data/cats/a.png": PNG, "data/dogs": None},
        r"class folder 'data/dogs' has no images \(.bmp, .gif, .jpeg, .jpg, .png\)",
    ),
    "P23-corrupt-image": (
        {"data/cats/a.png": PNG, "data/dogs/b.png": b"not an image"},
        r"1 unreadable image\(s\) in 'data': data/dogs/b.png \(run check-data",
    ),
}

# npz-source project entries: id -> (arrays to save in data/data.npz, pattern).
NPZ = {
    "P24-npz-missing-labels": (
        {"x": np.zeros((4, 8, 8), np.uint8)},
        r"'data/data.npz' lacks array\(s\) y; it needs x \(images\) and y \(class indices\)",
    ),
    "P25-npz-lengths-differ": (
        {"x": np.zeros((4, 8, 8), np.uint8), "y": np.zeros(3, np.int64)},
        r"y in 'data/data.npz' has shape \(3,\); expected 4 rows, one per image",
    ),
    "P26-npz-wrong-rank": (
        {"x": np.zeros((4, 64), np.uint8), "y": np.zeros(4, np.int64)},
        r"x in 'data/data.npz' has shape \(4, 64\); expected \[N, H, W\] or \[N, H, W, C\]",
    ),
    "P27-npz-label-outside-classes": (
        {"x": np.zeros((4, 8, 8), np.uint8), "y": np.array([0, 1, 2, 7])},
        r"y in 'data/data.npz' holds values from 0 to 7; "
        r"class indices must be integers in \[0, 2\]",
    ),
}

# Entries for the other tasks' data: id -> (kgen options, files under the working
# directory: bytes, text, or arrays for an .npz; message pattern).
REGRESSION_FOLDER = dict(task="regression", data="folder")
TASK_DATA = {
    "P28-labels-csv-missing": (
        REGRESSION_FOLDER,
        {"data/a.png": PNG},
        r"'data/labels.csv' does not exist; it should list filename,<target names...>",
    ),
    "P29-labels-csv-names-a-missing-image": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "filename,size\nb.png,1.5\n", "data/a.png": PNG},
        r"'data/labels.csv' line 2: no image 'b.png'",
    ),
    "P30-labels-csv-value-not-a-number": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "filename,size\na.png,big\n", "data/a.png": PNG},
        r"'data/labels.csv' line 2: size = 'big' is not a number",
    ),
    "P31-multilabel-value-not-0-or-1": (
        dict(task="multilabel", data="npz", num_classes=2),
        {
            "data/data.npz": {
                "x": np.zeros((4, 8, 8), np.uint8),
                "y": np.array([[0, 1], [1, 0], [2, 0], [0, 0]]),
            }
        },
        r"y in 'data/data.npz' holds values other than 0 and 1",
    ),
    "P32-binary-folder-with-three-classes": (
        dict(task="binary", data="folder"),
        {"data/a/1.png": PNG, "data/b/1.png": PNG, "data/c/1.png": PNG},
        r"the data has 3 classes \(a, b, c\); a binary task needs 2",
    ),
}

# Entries whose test needs real training; they live with the other training tests.
ELSEWHERE = {
    "P18-resume-from-another-architecture": (
        "tests/test_reliability.py::test_resuming_from_another_architecture_is_refused"
    ),
    "P19-loss-becomes-nan": (
        "tests/test_reliability.py::"
        "test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint"
    ),
}


def assert_project_refused(result: subprocess.CompletedProcess, pattern: str) -> None:
    """Exit code 2, one "proj: error:" line matching `pattern`, no traceback."""
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "proj: error:" in line]
    assert len(errors) == 1 and re.search(pattern, errors[0]), result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("bad-inputs"), "proj")


@pytest.mark.parametrize("entry", PROJECT)
def test_generated_project(project, tmp_path, entry):
    args, files, pattern = PROJECT[entry]
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (tmp_path / name).write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_python(
        "-m", "proj", *[a.replace("{tmp}", str(tmp_path)) for a in args], cwd=project
    )
    assert_project_refused(result, pattern)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert not (project / "runs").exists()


@pytest.fixture(scope="module")
def folder_project(tmp_path_factory) -> Path:
    return generate(
        tmp_path_factory.mktemp("bad-folder"), "proj", data="folder", num_classes=2
    )


@pytest.mark.parametrize("entry", FOLDER)
def test_folder_source(folder_project, tmp_path, entry):
    files, pattern = FOLDER[entry]
    for name, content in files.items():
        path = tmp_path / name
        if content is None:
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    out = tmp_path / "out"
    result = run_python(
        "-m",
        "proj",
        "train",
        "--output-dir",
        str(out),
        "--data-dir",
        "data",
        cwd=tmp_path,
        package_root=folder_project,
    )
    assert_project_refused(result, pattern)
    assert not (out / "model.keras").exists() and not (out / "config.json").exists()


@pytest.fixture(scope="module")
def npz_project(tmp_path_factory) -> Path:
    return generate(
        tmp_path_factory.mktemp("bad-npz"), "proj", data="npz", num_classes=3
    )


@pytest.mark.parametrize("entry", NPZ)
def test_npz_source(npz_project, tmp_path, entry):
    arrays, pattern = NPZ[entry]
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "data.npz", **arrays)
    out = tmp_path / "out"
    result = run_python(
        "-m",
        "proj",
        "train",
        "--output-dir",
        str(out),
        cwd=tmp_path,
        package_root=npz_project,
    )
    assert_project_refused(result, pattern)
    assert not out.exists() or not (out / "config.json").exists()


@pytest.mark.parametrize("entry", TASK_DATA)
def test_task_data(tmp_path_factory, tmp_path, entry):
    options, files, pattern = TASK_DATA[entry]
    project = generate(tmp_path_factory.mktemp("bad-task-data"), "proj", **options)
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            np.savez(path, **content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    out = tmp_path / "out"
    result = run_python(
        "-m",
        "proj",
        "train",
        "--output-dir",
        str(out),
        cwd=tmp_path,
        package_root=project,
    )
    assert_project_refused(result, pattern)
    assert not out.exists() or not (out / "config.json").exists()


def test_catalogue_document_lists_exactly_the_tested_entries():
    document = (REPO / "docs" / "bad-inputs.md").read_text()
    documented = set(
        re.findall(r"^\| `([GP]\d\d-[a-z0-9-]+)` \|", document, re.MULTILINE)
    )
    inline = {
        name.removeprefix("test_").split("_", 1)[0]
        for name in globals()
        if re.match(r"test_G\d\d_", name)
    }
    tested = set(GENERATOR) | set(PROJECT_NAMES) | set(PROJECT) | set(FOLDER) | set(NPZ)
    tested |= set(TASK_DATA)
    tested |= set(ELSEWHERE)
    tested |= {entry for entry in documented if entry.split("-", 1)[0] in inline}
    assert documented == tested
    assert len(documented) >= 30
    for test in ELSEWHERE.values():
        path, name = test.split("::")
        assert f"def {name}(" in (REPO / path).read_text()
