"""Reserved project names: computed from the generated project's dependencies, current."""

from __future__ import annotations

import sys

import pytest

from conftest import REPO
from generator.spec import ProjectSpec, SpecError, reserved_names

sys.path.insert(0, str(REPO / "tools"))
import reserved_names as tool  # noqa: E402


def test_the_checked_in_list_is_current():
    """Every name tools/reserved_names.py finds in this environment is in the checked-in
    file: a dependency that gained a module (or a new dependency) fails this test. Names
    the file has beyond them (an older dependency's) only make kgen stricter."""
    missing = [r.name for r in tool.root_requirements() if not tool._installed(r.name)]
    if missing:
        pytest.skip(
            f"the generated project's dependencies are not installed: {missing}"
        )
    lines = tool.OUTPUT.read_text().splitlines()
    checked_in = {line.split()[0] for line in lines if line.strip() and line[0] != "#"}
    missing = sorted(set(tool.reserved_names()) - checked_in)
    assert (
        not missing
    ), f"generator/reserved_names.txt lacks {missing}: run python tools/reserved_names.py"


def test_roots_are_the_generated_project_s_dependencies():
    roots = {r.name for r in tool.root_requirements()}
    assert {"tensorflow", "keras", "tensorboard", "tensorflow-datasets"} <= roots
    assert {"numpy", "matplotlib", "pytest"} <= roots


@pytest.mark.parametrize(
    "name",
    ["absl", "google", "ml-dtypes", "h5py", "tensorboard", "matplotlib", "pytest"]
    + ["tensorflow", "keras", "numpy", "tensorflow-datasets", "PIL"]
    # kgen's own environment: installing such a project would replace kgen or its tools.
    + ["kgen", "pip", "setuptools", "wheel", "copier", "typer", "jinja2"],
)
def test_dependency_modules_are_refused(name):
    with pytest.raises(SpecError, match="would shadow the module or distribution"):
        ProjectSpec(project_name=name).resolve()


def test_every_stdlib_module_and_listed_name_is_refused():
    """Each name that can be a project name (a letter first) is refused."""
    names = set(reserved_names()) | {n.lower() for n in sys.stdlib_module_names}
    checked = 0
    for name in sorted(names):
        if not name[:1].isalpha() or not name.isascii():
            continue
        with pytest.raises(SpecError, match="would shadow|the name of kgen"):
            ProjectSpec(project_name=name).resolve()
        checked += 1
    assert checked > 300


def test_ordinary_names_are_accepted():
    for name in ["my-digits", "digits2", "cats.vs.dogs", "Mnist_Project"]:
        ProjectSpec(project_name=name).resolve()
