"""Render matrix: every supported combination renders to clean, compiling code (no TF)."""

from __future__ import annotations

import ast
import compileall
import difflib
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml

from conftest import REPO, generate, template_syntax
from generator import jinja_black, registry
from generator.formatting import format_source
from generator.pythons import SUPPORTED
from generator.spec import ProjectSpec

CORE_ARCHS = ["simple_cnn", "mlp", "mobilenet_v2", "resnet50"]
COMBOS = list(itertools.product(CORE_ARCHS, registry.LOOPS, registry.DATA_SOURCES))


def tiered(cases: list[tuple], fast: list[tuple]) -> list:
    """pytest params: the `fast` cases run in every tier, the rest only with the slow
    tests (in CI), so a contributor's `pytest -m "not slow"` stays within minutes."""
    return [
        (
            pytest.param(*case, id="-".join(map(str, case)))
            if case in fast
            else pytest.param(
                *case, id="-".join(map(str, case)), marks=pytest.mark.slow
            )
        )
        for case in cases
    ]


@pytest.fixture(autouse=True)
def templates_are_written_formatted(monkeypatch):
    """Every render here must already be black-formatted before black runs: templates
    are written as the code they produce, and black at generation time only has work
    when a user's value (a long name) makes a line long, which keeps `kgen new` fast."""

    def unchanged(source: str) -> str:
        formatted = format_source(source)
        diff = difflib.unified_diff(
            source.splitlines(True), formatted.splitlines(True), "rendered", "black"
        )
        assert formatted == source, "template renders unformatted code:\n" + "".join(
            diff
        )
        return formatted

    monkeypatch.setattr(jinja_black, "format_source", unchanged)


def expected_files(package: str, data: str) -> set[str]:
    files = {
        ".copier-answers.yml",
        ".github/workflows/test.yml",
        ".gitignore",
        ".pre-commit-config.yaml",
        "Makefile",
        "README.md",
        "pyproject.toml",
        f"{package}/__init__.py",
        *(
            f"{package}/{module}.py"
            for module in (
                "__main__",
                "artifacts",
                "benchmark",
                "checkpoints",
                "config",
                "data",
                "distribute",
                "errors",
                "evaluate",
                "export",
                "health",
                "images",
                "loop",
                "lr_find",
                "model",
                "optimization",
                "predict",
                "prepared",
                "data_service",
                "report",
                "runs",
                "serving",
                "startup",
                "task",
                "trace",
                "train",
            )
        ),
        "tests/conftest.py",
        "tests/test_data.py",
        "tests/test_health.py",
        "tests/test_model.py",
        "tests/test_outputs.py",
        "tests/test_prepared.py",
        "tests/test_report.py",
        "tests/test_runs.py",
        "tests/test_train.py",
    }
    if data == "sample":
        files.add(f"{package}/sample_data/digits.npz")
    if data != "tfrecord":  # its data is read by prepared.py
        files.add(f"{package}/sources.py")
    if data != "synthetic":  # evaluate --data-dir: a test set
        files.add(f"{package}/test_set.py")
    return files


def read(project: Path, *modules: str) -> str:
    """The generated package's modules, concatenated."""
    return "".join(
        (project / "proj" / f"{module}.py").read_text() for module in modules
    )


def project_files(project: Path) -> set[str]:
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


def assert_clean(project: Path) -> None:
    """No template syntax left, black would change nothing, ruff passes, all compiles.

    `project` may also be a directory of projects: ruff reads each one's own config.
    """
    for path in project.rglob("*"):
        if path.is_file() and (
            path.suffix in {".py", ".md", ".toml", ".yml", ".yaml", ".cfg"}
            or path.name == "Makefile"
        ):
            assert not template_syntax(path.read_text()), path
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


