"""Property-based tests (hypothesis) of every parser of kgen's input: options, numbers,
choice strings and project names. Any input is either accepted, and then gives a spec
whose every value is in range (and, for a few examples, a project that compiles), or is
refused with one `kgen: error:` line, exit 2, leaving nothing behind."""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from dataclasses import fields
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import generate, template_syntax
from generator import cli, registry, spec
from generator.spec import ProjectSpec, SpecError

# No example database in the checkout; no deadline (the first examples import copier).
FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

CHOICES = registry.CHOICES
INTS = ["image_size", "channels", "num_classes", "epochs", "batch_size"]
FLOATS = ["learning_rate", "label_smoothing"]

integers = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([0, -1, 1, 2, 3, 10, 1024, 1025, 65_536, 2**31, 2**63, 10**30]),
    st.integers(),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-12, 0.001, 0.1, 0.99, 1.0, 10.0, 10.5, 1e308]),
    st.integers(-5, 5),
)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)


def choice(table: dict) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(list(table)), st.text(max_size=12))


# On/off flags (--augment/--no-augment): drawn, but not spelled as "--flag VALUE".
BOOLEANS = (
    "augment",
    "jit_compile",
    "randaugment",
    "class_weights",
    "keep_best",
    "ema",
)


@st.composite
def spec_values(draw) -> dict[str, object]:
    """Keyword arguments for ProjectSpec: mostly of the right type, sometimes anything."""
    values: dict[str, object] = {}
    for name, table in CHOICES.items():
        values[name] = draw(st.one_of(st.none(), choice(table)))
    for name in INTS:
        values[name] = draw(st.one_of(st.none(), integers))
    for name in FLOATS:
        values[name] = draw(st.one_of(st.none(), numbers))
    values["tfds_name"] = draw(st.one_of(st.none(), st.text(max_size=12)))
    values["weights"] = draw(
        st.one_of(st.sampled_from(["none", "imagenet"]), st.text(max_size=12))
    )
    for name in BOOLEANS:
        values[name] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:  # one field of the wrong type
        name = draw(st.sampled_from([f.name for f in fields(ProjectSpec)]))
        values[name] = draw(anything)
    for name in (
        "arch",
        "task",
        "loop",
        "data",
        "strategy",
        "precision",
        "lr_schedule",
        "tracking",
        "mix",
    ):
        if values[name] is None:
            del values[name]  # not optional: None means "the dataclass default"
    if values.get("batch_size") is None:
        values.pop("batch_size", None)
    return values


def assert_in_range(resolved: ProjectSpec) -> None:
    """What an accepted spec guarantees to the template."""
    arch = resolved.architecture
    assert arch.min_size <= resolved.image_size <= spec.MAX_IMAGE_SIZE
    assert resolved.channels in (1, 3)
    assert 1 <= resolved.num_classes <= spec.MAX_OUTPUTS
    assert 1 <= resolved.epochs <= spec.MAX_EPOCHS
    assert 1 <= resolved.batch_size <= spec.MAX_BATCH_SIZE
    assert math.isfinite(resolved.learning_rate)
    assert 0 < resolved.learning_rate <= spec.MAX_LEARNING_RATE
    assert math.isfinite(resolved.label_smoothing)
    assert 0 <= resolved.label_smoothing < 1
    answers = resolved.answers()
    for value in answers.values():
        assert not isinstance(value, float) or math.isfinite(value)
    assert yaml.safe_load(yaml.safe_dump(answers)) == answers


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message


@FAST
@given(spec_values())
def test_any_values_resolve_in_range_or_are_refused_in_one_line(values):
    try:
        resolved = ProjectSpec(**{"project_name": "proj", **values}).resolve()
    except SpecError as error:
        assert_one_line(str(error))
        return
    assert_in_range(resolved)


def _argv(values: dict[str, object]) -> list[str]:
    """The command-line spelling of spec values: each as text, as a user could type it."""
    argv = []
    for name, value in values.items():
        if value is None or name in (*BOOLEANS, "project_name"):
            continue
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def run_new(path: Path, argv: list[str]):
    """`kgen new PATH --defaults ARGV` with rendering replaced by a recorder."""
    rendered = []
    with mock.patch(
        "generator.render.create_project",
        lambda resolved, destination: rendered.append(resolved),
    ):
        result = CliRunner().invoke(cli.app, ["new", str(path), "--defaults", *argv])
    return result, rendered


