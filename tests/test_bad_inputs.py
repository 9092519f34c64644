"""The bad-input catalogue (docs/bad-inputs.md): one test per entry.

Every entry must fail with its documented exit code and one clear line naming the bad
value and what is valid, with no traceback and nothing written or overwritten.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import (
    REPO,
    assert_project_refused,
    free_ports,
    generate,
    listing,
    run_commands,
    run_python,
)
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
GENERATOR["G131-class-weights-for-regression"] = (
    ["--task", "regression", "--class-weights"],
    r"--class-weights applies to multiclass and binary tasks, not regression",
)
GENERATOR["G132-mix-for-regression"] = (
    ["--task", "regression", "--mix", "mixup"],
    r"--mix mixup applies to classification tasks, not regression",
)
GENERATOR["G133-weights-for-simple-cnn"] = (
    ["--weights", "imagenet"],
    r"--weights imagenet needs a keras.applications architecture; simple_cnn has no "
    r"pretrained weights \(use --weights none\)",
)
GENERATOR["G134-weights-file-missing"] = (
    ["--arch", "mobilenet", "--weights", "no/such.weights.h5"],
    r"--weights 'no/such.weights.h5' is not none, imagenet or a weights file "
    r"\(.weights.h5, .h5, .hdf5, .keras\) saved from the same mobilenet backbone",
)
GENERATOR["G135-weights-misspelt"] = (
    ["--arch", "mobilenet", "--weights", "imagnet"],
    r"--weights 'imagnet' is not none, imagenet or a weights file",
)
GENERATOR["G136-weights-with-plateau"] = (
    ["--arch", "mobilenet", "--weights", "imagenet", "--lr-schedule", "plateau"],
    r"--weights fine-tunes at a lower rate after the head's epochs, which "
    r"--lr-schedule plateau would also change: use constant or cosine",
)
GENERATOR["G137-imagenet-nasnet-at-another-size"] = (
    ["--arch", "nasnet_mobile", "--weights", "imagenet", "--image-size", "96"],
    r"--weights imagenet: nasnet_mobile's ImageNet weights take 224x224 images only "
    r"\(--image-size 224\), not 96",
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

# Every number is checked for type, finiteness and range; zero is a value, not "unset";
# an empty string is a value too. Click's own parse errors are one line like the rest.
GENERATOR.update(
    {
        "G40-learning-rate-infinite": (
            ["--learning-rate", "inf"],
            r"--learning-rate must be a finite number, got inf",
        ),
        "G41-learning-rate-nan": (
            ["--learning-rate", "nan"],
            r"--learning-rate must be a finite number, got nan",
        ),
        "G42-learning-rate-negative": (
            ["--learning-rate", "-0.1"],
            r"--learning-rate must be > 0, got -0.1",
        ),
        "G43-learning-rate-overflows-to-infinity": (
            ["--learning-rate", "1e400"],
            r"--learning-rate must be a finite number, got inf",
        ),
        "G44-learning-rate-too-large": (
            ["--learning-rate", "100"],
            r"--learning-rate 100.0 is too large: the maximum is 10.0",
        ),
        "G45-learning-rate-not-a-number": (
            ["--learning-rate", "fast"],
            r"invalid value for '--learning-rate': .*\(see .*new --help\)$",
        ),
        "G46-zero-epochs": (
            ["--epochs", "0"],
            r"--epochs must be a positive integer, got 0",
        ),
        "G47-epochs-too-large": (
            ["--epochs", "1000000"],
            r"--epochs 1000000 is too large: the maximum is 10000",
        ),
        "G48-epochs-not-an-integer": (
            ["--epochs", "2.5"],
            r"invalid value for '--epochs': .*integer",
        ),
        "G49-zero-image-size": (
            ["--image-size", "0"],
            r"--image-size 0 is too small for simple_cnn: the minimum is 10",
        ),
        "G50-negative-image-size": (
            ["--image-size", "-32"],
            r"--image-size -32 is too small for simple_cnn: the minimum is 10",
        ),
        "G51-image-size-with-a-unit": (
            ["--image-size", "32px"],
            r"invalid value for '--image-size': .*integer",
        ),
        "G52-zero-channels": (
            ["--channels", "0"],
            r"--channels 0 is not valid: use 1 \(grayscale\) or 3 \(RGB\)",
        ),
        "G53-negative-channels": (
            ["--channels", "-3"],
            r"--channels -3 is not valid: use 1 \(grayscale\) or 3 \(RGB\)",
        ),
        "G54-zero-classes": (
            ["--data", "synthetic", "--num-classes", "0"],
            r"--num-classes must be at least 2 for multiclass, got 0",
        ),
        "G55-zero-regression-targets": (
            ["--task", "regression", "--data", "synthetic", "--num-classes", "0"],
            r"--num-classes must be at least 1 target, got 0",
        ),
        "G56-too-many-classes": (
            ["--data", "synthetic", "--num-classes", "1000000"],
            r"--num-classes 1000000 is too large: the maximum is 100000",
        ),
        "G57-negative-batch-size": (
            ["--batch-size", "-8"],
            r"--batch-size must be a positive integer, got -8",
        ),
        "G58-batch-size-too-large": (
            ["--batch-size", "1000000"],
            r"--batch-size 1000000 is too large: the maximum is 65536",
        ),
        "G59-batch-size-beyond-int64": (
            ["--batch-size", "99999999999999999999999"],
            r"--batch-size 99999999999999999999999 is too large: the maximum is 65536",
        ),
        "G60-label-smoothing-nan": (
            ["--label-smoothing", "nan"],
            r"--label-smoothing must be in \[0, 1\), got nan",
        ),
        "G61-label-smoothing-negative": (
            ["--label-smoothing", "-0.1"],
            r"--label-smoothing must be in \[0, 1\), got -0.1",
        ),
        "G62-label-smoothing-infinite": (
            ["--label-smoothing", "inf"],
            r"--label-smoothing must be in \[0, 1\), got inf",
        ),
        "G63-empty-optimizer": (
            ["--optimizer", ""],
            r"unknown optimizer ''; valid: adam, adamw, sgd, rmsprop",
        ),
        "G64-empty-loss": (
            ["--loss", ""],
            r"unknown loss ''; valid: crossentropy, mse, huber",
        ),
        "G65-empty-arch": (
            ["--arch", ""],
            r"unknown architecture ''; valid: simple_cnn",
        ),
        "G66-misspelt-optimizer": (
            ["--optimizer", "adm"],
            r"unknown optimizer 'adm' \(did you mean 'adam'\?\)",
        ),
        "G67-unknown-lr-schedule": (
            ["--lr-schedule", "step"],
            r"unknown learning-rate schedule 'step'; valid: constant, cosine, plateau$",
        ),
        "G68-unknown-option": (
            ["--epoch", "3"],
            r"no such option: --epoch \(Possible options: --arch, --epochs\)",
        ),
        "G69-option-without-its-value": (
            ["--arch"],
            r"option '--arch' requires an argument",
        ),
        "G70-flag-given-a-value": (
            ["--augment=yes"],
            r"option '--augment' does not take a value",
        ),
        "G71-extra-argument": (
            ["other"],
            r"got unexpected extra argument\(s\) \(other\)",
        ),
        "G72-empty-tfds-name": (
            ["--data", "tfds", "--tfds-name", ""],
            r"--tfds-name '' is not a tfds dataset name",
        ),
        "G73-tfds-name-with-newline": (
            ["--data", "tfds", "--tfds-name", "mnist\n"],
            r"--tfds-name 'mnist\\n' is not a tfds dataset name",
        ),
        "G107-tfds-name-path-traversal": (
            ["--data", "tfds", "--tfds-name", "../../etc"],
            r"--tfds-name '../../etc' is not a tfds dataset name",
        ),
        "G108-learning-rate-negative-infinity": (
            ["--learning-rate", "-inf"],
            r"--learning-rate must be a finite number, got -inf",
        ),
        "G109-epochs-in-hex": (
            ["--epochs", "0x10"],
            r"invalid value for '--epochs': .*integer",
        ),
    }
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

# Reserved names are computed from the generated project's dependencies
# (generator/reserved_names.txt); these are the ones that broke projects.
PROJECT_NAMES.update(
    {
        f"G{number}-name-shadows-{slug}": (
            name,
            rf"gives package '{package}', which would shadow the module or distribution "
            rf"of that name \({owner}\)",
        )
        for number, slug, name, package, owner in [
            (74, "absl", "absl", "absl", "absl-py"),
            (75, "google", "google", "google", "google-auth"),
            (76, "ml-dtypes", "ml-dtypes", "ml_dtypes", "ml-dtypes"),
            (77, "h5py", "h5py", "h5py", "h5py"),
            (78, "tensorboard", "tensorboard", "tensorboard", "tensorboard"),
            (79, "matplotlib", "matplotlib", "matplotlib", "matplotlib"),
            (80, "pytest", "pytest", "pytest", "pytest"),
            (81, "a-distribution", "absl-py", "absl_py", "absl-py"),  # not a module
            (82, "numpy-in-capitals", "NumPy", "numpy", "numpy"),  # macOS: one file
        ]
    }
)
PROJECT_NAMES.update(
    {
        "G83-name-ends-with-newline": (
            "proj\n",
            r"project name 'proj\\n' is not valid: start with a letter",
        ),
        "G84-name-too-long": (
            "a" * 101,
            r"project name 'a{20}'... is 101 characters long: the maximum is 100",
        ),
        "G85-name-is-tests": (
            "tests",
            r"gives package 'tests', the name of the project's own tests package",
        ),
        "G86-name-not-ascii": ("prøject", r"project name 'prøject' is not valid"),
        "G127-name-starts-with-a-dash": ("-proj", r"project name '-proj' is not valid"),
        "G128-hidden-name": (".proj", r"project name '.proj' is not valid"),
    }
)


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


def assert_refused(result, pattern: str) -> None:
    assert result.exit_code == 2, result.output
    assert_one_clear_line(result.output, pattern)


def test_G87_destination_is_a_symlink_to_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "proj").symlink_to(tmp_path / "notes.txt")
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(result, r"destination '.*proj' is a file; give a new or empty")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "proj"]


def test_G88_destination_is_a_dangling_symlink(tmp_path):
    (tmp_path / "proj").symlink_to(tmp_path / "nowhere")
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(result, r"destination '.*proj' is a symbolic link to nothing")
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]
    assert not (tmp_path / "nowhere").exists()


def test_G89_destination_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = kgen("new", str(tmp_path / "afile" / "sub" / "proj"), "--defaults")
    assert_refused(result, r"'.*afile' is a file, so '.*afile/sub/proj' cannot be")
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]
    assert (tmp_path / "afile").read_text() == "x"


def test_G90_destination_is_the_root_directory(tmp_path):
    result = kgen("new", "/", "--defaults")
    assert_refused(result, r"destination '/' has no name to give the project")


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A directory this process cannot write in: immutable (root), or read-only."""
    directory = tmp_path / "locked"
    directory.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(directory)]).returncode:
            pytest.skip("root without chattr: no directory is unwritable")
        yield directory
        subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)


