"""kgen update / copier update: template changes merge into edited projects, edits survive."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import REPO, train
from generator import cli, render
from generator.render import create_project
from generator.spec import ProjectSpec

# v2's change and a user's colliding change, both to the module docstring of train.py.
ORIGINAL = "; resumes after a crash."
V2_DOCSTRING = "; resumes after a crash (now with a changelog)."
USERS_DOCSTRING = "; resumes after a crash, my way."


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    """A throwaway template store with tags v1 (today's template) and v2 (a change)."""
    monkeypatch.setenv("KGEN_HOME", str(tmp_path / "home"))
    repo = tmp_path / "home" / "template"
    shutil.copytree(REPO / "templates", repo)
    git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / ".git" / "kgen-store").touch()  # kgen's mark: a store kgen may write to
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "v1")
    git(repo, "tag", "v1")
    train = repo / "project" / "{{ package_name }}" / "train.py.jinja"
    text = train.read_text()
    assert ORIGINAL in text.splitlines()[0]
    train.write_text(text.replace(ORIGINAL, V2_DOCSTRING, 1))
    (repo / "project" / "CHANGELOG.md").write_text("# Changelog\n\n- v2: a changelog\n")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "v2")
    git(repo, "tag", "v2")
    return repo


@pytest.fixture
def project(tmp_path, store) -> Path:
    """A project generated at v1, with the user's own edit to train.py and own file."""
    destination = tmp_path / "proj"
    create_project(
        ProjectSpec(project_name="proj"), destination, template=store, ref="v1"
    )
    train = destination / "proj" / "train.py"
    text = train.read_text()
    train.write_text(
        text.replace(
            "        save_model(model, outdir)\n",
            "        save_model(model, outdir)  # user: saved before the rename\n",
        )
    )
    (destination / "notes.md").write_text("my notes\n")
    git(destination, "add", "--all")
    git(destination, "commit", "--quiet", "-m", "my edits")
    return destination


def kgen(*args: str):
    return CliRunner().invoke(cli.app, list(args))


def trains_a_step(project: Path) -> None:
    out = project / "runs" / "check"
    train(project, out, "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8")
    assert (out / "model.keras").is_file()


@pytest.mark.slow
def test_update_merges_template_change_and_keeps_user_edits(project):
    result = kgen("update", str(project), "--to", "v2")
    assert result.exit_code == 0, result.output
    train = (project / "proj" / "train.py").read_text()
    assert V2_DOCSTRING in train.splitlines()[0]  # the template's change
    assert "# user: saved before the rename" in train  # the user's edit
    assert (project / "CHANGELOG.md").is_file()  # the template's new file
    assert (project / "notes.md").read_text() == "my notes\n"  # the user's own file
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v2"
    trains_a_step(project)


def test_colliding_edit_is_reported_and_nothing_is_lost(project):
    train = project / "proj" / "train.py"
    text = train.read_text()
    train.write_text(text.replace(ORIGINAL, USERS_DOCSTRING, 1))
    git(project, "commit", "--quiet", "-am", "my docstring")
    result = kgen("update", str(project), "--to", "v2")
    assert result.exit_code == 1
    assert "proj/train.py" in result.output
    merged = train.read_text()
    assert "<<<<<<< before updating" in merged and ">>>>>>> after updating" in merged
    assert USERS_DOCSTRING in merged and V2_DOCSTRING in merged
    assert "# user: saved before the rename" in merged
    assert (project / "notes.md").read_text() == "my notes\n"


@pytest.mark.slow
def test_answer_change_switches_the_loop(project):
    result = kgen("update", str(project), "--to", "v2", "--loop", "custom")
    assert result.exit_code == 0, result.output
    loop = (project / "proj" / "loop.py").read_text()
    assert "tf.GradientTape()" in loop and "model.fit(" not in loop
    assert (
        "# user: saved before the rename" in (project / "proj" / "train.py").read_text()
    )
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["loop"] == "custom"
    trains_a_step(project)


@pytest.mark.slow
def test_answer_change_of_task_rederives_outputs_and_loss(project):
    result = kgen("update", str(project), "--to", "v2", "--task", "regression")
    assert result.exit_code == 0, result.output
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert (answers["task"], answers["num_classes"], answers["loss"]) == (
        "regression",
        1,
        "mse",
    )
    task = (project / "proj" / "task.py").read_text()
    assert "keras.losses.MeanSquaredError(" in task and "softmax" not in task
    assert (
        "# user: saved before the rename" in (project / "proj" / "train.py").read_text()
    )
    trains_a_step(project)
    assert (project / "runs" / "check" / "output_names.json").read_text().strip() == (
        '[\n  "digit"\n]'
    )


def test_answer_change_of_arch_rederives_sizes(project):
    result = kgen("update", str(project), "--to", "v2", "--arch", "mobilenet_v2")
    assert result.exit_code == 0, result.output
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert (answers["arch"], answers["image_size"], answers["channels"]) == (
        "mobilenet_v2",
        32,
        3,
    )
    assert (
        "keras.applications.MobileNetV2(" in (project / "proj" / "model.py").read_text()
    )


def test_update_to_the_same_version_changes_nothing(project):
    """Old render and project are formatted identically: no black noise in the merge."""
    result = kgen("update", str(project), "--to", "v1")
    assert result.exit_code == 0, result.output
    assert git(project, "status", "--porcelain") == ""


