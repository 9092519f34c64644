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
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from generator import __version__
from generator.spec import SpecError

_STAMP = "kgen-sync.json"  # in the store's .git directory
_MARKER = "kgen-store"  # ditto: kgen created this store, so it may write to it


def store_dir() -> Path:
    home = os.environ.get("KGEN_HOME") or "~/.local/share/kgen"
    return Path(home).expanduser() / "template"


def git(
    repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run git on `repo` with an identity of its own, capturing output."""
    command = ["git", "-c", "user.name=kgen", "-c", "user.email=kgen@localhost", *args]
    return subprocess.run(
        command,
        cwd=repo,
        check=check,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


@contextmanager
def locked(store: Path) -> Iterator[None]:
    """Serialise store writes between concurrent kgen processes."""
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.parent / f"{store.name}.lock", "w") as lock:
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
    and nothing in it is touched.
    """
    marker = store / ".git" / _MARKER
    if (
        marker.is_file() or (store / ".git" / _STAMP).is_file()
    ):  # older kgen: stamp only
        marker.touch()
        return
    if store.exists() and (not store.is_dir() or any(store.iterdir())):
        raise SpecError(
            f"{str(store)!r} is not kgen's template store, and kgen will not touch it; "
            "move it away or set KGEN_HOME to another directory"
        )
    store.mkdir(parents=True, exist_ok=True)
    git(store, "init", "--quiet", "--initial-branch=main")
    marker.touch()


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


def tags(store: Path) -> list[str]:
    return git(store, "tag", "--list", "--sort=v:refname").stdout.split()


def check_ref(store: Path, ref: str) -> None:
    """Raise SpecError unless `ref` names a template version in the store."""
    if git(
        store, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False
    ).returncode:
        raise SpecError(
            f"template version {ref!r} is not in kgen's store {str(store)!r}; "
            f"available: {', '.join(tags(store)) or 'none'}"
        )
