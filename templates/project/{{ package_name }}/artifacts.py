"""The files a run writes and reads back: JSON, text, the trained model, output names."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError, first_line
from .runs import LOCK_FILE, LOCK_TEXT, holds_checkpoint, lock_text

MODEL_FILE = "model.keras"
OUTPUT_NAMES_FILE = "output_names.json"

if TYPE_CHECKING:  # the command line reads configs without loading TensorFlow
    import keras


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text as write_bytes does."""
    write_bytes(path, text.encode())


def write_bytes(path: Path, contents: bytes) -> None:
    """Write via a temporary file and a rename: a crash never leaves a truncated file,
    and what a killed writer of `path` left is removed by the next."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_scratch(path)
    tmp = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=scratch_prefix(path), suffix=".tmp", delete=False
    )
    try:
        with tmp:
            tmp.write(contents)
        os.chmod(tmp.name, 0o666 & ~_umask())  # as open() would: tmp is private
        os.replace(tmp.name, path)
    except BaseException:  # a full disk, say: no temporary file is left behind
        os.unlink(tmp.name)
        raise


def scratch_prefix(path: Path) -> str:
    """The start of the name of a scratch file or directory for writing `path`, beside
    it: it names this process, so that a later command knows whether it is gone."""
    return f".{path.name}.{os.getpid()}."


def remove_dead_scratch(path: Path) -> None:
    """Remove the scratch files and directories for `path` (scratch_prefix) whose
    process is gone: a command killed outright (SIGKILL, a power cut) leaves them."""
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.(\w+\.)?tmp")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None or _running(int(found[1])):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def check_destination(
    path: Path, flag: str, what: str, ours: Callable[[Path], bool]
) -> None:
    """Before writing `path`, which the user named with `flag`: only a new file, or a
    regular file that `ours` recognises as `what` this project wrote, may be replaced;
    never a link, a directory, a device or a pipe, nor anybody else's file."""
    if path.is_symlink():
        raise ConfigError(f"{flag} {str(path)!r} is a symbolic link: name a new file")
    if not path.exists():
        return
    if not path.is_file():
        raise ConfigError(
            f"{flag} {str(path)!r} is not a regular file: name a new file"
        )
    if not ours(path):
        raise ConfigError(
            f"{flag} {str(path)!r} exists and is not {what} this project wrote: "
            "name a new file"
        )


MISSING = "does not exist"  # unreadable's reason for a path that is not there


def unreadable(path: Path) -> str | None:
    """Why `path`, a file the user named, cannot be read as one, or None. Checked before
    it is opened: reading a pipe, a socket or a device would block or never end."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return MISSING
    except OSError as error:
        return f"cannot be read: {error.strerror}"
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a pipe, socket or device)"
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2) + "\n")


def read_json(path: Path) -> Any:
    """The JSON value in `path`; ConfigError naming the file if it is missing or broken."""
    problem = unreadable(path)
    if problem == MISSING:
        raise ConfigError(f"{str(path)!r} {MISSING}; run train first")
    if problem:
        raise ConfigError(f"{str(path)!r} {problem}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as error:  # bad JSON or UTF-8
        raise ConfigError(f"cannot read {str(path)!r}: {error}") from None


def save_model(model: keras.Model, workdir: Path) -> None:
    """Save workdir/model.keras via a temporary file, so a crash never leaves it truncated."""
    path = workdir / MODEL_FILE
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


SWEEP_RESULT, SWEEP_FIGURE = "lr_find.json", "lr_find.png"  # what lr-find writes


def check_output_dir(workdir: Path, command: str, ours: Callable[[Path], bool]) -> None:
    """Refuse an output directory that exists, is not empty and is not `ours`: its
    files are the user's, and `command` would write beside them or over them."""
    if workdir.is_dir() and any(workdir.iterdir()) and not ours(workdir):
        raise ConfigError(
            f"output directory {str(workdir)!r} holds files {command} did not write: "
            "name a new or empty directory"
        )


def is_run(workdir: Path) -> bool:
    """Whether workdir is a training run's or a tune study's: it has finished an epoch,
    or its lock is run_lock's (empty, or lock_text of the process that held it)."""
    if holds_checkpoint(workdir):
        return True
    if unreadable(workdir / LOCK_FILE):  # none, or a pipe that would block the read
        return False
    try:
        lock = (workdir / LOCK_FILE).read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return LOCK_TEXT.fullmatch(lock) is not None


def in_run(directory: Path) -> bool:
    """Whether `directory`, or a directory it is in, is a run's (is_run)."""
    resolved = directory.resolve()
    return any(is_run(path) for path in (resolved, *resolved.parents))