def test_G91_parent_not_writable(unwritable):
    result = kgen("new", str(unwritable / "proj"), "--defaults")
    assert_refused(result, r"parent directory '.*locked' is not writable")
    assert list(unwritable.iterdir()) == []


def test_G92_kgen_home_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "home").write_text("x")
    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "home"))
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(
        result,
        r"KGEN_HOME '.*home' is not usable \(file exists\); set KGEN_HOME to a "
        r"directory kgen can write",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_G93_kgen_home_not_writable(unwritable, monkeypatch):
    monkeypatch.setenv("KGEN_HOME", str(unwritable / "home"))
    result = kgen("new", str(unwritable.parent / "proj"), "--defaults")
    assert_refused(result, r"KGEN_HOME '.*locked/home' is not usable \(.*\)")
    assert sorted(p.name for p in unwritable.parent.iterdir()) == ["locked"]


def test_G94_kgen_home_under_a_file(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "afile" / "home"))
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(
        result, r"KGEN_HOME '.*afile/home' is not usable \(not a directory\)"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_G95_broken_template_store(tmp_path, monkeypatch):
    from generator import store
    from generator.render import template_dir

    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "home"))
    source = store.sync(template_dir(), store.store_dir())
    (source / ".git" / "HEAD").write_text("garbage\n")
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(
        result,
        r"git [a-z-]+ failed in kgen's template store '.*home/template': fatal: not a "
        r"git repository.*; if the store is damaged, move it away and kgen makes a new one",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_G96_same_destination_written_by_another_kgen_meanwhile(tmp_path, monkeypatch):
    """Two `kgen new` of one path: the second to finish refuses, the first's is kept."""
    import generator.render

    git_init = generator.render._git_init

    def other_kgen_finishes_first(root):
        git_init(root)
        (tmp_path / "proj").mkdir()
        (tmp_path / "proj" / "theirs.txt").write_text("the other kgen's project")

    monkeypatch.setattr(generator.render, "_git_init", other_kgen_finishes_first)
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(
        result,
        r"destination '.*proj' was created by another process while kgen was "
        r"writing; nothing was written",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]  # no staging left
    assert [p.name for p in (tmp_path / "proj").iterdir()] == ["theirs.txt"]


def test_G106_new_without_a_path():
    result = kgen("new", "--defaults")
    assert_refused(result, r"missing argument 'path' \(see .*new --help\)")


def test_G112_prompted_image_size_of_zero(tmp_path, monkeypatch):
    """A prompt asks again, saying why, instead of ending the session."""
    monkeypatch.setattr(cli, "_interactive", lambda defaults: True)
    # arch, task, loop, data (defaults), then image size 0, then 28
    result = CliRunner().invoke(
        cli.app, ["new", str(tmp_path / "proj")], input="\n\n\n\n0\n28\n"
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert re.search(
        r"--image-size 0 is too small for simple_cnn: the minimum is 10; try again",
        result.output,
    )
    answers = yaml.safe_load((tmp_path / "proj" / ".copier-answers.yml").read_text())
    assert answers["image_size"] == 28


def test_G113_kgen_home_is_a_dangling_symlink(tmp_path, monkeypatch):
    (tmp_path / "home").symlink_to(tmp_path / "gone")
    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "home"))
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(result, r"KGEN_HOME '.*home' is not usable \(file exists\)")
    assert [p.name for p in tmp_path.iterdir()] == ["home"]


def test_G114_update_outside_git(tmp_path):
    project = generate(tmp_path, "proj")
    shutil.rmtree(project / ".git")
    before = sorted(str(p) for p in project.rglob("*"))
    result = kgen("update", str(project))
    assert_refused(result, r"'.*proj' is not a git repository; kgen update needs one")
    assert sorted(str(p) for p in project.rglob("*")) == before


