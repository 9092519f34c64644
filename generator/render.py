"""Render the copier template for a ProjectSpec: new projects and updates of old ones."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import copier
import yaml

from generator import store
from generator.formatting import parallel_formatting
from generator.spec import ProjectSpec, SpecError, check_destination

CONFLICT_MARKER = re.compile(r"^<{7} before updating$", re.MULTILINE)


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
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a project is not
    try:
        # Formatting workers stop before the store's lock is released (they inherit it).
        with _template_source(template) as source, parallel_formatting(staging):
            head = store.head(source) if template is None and ref == "HEAD" else None
            if head is None or not _copy_from_checkout(source, head, staging, answers):
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


def _copy_from_checkout(
    source: Path, head: store.Head, staging: Path, answers: dict[str, object]
) -> bool:
    """copier's run_copy of the store's HEAD, read from the store's work tree, no clone.

    `store.sync` left the work tree a clean checkout of HEAD, so copier reads what its own
    clone would hold, and it records the same `_src_path` and `_commit` (described at the
    sync). copier's per-file `git config` probes of the destination are skipped: the
    staging directory is not a repository yet, so they never change anything. File modes
    are then set as rendering from a fresh clone sets them. Returns False, having done
    nothing, if this copier lacks the internals used here.
    """
    from copier._main import Worker
    from copier._template import Template

    preset = {
        "local_abspath": source.resolve(),
        "vcs": "git",
        "commit": head.commit,
        "commit_hash": head.sha,
        "git_index_modes": {},  # modes are fixed below
    }
    if not isinstance(getattr(Worker, "template", None), cached_property) or not all(
        isinstance(getattr(Template, name, None), cached_property) for name in preset
    ):
        return False
    template = Template(url=str(source), ref="HEAD")
    template.__dict__.update(preset)
    with Worker(
        src_path=str(source),
        dst_path=staging,
        data=answers,
        vcs_ref="HEAD",
        defaults=True,
        overwrite=True,
        quiet=True,
        unsafe=True,  # kgen's own template: its Jinja extension runs black
    ) as worker:
        worker.__dict__["template"] = template
        worker.__dict__["_sync_git_index_executable_bit"] = _skip
        worker.run_copy()
    _set_cloned_modes(staging)
    return True


def _skip(*args: object) -> None:
    return None


def _set_cloned_modes(root: Path) -> None:
    """Give each file the mode copier gives it from a clone: rw by umask, +x if executable."""
    regular = 0o666 & ~_umask()
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                wanted = regular | (0o111 if mode & stat.S_IXUSR else 0)
                if stat.S_IMODE(mode) != wanted:
                    os.chmod(path, wanted)


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
    return conflicted_files(project)


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
