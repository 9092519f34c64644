"""Render the copier template for a ProjectSpec into a new directory, atomically."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import copier

from generator.formatting import format_tree
from generator.spec import ProjectSpec, check_destination


def template_dir() -> Path:
    """The copier template: packaged inside a wheel, or `templates/` beside a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "copier.yml").is_file():
            return candidate
    raise FileNotFoundError(f"kgen's copier template is missing (looked beside {here})")


def create_project(spec: ProjectSpec, destination: Path) -> list[Path]:
    """Render, format and git-commit a project; on any failure nothing is left behind.

    The project is rendered into a hidden sibling directory and renamed into place at the
    end, so a crash never leaves a half-written project at `destination`.
    """
    answers = spec.answers()
    destination = destination.absolute()
    check_destination(destination)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent)
    )
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a project is not
    try:
        copier.run_copy(
            str(template_dir()),
            staging,
            data=answers,
            defaults=True,
            overwrite=True,
            quiet=True,
            skip_tasks=True,  # formatting runs below, in this process
        )
        format_tree(staging)
        _git_init(staging)
        if destination.exists():
            destination.rmdir()  # checked empty above
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(
        p.relative_to(destination)
        for p in destination.rglob("*")
        if ".git" not in p.parts
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _git_init(root: Path) -> None:
    """Make the project a git repository with one commit: copier update needs it."""
    if shutil.which("git") is None:
        return
    identity = []
    probe = subprocess.run(
        ["git", "config", "user.email"], cwd=root, capture_output=True
    )
    if probe.returncode != 0:
        identity = ["-c", "user.name=kgen", "-c", "user.email=kgen@localhost"]

    def git(*args: str) -> None:
        subprocess.run(
            ["git", *identity, *args], cwd=root, check=True, capture_output=True
        )

    git("init", "--quiet", "--initial-branch=main")
    git("add", "--all")
    git("commit", "--quiet", "--no-verify", "-m", "Initial project from kgen")
