"""Supported Pythons: declared the same everywhere, true to the dependencies, enforced."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata

import pytest
from typer.testing import CliRunner

from conftest import REPO, generate
from generator import cli, pythons
from generator.spec import SpecError, check_python


@pytest.mark.parametrize("version", [(3, 10), (3, 14)])
def test_new_refuses_a_python_the_dependencies_cannot_serve(
    tmp_path, monkeypatch, version
):
    monkeypatch.setattr(pythons, "running", lambda: version)
    result = CliRunner().invoke(cli.app, ["new", str(tmp_path / "proj"), "--defaults"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"kgen: error: Python 3.{version[1]} is not supported: generated projects need "
        "Python >=3.11,<3.14 (3.11, 3.12, 3.13), what their TensorFlow and Keras run "
        "on; run kgen under one of those"
    ]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_check_reads_the_running_interpreter(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    with pytest.raises(SpecError, match=r"^Python 3\.10 is not supported"):
        check_python()


@pytest.mark.parametrize("version", pythons.SUPPORTED)
def test_every_supported_python_is_accepted(version):
    check_python(tuple(map(int, version.split("."))))


def test_the_range_is_the_highest_lower_bound_of_the_pinned_dependencies():
    """keras, tensorflow, tensorboard and tfds (as installed here) agree with OLDEST."""
    lower_bounds = []
    for name in ("keras", "tensorflow", "tensorboard", "tensorflow-datasets"):
        requires = metadata.metadata(name)["Requires-Python"]
        (bound,) = re.findall(r">=\s*(\d+)\.(\d+)", requires)
        lower_bounds.append(tuple(map(int, bound)))
    assert max(lower_bounds) == pythons.OLDEST
    assert pythons.REQUIRES_PYTHON == ">=3.11,<3.14"
    assert pythons.SUPPORTED == ("3.11", "3.12", "3.13")


def requires_python(pyproject: str) -> str:
    return tomllib.loads(pyproject)["project"]["requires-python"]


def pins(pyproject: str) -> dict[str, str]:
    """tensorflow/keras `>=X.Y,<...` pins of a pyproject.toml, as {name: "X.Y"}."""
    found = dict(re.findall(r'"(tensorflow|keras)>=(\d+\.\d+),<[\d.]+"', pyproject))
    assert set(found) == {"tensorflow", "keras"}
    return found


def assert_states_versions(readme: str, pinned: dict[str, str]) -> None:
    assert f"TensorFlow {pinned['tensorflow']}" in readme
    assert f"Keras {pinned['keras']}" in readme


def test_kgen_declares_and_documents_the_range():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert requires_python(pyproject) == pythons.REQUIRES_PYTHON
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Supported versions")[1].split("\n## ")[0]
    assert f'`requires-python = "{pythons.REQUIRES_PYTHON}"`' in section
    assert "Python " + ", ".join(pythons.SUPPORTED[:-1]) in section
    assert f"and {pythons.SUPPORTED[-1]}" in section
    assert_states_versions(section, pins(pyproject))


def test_generated_project_declares_and_documents_the_range(tmp_path):
    project = generate(tmp_path, "proj", data="tfds")
    pyproject = (project / "pyproject.toml").read_text()
    assert requires_python(pyproject) == pythons.REQUIRES_PYTHON
    readme = (project / "README.md").read_text()
    assert f"Python `{pythons.REQUIRES_PYTHON}`" in readme
    assert_states_versions(readme, pins(pyproject))
    assert pins(pyproject) == pins((REPO / "pyproject.toml").read_text())
