"""kgen's template store: a local git repository holding every template version kgen ran.

copier can only update from a git template, and it re-renders a project's *old* template
version from the commit recorded in `.copier-answers.yml`. kgen may be installed from a
wheel, with no git history of its own, so each kgen run commits its installed template into
the store (only when the content changed) and tags the first commit of each kgen version
`v<version>`. Projects record the store as `_src_path`; `kgen update` finds both the old
and the new version there. The store is `$KGEN_HOME/template` (default
`~/.local/share/kgen/template`).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from generator import __version__
from generator.spec import SpecError


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

    The template directory is staged through a private index, so an unchanged template
    costs no copying. Call it inside `locked(store)` and keep the lock while copier reads
    the store, so a concurrent kgen never sees its work tree half-written.
    """
    store = store or store_dir()
    with tempfile.TemporaryDirectory() as scratch:
        if not (store / ".git").is_dir():
            store.mkdir(parents=True, exist_ok=True)
            git(store, "init", "--quiet", "--initial-branch=main")
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
            commit = git(
                store, "commit-tree", tree, *parents, "-m", message
            ).stdout.strip()
            git(store, "update-ref", "refs/heads/main", commit)
            git(store, "reset", "--hard", "--quiet")  # copier reads the work tree
            git(store, "clean", "-fdxq")
        tag = f"v{version}"
        if not git(store, "tag", "--list", tag).stdout.strip():
            git(store, "tag", tag)
    return store


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
