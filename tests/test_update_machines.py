"""A project generated on one machine updates on another: another $HOME, another
KGEN_HOME, and a template store of its own (whose commits differ; its tags agree)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_update import ORIGINAL  # a line of train.py's docstring the v2 store changes
from typer.testing import CliRunner

from conftest import REPO
from generator import cli
from generator.render import create_project
from generator.spec import ProjectSpec

V2_DOCSTRING = ORIGINAL.replace(".", " (from machine B's v2).", 1)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def make_store(repo: Path, *, with_v2: bool) -> Path:
    """A kgen store holding today's template as v1 and, on request, a change as v2."""
    shutil.copytree(REPO / "templates", repo)
    git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / ".git" / "kgen-store").touch()
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "v1")
    git(repo, "tag", "v1")
    if with_v2:
        train = repo / "project" / "{{ package_name }}" / "train.py.jinja"
        train.write_text(train.read_text().replace(ORIGINAL, V2_DOCSTRING, 1))
        git(repo, "commit", "--quiet", "-am", "v2")
        git(repo, "tag", "v2")
    return repo


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_kgen_update_on_a_second_machine_uses_its_own_store(tmp_path, monkeypatch):
    # Machine A generates the project from its store, and the user edits it.
    store_a = make_store(tmp_path / "a" / "template", with_v2=False)
    project = tmp_path / "proj"
    create_project(
        ProjectSpec(project_name="proj"), project, template=store_a, ref="v1"
    )
    assert answers(project)["_src_path"] == str(store_a)
    train = project / "proj" / "train.py"
    train.write_text(train.read_text() + "# mine\n")
    git(project, "commit", "--quiet", "-am", "my edit")
    shutil.rmtree(tmp_path / "a")  # machine A's store is not on machine B
    # Machine B: another KGEN_HOME, a store built on its own (other commit ids).
    make_store(tmp_path / "b" / "template", with_v2=True)
    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "b"))
    result = CliRunner().invoke(cli.app, ["update", str(project), "--to", "v2"])
    assert result.exit_code == 0, result.output
    text = train.read_text()
    assert V2_DOCSTRING in text.splitlines()[0] and "# mine" in text
    recorded = answers(project)
    assert recorded["_src_path"] == str(tmp_path / "b" / "template")
    assert recorded["_commit"] == "v2"
    assert git(project, "ls-files", "-v", ".copier-answers.yml").startswith("H ")
    status = git(project, "status", "--porcelain").split("\n")
    assert " M .copier-answers.yml" in status and " M proj/train.py" in status


@pytest.mark.slow  # a second template store and a plain copier update: 13 s
def test_plain_copier_update_works_on_another_home(tmp_path, monkeypatch):
    """Under the default KGEN_HOME the store is recorded as `~/...`, which copier expands
    on whichever machine runs it."""
    monkeypatch.delenv("KGEN_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "alice"))
    kgen = CliRunner()
    result = kgen.invoke(cli.app, ["new", str(tmp_path / "proj"), "--defaults"])
    assert result.exit_code == 0, result.output
    assert answers(tmp_path / "proj")["_src_path"] == "~/.local/share/kgen/template"
    shutil.rmtree(tmp_path / "alice")
    monkeypatch.setenv("HOME", str(tmp_path / "bob"))
    result = kgen.invoke(cli.app, ["new", str(tmp_path / "other"), "--defaults"])
    assert result.exit_code == 0, result.output  # bob's kgen has run once
    copier = subprocess.run(
        [sys.executable, "-m", "copier", "update", "--trust", "--defaults"],
        cwd=tmp_path / "proj",
        env={**os.environ, "HOME": str(tmp_path / "bob")},
        capture_output=True,
        text=True,
    )
    assert copier.returncode == 0, copier.stderr
    result = kgen.invoke(cli.app, ["update", str(tmp_path / "proj")])
    assert result.exit_code == 0, result.output
    assert git(tmp_path / "proj", "status", "--porcelain") == ""
