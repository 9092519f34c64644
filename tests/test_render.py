"""Render matrix: every supported combination renders to clean, compiling code (no TF)."""

from __future__ import annotations

import compileall
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, generate
from generator import registry
from generator.formatting import format_source
from generator.spec import ProjectSpec

CORE_ARCHS = ["simple_cnn", "mlp", "mobilenet_v2", "resnet50"]
COMBOS = list(itertools.product(CORE_ARCHS, registry.LOOPS, registry.DATA_SOURCES))


def expected_files(package: str, data: str) -> set[str]:
    files = {
        ".copier-answers.yml",
        ".gitignore",
        "README.md",
        "pyproject.toml",
        f"{package}/__init__.py",
        f"{package}/__main__.py",
        f"{package}/config.py",
        f"{package}/benchmark.py",
        f"{package}/checkpoints.py",
        f"{package}/data.py",
        f"{package}/distribute.py",
        f"{package}/evaluate.py",
        f"{package}/export.py",
        f"{package}/model.py",
        f"{package}/predict.py",
        f"{package}/train.py",
        "tests/test_data.py",
        "tests/test_model.py",
        "tests/test_outputs.py",
        "tests/test_train.py",
    }
    if data == "sample":
        files.add(f"{package}/sample_data/digits.npz")
    if data in ("tfds", "folder", "npz"):
        files.add("tests/conftest.py")
    return files


def project_files(project: Path) -> set[str]:
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


def assert_clean(project: Path) -> None:
    """No template syntax left, black would change nothing, ruff passes, all compiles."""
    for path in project.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".md", ".toml", ".yml", ".cfg"}:
            text = path.read_text()
            for marker in ("{{", "{%", "%}", "{#"):
                assert marker not in text, f"{marker} left in {path}"
    for path in project.rglob("*.py"):
        source = path.read_text()
        assert format_source(source) == source, f"black would reformat {path}"
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    assert compileall.compile_dir(project, quiet=1, force=True, legacy=True)


@pytest.mark.parametrize("arch, loop, data", COMBOS, ids=["-".join(c) for c in COMBOS])
def test_combination_renders_clean(tmp_path, arch, loop, data):
    project = generate(tmp_path, "proj", arch=arch, loop=loop, data=data)
    assert project_files(project) == expected_files("proj", data)
    assert_clean(project)
    train = (project / "proj" / "train.py").read_text()
    assert ("GradientTape" in train) == (loop == "custom")
    assert ("model.fit(" in train) == (loop == "fit")
    model = (project / "proj" / "model.py").read_text()
    for other in CORE_ARCHS:
        keras_class = registry.ARCHITECTURES[other].keras_class
        if other != arch and keras_class:
            assert keras_class not in model  # only the chosen architecture appears
    data_py = (project / "proj" / "data.py").read_text()
    assert ("tfds.load" in data_py) == (data == "tfds")
    assert ("digits.npz" in data_py) == (data == "sample")


@pytest.mark.parametrize("arch", registry.ARCHITECTURES)
def test_every_architecture_renders_clean(tmp_path, arch):
    project = generate(tmp_path, "proj", arch=arch, loop="custom")
    assert_clean(project)
    info = registry.ARCHITECTURES[arch]
    model = (project / "proj" / "model.py").read_text()
    if info.is_application:
        assert f"keras.applications.{info.keras_class}(" in model
        assert "weights=None" in model and "include_top=False" in model
    data_py = (project / "proj" / "data.py").read_text()
    assert ("preprocess_input" in data_py) == (
        info.preprocessing == registry.PREPROCESS_INPUT
    )
    assert ("/ 255.0" in data_py) == (info.preprocessing == registry.RESCALE)


RUNTIME = [
    (loop, strategy, precision, jit)
    for loop in registry.LOOPS
    for strategy in registry.STRATEGIES
    for precision in registry.PRECISIONS
    for jit in (False, True)
    if not (loop == "fit" and strategy == "multiworker")
]