@pytest.mark.parametrize(
    "arch, loop, data",
    tiered(COMBOS, fast=[c for i, c in enumerate(COMBOS) if i % 5 == 0]),
)
def test_combination_renders_clean(tmp_path, arch, loop, data):
    project = generate(tmp_path, "proj", arch=arch, loop=loop, data=data)
    assert project_files(project) == expected_files("proj", data)
    assert_clean(project)
    train = read(project, "train", "loop")
    assert ("GradientTape" in train) == (loop == "custom")
    assert ("model.fit(" in train) == (loop == "fit")
    model = read(project, "model")
    for other in CORE_ARCHS:
        keras_class = registry.ARCHITECTURES[other].keras_class
        if other != arch and keras_class:
            assert keras_class not in model  # only the chosen architecture appears
    sources = read(project, "prepared" if data == "tfrecord" else "sources")
    assert ("tfds.load" in sources) == (data == "tfds")
    assert ("digits.npz" in sources) == (data == "sample")


TASK_LOOPS = list(itertools.product(registry.TASKS, registry.LOOPS))


@pytest.mark.slow
@pytest.mark.parametrize("arch", registry.ARCHITECTURES)
def test_every_architecture_renders_clean(tmp_path, arch):
    """Every architecture: clean, compiling, its backbone and preprocessing, the right
    head. The task and loop go round in turn (each pair with five or more
    architectures): the head and the loop are the same code whatever the backbone,
    and test_every_task_loop_and_source_renders_clean renders each pair's own."""
    index = list(registry.ARCHITECTURES).index(arch)
    task, loop = TASK_LOOPS[index % len(TASK_LOOPS)]
    info = registry.ARCHITECTURES[arch]
    project = generate(tmp_path, "proj", arch=arch, task=task, loop=loop)
    assert HEADS[task] in read(project, "task"), (task, loop)
    model = read(project, "model")
    if info.is_application:
        assert f"keras.applications.{info.keras_class}(" in model
        assert "weights=None" in model and "include_top=False" in model
    data_py = read(project, "data")
    assert ("preprocess_input" in data_py) == (
        info.preprocessing == registry.PREPROCESS_INPUT
    )
    assert ("/ 255.0" in data_py) == (info.preprocessing == registry.RESCALE)
    assert_clean(project)


FAMILY_REPRESENTATIVES = list(
    {arch.family: name for name, arch in registry.ARCHITECTURES.items()}.values()
)


@pytest.mark.parametrize("arch", FAMILY_REPRESENTATIVES)
def test_each_family_renders_clean(tmp_path, arch):
    """An architecture of each family (tasks and loops in turn): its backbone and
    preprocessing; its recipe is the generated default, with its source beside it, and
    BatchNormalization momentum is configurable exactly for models that have the layer.
    The slow tier renders every architecture."""
    index = FAMILY_REPRESENTATIVES.index(arch)
    task, loop = TASK_LOOPS[index % len(TASK_LOOPS)]
    info = registry.ARCHITECTURES[arch]
    project = generate(tmp_path, "proj", arch=arch, task=task, loop=loop, augment=True)
    assert HEADS[task] in read(project, "task"), arch
    if info.is_application:
        assert f"keras.applications.{info.keras_class}(" in read(project, "model")
    assert ("preprocess_input" in read(project, "data")) == (
        info.preprocessing == registry.PREPROCESS_INPUT
    )
    assert_clean(project)
    recipe = registry.recipe(info)
    config = read(project, "config")
    for name, value in [
        ("zoom: float", recipe.augment_strength),
        ("learning_rate: float", recipe.learning_rate),
        ("weight_decay: float", recipe.weight_decay),
        ("warmup_epochs: float", recipe.warmup_epochs),
        ("dropout: float", recipe.dropout),
        ("epochs: int", recipe.epochs),
    ]:
        assert f"{name} = field(default={value}," in config, name
    smoothed = recipe.label_smoothing > 0 and task != "regression"  # a class loss's
    assert ("label_smoothing: float" in config) == smoothed
    assert " ".join(recipe.source.split()[:4]) in " ".join(config.split())
    assert ("batchnorm_momentum" in config) == info.batchnorm
    train = read(project, "optimization")
    classes = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
    assert f"keras.optimizers.{classes[recipe.optimizer]}(" in train
    assert "exclude_from_weight_decay" in train