def test_G143_update_after_the_package_was_renamed(committed_project):
    """copier would apply the update to files that are no longer there and report
    success (the answers changed, the code not): refused, the project untouched."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "mv", "proj", "mypkg"], cwd=committed_project, check=True)
    subprocess.run(
        [*git, "commit", "-qm", "renamed"], cwd=committed_project, check=True
    )
    head = _git(committed_project, "rev-parse", "HEAD")
    result = kgen("update", str(committed_project), "--epochs", "3")
    assert_refused(
        result,
        r"'.*proj' has no package directory 'proj', whose files the update changes; if "
        r"you renamed it, rename it back \(git mv NEW proj\) and commit, update, then "
        r"rename it again$",
    )
    assert _git(committed_project, "rev-parse", "HEAD") == head
    assert _git(committed_project, "status", "--porcelain", "--ignored") == ""


def test_G139_update_with_an_answers_file_that_is_a_pipe(tmp_path):
    """Reading a pipe blocks: a child process, so a regression fails, not hangs."""
    project = generate(tmp_path, "proj")
    answers = project / ".copier-answers.yml"
    answers.unlink()
    os.mkfifo(answers)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(
        [*git, "rm", "-q", "--cached", answers.name], cwd=project, check=True
    )
    subprocess.run([*git, "commit", "-qm", "a pipe"], cwd=project, check=True)
    result = subprocess.run(
        [sys.executable, "-m", "generator", "update", str(project)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"kgen: error: '{answers}' is not a regular file; restore it with "
        "`git checkout -- .copier-answers.yml`"
    ]
    assert stat.S_ISFIFO(answers.lstat().st_mode)


def test_G140_git_missing(tmp_path, monkeypatch):
    """Refused before anything is written: no staging, no KGEN_HOME, no store lock."""
    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # a PATH without git
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(
        result, r"^kgen: error: git is not installed; kgen's template store needs it$"
    )
    assert list(tmp_path.iterdir()) == []


def test_G141_staging_left_by_a_killed_kgen_new(tmp_path):
    """A kgen new killed outright (SIGKILL) leaves its staging directory; the next kgen
    new of that destination removes it, beside a new directory or inside an existing
    one (which it would otherwise find not empty), with what it had moved up from it
    into that directory; and nothing else: not a running kgen's staging, another
    machine's, nor the user's own."""
    from generator import render

    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        prefix = render._staging_prefix(tmp_path / "proj")
        left = tmp_path / f"{prefix}{dead.pid}.a1b2_c3"
        kept = [
            tmp_path / f"{prefix}{live.pid}.d4e5f6",
            tmp_path / f".proj.kgen-0000ffff-{dead.pid}.g7h8i9",
            tmp_path / ".proj.mine",
        ]
        (tmp_path / "here").mkdir()  # `kgen new .` stages inside the directory
        # Killed while it moved its entries up: one moved, one not.
        halfway = tmp_path / "half"
        halfway.mkdir()
        staged = halfway / f"{render._staging_prefix(halfway)}{dead.pid}.k1"
        staged.mkdir()
        (staged / render.MOVING).write_text('["README.md", "pyproject.toml"]')
        (staged / "pyproject.toml").write_text("not moved yet")
        (halfway / "README.md").write_text("moved by the killed kgen")
        inside = (
            tmp_path
            / "here"
            / f"{render._staging_prefix(tmp_path / 'here')}{dead.pid}.j0"
        )
        for path in [left, *kept, inside]:
            (path / "pkg").mkdir(parents=True)
        for destination in ("proj", "here", "half"):
            result = kgen("new", str(tmp_path / destination), "--defaults")
            assert result.exit_code == 0, result.output
            assert (tmp_path / destination / ".copier-answers.yml").is_file()
        assert not left.exists() and not inside.exists() and not staged.exists()
        assert "moved by the killed kgen" not in (halfway / "README.md").read_text()
        assert all((path / "pkg").is_dir() for path in kept)
    finally:
        live.kill()
        live.wait()


def test_G115_template_store_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "template").write_text("mine")
    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "home"))
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(
        result,
        r"'.*home/template' is not kgen's template store, and kgen will not touch it",
    )
    assert (tmp_path / "home" / "template").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["home"]


def test_G117_destination_is_a_device():
    result = kgen("new", "/dev/null", "--defaults")
    assert_refused(result, r"destination '/dev/null' is not a directory")


def test_G118_update_to_an_infinite_learning_rate(shared_project):
    result = kgen("update", str(shared_project), "--learning-rate", "inf")
    assert_refused(result, r"--learning-rate must be a finite number, got inf")
    assert _git(shared_project, "status", "--porcelain", "--ignored") == ""


def test_G119_update_to_zero_epochs(shared_project):
    result = kgen("update", str(shared_project), "--epochs", "0")
    assert_refused(result, r"--epochs must be a positive integer, got 0")
    assert _git(shared_project, "status", "--porcelain", "--ignored") == ""


# Generator entries whose test lives with the tests of the same feature.
GENERATOR_ELSEWHERE = {
    "G138-weights-file-not-hdf5": (
        "tests/test_cli.py::test_a_weights_file_is_checked_before_anything_is_written"
    ),
    "G142-weights-keras-archive-without-weights": (
        "tests/test_cli.py::test_a_weights_file_is_checked_before_anything_is_written"
    ),
    "P101-prepared-data-of-another-image-size": (
        "tests/test_data_scale.py::"
        "test_prepared_data_of_another_size_or_damaged_is_refused"
    ),
    "P102-prepared-shard-changed-since-prepare": (
        "tests/test_data_scale.py::"
        "test_prepared_data_of_another_size_or_damaged_is_refused"
    ),
    "G110-full-disk-while-writing-the-project": (
        "tests/test_cli.py::test_a_full_disk_is_one_line_and_leaves_nothing"
    ),
    "G111-full-disk-under-kgen-home": (
        "tests/test_cli.py::test_a_full_disk_under_kgen_home_leaves_no_half_made_store"
    ),
    "G116-template-store-is-the-user-s-directory": (
        "tests/test_cli.py::test_store_refuses_a_directory_kgen_did_not_create"
    ),
    "G121-update-after-a-killed-update": (
        "tests/test_update.py::test_a_killed_update_is_named_and_the_advice_puts_it_back"
    ),
}


# `kgen update` of a project whose .copier-answers.yml was edited: id -> (the edit, as
# a function of the recorded text, and the message pattern). Each edit is committed.
ANSWERS = ".copier-answers.yml"
RESTORE = r"restore it with `git checkout -- \.copier-answers\.yml`"


def _set(key: str, value: str):
    return lambda text: re.sub(rf"^{key}: .*$", f"{key}: {value}", text, flags=re.M)


EDITED_ANSWERS = {
    "G97": (
        lambda text: "arch: [simple_cnn\n",
        rf"is not valid YAML at line 2; {RESTORE}",
    ),
    "G98": (
        lambda text: "- simple_cnn\n",
        rf"does not hold copier's answers \(a mapping\); {RESTORE}",
    ),
    "G99": (
        _set("epochs", "ten"),
        rf"records an answer kgen cannot use: --epochs must be an integer, got "
        rf"'ten'; {RESTORE}",
    ),
    "G100": (lambda text: "\udcff", rf"is not UTF-8 text; {RESTORE}"),
    "G101": (
        lambda text: re.sub(r"^_src_path: .*\n", "", text, flags=re.M),
        rf"has no _src_path \(a string\), which kgen update needs; {RESTORE}",
    ),
    "G102": (
        _set("learning_rate", ".inf"),
        r"records an answer kgen cannot use: --learning-rate must be a finite "
        rf"number, got inf; {RESTORE}",
    ),
    "G103": (
        _set("_commit", "v9.9.9"),
        r"was generated with template version 'v9.9.9', which is not in kgen's store "
        r".*\(available: v.*\); run that kgen version's `kgen update` once",
    ),
    "G104": (
        _set("_src_path", "/somewhere/my-template"),
        r"was generated from '/somewhere/my-template', not a kgen template store; use "
        r"`copier update` there",
    ),
    "G105": (lambda text: "", r"does not hold copier's answers \(a mapping\)"),
    "G124": (
        _set("_commit", "1.0"),
        r"has no _commit \(a string\), which kgen update",
    ),
    "G125": (
        _set("project_name", "1proj"),
        r"records an answer kgen cannot use: project name '1proj' is not valid",
    ),
    "G130": (
        _set("package_name", "../../escaped"),
        r"copier refused a path \(.*\); check the answers in \.copier-answers\.yml",
    ),
    "G126": (
        _set("arch", "resnet5O"),
        r"records an answer kgen cannot use: unknown architecture 'resnet5O' \(did "
        r"you mean 'resnet50'\?\)",
    ),
}


@pytest.fixture(scope="module")
def shared_project(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("edited-answers"), "proj")


def _update_with_edited_answers(project: Path, edit, pattern: str) -> None:
    """Commit the edit of the answers; kgen update refuses and leaves them as they are."""
    answers = project / ANSWERS
    committed = _git(project, "rev-parse", "HEAD")
    answers.write_bytes(
        edit(answers.read_text()).encode("utf-8", errors="surrogateescape")
    )
    _git(project, "commit", "--quiet", "-am", "edited answers")
    edited = _git(project, "rev-parse", "HEAD")
    try:
        result = kgen("update", str(project))
        assert_refused(result, pattern)
        assert _git(project, "rev-parse", "HEAD") == edited
        assert _git(project, "status", "--porcelain", "--ignored") == ""
    finally:
        _git(project, "reset", "--quiet", "--hard", committed)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_G97_update_answers_not_yaml(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G97"])


def test_G98_update_answers_not_a_mapping(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G98"])


def test_G99_update_answer_of_the_wrong_type(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G99"])


def test_G100_update_answers_not_utf8(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G100"])


def test_G101_update_answers_without_src_path(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G101"])


def test_G102_update_answer_not_finite(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G102"])


def test_G103_update_from_a_version_not_in_the_store(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G103"])


def test_G104_update_from_a_template_that_is_not_kgen_s(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G104"])


def test_G105_update_answers_emptied(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G105"])


def test_G124_update_answers_commit_not_a_string(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G124"])


def test_G125_update_answers_project_name_invalid(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G125"])


def test_G130_update_answers_package_name_outside_the_project(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G130"])


def test_G126_update_answers_arch_misspelt(shared_project):
    _update_with_edited_answers(shared_project, *EDITED_ANSWERS["G126"])


def test_G122_update_to_an_empty_version(shared_project):
    result = kgen("update", str(shared_project), "--to", "")
    assert_refused(result, r"template version '' is not in kgen's store .*available: v")
    assert _git(shared_project, "status", "--porcelain", "--ignored") == ""


def test_G123_kgen_home_lock_is_a_directory(tmp_path, monkeypatch):
    (tmp_path / "home" / "template.lock").mkdir(parents=True)
    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "home"))
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert_refused(result, r"KGEN_HOME '.*home' is not usable \(is a directory\)")
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["template.lock"]
    assert not (tmp_path / "proj").exists()


def test_G129_destination_is_the_parent_directory(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    result = kgen("new", "..", "--defaults")
    assert_refused(result, r"destination '.*' exists and is not empty")
    assert [p.name for p in tmp_path.iterdir()] == ["here"]


def test_G120_update_from_a_local_template_that_is_not_kgen_s(shared_project, tmp_path):
    """A recorded `_src_path` shaped like a store, that is here and not kgen's."""
    theirs = tmp_path / "template"
    theirs.mkdir()
    subprocess.run(["git", "init", "-q", str(theirs)], check=True)
    _update_with_edited_answers(
        shared_project,
        _set("_src_path", str(theirs)),
        r"was generated from '.*/template', not a kgen template store; use "
        r"`copier update` there",
    )


