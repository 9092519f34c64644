"""kgen's template store: a local git repository holding every template version kgen ran.

copier can only update from a git template, and it re-renders a project's *old* template
version from the commit recorded in `.copier-answers.yml`. kgen may be installed from a
wheel, with no git history of its own, so each kgen run commits its installed template into
the store (only when the content changed) and tags the first commit of each kgen version
`v<version>`. Projects record the store as `_src_path`; `kgen update` finds both the old
and the new version there. The store is `$KGEN_HOME/template` (default
`~/.local/share/kgen/template`).

Syncing costs several git processes, so a sync leaves a stamp in the store's `.git`: the
installed template's content digest, the kgen version and the state of the store's refs.
While all of those still hold, `sync` runs no git at all. kgen writes only to a store it
created (a marker file in its `.git`); anything else at that path is refused, untouched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from generator import __version__
from generator.spec import KgenError, SpecError

_STAMP = "kgen-sync.json"  # in the store's .git directory
_MARKER = "kgen-store"  # ditto: kgen created this store, so it may write to it


DEFAULT_HOME = "~/.local/share/kgen"


def store_dir() -> Path:
    """`$KGEN_HOME/template`, absolute; an unset or empty KGEN_HOME means the default."""
    home = os.environ.get("KGEN_HOME", "")
    if home == "":
        home = DEFAULT_HOME
    return Path(os.path.abspath(Path(home).expanduser())) / "template"


NO_GIT = "git is not installed; kgen's template store needs it"


def git(
    repo: Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    store: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run git on the store `repo` with an identity of its own, capturing output.

    A failure (with `check`) is reported with git's own reason, naming `store` (default:
    `repo`, unless that is the store in the making).
    """
    command = ["git", "-c", "user.name=kgen", "-c", "user.email=kgen@localhost", *args]
    try:
        return subprocess.run(
            command,
            cwd=repo,
            check=check,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
    except FileNotFoundError:
        raise KgenError(NO_GIT) from None
    except subprocess.CalledProcessError as error:
        raise KgenError(
            f"git {args[0]} failed in kgen's template store {str(store or repo)!r}: "
            f"{git_reason(error.stderr)}; if the store is damaged, move it away and "
            "kgen makes a new one"
        ) from None


def git_reason(stderr: str) -> str:
    """git's own reason for a failure, on one line: its first `fatal:`/`error:` line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    reasons = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (reasons or lines or ["no reason given"])[0]


@contextmanager
def locked(store: Path) -> Iterator[None]:
    """Serialise store writes between concurrent kgen processes."""
    if shutil.which("git") is None:  # before the lock file: a refusal leaves nothing
        raise KgenError(NO_GIT)
    home = store.parent
    try:
        home.mkdir(parents=True, exist_ok=True)
        lock = open(home / f"{store.name}.lock", "w")
    except OSError as error:
        raise KgenError(
            f"KGEN_HOME {str(home)!r} is not usable ({error.strerror.lower()}); set "
            "KGEN_HOME to a directory kgen can write"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def sync(template: Path, store: Path | None = None, version: str = __version__) -> Path:
    """Commit `template` into the store if its content is new; tag v<version>; return store.

    The template directory is staged through a private index, and a stamp (see the module
    docstring) skips git altogether when nothing changed since the last sync. Call it
    inside `locked(store)` and keep the lock while copier reads the store: afterwards its
    work tree is a clean checkout of HEAD (copier would include uncommitted changes).
    """
    store = store or store_dir()
    digest = tree_digest(template)
    stamp = _read_stamp(store).get("key")
    if stamp == _stamp_key(store, digest, version) and tree_digest(store) == digest:
        return store
    _claim(store)
    with tempfile.TemporaryDirectory() as scratch:
        env = {"GIT_WORK_TREE": str(template), "GIT_INDEX_FILE": f"{scratch}/index"}
        git(store, "add", "--all", "--force", ".", env=env)
        tree = git(store, "write-tree", env=env).stdout.strip()
        head = git(store, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
        parent = head.stdout.strip()
        current = (
            git(store, "rev-parse", f"{parent}^{{tree}}").stdout.strip()
            if parent
            else ""
        )
        if tree != current:
            parents = ["-p", parent] if parent else []
            message = f"kgen {version} template"
            sha = git(
                store, "commit-tree", tree, *parents, "-m", message
            ).stdout.strip()
            git(store, "update-ref", "refs/heads/main", sha)
            # One pack instead of loose objects: copier clones the store for every
            # render, and a clone of hundreds of object directories costs 0.1 s.
            git(store, "gc", "--quiet")
        tag = f"v{version}"
        if not git(store, "tag", "--list", tag).stdout.strip():
            git(store, "tag", tag)
        git(store, "reset", "--hard", "--quiet")  # a store kgen created (see _claim)
        git(store, "clean", "-fdxq")
    stamp = {"key": _stamp_key(store, digest, version)}
    (store / ".git" / _STAMP).write_text(json.dumps(stamp) + "\n")
    return store


def _claim(store: Path) -> None:
    """Create the store, or check that the directory there is one kgen created.

    Anything else at that path (the user's files, their own git repository) is refused,
    and nothing in it is touched. A new store is made beside it and renamed into place
    with its mark, so a kgen killed meanwhile leaves no unmarked store to refuse later;
    the hidden leftovers of such a kill are removed here (under the store's lock).
    """
    marker = store / ".git" / _MARKER
    if (
        marker.is_file() or (store / ".git" / _STAMP).is_file()
    ):  # older kgen: stamp only
        marker.touch()
        return
    if store.exists() and (not store.is_dir() or any(store.iterdir())):
        raise KgenError(
            f"{str(store)!r} is not kgen's template store, and kgen will not touch it; "
            "move it away or set KGEN_HOME to another directory"
        )
    store.parent.mkdir(parents=True, exist_ok=True)
    for leftover in store.parent.glob(f".{store.name}.new-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    new = Path(tempfile.mkdtemp(prefix=f".{store.name}.new-", dir=store.parent))
    try:
        git(new, "init", "--quiet", "--initial-branch=main", store=store)
        (new / ".git" / _MARKER).touch()
        new.chmod(0o777 & ~_umask())  # mkdtemp makes it private
        new.rename(store)  # replaces an empty directory, atomically
    except BaseException:  # a full disk, say
        shutil.rmtree(new, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def tree_digest(root: Path) -> str:
    """A digest of the files `git add --all --force` would commit from `root`: paths,
    contents, symlink targets and executable bits; `.git` is skipped."""
    entries = set()
    for directory, subdirs, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        subdirs[:] = [name for name in subdirs if name != ".git"]
        for name in files:
            path = os.path.join(directory, name)
            name = os.path.normpath(os.path.join(relative, name))
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                entries.add(f"l {name} {os.readlink(path)}")
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as file:
                    content = hashlib.sha1(file.read()).hexdigest()
                executable = "x" if info.st_mode & stat.S_IXUSR else "-"
                entries.add(f"f {name} {executable} {content}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def _stamp_key(store: Path, digest: str, version: str) -> str:
    """The template digest, the version and the store's refs (which `describe` reads)."""
    git_dir = store / ".git"
    parts = [digest, version]
    for name in ("HEAD", "refs/heads/main"):
        try:
            parts.append((git_dir / name).read_text().strip())
        except OSError:
            parts.append("-")
    for name in ("packed-refs", "refs/tags"):
        try:
            info = (git_dir / name).stat()
            parts.append(f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}")
        except OSError:
            parts.append("-")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _read_stamp(store: Path) -> dict[str, str]:
    try:
        return json.loads((store / ".git" / _STAMP).read_text())
    except (OSError, ValueError):
        return {}


def may_be_a_store(path: Path) -> bool:
    """Whether a project's recorded `_src_path` can be a kgen store, perhaps another
    machine's: kgen's mark if the path exists here, else the shape `.../template`."""
    if path.exists():
        return (path / ".git" / _MARKER).is_file()
    return path.name == "template"


def recorded_path(store: Path) -> str:
    """How projects record the store as copier's `_src_path`: under the home directory as
    `~/...` (copier expands it), so that plain `copier update` works on any machine where
    kgen keeps its store at the same place under the user's home; else absolute."""
    try:
        return f"~/{store.relative_to(Path.home()).as_posix()}"
    except (ValueError, RuntimeError):  # not under the home, or no home known
        return str(store)


def has_ref(store: Path, ref: str) -> bool:
    """Whether `ref` (a tag, or `git describe` output) names a commit in the store."""
    return not git(
        store, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False
    ).returncode


def tags(store: Path) -> list[str]:
    return git(store, "tag", "--list", "--sort=v:refname").stdout.split()


def check_ref(store: Path, ref: str) -> None:
    """Raise SpecError unless `ref` names a template version in the store."""
    if not has_ref(store, ref):
        raise SpecError(
            f"template version {ref!r} is not in kgen's store {str(store)!r}; "
            f"available: {', '.join(tags(store)) or 'none'}"
        )