# The output layer of each task's head, as it appears in task.py.
HEADS = {
    "multiclass": 'num_outputs, activation="softmax", dtype="float32"',
    "binary": '1, activation="sigmoid", dtype="float32"',
    "multilabel": 'num_outputs, activation="sigmoid", dtype="float32"',
    "regression": 'keras.layers.Dense(num_outputs, dtype="float32", name="values")',
}
LOSSES = {
    "multiclass": "keras.losses.SparseCategoricalCrossentropy(",
    "binary": "keras.losses.BinaryCrossentropy(",
    "multilabel": "keras.losses.BinaryCrossentropy(",
    "regression": "keras.losses.MeanSquaredError(",
}
METRICS = {
    "multiclass": ['SparseCategoricalAccuracy(name="accuracy")'],
    "binary": ['BinaryAccuracy(name="accuracy")', 'AUC(name="auc")'],
    "multilabel": ['BinaryAccuracy(name="binary_accuracy")', 'AUC(name="auc")'],
    "regression": [
        'MeanAbsoluteError(name="mae")',
        'RootMeanSquaredError(name="rmse")',
    ],
}
EVALUATION = {
    "multiclass": "per_class.csv",
    "binary": "per_class.csv",
    "multilabel": "per_label.csv",
    "regression": "per_target.csv",
}
# Every task x loop x source. The fast tier renders each (task, source) pair in one loop,
# the loops alternating, so it still has every task, source and loop; the slow tier
# renders the other half.
TASK_SOURCES = [
    pytest.param(
        task,
        loop,
        data,
        id=f"{task}-{loop}-{data}",
        marks=[pytest.mark.slow] if (ti + li + di) % 2 else [],
    )
    for (ti, task), (li, loop), (di, data) in itertools.product(
        enumerate(registry.TASKS),
        enumerate(registry.LOOPS),
        enumerate(registry.DATA_SOURCES),
    )
]


@pytest.mark.parametrize("task, loop, data", TASK_SOURCES)
def test_every_task_loop_and_source_renders_clean(tmp_path, task, loop, data):
    project = generate(tmp_path, "proj", task=task, loop=loop, data=data)
    assert project_files(project) == expected_files("proj", data)
    assert_clean(project)
    model = read(project, "model", "task")
    assert HEADS[task] in model
    for other, head in HEADS.items():
        assert (head in model) == (other == task), other  # only the chosen head
    assert LOSSES[task] in model
    for metric in METRICS[task]:
        assert metric in model
    evaluate = read(project, "evaluate", "report")
    for name in set(EVALUATION.values()):
        assert (name in evaluate) == (name == EVALUATION[task]), name
    assert ("confusion_matrix" in evaluate) == (task in ("multiclass", "binary"))
    if data == "tfrecord":  # no sources.py: prepared.py reads the shards
        assert "Path(cfg.data_dir), cfg, worker, num_workers" in read(project, "data")
    else:
        assert ("labels.csv" in read(project, "sources")) == (
            data == "folder" and task in ("multilabel", "regression")
        )
    # Folder data decides the number of classes, labels or targets (binary needs 2).
    assert ("with_outputs(cfg, names)" in read(project, "data")) == (
        data == "folder" and task != "binary"
    )
    # Serving paths load no evaluation code or plotting library.
    for module in ("predict", "export", "task", "images", "artifacts"):
        assert "evaluate" not in read(project, module), module
        assert "matplotlib" not in read(project, module), module
    # The shared core never names a task or a data source.
    core = read(project, "data", "train", "evaluate", "predict")
    for word in ("multiclass", "multilabel", "regression", "tfds", "labels.csv"):
        assert word not in core, word