# Generated project entries: id -> (train/evaluate arguments, files to create, pattern).
# "{tmp}" is replaced by a scratch directory; config files are written from the dicts.
PROJECT = {
    # Settings given on the command line, as flags or as KEY=VALUE: the same checks as a
    # config file's, naming the command line as their source.
    "P142-epochs-flag-zero": (
        ["train", "--epochs", "0"],
        {},
        r"train.epochs = 0 is not valid: must be >= 1$",
    ),
    "P143-batch-size-flag-negative": (
        ["train", "--batch-size", "-1"],
        {},
        r"data.batch_size = -1 is not valid: must be >= 1$",
    ),
    "P144-learning-rate-flag-nan": (
        ["train", "--learning-rate", "nan"],
        {},
        r"train.learning_rate in the command line must be a finite number, got nan$",
    ),
    "P145-setting-not-a-number": (
        ["train", "train.learning_rate=abc"],
        {},
        r"train.learning_rate in the command line must be float, got 'abc'$",
    ),
    "P146-setting-without-a-value": (
        ["train", "foo"],
        {},
        r"'foo' is not a setting: write KEY=VALUE, e.g. train.learning_rate=0.01$",
    ),
    "P147-integer-setting-in-exponent-form": (
        ["train", "train.epochs=1e3"],
        {},
        r"train.epochs in the command line must be int, got 1000.0$",
    ),
    "P148-resume-a-run-that-does-not-exist": (
        ["train", "--resume", "nonexistent-run"],
        {},
        r"no run 'nonexistent-run': give a run directory or a name under runs/ "
        r"\(none yet\)$",
    ),
    "P149-resume-with-no-run-yet": (
        ["train", "--resume"],
        {},
        r"no run 'latest': give a run directory or a name under runs/ \(none yet\)$",
    ),
    "P150-run-name-with-a-path": (
        ["train", "--name", "../x"],
        {},
        r"run name '../x' is not valid: use up to 64 letters, digits, '.', '_' or '-', "
        r"starting with a letter or digit$",
    ),
    "P151-validation-split-leaving-no-training-images": (
        ["train", "data.validation_split=0.9999"],
        {},
        r"the training split is empty$",
    ),
    "P152-setting-float-for-an-integer": (
        ["train", "data.seed=1.5"],
        {},
        r"data.seed in the command line must be int, got 1.5$",
    ),
    "P153-setting-overflows-to-infinity": (
        ["train", "train.learning_rate=1e309"],
        {},
        r"train.learning_rate in the command line must be a finite number, got inf$",
    ),
    "P154-warmup-negative": (
        ["train", "train.warmup_epochs=-1"],
        {},
        r"train.warmup_epochs = -1.0 is not valid: must be >= 0$",
    ),
    "P155-weight-decay-negative": (
        ["train", "train.weight_decay=-0.1"],
        {},
        r"train.weight_decay = -0.1 is not valid: must be >= 0$",
    ),
    "P156-steps-per-epoch-flag-negative": (
        ["train", "--steps-per-epoch", "-5"],
        {},
        r"train.steps_per_epoch = -5 is not valid: must be null or >= 1$",
    ),
    "P157-unknown-setting-key": (
        ["train", "data.num_workers=0"],
        {},
        r"unknown config key 'data.num_workers' in the command line; valid: image_size, ",
    ),
    "P97-cache-choice-unknown": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"cache": "ram"}}},
        r"data.cache = 'ram' is not valid: must be one of auto, memory, disk, none$",
    ),
    "P98-prepared-directory-without-manifest": (
        ["train", "data.prepared={tmp}/empty"],
        {"empty": None},
        r"'.*empty' holds no prepared data \(manifest.json is missing\); the prepare "
        r"command writes it \(or prepared.write_prepared\)$",
    ),
    "P99-prepare-into-a-non-empty-directory": (
        ["prepare", "--output", "{tmp}/full"],
        {"full": None, "full/notes.txt": "mine"},
        r"--output '.*full' exists and is not an empty directory; give a new directory$",
    ),
    "P100-prepared-manifest-damaged": (
        ["train", "data.prepared={tmp}/shards"],
        {"shards": None, "shards/manifest.json": "{not json"},
        r"cannot read '.*shards/manifest.json' \(Expecting .*\); prepare the "
        r"data again$",
    ),
    "P103-service-dispatcher-not-answering": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"service": "grpc://127.0.0.1:1"}}},
        r"no tf.data service dispatcher answers at 'grpc://127.0.0.1:1' \(Connection "
        r"refused\); start one with the data-service command$",
    ),
    "P104-service-not-an-address": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"service": "grpc://dispatcher"}}},
        r"data.service = 'grpc://dispatcher' is not an address like grpc://host:5050$",
    ),
    "P105-service-with-deterministic-ops": (
        ["train", "--config", "{tmp}/c.json"],
        {
            "c.json": {
                "data": {"service": "grpc://127.0.0.1:1"},
                "train": {"deterministic": True},
            }
        },
        r"train.deterministic cannot be kept with data.service: the service's workers "
        r"deliver examples in no fixed order$",
    ),
    "P109-crop-area-with-the-data-service": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"crop_area": 0.3, "service": "grpc://127.0.0.1:1"}}},
        r"data.crop_area reads each epoch's crops in the training process; leave "
        r"data.service unset with it$",
    ),
    "P110-crop-area-of-the-whole-image-or-more": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"crop_area": 1.0}}},
        r"data.crop_area = 1.0 is not valid: must be 0 or in \[0.01, 1\)$",
    ),
    "P112-lr-find-rates-reversed": (
        ["lr-find", "--min-lr", "1", "--max-lr", "0.1"],
        {},
        r"--min-lr 1 must be below --max-lr 0.1$",
    ),
    "P113-lr-find-rate-not-positive": (
        ["lr-find", "--min-lr", "0"],
        {},
        r"--min-lr 0 is not a learning rate in \(0, 1e6\]$",
    ),
    "P114-lr-find-too-few-steps": (
        ["lr-find", "--steps", "5"],
        {},
        r"--steps 5 is too few for a sweep: use 10 or more$",
    ),
    "P115-lr-find-into-a-training-run": (
        ["lr-find", "--output-dir", "{tmp}/run/logs"],
        {"run": None, "run/.lock": "process 7\n", "run/history.csv": "epoch\n"},
        r"'.*run/logs' is in a training run: give lr-find another --output-dir$",
    ),
    "P118-lr-find-apply-over-a-runs-config": (
        ["lr-find", "--apply", "{tmp}/run/config.json"],
        {"run": None, "run/.lock": "process 7\n", "run/config.json": "{}"},
        r"--apply '.*run/config.json' is in a training run, whose files describe it: "
        r"write the settings elsewhere$",
    ),
    "P116-lr-find-apply-into-a-missing-directory": (
        ["lr-find", "--apply", "{tmp}/nowhere/lr.json"],
        {},
        r"--apply '.*nowhere/lr.json' is not a file in a directory$",
    ),
    "P119-lr-find-apply-over-a-file-it-did-not-write": (
        ["lr-find", "--apply", "{tmp}/notes.txt"],
        {"notes.txt": "my notes\n"},
        r"--apply '.*notes.txt' exists and is not a config this project wrote: name "
        r"a new file$",
    ),
    "P123-train-into-a-directory-of-the-users": (
        ["train", "--output-dir", "{tmp}/mine"],
        {"mine": None, "mine/.lock": "mine\n", "mine/history.csv": "my history\n"},
        r"output directory '.*mine' holds files train did not write: name a new or "
        r"empty directory$",
    ),
    "P158-train-into-a-directory-of-the-users-through-a-missing-one": (
        ["train", "--output-dir", "{tmp}/nothing/../mine"],
        {"mine": None, "mine/notes.txt": "mine\n"},
        r"output directory '.*mine' holds files train did not write: name a new or "
        r"empty directory$",
    ),
    "P159-option-value-of-the-wrong-type": (
        ["train", "--epochs", "abc"],
        {},
        r"argument --epochs: invalid int value: 'abc' \(see proj train --help\)$",
    ),
    "P163-a-setting-and-a-key-under-it": (
        ["train", "data.seed.x=2", "data.seed=1"],
        {},
        r"'data.seed' and keys under it cannot both be set$",
    ),
    "P124-lr-find-into-a-directory-of-the-users": (
        ["lr-find", "--output-dir", "{tmp}/mine"],
        {"mine": None, "mine/lr_find.json": {"mine": 1}},  # a file of the user's
        r"output directory '.*mine' holds files lr-find did not write: name a new "
        r"or empty directory$",
    ),
    "P117-doctor-on-a-directory-without-a-run": (
        ["doctor", "{tmp}/empty"],
        {"empty": None},
        r"'.*empty' holds no run \(no config.json\)$",
    ),
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
        r"config file '.*missing.json' does not exist$",
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
        r"the data has 10 classes but data.num_outputs is 5; set it to 10 \(e.g. train "
        r"data.num_outputs=10\)",
    ),
    "P17-evaluate-without-a-model": (
        ["evaluate", "--output-dir", "{tmp}/empty"],
        {},
        r"no trained model at .*model.keras'; run train first",
    ),
    "P33-config-infinity": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": '{"train": {"learning_rate": Infinity}}'},
        r"train.learning_rate in .*c.json must be a finite number, got inf$",
    ),
    "P34-config-nan": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": '{"model": {"dropout": NaN}}'},
        r"model.dropout in .*c.json must be a finite number, got nan$",
    ),
    "P35-config-negative-infinity": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": '{"train": {"weight_decay": -Infinity}}'},
        r"train.weight_decay in .*c.json must be a finite number, got -inf$",
    ),
    "P36-config-float-overflows-to-infinity": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": '{"train": {"learning_rate": 1e400}}'},
        r"train.learning_rate in .*c.json must be a finite number, got inf$",
    ),
    "P37-config-nested-100000-deep": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": "[" * 100_000 + "]" * 100_000},
        r"cannot read config file .*c.json': maximum recursion depth exceeded",
    ),
    "P38-config-not-utf8": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": b'{"train": {"epochs": "\xff"}}'},
        r"cannot read config file .*c.json': 'utf-8' codec can't decode byte 0xff",
    ),
    "P39-config-top-level-list": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": [1, 2]},
        r"the config in .*c.json must be an object, got \[1, 2\]$",
    ),
    "P40-config-empty-file": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": ""},
        r"cannot read config file .*c.json': Expecting value: line 1 column 1",
    ),
    "P41-config-is-a-directory": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": None},
        r"config file '.*c.json' is a directory$",
    ),
    "P42-negative-seed": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"train": {"seed": -1}}},
        r"train.seed = -1 is not valid: must be in \[0, 2\*\*32\)$",
    ),
    "P43-seed-beyond-32-bits": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"seed": 2**32}}},
        r"data.seed = 4294967296 is not valid: must be in \[0, 2\*\*32\)$",
    ),
    "P44-image-size-below-the-model-minimum": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"image_size": 9}}},
        r"data.image_size = 9 is not valid: must be >= 10$",
    ),
    "P45-two-channels": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"channels": 2}}},
        r"data.channels = 2 is not valid: must be 1 or 3$",
    ),
    "P46-validation-split-one": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"validation_split": 1.0}}},
        r"data.validation_split = 1.0 is not valid: must be between 0 and 1$",
    ),
    "P47-config-steps-per-epoch-zero": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"train": {"steps_per_epoch": 0}}},
        r"train.steps_per_epoch = 0 is not valid: must be null or >= 1$",
    ),
    "P48-config-boolean-for-an-integer": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"data": {"batch_size": True}}},
        r"data.batch_size in .*c.json must be int, got True$",
    ),
    "P49-config-null-for-an-integer": (
        ["train", "--config", "{tmp}/c.json"],
        {"c.json": {"train": {"epochs": None}}},
        r"train.epochs in .*c.json must be int, got None$",
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
    "P130-class-folder-name-with-a-line-break": (
        {"data/cats/a.png": PNG, "data/do\ngs/b.png": PNG},
        r"the data names 'do\\ngs': a class, label or target name must be one line of "
        r"visible text \(no line breaks, tabs, invisible characters or spaces at "
        r"either end\); rename it$",
    ),
    "P135-class-folder-names-alike-but-for-their-unicode-form": (
        {"data/caf\u00e9/a.png": PNG, "data/cafe\u0301/b.png": PNG},
        "the data names 'caf(\u00e9|e\u0301)' and 'caf(\u00e9|e\u0301)', which show "
        r"alike: each class, label or target name must be used once; rename one$",
    ),
    "P136-class-folder-name-with-an-invisible-character": (
        {"data/cats/a.png": PNG, "data/dogs\u200b/b.png": PNG},
        r"the data names 'dogs\\u200b': a class, label or target name must be one line "
        r"of visible text",
    ),
    "P160-class-folder-names-alike-but-for-an-invisible-mark": (
        {"data/dogs/a.png": PNG, "data/dogs\u034f/b.png": PNG},
        "the data names 'dogs(\u034f)?' and 'dogs(\u034f)?', which show alike: each "
        r"class, label or target name must be used once; rename one$",
    ),
    "P161-class-folder-name-with-a-space-at-its-end": (
        {"data/cats/a.png": PNG, "data/dogs /b.png": PNG},
        r"the data names 'dogs ': a class, label or target name must be one line of "
        r"visible text \(no line breaks, tabs, invisible characters or spaces at "
        r"either end\); rename it$",
    ),
    "P162-image-file-name-not-utf-8": (
        {"data/cats/a.png": PNG, "data/dogs/\udcfe.png": PNG},
        r"the file name 'data/dogs/\\xfe.png' is not UTF-8, which TensorFlow cannot "
        r"read; rename it$",
    ),
    "P137-class-folder-name-of-a-hangul-filler": (
        {"data/cats/a.png": PNG, "data/\u3164/b.png": PNG},
        r"the data names '\u3164': a class, label or target name must be one line of "
        r"visible text",
    ),
    "P138-class-folder-name-of-a-blank-braille-cell": (
        {"data/cats/a.png": PNG, "data/\u2800\u2800/b.png": PNG},
        r"the data names '\u2800\u2800': a class, label or target name must be one "
        r"line of visible text",
    ),
    "P139-class-folder-name-of-a-combining-mark-alone": (
        {"data/cats/a.png": PNG, "data/\u0301/b.png": PNG},
        r"the data names '\u0301': a class, label or target name must be one line of "
        r"visible text",
    ),
}

