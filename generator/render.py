"""Render the copier template for a ProjectSpec: new projects and updates of old ones."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import copier
import yaml

from generator import store
from generator.spec import ProjectSpec, SpecError, check_destination

CONFLICT_MARKER = re.compile(r"^<{7} before updating$", re.MULTILINE)

# Work that abandon() undoes when the process is told to stop: staging directories to
# remove, and projects being updated to put back to their last commit.
_STAGING: set[Path] = set()
_UPDATING: set[Path] = set()


def template_dir() -> Path:
    """The copier template: packaged inside a wheel, or `templates/` beside a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "copier.yml").is_file():
            return candidate
    raise FileNotFoundError(f"kgen's copier template is missing (looked beside {here})")


def create_project(
    spec: ProjectSpec,
    destination: Path,
    *,
    template: Path | None = None,
    ref: str = "HEAD",
) -> None:
    """Render a project from the template store, git-commit it; on failure leave nothing.

    The project is rendered into a hidden sibling directory and renamed into place at the
    end, so a crash never leaves a half-written project at `destination`. `template` is a
    git template repository (default: kgen's store, synced with the installed template).
    """
    answers = spec.answers()
    destination = destination.absolute()
    check_destination(destination)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent)
    )
    _STAGING.add(staging)
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a project is not
    try:
        with _template_source(template) as source:
            copier.run_copy(
                str(source),
                staging,
                data=answers,
                vcs_ref=ref,
                defaults=True,
                overwrite=True,
                quiet=True,
                unsafe=True,  # kgen's own template: its Jinja extension runs black
            )
        _git_init(staging)
        if destination.exists():
            destination.rmdir()  # checked empty above
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _STAGING.discard(staging)


def abandon() -> None:
    """Undo the work in progress: for a signal handler that is about to exit the process."""
    for staging in list(_STAGING):
        shutil.rmtree(staging, ignore_errors=True)
    for project in list(_UPDATING):
        _restore(project)


def recorded_answers(project: Path) -> dict[str, object]:
    """The answers in a project's .copier-answers.yml; SpecError if it is not a project."""
    answers_file = project / ".copier-answers.yml"
    if not answers_file.is_file():
        raise SpecError(
            f"{str(project)!r} is not a kgen project: no .copier-answers.yml"
        )
    return yaml.safe_load(answers_file.read_text()) or {}


def update_project(
    project: Path, spec: ProjectSpec, *, to: str | None = None
) -> list[str]:
    """copier's 3-way update of `project` to template version `to` with `spec`'s answers.

    Returns the files left with conflict markers (empty when the merge was clean).
    """
    project = project.absolute()
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
    )
    if status.returncode != 0:
        raise SpecError(
            f"{str(project)!r} is not a git repository; kgen update needs one"
        )
    if status.stdout.strip():
        raise SpecError(
            f"{str(project)!r} has uncommitted changes; commit or stash them, then update"
        )
    ref = to or "HEAD"
    with _template_source(None) as source:
        recorded = Path(str(recorded_answers(project).get("_src_path", "")))
        if recorded != source:
            raise SpecError(
                f"{str(project)!r} was generated from {str(recorded)!r}, not kgen's "
                f"template store {str(source)!r}; use `copier update` there"
            )
        store.check_ref(source, ref)
        _UPDATING.add(project)
        try:
            copier.run_update(
                project,
                data=spec.answers(),
                vcs_ref=ref,
                defaults=True,
                overwrite=True,
                quiet=True,
                unsafe=True,
                skip_answered=True,
                conflict="inline",
            )
        except BaseException:
            _restore(project)
            raise
        finally:
            _UPDATING.discard(project)
    return conflicted_files(project)


def _restore(project: Path) -> None:
    """Put a project whose update failed back to its last commit (it was clean before)."""
    for command in (["git", "reset", "--quiet", "--hard"], ["git", "clean", "-fdq"]):
        subprocess.run(command, cwd=project, capture_output=True)


@contextmanager
def _template_source(template: Path | None) -> Iterator[Path]:
    """`template`, or kgen's store synced with the installed template, locked for reading."""
    if template is not None:
        yield template
        return
    source = store.store_dir()
    with store.locked(source):
        yield store.sync(template_dir(), source)


def conflicted_files(project: Path) -> list[str]:
    """Files that hold copier's inline conflict markers or a rejected hunk."""
    found = []
    for path in sorted(project.rglob("*")):
        if ".git" in path.relative_to(project).parts or not path.is_file():
            continue
        if path.suffix == ".rej":
            found.append(str(path.relative_to(project)))
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if CONFLICT_MARKER.search(text):
            found.append(str(path.relative_to(project)))
    return found


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