@pytest.mark.parametrize(
    "task, options, expected, absent",
    [
        (
            "multiclass",
            dict(label_smoothing=0.1),
            [
                "label_smoothing: float = field(default=0.1",
                "SparseCrossentropyWithSmoothing(",
            ],
            ["SparseCategoricalCrossentropy("],
        ),
        (
            "multilabel",
            dict(label_smoothing=0.05),
            [
                "label_smoothing: float = field(default=0.05",
                "label_smoothing=cfg.label_smoothing",
            ],
            ["SparseCrossentropyWithSmoothing"],
        ),
        (
            "regression",
            dict(loss="huber"),
            [
                "huber_delta: float = field(default=1.0",
                "keras.losses.Huber(delta=cfg.huber_delta",
            ],
            ["keras.losses.MeanSquaredError(", "label_smoothing"],
        ),
        (
            "multiclass",
            {},
            ["SparseCategoricalCrossentropy("],
            ["label_smoothing", "huber"],
        ),
    ],
)
def test_loss_options_appear_only_when_chosen(
    tmp_path, task, options, expected, absent
):
    project = generate(tmp_path, "proj", task=task, loop="custom", **options)
    assert_clean(project)
    code = read(project, "config", "task")
    for text in expected:
        assert text in code, text
    for text in absent:
        assert text not in code, text


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
    tiered(
        RUNTIME,
        fast=[
            ("fit", "default", "float32", False),
            ("fit", "mirrored", "mixed_float16", True),
            ("custom", "multiworker", "mixed_bfloat16", False),
            ("custom", "tpu", "float32", True),
        ],
    ),
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
    assert f'precision: str = field(default="{precision}"' in config
    assert f"jit_compile: bool = {jit}" in config


TRAINING = [(o, s) for o in registry.OPTIMIZERS for s in registry.LR_SCHEDULES]


@pytest.mark.parametrize(
    "optimizer, schedule", TRAINING, ids=["-".join(t) for t in TRAINING]
)
def test_optimizer_and_schedule_render_clean(tmp_path, optimizer, schedule):
    project = generate(tmp_path, "proj", optimizer=optimizer, lr_schedule=schedule)
    assert_clean(project)
    train = read(project, "optimization")
    classes = {"adam": "Adam(", "adamw": "AdamW(", "sgd": "SGD(", "rmsprop": "RMSprop("}
    for name, call in classes.items():
        assert (f"keras.optimizers.{call}" in train) == (name == optimizer), call
    assert ("CosineDecay(" in train) == (schedule == "cosine")
    config = (project / "proj" / "config.py").read_text()
    assert ("momentum: float" in config) == (optimizer in ("sgd", "rmsprop"))
    assert ("nesterov: bool" in config) == (optimizer == "sgd")
    assert ("warmup_epochs: float" in config) == (schedule == "cosine")
    expected_lr = 0.1 if optimizer == "sgd" else 0.008  # simple_cnn's recipe: adam
    assert f"learning_rate: float = field(default={expected_lr}," in config


@pytest.mark.parametrize("strategy", ["default", "mirrored", "multiworker"])
def test_sync_batchnorm_is_offered_only_under_replication(tmp_path, strategy):
    project = generate(
        tmp_path, "proj", arch="mobilenet_v2", loop="custom", strategy=strategy
    )
    assert_clean(project)
    config = (project / "proj" / "config.py").read_text()
    assert ("sync_batchnorm: bool = False" in config) == (strategy != "default")
    model = (project / "proj" / "model.py").read_text()
    assert ("layer.synchronized" in model) == (strategy != "default")