def test_dirty_tree_is_refused(project):
    (project / "proj" / "model.py").write_text("# half-done edit\n")
    result = kgen("update", str(project), "--to", "v2")
    assert result.exit_code == 2
    assert "uncommitted changes" in result.output
    assert (project / "proj" / "model.py").read_text() == "# half-done edit\n"


def test_unknown_version_and_non_project_are_clear_errors(project, tmp_path):
    result = kgen("update", str(project), "--to", "v9")
    assert result.exit_code == 2
    assert "template version 'v9' is not in kgen's store" in result.output
    assert "v1, v2" in result.output
    (tmp_path / "plain").mkdir()
    result = kgen("update", str(tmp_path / "plain"))
    assert result.exit_code == 2
    assert "is not a kgen project" in result.output


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_a_stopped_update_puts_the_project_back(project, delay):
    """SIGTERM mid-update: the project is its last commit again, or the update finished."""
    committed = git(project, "rev-parse", "HEAD")
    update = [sys.executable, "-m", "generator", "update"]
    whole = project.parent / "whole"  # the same update, not stopped
    shutil.copytree(project, whole, symlinks=True)
    victim = subprocess.Popen([*update, str(project), "--to", "v2"], cwd=REPO)
    time.sleep(delay)
    victim.send_signal(signal.SIGTERM)
    victim.wait(timeout=120)
    assert git(project, "rev-parse", "HEAD") == committed
    # Exit 0, or 143 from kgen's handler; never killed outright (-15), e.g. by a signal
    # that arrives after the update, while Python shuts down.
    assert victim.returncode in (0, 128 + signal.SIGTERM), victim.returncode
    status = git(project, "status", "--porcelain", "--ignored")
    if victim.returncode == 0 or status:
        # The update finished: a stop that comes after it has nothing left to undo.
        subprocess.run([*update, str(whole), "--to", "v2"], cwd=REPO, check=True)
        assert status == git(whole, "status", "--porcelain", "--ignored")
        assert "CHANGELOG.md" in status, status


def test_a_failed_update_in_a_larger_repository_restores_the_project_only(
    tmp_path, store
):
    """The project inside a user's repository: a stopped update puts back the project's
    files and leaves the repository's other uncommitted work alone."""
    mono = tmp_path / "mono"
    mono.mkdir()
    git(mono, "init", "--quiet")
    (mono / "notes.txt").write_text("v1\n")
    create_project(
        ProjectSpec(project_name="proj"), mono / "proj", template=store, ref="v1"
    )
    shutil.rmtree(mono / "proj" / ".git")
    git(mono, "add", "--all")
    git(mono, "commit", "--quiet", "-m", "mine")
    (mono / "notes.txt").write_text("precious, uncommitted\n")
    render._restore(mono / "proj")  # what a stopped or failed update runs
    assert (mono / "notes.txt").read_text() == "precious, uncommitted\n"


def test_a_second_concurrent_update_is_refused(project):
    with render._update_lock(project):
        result = kgen("update", str(project), "--to", "v2")
    assert result.exit_code == 2
    assert "another kgen update is running" in result.output
    assert git(project, "status", "--porcelain") == ""


def test_plain_copier_update_works_too(project):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "copier",
            "update",
            "--trust",
            "--defaults",
            "--vcs-ref",
            "v2",
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    train = (project / "proj" / "train.py").read_text()
    assert V2_DOCSTRING in train.splitlines()[0]
    assert "# user: saved before the rename" in train
    assert (project / "CHANGELOG.md").is_file() and (project / "notes.md").is_file()


@pytest.mark.slow  # four real kills: the fast tier's budget
@pytest.mark.parametrize("delay", [0.4, 1.0, 1.8, 2.6])
def test_a_killed_update_is_named_and_the_advice_puts_it_back(project, delay):
    """SIGKILL mid-update (no handler runs): the next update names what happened and
    how to undo it; doing so, the update then goes through."""
    committed = git(project, "rev-parse", "HEAD")
    victim = subprocess.Popen(
        [sys.executable, "-m", "generator", "update", str(project), "--to", "v2"],
        cwd=REPO,
    )
    time.sleep(delay)
    victim.kill()
    victim.wait(timeout=60)
    assert git(project, "rev-parse", "HEAD") == committed
    result = kgen("update", str(project), "--to", "v2")
    if result.exit_code == 2 and "was killed" in result.output:
        assert result.output.count("\n") == 1
        assert "`git checkout HEAD -- . && git clean -fd -- .` in it" in result.output
        git(project, "checkout", "--quiet", "HEAD", "--", ".")
        git(project, "clean", "-fdq", "--", ".")
        result = kgen("update", str(project), "--to", "v2")
    if result.exit_code == 2:  # the killed update had finished: its changes are there
        assert "has uncommitted changes" in result.output
        assert "CHANGELOG.md" in git(project, "status", "--porcelain")
    else:
        assert result.exit_code == 0, result.output
    assert (project / "CHANGELOG.md").is_file()
    assert V2_DOCSTRING in (project / "proj" / "train.py").read_text()
    assert (
        "# user: saved before the rename" in (project / "proj" / "train.py").read_text()
    )