# npz-source project entries: id -> (arrays to save in data/data.npz, or the file's
# bytes, or "truncated": a valid file cut in half; pattern).
LABELS = np.array([0, 1, 2, 0])
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
    "P134-npz-output-names-not-text": (
        {
            "x": np.zeros((4, 8, 8), np.uint8),
            "y": LABELS,
            "output_names": np.array([1.0, 2.0, 3.0]),
        },
        r"output_names in 'data/data.npz' must be a 1-D array of names \(strings\)$",
    ),
    "P131-npz-output-name-used-twice": (
        {
            "x": np.zeros((4, 8, 8), np.uint8),
            "y": LABELS,
            "output_names": np.array(["cat", "dog", "cat"]),
        },
        r"the data names 'cat' twice: each class, label or target name must be used "
        r"once; rename one$",
    ),
    "P27-npz-label-outside-classes": (
        {"x": np.zeros((4, 8, 8), np.uint8), "y": np.array([0, 1, 2, 7])},
        r"y in 'data/data.npz' holds values from 0 to 7; "
        r"class indices must be integers in \[0, 2\]",
    ),
    "P50-npz-uint16-pixels-above-255": (
        {"x": np.full((4, 8, 8), 1000, np.uint16), "y": LABELS},
        r"x in 'data/data.npz' holds values from 1000 to 1000; pixels must be within "
        r"0-255 \(or floats within 0-1\)$",
    ),
    "P51-npz-negative-float-pixels": (
        {"x": np.linspace(-1, 200, 256).reshape(4, 8, 8), "y": LABELS},
        r"x in 'data/data.npz' holds values from -1.0 to 200.0; pixels must be within "
        r"0-255",
    ),
    "P52-npz-float-pixels-above-255": (
        {"x": np.full((4, 8, 8), 300.0), "y": LABELS},
        r"x in 'data/data.npz' holds values from 300.0 to 300.0; pixels must be within "
        r"0-255",
    ),
    "P53-npz-pixels-not-finite": (
        {
            "x": np.where(np.eye(8, dtype=bool), np.nan, 0.5)[None].repeat(4, 0),
            "y": LABELS,
        },
        r"x in 'data/data.npz' holds values that are not finite$",
    ),
    "P54-npz-string-pixels": (
        {"x": np.full((4, 8, 8), "a"), "y": LABELS},
        r"x in 'data/data.npz' has dtype <U1; expected integers or floats$",
    ),
    "P55-npz-boolean-pixels": (
        {"x": np.ones((4, 8, 8), bool), "y": LABELS},
        r"x in 'data/data.npz' has dtype bool; expected integers or floats$",
    ),
    "P56-npz-object-pixels": (
        {"x": np.array([[[1]]] * 4, dtype=object), "y": LABELS},
        r"cannot read 'data/data.npz' as a .npz file: Object arrays cannot be loaded "
        r"when allow_pickle=False$",
    ),
    "P57-npz-not-a-zip": (
        b"x,y\n1,2\n",
        r"cannot read 'data/data.npz' as a .npz file: ",
    ),
    "P58-npz-truncated": (
        "truncated",
        r"cannot read 'data/data.npz' as a .npz file: File is not a zip file$",
    ),
    "P59-npz-is-a-pickle": (
        pickle.dumps({"x": [1, 2], "y": [0, 1]}),
        r"cannot read 'data/data.npz' as a .npz file: This file contains pickled "
        r"\(object\) data",
    ),
    "P60-npz-empty-file": (
        b"",
        r"cannot read 'data/data.npz' as a .npz file: No data left in file$",
    ),
    "P61-npz-no-images": (
        {"x": np.zeros((0, 8, 8), np.uint8), "y": np.zeros(0, np.int64)},
        r"'data/data.npz' holds no images$",
    ),
    "P62-npz-nan-class-index": (
        {"x": np.zeros((4, 8, 8), np.uint8), "y": np.array([0.0, np.nan, 2.0, 0.0])},
        r"y in 'data/data.npz' has dtype float64; class indices must be integers$",
    ),
    "P63-npz-float-class-indices": (
        {"x": np.zeros((4, 8, 8), np.uint8), "y": np.array([0.0, 1.0, 2.0, 0.0])},
        r"y in 'data/data.npz' has dtype float64; class indices must be integers$",
    ),
    "P64-npz-one-image": (
        {"x": np.zeros((1, 8, 8), np.uint8), "y": np.array([0])},
        r"the training split is empty$",
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
    "P132-labels-csv-column-named-twice": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "filename,size,size\na.png,1.5,2\n", "data/a.png": PNG},
        r"the data names 'size' twice",
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
    "P65-npz-regression-target-beyond-float32": (
        dict(task="regression", data="npz"),
        {"data/data.npz": {"x": np.zeros((4, 8, 8), np.uint8), "y": [0, 1, 2, 1e39]}},
        r"y in 'data/data.npz' must hold numbers that are finite in float32$",
    ),
    "P66-npz-regression-target-nan": (
        dict(task="regression", data="npz"),
        {"data/data.npz": {"x": np.zeros((4, 8, 8), np.uint8), "y": [0, np.nan, 2, 3]}},
        r"y in 'data/data.npz' must hold numbers that are finite in float32$",
    ),
    "P67-labels-csv-in-latin-1": (
        REGRESSION_FOLDER,
        {
            "data/labels.csv": "filename,größe\na.png,1\n".encode("latin-1"),
            "data/a.png": PNG,
        },
        r"cannot read 'data/labels.csv' as UTF-8 CSV: 'utf-8' codec can't decode byte "
        r"0xf6 in position 11",
    ),
    "P68-labels-csv-in-utf-16": (
        REGRESSION_FOLDER,
        {
            "data/labels.csv": "filename,size\na.png,1\n".encode("utf-16"),
            "data/a.png": PNG,
        },
        r"cannot read 'data/labels.csv' as UTF-8 CSV: 'utf-8' codec can't decode byte "
        r"0xff in position 0",
    ),
    "P69-labels-csv-target-beyond-float32": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "filename,size\na.png,1e39\n", "data/a.png": PNG},
        r"'data/labels.csv' line 2: targets must be numbers finite in float32$",
    ),
    "P70-labels-csv-target-nan": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "filename,size\na.png,nan\n", "data/a.png": PNG},
        r"'data/labels.csv' line 2: targets must be numbers finite in float32$",
    ),
    "P71-labels-csv-empty": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "", "data/a.png": PNG},
        r"'data/labels.csv' is empty$",
    ),
    "P72-labels-csv-header-only": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "filename,size\n", "data/a.png": PNG},
        r"'data/labels.csv' lists no images$",
    ),
    "P73-labels-csv-without-its-header": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "a.png,1.5\n", "data/a.png": PNG},
        r"'data/labels.csv' must start with the header filename,<target names...>$",
    ),
    "P74-labels-csv-row-with-a-missing-field": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "filename,size,weight\na.png,1.5\n", "data/a.png": PNG},
        r"'data/labels.csv' line 2 has 2 fields; the header has 3$",
    ),
    "P75-labels-csv-field-too-large": (
        REGRESSION_FOLDER,
        {"data/labels.csv": "filename,size\na.png," + "1" * 200_000, "data/a.png": PNG},
        r"cannot read 'data/labels.csv' as UTF-8 CSV: field larger than field limit "
        r"\(131072\)$",
    ),
    "P76-multilabel-labels-csv-value-2": (
        dict(task="multilabel", data="folder", num_classes=2),
        {"data/labels.csv": "filename,cat,dog\na.png,1,2\n", "data/a.png": PNG},
        r"'data/labels.csv' line 2: label values must be 0 or 1$",
    ),
}

# Entries that need another project and arguments: id -> (kgen options, train arguments,
# files under the working directory, pattern).
OPTIONS = {
    "P77-image-size-below-the-architecture-minimum": (
        dict(arch="mobilenet_v2"),
        ["--config", "c.json"],
        {"c.json": '{"data": {"image_size": 31}}'},
        r"data.image_size = 31 is not valid: must be >= 32$",
    ),
    "P111-tfrecord-project-without-shards": (
        dict(data="tfrecord"),
        [],
        {},
        r"'data' holds no prepared data \(manifest.json is missing\); the prepare "
        r"command writes it \(or prepared.write_prepared\)$",
    ),
    "P78-tpu-strategy-without-a-tpu": (
        dict(strategy="tpu"),
        [],
        {},
        r"cannot connect to a TPU \(.*\); set TPU_NAME or run on a TPU VM$",
    ),
}

# Entries whose test needs real training; they live with the other training tests.
ELSEWHERE = {
    "P140-class-names-in-markdown-syntax": (
        "tests/test_health.py::test_an_imbalanced_folder_is_named"
    ),
    "P141-train-out-of-space-before-its-first-checkpoint": (
        "tests/test_reliability.py::"
        "test_every_writing_command_on_a_full_disk_is_one_line_and_leaves_nothing"
    ),
    "P127-every-writing-command-on-a-full-disk": (
        "tests/test_reliability.py::"
        "test_every_writing_command_on_a_full_disk_is_one_line_and_leaves_nothing"
    ),
    "P128-scratch-left-by-a-killed-command": (
        "tests/test_reliability.py::"
        "test_scratch_of_a_killed_writer_is_removed_by_the_next"
    ),
    "P94-second-train-on-a-busy-output-directory": (
        "tests/test_reliability.py::"
        "test_a_second_train_on_a_busy_directory_is_refused_then_takes_over"
    ),
    "P95-grayscale-bmp-and-gif-in-a-one-channel-folder-project": (
        "tests/test_reliability.py::"
        "test_every_image_format_trains_at_either_channel_count"
    ),
    "P129-cmyk-jpeg-in-a-one-channel-folder-project": (
        "tests/test_reliability.py::"
        "test_every_image_format_trains_at_either_channel_count"
    ),
    "P18-resume-from-another-architecture": (
        "tests/test_reliability.py::test_resuming_from_another_architecture_is_refused"
    ),
    "P108-resume-after-the-data-changed": (
        "tests/test_data_scale.py::test_resuming_after_the_data_changed_is_refused"
    ),
    "P19-loss-becomes-nan": (
        "tests/test_reliability.py::"
        "test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint"
    ),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("bad-inputs"), "proj")