@pytest.mark.parametrize(
    "loop, strategy, precision, jit",
    RUNTIME,
    ids=["-".join(map(str, r)) for r in RUNTIME],
)
def test_strategy_precision_and_xla_render_clean(
    tmp_path, loop, strategy, precision, jit
):
    project = generate(
        tmp_path,
        "proj",
        loop=loop,
        strategy=strategy,
        precision=precision,
        jit_compile=jit,
    )
    assert_clean(project)
    distribute = (project / "proj" / "distribute.py").read_text()
    expected = {
        "default": "tf.distribute.get_strategy()",
        "mirrored": "tf.distribute.MirroredStrategy(",
        "multiworker": "tf.distribute.MultiWorkerMirroredStrategy()",
        "tpu": "tf.distribute.TPUStrategy(",
    }
    for name, call in expected.items():
        assert (call in distribute) == (name == strategy), call
    assert ("is_chief" in distribute) == (strategy == "multiworker")
    config = (project / "proj" / "config.py").read_text()
    assert f'precision: str = "{precision}"' in config
    assert f"jit_compile: bool = {jit}" in config


TRAINING = [(o, s) for o in registry.OPTIMIZERS for s in registry.LR_SCHEDULES]


@pytest.mark.parametrize(
    "optimizer, schedule", TRAINING, ids=["-".join(t) for t in TRAINING]
)
def test_optimizer_and_schedule_render_clean(tmp_path, optimizer, schedule):
    project = generate(tmp_path, "proj", optimizer=optimizer, lr_schedule=schedule)
    assert_clean(project)
    train = (project / "proj" / "train.py").read_text()
    classes = {"adam": "Adam(", "adamw": "AdamW(", "sgd": "SGD(", "rmsprop": "RMSprop("}
    for name, call in classes.items():
        assert (f"keras.optimizers.{call}" in train) == (name == optimizer), call
    assert ("CosineDecay(" in train) == (schedule == "cosine")
    config = (project / "proj" / "config.py").read_text()
    assert ("momentum: float" in config) == (optimizer in ("sgd", "rmsprop"))
    assert ("nesterov: bool" in config) == (optimizer == "sgd")
    assert ("warmup_epochs: float" in config) == (schedule == "cosine")
    expected_lr = 0.01 if optimizer == "sgd" else 0.001
    assert f"learning_rate: float = {expected_lr}" in config


@pytest.mark.parametrize("data", registry.DATA_SOURCES)
@pytest.mark.parametrize("augment", [False, True])
def test_augmentation_appears_only_when_chosen(tmp_path, data, augment):
    project = generate(tmp_path, "proj", data=data, augment=augment)
    assert_clean(project)
    data_py = (project / "proj" / "data.py").read_text()
    assert ("def make_augmenter" in data_py) == augment
    assert ("RandomRotation" in data_py) == augment
    config = (project / "proj" / "config.py").read_text()
    assert ("rotation: float" in config) == augment


BINARY = [
    (loop, data)
    for loop in registry.LOOPS
    for data in registry.DATA_SOURCES
    if data != "tfds"
]


@pytest.mark.parametrize("loop, data", BINARY, ids=["-".join(b) for b in BINARY])
def test_binary_task_renders_clean(tmp_path, loop, data):
    project = generate(tmp_path, "proj", task="binary", loop=loop, data=data)
    assert_clean(project)
    model = (project / "proj" / "model.py").read_text()
    assert 'activation="sigmoid"' in model and "softmax" not in model
    assert "BinaryCrossentropy" in model and "SparseCategorical" not in model
    assert 'AUC(name="auc")' in model


def test_copier_defaults_match_kgen_defaults():
    """Plain `copier copy` without kgen gives the same project as `kgen new --defaults`."""
    config = yaml.safe_load((REPO / "templates" / "copier.yml").read_text())
    answers = ProjectSpec(project_name="my-digits").answers()
    for key, value in answers.items():
        if key in ("project_name", "package_name"):
            continue
        assert config[key]["default"] == value, key


def test_black_check_agrees_with_in_process_formatting(tmp_path):
    """The black CLI, with the generated project's own config, sees nothing to change."""
    project = generate(tmp_path, "proj", loop="custom", data="tfds")
    result = subprocess.run(
        [sys.executable, "-m", "black", "--check", "."],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
