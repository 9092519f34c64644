"""Run directories: each train starts runs/<time>-<name>; runs/latest links the newest."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sys
import time
from pathlib import Path

from .errors import ConfigError

RUNS = Path("runs")
LATEST = RUNS / "latest"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def new_run_dir(name: str) -> list[Path]:
    """Make runs/<YYYYmmdd-HHMMSS>-<name> for a new run (with -2, -3, ... if it is
    taken): the directories made, the run last, runs/ first if this process made it."""
    if not NAME.fullmatch(name):
        raise ConfigError(
            f"run name {name!r} is not valid: use up to 64 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    if RUNS.exists() and not RUNS.is_dir():
        raise ConfigError(
            f"{str(RUNS)!r} is a file, but train keeps its runs in a directory of that "
            "name: move the file, or give --output-dir"
        )
    made = make_output_dir(RUNS)
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    path, number = RUNS / stem, 1
    while True:
        try:
            # Atomic: two runs started in the same second get two. `parents`: the
            # train that made runs/ may have removed it meanwhile, empty, as it ended.
            path.mkdir(parents=True)
            return [*made, path]
        except FileExistsError:
            number += 1
            path = RUNS / f"{stem}-{number}"


def make_output_dir(path: Path) -> list[Path]:
    """Make `path` (an --output-dir) and its missing parents: the directories this
    process made, topmost first, [] if `path` existed. mkdir is atomic, so of two
    commands given the same new directory, one makes it and the other finds it."""
    made = []
    for directory in (*reversed(path.parents), path):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        made.append(directory)
    return made


# artifacts.run_lock's lock, in every run directory from its first moment: empty, or
# naming the process that holds it (lock_text).
LOCK_FILE = ".lock"
# What a new run holds before it has done anything: its lock and its output names.
PLACEHOLDERS = (LOCK_FILE, "output_names.json")


def lock_text(pid: int) -> str:
    """What run_lock writes in its lock while process `pid` holds it."""
    return f"process {pid}\n"


# A lock's text: empty, or lock_text of any process.
LOCK_TEXT = re.compile(r"(process \d+\n)?")


def discard_if_empty(run: Path) -> None:
    """Remove a new run's directory if the command stopped before writing to it."""
    if not run.is_dir() or not _ours(run):
        return
    if all(path.name in PLACEHOLDERS for path in run.iterdir()):
        for path in run.iterdir():
            path.unlink()
        run.rmdir()


def discard_unfinished(run: Path) -> None:
    """Remove a new run's directory if it has not finished an epoch: a train refused
    midway (bad data, a full disk) leaves nothing to resume."""
    if run.is_dir() and _ours(run) and not holds_checkpoint(run):
        shutil.rmtree(run)


def _ours(run: Path) -> bool:
    """Whether no other process has taken the run: its lock (artifacts.run_lock) is
    missing, empty (a full disk kept us from writing our name) or names this process."""
    lock = run / LOCK_FILE
    try:
        return not lock.exists() or lock.read_text() in ("", lock_text(os.getpid()))
    except (OSError, UnicodeDecodeError):
        return False


def holds_checkpoint(run: Path) -> bool:
    """Whether `run` has finished an epoch: a run to continue rather than start."""
    return any(run.glob("checkpoints/ckpt-*.index"))


def unfinished_latest() -> Path | None:
    """The run runs/latest names if it stopped before it finished (it holds a
    checkpoint but no metrics.json) and no process is training it."""
    if not LATEST.is_symlink():
        return None
    run = RUNS / os.readlink(LATEST)
    if not holds_checkpoint(run) or (run / "metrics.json").exists():
        return None
    try:
        with (run / LOCK_FILE).open() as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released as it closes
    except BlockingIOError:
        return None  # being trained: a new run goes beside it
    except OSError:
        pass  # no lock to read: nobody holds it
    return run


def epochs_done(run: Path) -> int:
    """How many epochs `run`'s history.csv records."""
    try:
        return max(len((run / "history.csv").read_text().splitlines()) - 1, 0)
    except (OSError, UnicodeDecodeError):
        return 0


def mark_latest(run: Path) -> None:
    """Point runs/latest at `run` if it is a run under runs/ (a relative link, replaced
    atomically, so evaluate/predict/export never see it missing)."""
    if run.resolve().parent != RUNS.resolve() or run.name == LATEST.name:
        return
    if LATEST.exists() and not LATEST.is_symlink():
        print(
            f"warning: {str(LATEST)!r} is not a link, so it was left as it is (rename "
            f"it to have it name the newest run, {str(run)!r})",
            file=sys.stderr,
        )
        return
    link = RUNS / f".latest.{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(run.name, link)
    os.replace(link, LATEST)


def run_to_resume(name: str) -> Path:
    """The run `name` names ("latest", a directory, or a name under runs/); it must
    hold a checkpoint."""
    if not name:
        raise ConfigError("--resume= names no run: give a run's name or directory")
    if name == LATEST.name and LATEST.is_symlink():
        path = RUNS / os.readlink(LATEST)
    else:
        path = next((p for p in (Path(name), RUNS / name) if p.is_dir()), None)
    if path is None or not path.is_dir():
        found = sorted(
            (p.name for p in RUNS.glob("*") if p.is_dir() and p != LATEST), reverse=True
        )
        newest = f"newest: {', '.join(found[:3])}" if found else "none yet"
        raise ConfigError(
            f"no run {name!r}: give a run directory or a name under {RUNS}/ ({newest})"
        )
    if not holds_checkpoint(path):
        raise ConfigError(
            f"the run in {str(path)!r} has no checkpoint to resume from (it never "
            "finished an epoch); start a new run"
        )
    return path
