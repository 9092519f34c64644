"""Render the copier template for a ProjectSpec: new projects and updates of old ones."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import copier
import copier.errors
import yaml
from plumbum import ProcessExecutionError

from generator import store
from generator.spec import (
    KgenError,
    ProjectSpec,
    SpecError,
    check_destination,
    describe_os_error,
)

CONFLICT_MARKER = re.compile(r"^<{7} before updating$", re.MULTILINE)

# Work that abandon() undoes when the process is told to stop: staging directories to
# remove, and projects being updated to put back to their last commit.
_STAGING: set[Path] = set()
_PLACED: set[Path] = set()  # entries moved into an existing directory, not yet complete
_UPDATING: set[Path] = set()
_CHILDREN: set[subprocess.Popen] = set()  # git processes writing into a staging dir


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

    The project is rendered into a hidden staging directory and moved into place at the
    end, so a failure never leaves a half-written project at `destination`: a new
    directory is staged beside it and renamed; an existing empty one (`kgen new .`) keeps
    its identity, so the staging sits inside it and its entries are moved up. `template`
    is a git template repository (default: kgen's store, synced with the installed
    template).
    """
    answers = spec.answers()
    destination = Path(os.path.abspath(destination))
    _remove_dead_staging(destination)
    check_destination(destination)
    existing = destination.is_dir()
    staging = _make_staging(
        destination if existing else destination.parent, destination
    )
    try:
        with _template_source(template) as source, _copier_errors():
            copier.run_copy(
                store.recorded_path(source),
                staging,
                data=answers,
                vcs_ref=ref,
                defaults=True,
                overwrite=True,
                quiet=True,
                unsafe=True,  # kgen's own template: its Jinja extension runs black
            )
        _git_init(staging)
        if existing:
            _move_entries(staging, destination)
        else:
            _rename(staging, destination)
    except OSError as error:  # a full disk, a file system gone read-only, ...
        shutil.rmtree(staging, ignore_errors=True)
        raise KgenError(
            f"cannot write the project at {str(destination)!r}: "
            f"{describe_os_error(error)}; nothing was written"
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _STAGING.discard(staging)


# Staging directories are named `.NAME.kgen-HOST-PID.RANDOM`: the machine and the process
# that made them, so that a later kgen can tell whether that process is gone.
_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _staging_prefix(destination: Path) -> str:
    return f".{destination.name}.kgen-{_HOST}-"


def _remove_dead_staging(destination: Path) -> None:
    """Remove the staging directories for `destination` that a kgen killed outright
    (SIGKILL) left: beside it, or inside it when it is an existing directory. Only
    those of a kgen process of this machine that is gone."""
    pattern = re.compile(re.escape(_staging_prefix(destination)) + r"(\d+)\.\w+")
    for parent in (destination.parent, destination):
        if parent.is_symlink() or not parent.is_dir():
            continue
        try:
            entries = list(os.scandir(parent))
        except OSError:  # unreadable: check_destination says why, if it matters
            continue
        for entry in entries:
            found = pattern.fullmatch(entry.name)
            if (
                found
                and entry.is_dir(follow_symlinks=False)
                and not _running(int(found[1]))
            ):
                if parent == destination:  # staged inside: maybe partly moved up
                    _remove_moved(Path(entry.path), destination)
                shutil.rmtree(entry.path, ignore_errors=True)


# In a staging directory whose entries are being moved up into the destination: their
# names, so that the next kgen can take back what a killed one moved.
MOVING = ".kgen-moving.json"


def _remove_moved(staging: Path, destination: Path) -> None:
    """Remove from `destination` the entries a killed kgen moved there from `staging`
    (the destination was empty, and a name already there stops the move)."""
    try:
        names = json.loads((staging / MOVING).read_text())
    except (OSError, ValueError):
        return
    for name in names if isinstance(names, list) else []:
        target = destination / str(name)
        if str(name) == Path(str(name)).name and os.path.lexists(target):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _make_staging(parent: Path, destination: Path) -> Path:
    """A hidden directory in `parent` for the render, registered for abandon()."""
    prefix = f"{_staging_prefix(destination)}{os.getpid()}."
    try:
        with _signals_held():  # registered as soon as it exists
            staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
            _STAGING.add(staging)
    except OSError as error:
        raise KgenError(
            f"cannot write in {str(parent)!r} ({(error.strerror or '').lower()}); "
            "give a destination in a directory you can write"
        ) from None
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a project is not
    return staging


def _rename(staging: Path, destination: Path) -> None:
    """Move the whole render into place at once; refuse if `destination` appeared."""
    try:
        staging.rename(destination)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
        raise KgenError(
            f"destination {str(destination)!r} was created by another process while kgen "
            "was writing; nothing was written"
        ) from None


def _move_entries(staging: Path, destination: Path) -> None:
    """Move the render's entries up into the existing (empty) `destination`; if any name
    is taken meanwhile, move back what was moved and refuse."""
    moved: list[Path] = []
    names = sorted(os.listdir(staging))
    (staging / MOVING).write_text(json.dumps(names))
    try:
        for name in names:
            target = destination / name
            if os.path.lexists(target):
                raise KgenError(
                    f"destination {str(destination)!r} changed while kgen was writing "
                    f"({name!r} appeared); nothing was written"
                )
            with _signals_held():
                os.rename(staging / name, target)
                moved.append(target)
                _PLACED.add(target)
        (staging / MOVING).unlink()
        staging.rmdir()
    except BaseException:
        for target in reversed(moved):
            os.rename(target, staging / target.name)
        raise
    finally:
        _PLACED.difference_update(moved)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGTERM/SIGINT back while a step and its registration for abandon() run."""
    held = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def _copier_errors() -> Iterator[None]:
    """copier's refusals and git failures inside copier, as kgen's one-line errors."""
    try:
        yield
    except copier.errors.UserMessageError as error:
        raise KgenError(f"copier: {' '.join(str(error).split())}") from None
    except copier.errors.PathError as error:  # e.g. an edited answer naming ../../x
        raise KgenError(
            f"copier refused a path ({' '.join(str(error).split())}); check the answers "
            "in .copier-answers.yml"
        ) from None
    except ProcessExecutionError as error:
        command = " ".join(str(part) for part in error.argv[1:3])
        raise KgenError(
            f"{command} failed: {store.git_reason(error.stderr)}; if that is kgen's "
            f"template store {str(store.store_dir())!r}, move it away and kgen makes a "
            "new one"
        ) from None


def abandon() -> None:
    """Undo the work in progress: for a signal handler that is about to exit the process.

    Children writing into a staging directory are stopped first, so that none of them
    writes into it while it is removed.
    """
    for child in list(_CHILDREN):
        child.kill()
        child.wait()
    for staging in list(_STAGING):
        shutil.rmtree(staging, ignore_errors=True)
    for placed in list(_PLACED):
        if placed.is_dir() and not placed.is_symlink():
            shutil.rmtree(placed, ignore_errors=True)
        else:
            placed.unlink(missing_ok=True)
    for project in list(_UPDATING):
        _restore(project)


ANSWERS_FILE = ".copier-answers.yml"


def recorded_answers(project: Path) -> dict[str, object]:
    """The answers in a project's .copier-answers.yml; SpecError if it is not a project
    or the file is not what copier wrote (edited into invalid YAML, or emptied)."""
    answers_file = project / ANSWERS_FILE
    restore = f"restore it with `git checkout -- {ANSWERS_FILE}`"
    if answers_file.exists() and not answers_file.is_file():  # reading a pipe blocks
        raise SpecError(f"{str(answers_file)!r} is not a regular file; {restore}")
    if not answers_file.is_file():
        raise SpecError(f"{str(project)!r} is not a kgen project: no {ANSWERS_FILE}")
    try:
        answers = yaml.safe_load(answers_file.read_text())
    except UnicodeDecodeError:
        raise SpecError(f"{str(answers_file)!r} is not UTF-8 text; {restore}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(
            f"{str(answers_file)!r} is not valid YAML{where}; {restore}"
        ) from None
    if not isinstance(answers, dict):
        raise SpecError(
            f"{str(answers_file)!r} does not hold copier's answers (a mapping); {restore}"
        )
    for key in ("project_name", "_src_path", "_commit"):
        if not isinstance(answers.get(key), str) or not answers[key]:
            raise SpecError(
                f"{str(answers_file)!r} has no {key} (a string), which kgen update "
                f"needs; {restore}"
            )
    return answers


def update_project(
    project: Path, spec: ProjectSpec, *, to: str | None = None
) -> list[str]:
    """copier's 3-way update of `project` to template version `to` with `spec`'s answers.

    The project may come from another machine: a kgen template store it records (one
    with kgen's mark, or one not on this machine whose path ends in `template`, as
    `$KGEN_HOME/template` does) is taken to be this machine's store, provided the version
    it was generated with is there.
    Returns the files left with conflict markers (empty when the merge was clean).
    """
    project = Path(os.path.abspath(project))
    with _update_lock(project):
        return _update_project(project, spec, to)


@contextmanager
def _update_lock(project: Path) -> Iterator[None]:
    """One kgen update at a time per project: a second one is refused at once."""
    if not project.is_dir():
        raise SpecError(f"{str(project)!r} is not a directory")
    git_dir = subprocess.run(
        ["git", "rev-parse", "--absolute-git-dir"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    if git_dir.returncode != 0:
        raise SpecError(
            f"{str(project)!r} is not a git repository; kgen update needs one"
        )
    with open(Path(git_dir.stdout.strip()) / "kgen-update.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpecError(
                f"another kgen update is running on {str(project)!r}; wait for it to end"
            ) from None
        yield


def _update_project(project: Path, spec: ProjectSpec, to: str | None) -> list[str]:
    # An update killed (SIGKILL) while it pointed the answers at this machine's store
    # leaves their skip-worktree flag set: clear it, so git status tells the truth.
    subprocess.run(
        ["git", "update-index", "--no-skip-worktree", "--", ANSWERS_FILE],
        cwd=project,
        capture_output=True,
    )
    status = subprocess.run(  # the project only, as copier checks: it may be in a
        ["git", "status", "--porcelain", "--", "."],  # larger repository
        cwd=project,
        capture_output=True,
        text=True,
    )
    if status.returncode != 0:
        raise SpecError(
            f"{str(project)!r} is not a git repository; kgen update needs one"
        )
    mark = _update_mark(project)
    if status.stdout.strip() and mark.exists():
        raise SpecError(
            f"{str(project)!r} holds the changes of a kgen update that was killed; it "
            "was committed before, so `git checkout HEAD -- . && git clean -fd -- .` in "
            "it puts it back, then update again"
        )
    if status.stdout.strip():
        raise SpecError(
            f"{str(project)!r} has uncommitted changes; commit or stash them, then update"
        )
    ref = "HEAD" if to is None else to
    answers = recorded_answers(project)
    package = str(answers["package_name"])
    # copier would update files that are not there (a name that is not one is refused
    # by copier itself, as a path outside the project)
    if package.isidentifier() and not (project / package).is_dir():
        raise SpecError(
            f"{str(project)!r} has no package directory {package!r}, whose files the "
            f"update changes; if you renamed it, rename it back (git mv NEW {package}) "
            "and commit, update, then rename it again"
        )
    with _template_source(None) as source:
        recorded, commit = str(answers["_src_path"]), str(answers["_commit"])
        here = _same_directory(recorded, source)
        if not here and not store.may_be_a_store(Path(recorded).expanduser()):
            raise SpecError(
                f"{str(project)!r} was generated from {recorded!r}, not a kgen template "
                "store; use `copier update` there"
            )
        if not store.has_ref(source, commit):
            raise SpecError(
                f"{str(project)!r} was generated with template version {commit!r}, "
                f"which is not in kgen's store {str(source)!r} (available: "
                f"{', '.join(store.tags(source)) or 'none'}); run that kgen version's "
                "`kgen update` once on this machine first"
            )
        store.check_ref(source, ref)
        _UPDATING.add(project)
        mark.write_text("a kgen update is running (if none is, it was killed)\n")
        try:
            with _recording_store(project, None if here else source), _copier_errors():
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
            mark.unlink(missing_ok=True)
    return conflicted_files(project)


def _update_mark(project: Path) -> Path:
    """A file in the project's git directory while `kgen update` changes the project:
    left behind only by a killed update, whose changes the next update then names."""
    git_dir = subprocess.run(
        ["git", "rev-parse", "--absolute-git-dir"],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Path(git_dir) / "kgen-update-in-progress"


def _same_directory(recorded: str, source: Path) -> bool:
    path = Path(recorded).expanduser()
    return path == source or (path.exists() and path.samefile(source))


@contextmanager
def _recording_store(project: Path, source: Path | None) -> Iterator[None]:
    """Point the project's answers at this machine's store `source` while copier updates.

    copier renders the old version from the answers' `_src_path`, which names the store
    of the machine that generated the project. The answers file is rewritten on disk
    only and hidden from `git status` (skip-worktree), so copier sees a clean project;
    copier then writes the new answers itself, recording `source`.
    """
    if source is None:
        yield
        return
    answers_file = project / ANSWERS_FILE
    answers = {**recorded_answers(project), "_src_path": store.recorded_path(source)}
    _git(project, "update-index", "--skip-worktree", "--", ANSWERS_FILE)
    try:
        answers_file.write_text(yaml.safe_dump(answers, sort_keys=False))
        yield
    finally:
        _git(project, "update-index", "--no-skip-worktree", "--", ANSWERS_FILE)


def _git(project: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=project, capture_output=True, check=True)


def _restore(project: Path) -> None:
    """Put a project whose update failed back to its last commit (it was clean before)."""
    _update_mark(project).unlink(missing_ok=True)
    for command in (  # the project's own paths only: it may be in a larger repository
        ["git", "update-index", "--no-skip-worktree", "--", ANSWERS_FILE],
        ["git", "reset", "--quiet", "--", "."],
        ["git", "checkout", "--quiet", "HEAD", "--", "."],
        ["git", "clean", "-fdq", "--", "."],
    ):
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
    if _run(["git", "config", "user.email"], root).returncode != 0:
        identity = ["-c", "user.name=kgen", "-c", "user.email=kgen@localhost"]

    def git(*args: str) -> None:
        done = _run(["git", *identity, "-c", "commit.gpgsign=false", *args], root)
        if done.returncode != 0:
            reason = store.git_reason(done.stderr)
            if _disk_full(root) and "no space" not in reason.lower():
                reason += f" ({os.strerror(errno.ENOSPC)})"  # git does not always say
            raise KgenError(
                f"git {args[0]} failed in the new project: {reason}; nothing was written"
            )

    git("init", "--quiet", "--initial-branch=main")
    git("add", "--all")
    git("commit", "--quiet", "--no-verify", "-m", "Initial project from kgen")


def _disk_full(path: Path) -> bool:
    """Whether the file system holding `path` has less than 1 MiB left."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 2**20


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a child that writes into a staging directory, registered for abandon()."""
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        _CHILDREN.add(child)
        try:
            stdout, stderr = child.communicate()
        finally:
            _CHILDREN.discard(child)
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