def is_sweep(workdir: Path) -> bool:
    """Whether workdir holds lr-find's sweep and nothing else; the temporary files of
    a write_bytes that was killed (.lr_find.json.<random>) count as lr-find's own."""
    names = {path.name for path in workdir.iterdir()}
    prefixes = (f".{SWEEP_RESULT}.", f".{SWEEP_FIGURE}.")
    leftovers = {name for name in names if name.startswith(prefixes)}
    if SWEEP_RESULT not in names:
        return names == leftovers  # a first sweep killed before it wrote its result
    if not names - leftovers <= {SWEEP_RESULT, SWEEP_FIGURE}:
        return False
    if unreadable(workdir / SWEEP_RESULT):
        return False
    try:
        result = json.loads((workdir / SWEEP_RESULT).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(result, dict) and {"rule", "rates", "losses"} <= result.keys()


@contextmanager
def run_lock(workdir: Path) -> Iterator[None]:
    """Hold workdir for this process: a second train on it fails at once, naming us.

    The lock is an flock on workdir/.lock, which the kernel releases when the process
    ends however it ends, so a crashed run's lock never blocks the next.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / LOCK_FILE).open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "another process"
            raise ConfigError(
                f"output directory {str(workdir)!r} is in use by {owner}; wait for it to "
                "finish or use another --output-dir"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(lock_text(os.getpid()))
        lock.flush()
        yield


def load_trained_model(workdir: Path) -> keras.Model:
    """The trained model in workdir/model.keras, uncompiled."""
    path = workdir / MODEL_FILE
    problem = unreadable(path) if path.exists() else None
    if problem:
        raise ConfigError(f"{str(path)!r} {problem}; run train again")
    if not path.is_file():
        if holds_checkpoint(workdir):
            raise ConfigError(
                f"the run in {str(workdir)!r} has not finished, so it has no model.keras "
                f"yet (train --resume {workdir} continues it)"
            )
        raise ConfigError(f"no trained model at {str(path)!r}; run train first")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as error:
        reason = first_line(error)
        raise ConfigError(
            f"cannot load {str(path)!r} ({reason}); train again to rewrite it"
        ) from None


# Unicode categories a name must not hold: control (Cc), format (Cf: zero-width, direction
# marks), line and paragraph separators (Zl, Zp), unassigned code points (Cn) and lone
# surrogates (Cs: a file name's bytes that are not UTF-8): line breaks, names that print
# as something else, or names no file format can hold.
HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cn", "Cs"}
# Letters and symbols that print as nothing: the Hangul fillers, the blank braille cell
# and the ideographic half fill space. A name of only these, spaces and combining marks
# shows as blank.
BLANK = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u303f"}
# Combining marks that print as nothing: the grapheme joiner, the variation selectors and
# Mongolian's free variation selectors. "dogs" followed by one shows as "dogs".
IGNORED = re.compile("[\u034f\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def check_output_names(names: list[str]) -> None:
    """The data's names (classes, labels or targets) are written one per line in
    labels.txt, and into cells of predictions.csv and the reports' tables: each must be
    one line of visible text, with no space at either end, and show unlike the others
    (else DataError, naming it)."""
    seen: dict[str, str] = {}
    for name in names:
        if (
            _blank(name)
            or name != name.strip()
            or any(unicodedata.category(c) in HIDDEN for c in name)
        ):
            raise DataError(
                f"the data names {name!r}: a class, label or target name must be one "
                "line of visible text (no line breaks, tabs, invisible characters or "
                "spaces at either end); rename it"
            )
        shown = _shown(name)
        if shown in seen:
            other = seen[shown]
            twice = "twice" if other == name else f"and {other!r}, which show alike"
            raise DataError(
                f"the data names {name!r} {twice}: each class, label or target name "
                "must be used once; rename one"
            )
        seen[shown] = name


def _blank(name: str) -> bool:
    return all(
        c.isspace() or c in BLANK or unicodedata.category(c) in {"Mn", "Me"}
        for c in name
    )


def _shown(name: str) -> str:
    """What `name` looks like: é composed or decomposed, a no-break or full-width space
    and a plain one, with or without an ignored mark, are the same."""
    text = IGNORED.sub("", unicodedata.normalize("NFC", name))
    return " ".join("".join(" " if c in BLANK else c for c in text).split())


def save_output_names(workdir: Path, names: list[str]) -> None:
    write_json(workdir / OUTPUT_NAMES_FILE, names)


def check_same_outputs(workdir: Path, names: list[str]) -> None:
    """The data's outputs (class names, labels, targets) are those the run in workdir
    was trained on, if it has any: renamed or added classes would be mislabelled."""
    if not (workdir / OUTPUT_NAMES_FILE).is_file():
        return
    trained = load_output_names(workdir)
    if names != trained:
        missing = [name for name in trained if name not in names]
        added = [name for name in names if name not in trained]
        difference = "; ".join(
            f"{what}: {_listed(which)}"
            for what, which in (("missing", missing), ("not trained on", added))
            if which
        )
        raise ConfigError(
            f"the data's outputs are not those the run in {str(workdir)!r} was trained "
            f"on ({difference or 'the same names in another order'}); use that data, "
            "or start a new run"
        )


def _listed(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f", ... ({len(names)})" if len(names) > 5 else "")


def load_output_names(workdir: Path) -> list[str]:
    """The names of the model's outputs, in order, as the run saved them."""
    names = read_json(workdir / OUTPUT_NAMES_FILE)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConfigError(
            f"{str(workdir / OUTPUT_NAMES_FILE)!r} must hold a JSON list of names; "
            "train again to rewrite it"
        )
    return names