def _refusals(
    project: Path, parent: Path, commands: dict[str, tuple[list[str], Path]]
) -> dict[str, subprocess.CompletedProcess]:
    """Each entry's command line, all in one process (conftest.run_commands)."""
    lines = [("proj", argv, cwd) for argv, cwd in commands.values()]
    results = run_commands(project, lines, parent / "run")
    return dict(zip(commands, results, strict=True))


def _train_refusals(
    project: Path, parent: Path, directories: dict[str, Path], *args: str
) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """entry -> (its directory, `train --output-dir DIRECTORY/out ARGS` run there)."""
    commands = {
        entry: (["train", "--output-dir", str(directory / "out"), *args], directory)
        for entry, directory in directories.items()
    }
    results = _refusals(project, parent, commands)
    return {entry: (directories[entry], results[entry]) for entry in directories}


@pytest.fixture(scope="module")
def project_refusals(project, tmp_path_factory) -> dict[str, tuple]:
    """entry -> (its directory, what it held before, the command's result)."""
    parent = tmp_path_factory.mktemp("project-entries")
    directories, before, commands = {}, {}, {}
    for entry, (args, files, _) in PROJECT.items():
        directory = directories[entry] = parent / entry
        directory.mkdir()
        for name, content in files.items():
            if content is None:
                (directory / name).mkdir()
            elif isinstance(content, bytes):
                (directory / name).write_bytes(content)
            else:
                text = content if isinstance(content, str) else json.dumps(content)
                (directory / name).write_text(text)
        before[entry] = _contents(directory)
        argv = [a.replace("{tmp}", str(directory)) for a in args]
        commands[entry] = (argv, project)
    results = _refusals(project, parent, commands)
    return {
        entry: (directories[entry], before[entry], results[entry]) for entry in PROJECT
    }


@pytest.mark.parametrize("entry", PROJECT)
def test_generated_project(project_refusals, entry):
    directory, before, result = project_refusals[entry]
    assert_project_refused(result, PROJECT[entry][2])
    # Nothing written, and no file of the user's changed.
    assert _contents(directory) == before
    assert "runs" not in result.args  # the project's directory, after the command


def _contents(directory: Path) -> dict[Path, bytes | str]:
    """Every path under `directory`, with what it holds."""
    return {path: _content(path) for path in directory.rglob("*")}


def _content(path: Path) -> bytes | str:
    """A link's target, a file's bytes, or the kind of anything else."""
    if path.is_symlink():
        return f"link to {os.readlink(path)}"
    if path.is_file():
        return path.read_bytes()
    return "directory" if path.is_dir() else "special"


@pytest.mark.parametrize("kind", ["link", "pipe"])
def test_P120_lr_find_apply_through_a_link_or_onto_a_pipe(project, tmp_path, kind):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    target = tmp_path / "lr.json"
    if kind == "link":
        target.symlink_to(notes)
    else:
        os.mkfifo(target)
    before = _contents(tmp_path)
    result = run_python("-m", "proj", "lr-find", "--apply", str(target), cwd=project)
    what = "is a symbolic link" if kind == "link" else "is not a regular file"
    assert_project_refused(result, rf"--apply '.*lr.json' {what}: name a new file$")
    assert _contents(tmp_path) == before


# Which directories lr-find may write its sweep into (P124 refuses the others).
SWEEPS = """
import json, sys
from pathlib import Path
from proj.artifacts import is_sweep

print(json.dumps({path.name: is_sweep(path) for path in Path(sys.argv[1]).iterdir()}))
"""


def test_lr_find_recognises_its_sweep_and_a_killed_sweeps_leftovers(project, tmp_path):
    sweep = {"rule": "steepest", "rates": [], "losses": []}
    directories = {
        "sweep": {"lr_find.json": json.dumps(sweep), "lr_find.png": "png"},
        "sweep-killed-while-replaced": {
            "lr_find.json": json.dumps(sweep),
            ".lr_find.json.k2x9q1": "{",
        },
        "sweep-killed-before-its-result": {".lr_find.json.a8b7c6": ""},
        "users-json": {"lr_find.json": json.dumps({"mine": 1})},
        "users-png": {"lr_find.png": "png"},
        "sweep-and-users-file": {"lr_find.json": json.dumps(sweep), "notes.txt": ""},
        "users-hidden-file": {".lr_find.json": json.dumps(sweep)},
    }
    for name, files in directories.items():
        (tmp_path / name).mkdir()
        for file, text in files.items():
            (tmp_path / name / file).write_text(text)
    result = run_python("-c", SWEEPS, str(tmp_path), cwd=project)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == {
        name: name.startswith("sweep") and name != "sweep-and-users-file"
        for name in directories
    }


def test_P125_tune_into_a_directory_of_the_users(tmp_path):
    project = generate(tmp_path, "proj", tune=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes\n")
    before = _contents(mine)
    result = run_python("-m", "proj", "tune", "--output-dir", str(mine), cwd=project)
    assert_project_refused(
        result,
        r"output directory '.*mine' holds files tune did not write: name a new or "
        r"empty directory$",
    )
    assert _contents(mine) == before


# Every file a command reads because the user named it, as a named pipe: opening a pipe
# for reading blocks until something writes to it, so each reader checks the path first.
# entry -> (package, command line, the pipe, other files: bytes, the one-line error or
# None: the command succeeds); "{tmp}" is the entry's own directory.
PIPE_IS_NOT_A_FILE = r"is not a regular file \(a pipe, socket or device\)"
DIGIT_NAMES = json.dumps([str(digit) for digit in range(10)]).encode()
PIPES = {
    **{
        f"{command}-config": (
            "proj",
            [command, "--config", "{tmp}/c.json", *more],
            "c.json",
            {},
            rf"config file '.*c.json' {PIPE_IS_NOT_A_FILE}$",
        )
        for command, more in (
            ("train", []),
            ("evaluate", []),
            ("lr-find", []),
            ("benchmark", []),
            ("prepare", ["--output", "{tmp}/shards"]),
        )
    },
    "prepared-manifest": (
        "proj",
        ["train", "data.prepared={tmp}/shards", "--output-dir", "{tmp}/out"],
        "shards/manifest.json",
        {},
        rf"'.*manifest.json' {PIPE_IS_NOT_A_FILE}; prepare the data again$",
    ),
    # A run's lock and lr-find's result are read to recognise a directory as their own.
    "run-lock": (
        "proj",
        ["train", "--output-dir", "{tmp}/run"],
        "run/.lock",
        {},
        r"output directory '.*run' holds files train did not write",
    ),
    "sweep-result": (
        "proj",
        ["lr-find", "--output-dir", "{tmp}/sweep"],
        "sweep/lr_find.json",
        {},
        r"output directory '.*sweep' holds files lr-find did not write",
    ),
    "study-journal": (
        "proj_tune",
        ["tune", "--output-dir", "{tmp}/study"],
        "study/study.log",
        {"study/.lock": b"process 7\n"},  # a study's directory, as run_lock leaves it
        rf"'.*study.log' {PIPE_IS_NOT_A_FILE}$",
    ),
    "weights-file": (
        "proj_weights",
        ["lr-find", "--output-dir", "{tmp}/sweep", "model.weights={tmp}/w.weights.h5"],
        "w.weights.h5",
        {},
        rf"model.weights = '.*w.weights.h5' is neither 'imagenet' nor a weights file: "
        rf"it {PIPE_IS_NOT_A_FILE}$",
    ),
    "run-model": (
        "proj",
        ["evaluate", "--output-dir", "{tmp}/run"],
        "run/model.keras",
        {},
        rf"'.*model.keras' {PIPE_IS_NOT_A_FILE}; run train again$",
    ),
    "run-output-names": (
        "proj",
        ["predict", "--output-dir", "{tmp}/run", "{tmp}/digit.png"],
        "run/output_names.json",
        {"digit.png": PNG},
        rf"'.*output_names.json' {PIPE_IS_NOT_A_FILE}$",
    ),
    "predict-input": (
        "proj",
        ["predict", "--output-dir", "{tmp}/run", "{tmp}/digit.png"],
        "digit.png",
        {"run/output_names.json": DIGIT_NAMES},
        rf"'.*digit.png' {PIPE_IS_NOT_A_FILE}$",
    ),
    "npz-data": (
        "proj_npz",
        ["train", "--data-dir", "{tmp}/data", "--output-dir", "{tmp}/out"],
        "data/data.npz",
        {},
        rf"data file '.*data.npz' {PIPE_IS_NOT_A_FILE}$",
    ),
    "labels-csv": (
        "proj_csv",
        ["train", "--data-dir", "{tmp}/data", "--output-dir", "{tmp}/out"],
        "data/labels.csv",
        {},
        rf"'.*labels.csv' {PIPE_IS_NOT_A_FILE}; it should list filename,<target",
    ),
    # The remembered image check is kgen's own file: a pipe there is not read.
    "image-check": (
        "proj_folder",
        ["check-data", "--data-dir", "{tmp}/data"],
        "data/.image-check.json",
        {"data/a/1.png": PNG, "data/b/2.png": PNG},
        None,
    ),
}


def test_P126_a_file_the_user_names_is_a_pipe(project, tmp_path):
    projects = {
        "proj_npz": dict(data="npz"),
        "proj_csv": dict(data="folder", task="regression"),
        "proj_folder": dict(data="folder", num_classes=2),
        "proj_tune": dict(tune=True),
        "proj_weights": dict(
            arch="mobilenet_v3_small", weights="imagenet", image_size=32
        ),
    }
    roots = {"proj": project} | {
        name: generate(tmp_path, name, **options) for name, options in projects.items()
    }
    commands = []
    for entry, (package, args, pipe, files, _) in PIPES.items():
        directory = tmp_path / entry
        for name, content in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(content)
        (directory / pipe).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(directory / pipe)
        argv = [a.replace("{tmp}", str(directory)) for a in args]
        commands.append((package, argv, roots[package]))
    results = run_commands(
        list(roots.values()), commands, tmp_path / "run", timeout=120
    )
    failed = {}
    for (entry, (*_, pattern)), result in zip(PIPES.items(), results, strict=True):
        errors = [line for line in result.stderr.splitlines() if ": error:" in line]
        if pattern is None:
            ok = result.returncode == 0
        else:
            ok = (
                result.returncode == 2
                and len(errors) == 1
                and re.search(pattern, errors[0]) is not None
                and "Traceback" not in result.stderr
            )
        if not ok:
            failed[entry] = (result.returncode, result.stderr[-500:])
    assert not failed, failed


@pytest.mark.slow  # trains twice
def test_P133_tracking_store_that_is_not_mlflows(tmp_path):
    """An MLflow project logs to ./mlflow.db: a file of that name that is not an MLflow
    store (a text file, another SQLite database, a pipe) is refused in one line and
    left as it was; a new store is made, and an MLflow store reused."""
    import sqlite3

    project = generate(tmp_path, "proj", tracking="mlflow")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    with sqlite3.connect(theirs / "mlflow.db") as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "mlflow.db").write_text("my notes\n")
    (tmp_path / "pipe").mkdir()
    os.mkfifo(tmp_path / "pipe" / "mlflow.db")
    (tmp_path / "new").mkdir()
    directories = ["text", "theirs", "pipe", "new", "new"]

    before = {name: listing(tmp_path / name) for name in directories[:3]}
    epoch = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16"]
    commands = [
        (
            "proj",
            ["train", *epoch, "--output-dir", str(tmp_path / name / f"run{i}")],
            tmp_path / name,
        )
        for i, name in enumerate(directories)
    ]
    results = run_commands(project, commands, tmp_path / "run", timeout=300)
    for name, result in zip(directories[:3], results, strict=False):
        assert_project_refused(
            result,
            r"^proj: error: tracking store 'mlflow.db' (is not an MLflow store \(it lacks "
            rf"MLflow's tables\)|cannot be read as SQLite: .*|{PIPE_IS_NOT_A_FILE}); move "
            r"it away, or set MLFLOW_TRACKING_URI to the store to log to$",
        )
        assert listing(tmp_path / name) == before[name], name
    for result in results[3:]:
        assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "new" / "mlflow.db").is_file()