@pytest.mark.parametrize("data", registry.DATA_SOURCES)
@pytest.mark.parametrize("augment", [False, True])
def test_augmentation_appears_only_when_chosen(tmp_path, data, augment):
    project = generate(tmp_path, "proj", data=data, augment=augment)
    assert_clean(project)
    data_py = read(project, "data")
    assert ("def make_augmenter" in data_py) == augment
    assert ("RandomRotation" in data_py) == augment
    config = (project / "proj" / "config.py").read_text()
    assert ("rotation: float" in config) == augment


# Training options (issue 14, point 8): each alone, none, and all together.
OPTION_SETS = [
    (),
    ("randaugment",),
    ("class_weights",),
    ("plateau",),
    ("ema",),
    ("keep_best",),
    ("randaugment", "class_weights", "plateau", "ema", "keep_best"),
]
OPTION_CASES = [(loop, chosen) for loop in registry.LOOPS for chosen in OPTION_SETS]


@pytest.mark.parametrize(
    "loop, chosen",
    tiered(OPTION_CASES, fast=[c for c in OPTION_CASES if len(c[1]) > 1]),
)
def test_training_options_appear_only_when_chosen(tmp_path, loop, chosen):
    options = {name: True for name in chosen if name != "plateau"}
    if "plateau" in chosen:
        options["lr_schedule"] = "plateau"
    project = generate(tmp_path, "proj", loop=loop, **options)
    assert_clean(project)
    code = read(project, "data", "optimization", "loop", "checkpoints", "config")
    modules = {
        "class_weights": "class_weights",
        "plateau": "plateau",
        "keep_best": "best",
    }
    for option, module in modules.items():
        assert (project / "proj" / f"{module}.py").is_file() == (option in chosen)
        code += read(project, module) if option in chosen else ""
    assert ("RandAugment(" in code) == ("randaugment" in chosen)
    assert ("class_weights.balanced(" in code) == ("class_weights" in chosen)
    assert ("loss_fn(labels, predictions, sample_weight=weights)" in code) == (
        "class_weights" in chosen and loop == "custom"
    )
    assert ("ReduceOnPlateau(" in code) == ("plateau" in chosen)
    assert ("CosineDecay" in code) == ("plateau" not in chosen)
    assert ("use_ema=True" in code) == ("ema" in chosen)
    assert ("SwapEMAWeights" in code) == ("ema" in chosen)
    assert ("finalize_variable_values" in code) == (
        "ema" in chosen and loop == "custom"
    )
    assert ("best.keras" in code) == ("keep_best" in chosen)
    tests = {"class_weights", "plateau", "ema", "keep_best"}
    names = {"keep_best": "best"}
    for option in tests:
        test = project / "tests" / f"test_{names.get(option, option)}.py"
        assert test.is_file() == (option in chosen), test
    readme = (project / "README.md").read_text()
    assert ("## Training options" in readme) == bool(chosen)


@pytest.mark.parametrize(
    "options",
    [{}, {"tune": True}, {"tune": True, "augment": True, "randaugment": True}],
    ids=["no-tune", "tune", "tune-augmented"],
)
def test_tune_appears_only_when_chosen(tmp_path, options):
    project = generate(tmp_path, "proj", **options)
    assert_clean(project)
    tune = bool(options)
    assert (project / "proj" / "tune.py").is_file() == tune
    assert (project / "tests" / "test_tune.py").is_file() == tune
    config = (project / "proj" / "config.py").read_text()
    assert ("class TuneConfig" in config) == tune
    assert ("zoom: list =" in config) == ("augment" in options)
    assert ("randaugment_factor: list =" in config) == ("randaugment" in options)
    assert ('"optuna' in (project / "pyproject.toml").read_text()) == tune
    assert ('"tune"' in read(project, "__main__")) == tune
    assert ("tune:" in (project / "Makefile").read_text()) == tune


