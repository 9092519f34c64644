"""kgen's template store: a local git repository holding every template version kgen ran.

copier can only update from a git template, and it re-renders a project's *old* template
version from the commit recorded in `.copier-answers.yml`. kgen may be installed from a
wheel, with no git history of its own, so each kgen run commits its installed template into
the store (only when the content changed) and tags the first commit of each kgen version
`v<version>`. Projects record the store as `_src_path`; `kgen update` finds both the old
and the new version there. The store lives in `$KGEN_HOME/template` (default
`~/.local/share/kgen/template`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from generator import __version__
from generator.spec import SpecError


def store_dir() -> Path:
    home = os.environ.get("KGEN_HOME") or "~/.local/share/kgen"
    return Path(home).expanduser() / "template"


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run git in `repo` with an identity of its own, capturing output."""
    command = ["git", "-c", "user.name=kgen", "-c", "user.email=kgen@localhost", *args]
    return subprocess.run(
        command, cwd=repo, check=check, capture_output=True, text=True
    )


@contextmanager
def locked(store: Path) -> Iterator[None]:
    """Serialise store writes between concurrent kgen processes."""
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.parent / "template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def sync(template: Path, store: Path | None = None, version: str = __version__) -> Path:
    """Commit `template` into the store if its content is new; tag v<version>; return store."""
    store = store or store_dir()
    with locked(store):
        if not (store / ".git").is_dir():
            store.mkdir(parents=True, exist_ok=True)
            git(store, "init", "--quiet", "--initial-branch=main")
        for entry in store.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        shutil.copytree(
            template,
            store,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        git(store, "add", "--all")
        if git(store, "diff", "--cached", "--quiet", check=False).returncode != 0:
            git(store, "commit", "--quiet", "-m", f"kgen {version} template")
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
