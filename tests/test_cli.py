"""The kgen command line, driven through typer's CliRunner."""

from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from generator import cli, registry

runner = CliRunner()


def kgen(*args: str, input: str | None = None):
    return runner.invoke(cli.app, list(args), input=input)


def test_new_with_defaults_writes_a_committed_project(tmp_path):
    result = kgen("new", str(tmp_path / "my-digits"), "--defaults")
    assert result.exit_code == 0, result.output
    project = tmp_path / "my-digits"
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["project_name"] == "my-digits"
    assert answers["package_name"] == "my_digits"
    assert answers["arch"] == "simple_cnn" and answers["loop"] == "fit"
    assert answers["data"] == "sample" and answers["task"] == "multiclass"
    assert (project / "my_digits" / "train.py").is_file()
    assert (project / ".git").is_dir()
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".")
    ]  # no staging left


def test_options_reach_the_answers(tmp_path):
    result = kgen(
        "new",
        str(tmp_path / "net"),
        "--arch",
        "mobilenet_v2",
        "--loop",
        "custom",
        "--data",
        "synthetic",
        "--image-size",
        "48",
        "--num-classes",
        "4",
    )
    assert result.exit_code == 0, result.output
    answers = yaml.safe_load((tmp_path / "net" / ".copier-answers.yml").read_text())
    assert answers["arch"] == "mobilenet_v2" and answers["loop"] == "custom"
    assert answers["image_size"] == 48 and answers["num_classes"] == 4
    assert answers["channels"] == 3  # MobileNetV2 needs RGB
    assert answers["keras_class"] == "MobileNetV2"


def test_missing_options_are_prompted_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_interactive", lambda defaults: not defaults)
    # arch, task, loop, data, image size, channels, classes
    answers = "mlp\n\ncustom\n\n20\n\n\n"
    result = kgen("new", str(tmp_path / "asked"), input=answers)
    assert result.exit_code == 0, result.output
    recorded = yaml.safe_load((tmp_path / "asked" / ".copier-answers.yml").read_text())
    assert (recorded["arch"], recorded["loop"], recorded["image_size"]) == (
        "mlp",
        "custom",
        20,
    )
    assert recorded["task"] == "multiclass" and recorded["channels"] == 1


def test_defaults_flag_never_prompts(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_interactive", lambda defaults: not defaults)
    result = kgen("new", str(tmp_path / "quiet"), "--defaults", input="")
    assert result.exit_code == 0, result.output


def test_list_shows_every_choice_with_input_sizes():
    result = kgen("list")
    assert result.exit_code == 0
    for name in [
        *registry.ARCHITECTURES,
        *registry.TASKS,
        *registry.LOOPS,
        *registry.DATA_SOURCES,
    ]:
        assert re.search(rf"^\s+{name}\s", result.output, re.MULTILINE), name
    inception = next(
        line for line in result.output.splitlines() if "inception_v3" in line
    )
    assert " 75 " in inception and "299" in inception
    nasnet = next(line for line in result.output.splitlines() if "nasnet_large" in line)
    assert "331*" in nasnet


BAD_INPUTS = [
    (
        ["--arch", "mobilenetv2"],
        r"unknown architecture 'mobilenetv2' \(did you mean 'mobilenet_v2'\?\); valid: simple_cnn, mlp",
    ),
    (["--arch", "resnet"], r"unknown architecture 'resnet'.*valid:"),
    (
        ["--task", "multiclas"],
        r"unknown task 'multiclas' \(did you mean 'multiclass'\?\)",
    ),
    (
        ["--loop", "custon"],
        r"unknown loop 'custon' \(did you mean 'custom'\?\); valid: fit, custom",
    ),
    (["--data", "tfsd"], r"unknown data source 'tfsd' \(did you mean 'tfds'\?\)"),
    (
        ["--arch", "inception_v3", "--image-size", "32"],
        r"--image-size 32 is too small for inception_v3: the minimum is 75",
    ),
    (
        ["--arch", "nasnet_mobile", "--image-size", "256"],
        r"--image-size 256 is not valid for nasnet_mobile: it only accepts 224",
    ),
    (
        ["--arch", "resnet50", "--channels", "1"],
        r"--channels 1 is not valid for resnet50: it needs 3",
    ),
    (
        ["--channels", "2"],
        r"--channels 2 is not valid: use 1 \(grayscale\) or 3 \(RGB\)",
    ),
    (
        ["--data", "synthetic", "--num-classes", "1"],
        r"--num-classes must be at least 2",
    ),
    (
        ["--num-classes", "5"],
        r"--num-classes 5 does not match the sample data, which has 10 classes",
    ),
    (["--epochs", "-1"], r"--epochs must be a positive integer, got -1"),
    (["--batch-size", "0"], r"--batch-size must be a positive integer, got 0"),
    (["--learning-rate", "0"], r"--learning-rate must be > 0"),
    (
        ["--data", "tfds", "--tfds-name", "Not A Name"],
        r"--tfds-name 'Not A Name' is not a tfds dataset name",
    ),
]


@pytest.mark.parametrize(
    "options, message", BAD_INPUTS, ids=[" ".join(o) for o, _ in BAD_INPUTS]
)
def test_bad_option_is_one_clear_line_and_writes_nothing(tmp_path, options, message):
    result = kgen("new", str(tmp_path / "proj"), "--defaults", *options)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("kgen: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, message",
    [
        ("1digits", r"project name '1digits' is not valid: start with a letter"),
        ("my digits", r"project name 'my digits' is not valid"),
        ("class", r"gives package 'class', not a valid Python name"),
        ("json", r"gives package 'json', which would shadow the module"),
        ("tensorflow", r"would shadow the module"),
    ],
)
def test_bad_project_name(tmp_path, name, message):
    result = kgen("new", str(tmp_path / name), "--defaults")
    assert result.exit_code == 2
    assert re.search(message, result.output), result.output
    assert list(tmp_path.iterdir()) == []


def test_destination_not_empty_is_left_untouched(tmp_path):
    project = tmp_path / "taken"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    result = kgen("new", str(project), "--defaults")
    assert result.exit_code == 2
    assert "exists and is not empty" in result.output
    assert [p.name for p in project.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_destination_is_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = kgen("new", str(tmp_path / "afile"), "--defaults")
    assert result.exit_code == 2
    assert "is a file" in result.output
    assert (tmp_path / "afile").read_text() == "x"


def test_empty_destination_directory_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    result = kgen("new", str(tmp_path / "empty"), "--defaults")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "empty" / "empty" / "train.py").is_file()


def test_missing_parent_directory(tmp_path):
    result = kgen("new", str(tmp_path / "no" / "such" / "proj"), "--defaults")
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_failure_while_rendering_leaves_nothing(tmp_path, monkeypatch):
    import generator.render

    def broken_git(root):
        raise RuntimeError("disk full")

    monkeypatch.setattr(generator.render, "_git_init", broken_git)
    result = kgen("new", str(tmp_path / "proj"), "--defaults")
    assert result.exit_code != 0
    assert list(tmp_path.iterdir()) == []


def test_generator_never_imports_tensorflow():
    code = (
        "import sys, generator.cli, generator.render, generator.spec\n"
        "heavy = {'tensorflow', 'keras', 'tensorflow_datasets'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