@pytest.fixture(scope="module")
def folder_project(tmp_path_factory) -> Path:
    return generate(
        tmp_path_factory.mktemp("bad-folder"), "proj", data="folder", num_classes=2
    )


@pytest.mark.slow  # runs the generated project's command line
def test_P164_a_refused_train_keeps_a_runs_directory_it_did_not_make(
    folder_project, tmp_path
):
    """A train refused after it made its run (here: one class folder) removes the run,
    and runs/ only if it made runs/ too: an empty runs/ of the user's stays."""
    directories = {"users": tmp_path / "users", "new": tmp_path / "new"}
    for directory in directories.values():
        (directory / "data" / "cats").mkdir(parents=True)
        (directory / "data" / "cats" / "a.png").write_bytes(PNG)
    (directories["users"] / "runs").mkdir()
    before = {name: listing(directory) for name, directory in directories.items()}
    commands = [
        ("proj", ["train", "--data-dir", "data"], directory)
        for directory in directories.values()
    ]
    results = run_commands(folder_project, commands, tmp_path / "commands")
    for (name, directory), result in zip(directories.items(), results, strict=True):
        assert_project_refused(result, FOLDER["P21-single-class-folder"][1])
        assert listing(directory) == before[name], name


@pytest.mark.slow  # the project's command line, in a process of its own
def test_P165_a_plain_train_while_the_latest_run_is_unfinished(project, tmp_path):
    """A run that stopped after an epoch (a checkpoint, no metrics.json, nobody holding
    its lock): a plain train names --resume and --new, and starts nothing."""
    user = tmp_path / "user"
    run = user / "runs" / "20261207-120000-simple_cnn"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt-1.index").write_bytes(b"")
    (run / "history.csv").write_text("epoch,loss\n0,2.3\n")
    (run / ".lock").write_text("")
    (user / "runs" / "latest").symlink_to(run.name)
    before = _contents(user)
    (result,) = run_commands(project, [("proj", ["train"], user)], tmp_path / "c")
    assert_project_refused(
        result,
        r"the latest run, 'runs/20261207-120000-simple_cnn', did not finish \(it "
        r"stopped after epoch 1\): continue it with `python -m proj train --resume`, "
        r"or start a new run with `python -m proj train --new`$",
    )
    assert _contents(user) == before


@pytest.fixture(scope="module")
def folder_refusals(folder_project, tmp_path_factory) -> dict[str, tuple]:
    """entry -> (its directory, `train --data-dir data` run there)."""
    parent = tmp_path_factory.mktemp("folder-entries")
    directories = {}
    for entry, (files, _) in FOLDER.items():
        directory = directories[entry] = parent / entry
        directory.mkdir()
        for name, content in files.items():
            path = directory / name
            if content is None:
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
    return _train_refusals(folder_project, parent, directories, "--data-dir", "data")


@pytest.mark.slow  # each runs the generated project's command line
@pytest.mark.parametrize("entry", FOLDER)
def test_folder_source(folder_refusals, entry):
    directory, result = folder_refusals[entry]
    assert_project_refused(result, FOLDER[entry][1])
    out = directory / "out"
    assert not (out / "model.keras").exists() and not (out / "config.json").exists()


@pytest.fixture(scope="module")
def npz_project(tmp_path_factory) -> Path:
    return generate(
        tmp_path_factory.mktemp("bad-npz"), "proj", data="npz", num_classes=3
    )


@pytest.fixture(scope="module")
def npz_refusals(npz_project, tmp_path_factory) -> dict[str, tuple]:
    """entry -> (its directory, `train` run there on its data/data.npz)."""
    parent = tmp_path_factory.mktemp("npz-entries")
    directories = {}
    for entry, (arrays, _) in NPZ.items():
        directory = directories[entry] = parent / entry
        (directory / "data").mkdir(parents=True)
        path = directory / "data" / "data.npz"
        if isinstance(arrays, bytes):
            path.write_bytes(arrays)
        elif arrays == "truncated":
            np.savez(path, x=np.zeros((4, 8, 8), np.uint8), y=LABELS)
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            np.savez(path, **arrays)
    return _train_refusals(npz_project, parent, directories)


@pytest.mark.slow  # each runs the generated project's command line
@pytest.mark.parametrize("entry", NPZ)
def test_npz_source(npz_refusals, entry):
    directory, result = npz_refusals[entry]
    assert_project_refused(result, NPZ[entry][1])
    out = directory / "out"
    assert not out.exists() or not (out / "config.json").exists()


@pytest.fixture(scope="module")
def task_data_refusals(tmp_path_factory) -> dict[str, tuple]:
    """entry -> (its directory, `train` run there); one project and one process for the
    entries that share kgen options."""
    parent = tmp_path_factory.mktemp("task-data-entries")
    groups: dict[str, dict] = {}
    for entry, (options, files, _) in TASK_DATA.items():
        directory = parent / entry
        for name, content in files.items():
            path = directory / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, dict):
                np.savez(path, **{key: np.asarray(v) for key, v in content.items()})
            elif isinstance(content, str):
                path.write_text(content)
            else:
                path.write_bytes(content)
        groups.setdefault(json.dumps(options, sort_keys=True), {})[entry] = directory
    outcomes = {}
    for index, (options, directories) in enumerate(groups.items()):
        group = parent / f"project-{index}"
        group.mkdir()
        project = generate(group, "proj", **json.loads(options))
        outcomes |= _train_refusals(project, group, directories)
    return outcomes


@pytest.mark.slow  # each runs the generated project's command line
@pytest.mark.parametrize("entry", TASK_DATA)
def test_task_data(task_data_refusals, entry):
    directory, result = task_data_refusals[entry]
    assert_project_refused(result, TASK_DATA[entry][2])
    out = directory / "out"
    assert not out.exists() or not (out / "config.json").exists()


@pytest.mark.slow  # each runs the generated project's command line
@pytest.mark.parametrize("entry", OPTIONS)
def test_project_options(tmp_path_factory, tmp_path, entry):
    options, args, files, pattern = OPTIONS[entry]
    project = generate(tmp_path_factory.mktemp("bad-options"), "proj", **options)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    out = tmp_path / "out"
    result = run_python(
        "-m",
        "proj",
        "train",
        "--output-dir",
        str(out),
        *args,
        cwd=tmp_path,
        package_root=project,
    )
    assert_project_refused(result, pattern)
    assert not out.exists()


def test_catalogue_document_lists_exactly_the_tested_entries():
    document = (REPO / "docs" / "bad-inputs.md").read_text()
    documented = set(
        re.findall(r"^\| `([GP]\d{2,3}-[a-z0-9-]+)` \|", document, re.MULTILINE)
    )
    inline = {
        name.removeprefix("test_").split("_", 1)[0]
        for name in globals()
        if re.match(r"test_[GP]\d{2,3}_", name)
    }
    tested = set(GENERATOR) | set(PROJECT_NAMES) | set(PROJECT) | set(FOLDER) | set(NPZ)
    tested |= set(TASK_DATA) | set(OPTIONS) | set(RUN)
    tested |= set(ELSEWHERE) | set(GENERATOR_ELSEWHERE)
    tested |= {entry for entry in documented if entry.split("-", 1)[0] in inline}
    assert documented == tested
    assert len(documented) >= 30
    for test in {**ELSEWHERE, **GENERATOR_ELSEWHERE}.values():
        path, name = test.split("::")
        assert f"def {name}(" in (REPO / path).read_text()