@FAST
@given(spec_values(), st.lists(st.text(max_size=6), max_size=2))
def test_any_command_line_is_accepted_in_range_or_refused_in_one_line(values, extra):
    with tempfile.TemporaryDirectory() as scratch:
        result, rendered = run_new(Path(scratch) / "proj", _argv(values) + extra)
        if result.exit_code == 0:
            assert len(rendered) == 1
            assert_in_range(rendered[0])
        else:
            assert result.exit_code == 2, result.output
            assert not rendered
            assert result.output.startswith("kgen: error: ")
            assert_one_line(result.output.strip())
        assert list(Path(scratch).iterdir()) == []
        assert result.exception is None or isinstance(result.exception, SystemExit)


@FAST
@given(st.text(min_size=1, max_size=40))
def test_any_project_name_is_valid_or_refused_in_one_line(name):
    assume("/" not in name and "\x00" not in name and name not in (".", ".."))
    with tempfile.TemporaryDirectory() as scratch:
        result, rendered = run_new(Path(scratch) / name, [])
        if result.exit_code == 0:
            package = rendered[0].package_name
            assert re.fullmatch(r"[a-z][a-z0-9_]*", package)
            assert package not in spec.reserved_names()
        else:
            assert result.exit_code == 2
            assert result.output.startswith("kgen: error: ")
            assert_one_line(result.output.strip())
        assert list(Path(scratch).iterdir()) == []


# A few accepted specs are rendered for real: the project exists, compiles and holds no
# template syntax. Cheap architectures only (every architecture renders the same files).
@st.composite
def renderable(draw) -> dict[str, object]:
    values = {
        "arch": draw(
            st.sampled_from(["simple_cnn", "mlp", "mobilenet_v2", "resnet50"])
        ),
        "task": draw(st.sampled_from(list(registry.TASKS))),
        "loop": draw(st.sampled_from(list(registry.LOOPS))),
        "data": draw(st.sampled_from(list(registry.DATA_SOURCES))),
        "precision": draw(st.sampled_from(list(registry.PRECISIONS))),
        "optimizer": draw(
            st.one_of(st.none(), st.sampled_from(list(CHOICES["optimizer"])))
        ),
        "lr_schedule": draw(st.sampled_from(list(registry.LR_SCHEDULES))),
        "tracking": draw(st.sampled_from(list(registry.TRACKING))),
        **{name: draw(st.booleans()) for name in BOOLEANS if name != "class_weights"},
        "epochs": draw(st.one_of(st.none(), st.integers(1, spec.MAX_EPOCHS))),
        "learning_rate": draw(
            st.one_of(st.none(), st.floats(1e-6, spec.MAX_LEARNING_RATE))
        ),
        "batch_size": draw(st.integers(1, spec.MAX_BATCH_SIZE)),
    }
    if values["task"] in ("multiclass", "binary"):
        values["class_weights"] = draw(st.booleans())
    if values["task"] != "regression":
        values["mix"] = draw(st.sampled_from(list(registry.MIXES)))
    if (
        values["arch"] not in ("simple_cnn", "mlp")
        and values["lr_schedule"] != "plateau"
    ):
        values["weights"] = draw(st.sampled_from(["none", "imagenet"]))
    return {k: v for k, v in values.items() if v is not None}


@settings(
    max_examples=4,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example renders
)
@given(renderable())
def test_accepted_specs_render_projects_that_compile(values):
    from generator.render import create_project

    try:
        resolved = ProjectSpec(project_name="prop-proj", **values).resolve()
    except SpecError:
        assume(False)
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "prop-proj"
        create_project(resolved, project)
        for path in project.rglob("*"):
            if path.is_file() and ".git" not in path.parts and path.suffix != ".npz":
                text = path.read_text()
                assert not template_syntax(text), path
                if path.suffix == ".py":
                    compile(text, str(path), "exec")  # a SyntaxError fails the test
        answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
        assert answers["batch_size"] == resolved.batch_size
        assert answers["learning_rate"] == resolved.learning_rate


@pytest.fixture(scope="module")
def committed_project(tmp_path_factory) -> Path:
    """One generated project for the update properties."""
    return generate(tmp_path_factory.mktemp("update-properties"), "proj")


@FAST
@given(spec_values())
def test_any_update_options_are_accepted_in_range_or_refused_in_one_line(
    committed_project, values
):
    """`kgen update` parses the same options; the project is never touched by a refusal
    (the update itself is replaced by a recorder)."""
    project = committed_project
    changes = {k: v for k, v in values.items() if k not in BOOLEANS}
    updated = []
    with mock.patch(
        "generator.render.update_project",
        lambda path, resolved, to: updated.append(resolved) or [],
    ):
        result = CliRunner().invoke(cli.app, ["update", str(project), *_argv(changes)])
    if result.exit_code == 0:
        assert_in_range(updated[0].resolve())
    else:
        assert result.exit_code == 2, result.output
        assert result.output.startswith("kgen: error: ")
        assert_one_line(result.output.strip())
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
    )
    assert status.stdout == ""