@pytest.mark.parametrize("tracking", list(registry.TRACKING))
def test_mlflow_tracking_appears_only_when_chosen(tmp_path, tracking):
    project = generate(tmp_path, "proj", tracking=tracking)
    assert_clean(project)
    mlflow = tracking == "mlflow"
    assert (project / "proj" / "tracking.py").is_file() == mlflow
    assert (project / "tests" / "test_tracking.py").is_file() == mlflow
    assert ("MLflowLogger(outdir, cfg)" in read(project, "checkpoints")) == mlflow
    assert ('"mlflow-skinny' in (project / "pyproject.toml").read_text()) == mlflow
    assert ("mlflow.db" in (project / ".gitignore").read_text()) == mlflow


MIX_CASES = [
    (mix, task)
    for mix in registry.MIXES
    for task in ("multiclass", "binary", "multilabel")
]


@pytest.mark.parametrize(
    "mix, task", tiered(MIX_CASES, fast=[c for c in MIX_CASES if c[1] == "multiclass"])
)
def test_mixing_appears_only_when_chosen(tmp_path, mix, task):
    project = generate(tmp_path, "proj", mix=mix, task=task, loop="custom")
    assert_clean(project)
    mixed = mix != "none"
    assert (project / "proj" / "mixing.py").is_file() == mixed
    assert (project / "tests" / "test_mixing.py").is_file() == mixed
    code = read(project, "data", "task", "config") + (
        read(project, "mixing") if mixed else ""
    )
    assert ("keras.layers.MixUp(" in code) == (mix == "mixup")
    assert ("keras.layers.CutMix(" in code) == (mix == "cutmix")
    assert ("mixup_alpha" in code) == (mix == "mixup")
    assert ("cutmix_factor" in code) == (mix == "cutmix")
    # Multiclass trains on mixed class probabilities and validates on class indices.
    assert ("class Crossentropy" in code) == (mixed and task == "multiclass")


def test_copier_defaults_match_kgen_defaults():
    """Plain `copier copy` without kgen gives the same project as `kgen new --defaults`;
    defaults that depend on the task or data source (Jinja in copier.yml) agree for all.
    """
    config = yaml.safe_load((REPO / "templates" / "copier.yml").read_text())
    # As copier does: with the template's extensions, which give kgen's own values.
    jinja = jinja2.Environment(extensions=config["_jinja_extensions"])
    for task, data in itertools.product(registry.TASKS, registry.DATA_SOURCES):
        answers = ProjectSpec(project_name="my-digits", task=task, data=data).answers()
        everything = (task, data) == ("multiclass", "sample")
        for key, value in answers.items():
            default = config[key].get("default")
            if isinstance(default, str) and "{{" in default:
                default = jinja.from_string(default).render(**answers)
                if config[key]["type"] == "bool":  # copier casts the rendered text
                    default = default == "True"
            elif not everything or key in ("project_name", "package_name"):
                continue
            assert default == value, (task, data, key)


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