# Entries on the files of a finished run: they need real training, so they are slow.
# id -> ({file in the run: bytes, or a function of its bytes}, command, pattern).
def _halve(data: bytes) -> bytes:
    return data[: len(data) // 2]


RUN = {
    "P96-resume-with-another-split-seed": (
        {},
        [
            "train",
            "--epochs",
            "3",
            "--steps-per-epoch",
            "3",
            "--config",
            "{tmp}/seed.json",
        ],
        r"the run in '.*run' was trained with data.seed = 42 \(now 7\); a resumed run "
        r"keeps its settings but train.epochs \(train --resume RUN reads them\); to "
        r"change them, start a new run$",
    ),
    "P81-history-csv-emptied-beside-checkpoints": (
        {"history.csv": b""},
        ["train", "--epochs", "3", "--steps-per-epoch", "3"],
        r"run/history.csv' holds 0 epochs, the checkpoint 2; delete it to start a new "
        r"history from here$",
    ),
    "P82-history-csv-value-not-a-number": (
        {"history.csv": b"epoch,loss\n0,abc\n1,2\n"},
        ["train", "--epochs", "3", "--steps-per-epoch", "3"],
        r"cannot read '.*run/history.csv' \(could not convert string to float: 'abc'\); "
        r"delete it to start a new history$",
    ),
    "P83-output-names-truncated": (
        {"output_names.json": b'["0",'},
        ["predict", "{png}"],
        r"cannot read '.*run/output_names.json': Expecting value: line 1 column 6",
    ),
    "P84-output-names-not-a-list": (
        {"output_names.json": b'{"0": 1}'},
        ["predict", "{png}"],
        r"run/output_names.json' must hold a JSON list of names; train again to "
        r"rewrite it$",
    ),
    "P85-model-truncated-then-evaluate": (
        {"model.keras": _halve},
        ["evaluate"],
        r"cannot load '.*run/model.keras' \(.*\); train again to rewrite it$",
    ),
    "P86-model-truncated-then-export": (
        {"model.keras": _halve},
        ["export"],
        r"cannot load '.*run/model.keras' \(.*\); train again to rewrite it$",
    ),
    "P87-saved-config-truncated-then-evaluate": (
        {"config.json": b'{"data": '},
        ["evaluate"],
        r"cannot read config file '.*run/config.json': Expecting value: line 1 "
        r"column 10",
    ),
    "P88-predict-a-file-that-is-not-an-image": (
        {},
        ["predict", "{tmp}/notes.png"],
        r"none of the 1 image file\(s\) could be read$",
    ),
    "P89-predict-top-k-zero": (
        {},
        ["predict", "{png}", "--top-k", "0"],
        r"--top-k must be at least 1, got 0$",
    ),
    "P90-predict-a-missing-path": (
        {},
        ["predict", "{tmp}/nowhere.png"],
        r"'.*nowhere.png' does not exist$",
    ),
    "P121-predict-output-over-a-file-it-did-not-write": (
        {},
        ["predict", "{png}", "--output", "{tmp}/notes.csv"],
        r"--output '.*notes.csv' exists and is not predictions this project wrote: "
        r"name a new file$",
    ),
    "P122-predict-output-through-a-symbolic-link": (
        {},
        ["predict", "{png}", "--output", "{tmp}/link.csv"],
        r"--output '.*link.csv' is a symbolic link: name a new file$",
    ),
    "P91-predict-a-folder-without-images": (
        {},
        ["predict", "{tmp}/empty"],
        r"no images \(.bmp, .gif, .jpeg, .jpg, .png\) in .*empty$",
    ),
}


@pytest.fixture(scope="module")
def finished_run(project, tmp_path_factory) -> Path:
    """A 2-epoch run of the shared project, to be copied and damaged."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = run_python(
        "-m",
        "proj",
        "train",
        "--epochs",
        "2",
        "--steps-per-epoch",
        "3",
        "--output-dir",
        str(out),
        cwd=project,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _damaged_copy(finished: Path, tmp_path: Path, damage: dict) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    for name, change in damage.items():
        path = out / name
        path.write_bytes(change(path.read_bytes()) if callable(change) else change)
    (tmp_path / "digit.png").write_bytes(PNG)
    (tmp_path / "notes.png").write_text("not an image\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.csv").write_text("path,note\nx.png,keep this\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "notes.csv")
    return out


@pytest.fixture(scope="module")
def run_refusals(project, finished_run, tmp_path_factory) -> dict[str, tuple]:
    """entry -> (its directory, what it held before, the command on its damaged copy)."""
    parent = tmp_path_factory.mktemp("run-entries")
    directories, before, commands = {}, {}, {}
    for entry, (damage, args, _) in RUN.items():
        directory = directories[entry] = parent / entry
        directory.mkdir()
        out = _damaged_copy(finished_run, directory, damage)
        (directory / "seed.json").write_text('{"data": {"seed": 7}}')
        before[entry] = _contents(directory)
        argv = [
            a.replace("{png}", str(directory / "digit.png")).replace(
                "{tmp}", str(directory)
            )
            for a in args
        ]
        commands[entry] = ([*argv, "--output-dir", str(out)], project)
    results = _refusals(project, parent, commands)
    return {entry: (directories[entry], before[entry], results[entry]) for entry in RUN}


@pytest.mark.slow
@pytest.mark.parametrize("entry", RUN)
def test_run_files(run_refusals, entry):
    directory, before, result = run_refusals[entry]
    assert_project_refused(result, RUN[entry][2])
    after = _contents(directory)
    ignored = {".lock"}  # names the process that last held the directory
    assert {p: d for p, d in after.items() if p.name not in ignored} == {
        p: d for p, d in before.items() if p.name not in ignored
    }


@pytest.mark.slow
def test_commands_replace_the_files_they_wrote(project, finished_run, tmp_path):
    """What P119-P122 refuse, the command's own earlier output is replaced: predict's
    CSV and lr-find --apply's config, each written twice."""
    out = _damaged_copy(finished_run, tmp_path, {})
    predictions = tmp_path / "predictions.csv"
    applied = tmp_path / "lr.json"
    sweep = ["lr-find", "--steps", "20", "--batch-size", "8", "--apply", str(applied)]
    for _ in range(2):
        command = ["predict", str(tmp_path / "digit.png"), "--output", str(predictions)]
        result = run_python(
            "-m", "proj", *command, "--output-dir", str(out), cwd=project
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert predictions.read_text().startswith("path,")
        result = run_python(
            "-m", "proj", *sweep, "--output-dir", str(tmp_path / "sweep"), cwd=project
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads(applied.read_text())["train"]["learning_rate"] > 0


@pytest.mark.slow
def test_predict_with_fewer_output_names_than_outputs_is_one_line(
    project, finished_run, tmp_path
):
    out = _damaged_copy(finished_run, tmp_path, {"output_names.json": b'["0"]\n'})
    result = run_python(
        "-m",
        "proj",
        "predict",
        str(tmp_path / "digit.png"),
        "--output-dir",
        str(out),
        cwd=project,
    )
    assert "Traceback" not in result.stderr and result.returncode == 2


def _train_three_epochs(project: Path, out: Path) -> subprocess.CompletedProcess:
    """`train` to 3 epochs of 3 steps on `out` (a 2-epoch run, maybe damaged)."""
    args = [
        "train",
        "--epochs",
        "3",
        "--steps-per-epoch",
        "3",
        "--output-dir",
        str(out),
    ]
    return run_python("-m", "proj", *args, cwd=project)


def _resumed_at_epoch(result: subprocess.CompletedProcess, epoch: int) -> None:
    """The train command succeeded, starting at `epoch` (1-based) of 3."""
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"Epoch {epoch}/3" in result.stdout and "Epoch 1/3" not in result.stdout


@pytest.mark.slow
def test_P79_checkpoint_index_garbled(project, finished_run, tmp_path):
    out = _damaged_copy(
        finished_run, tmp_path, {"checkpoints/checkpoint": b"\x00garbage\xff" * 3}
    )
    result = _train_three_epochs(project, out)
    _resumed_at_epoch(result, 3)
    assert re.search(r"warning: removed the unreadable '.*checkpoint'", result.stderr)
    rows = (out / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]


@pytest.mark.slow
def test_P80_checkpoint_index_names_a_missing_checkpoint(
    project, finished_run, tmp_path
):
    index = b'model_checkpoint_path: "ckpt-9"\nall_model_checkpoint_paths: "ckpt-9"\n'
    out = _damaged_copy(finished_run, tmp_path, {"checkpoints/checkpoint": index})
    result = _train_three_epochs(project, out)
    _resumed_at_epoch(result, 3)


@pytest.mark.slow
def test_P92_newest_checkpoint_truncated(project, finished_run, tmp_path):
    out = _damaged_copy(finished_run, tmp_path, {"checkpoints/ckpt-2.index": _halve})
    result = _train_three_epochs(project, out)
    _resumed_at_epoch(result, 2)
    assert re.search(r"warning: skipped unreadable ckpt-2: ", result.stderr)
    rows = (out / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]


@pytest.mark.slow
def test_P93_export_into_an_unwritable_directory(project, finished_run, tmp_path):
    out = _damaged_copy(finished_run, tmp_path, {})
    exports = out / "exports"
    exports.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(exports)]).returncode:
            pytest.skip("root without chattr: no directory is unwritable")
    else:
        exports.chmod(0o555)
    try:
        result = run_python(
            "-m", "proj", "export", "--output-dir", str(out), cwd=project
        )
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(exports)], check=True)
        exports.chmod(0o755)
    assert_project_refused(
        result,
        r"\[Errno (1|13)\] (Operation not permitted|Permission denied): "
        r"'.*exports/[^/']*'$",
    )
    assert list(exports.iterdir()) == []


@pytest.mark.slow
def test_P106_data_service_on_a_port_in_use(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_python(
            "-m", "proj", "data-service", "--port", str(port), cwd=project
        )
    assert_project_refused(
        result, rf"port {port} is not free \(.*\); choose another --port$"
    )


@pytest.mark.slow  # keeps the fast tier within its budget
def test_P107_data_service_worker_without_a_dispatcher(project):
    [port] = free_ports(1)
    command = ["data-service", "--port", str(port), "--dispatcher", "127.0.0.1:1"]
    result = run_python("-m", "proj", *command, cwd=project)
    assert_project_refused(
        result,
        r"no tf.data service dispatcher answers at '127.0.0.1:1' \(Connection "
        r"refused\); start one with the data-service command$",
    )