def test_fit_rounds_a_pass_up_to_long_compiled_calls(tmp_path):
    """fit's epoch (one pass, 23 steps for the sample) is rounded up so each compiled
    call runs limit/2..limit steps: exhaustively, for every pass length and limit."""
    project = generate(tmp_path, "proj", loop="fit")
    tree = ast.parse(read(project, "loop"))
    namespace: dict = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "_long_calls":
            exec(compile(ast.Module([node], []), "loop.py", "exec"), namespace)
    long_calls = namespace["_long_calls"]
    assert long_calls(23, 16) == 24  # 2 calls of 12 instead of 23 of 1
    for limit in range(1, 33):
        for steps in range(1, 400):
            total = long_calls(steps, limit)
            assert steps <= total < steps + max(1, (limit + 1) // 2)
            if steps > limit:
                assert any(
                    total % size == 0 for size in range((limit + 1) // 2, limit + 1)
                )
            else:
                assert total == steps


def test_project_tooling_parses_and_runs_commands_that_exist(tmp_path):
    """The Makefile, CI workflow and pre-commit config of a generated project: each
    parses, and every command they run exists (run with --help, in kgen's environment,
    which has the project's dependencies); .gitignore keeps data, runs and caches out.
    """
    project = generate(tmp_path, "proj", data="folder", num_classes=2)
    makefile = (project / "Makefile").read_text()
    targets = re.search(r"^\.PHONY: (.*)$", makefile, re.M).group(1).split()
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.M), target
    workflow = yaml.safe_load((project / ".github/workflows/test.yml").read_text())
    job = workflow["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == [SUPPORTED[0], SUPPORTED[-1]]
    runs = [step["run"] for step in job["steps"] if "run" in step]
    assert runs and all(run.split()[:1] == ["make"] for run in runs)
    assert {run.split()[1] for run in runs} <= set(targets)

    # As typed in a shell, not inside `make test` (which passes its own flags down).
    outside_make = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    }
    commands = []
    for target in targets:
        dry = subprocess.run(
            ["make", "--no-print-directory", "-n", target, f"PYTHON={sys.executable}"],
            cwd=project,
            capture_output=True,
            text=True,
            env=outside_make,
        )
        assert dry.returncode == 0, dry.stderr
        commands += [shlex.split(line) for line in dry.stdout.splitlines()]
    hooks = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    for hook in hooks["repos"][0]["hooks"]:
        command = shlex.split(hook["entry"])
        assert command[0] == "python" and hook["language"] == "system"
        commands.append([sys.executable, *command[1:]])
    for command in commands:
        assert command[:2] == [sys.executable, "-m"], command
        if command[2] == "pip":  # installs: not run here
            continue
        result = subprocess.run(
            [*command, "--help"], cwd=project, capture_output=True, text=True
        )
        assert result.returncode == 0, (command, result.stderr[-2000:])

    ignored = ["data/cats/1.png", "runs/latest", ".venv/bin/python", ".hypothesis/x"]
    ignored += ["proj/__pycache__/a.pyc", ".pytest_cache/x", ".ruff_cache/x"]
    kept = ["proj/config.py", "tests/test_runs.py", "Makefile", "proj/data.py"]
    check = subprocess.run(
        ["git", "check-ignore", "--no-index", *ignored, *kept],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert check.stdout.split() == ignored


@pytest.mark.parametrize("loop", list(registry.LOOPS))
@pytest.mark.parametrize("weights", ["none", "imagenet", "file"])
def test_pretrained_weights_appear_only_when_chosen(tmp_path, loop, weights):
    if weights == "file":  # recorded as an absolute path
        (tmp_path / "start.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
        weights = os.path.relpath(tmp_path / "start.weights.h5")
    project = generate(
        tmp_path, "proj", arch="mobilenet_v2", loop=loop, weights=weights
    )
    assert_clean(project)
    pretrained = weights != "none"
    assert (project / "proj" / "fine_tuning.py").is_file() == pretrained
    assert (project / "tests" / "test_fine_tuning.py").is_file() == pretrained
    conftest = (project / "tests" / "conftest.py").read_text()
    assert ("def offline_weights" in conftest) == pretrained
    code = read(project, "model", "loop", "optimization", "config", "export")
    assert ("FineTuning(cfg.train" in code) == pretrained
    assert ("FineTuningRate(" in code) == pretrained
    assert ("make_train_function" in code) == (pretrained and loop == "fit")
    recorded = (
        "imagenet" if weights == "imagenet" else str(tmp_path / "start.weights.h5")
    )
    assert (f"default={json.dumps(recorded)}," in code) == pretrained
    assert ("weights=cfg.weights" in code) == pretrained
    # Frozen pretrained BatchNormalization keeps its statistics: no momentum to size.
    assert ("batchnorm_momentum" in code) == (not pretrained)
    readme = (project / "README.md").read_text()
    assert ("## Pretrained start and fine-tuning" in readme) == pretrained
    assert ("Downloading ImageNet weights" in readme) == (weights == "imagenet")
