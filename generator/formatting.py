"""One pinned black mode, applied in-process to every generated Python file.

`kgen new` may format in worker processes instead (see `ParallelFormatter`): black is most
of a render's time, and it runs while copier goes on rendering the other files.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import black

MODE = black.Mode(target_versions={black.TargetVersion.PY310}, line_length=88)

# A NUL byte never occurs in a rendered template, so a placeholder cannot be mistaken.
_PLACEHOLDER = "\x00kgen-black:{}\x00"
_MARK = "\x00kgen-black:"


def format_source(source: str) -> str:
    """Return `source` formatted with kgen's black mode."""
    return black.format_str(source, mode=MODE)


class ParallelFormatter:
    """Formats in forked worker processes; the written files get the same bytes.

    `submit` hands a source to a worker and returns a placeholder, which copier writes in
    place of the formatted file; `fill` then writes each formatted result over its
    placeholder, wherever it ended up.
    """

    def __init__(self, workers: int) -> None:
        self._pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("fork")
        )
        self._jobs: dict[str, Future[str]] = {}

    def submit(self, source: str) -> str:
        if _MARK in source:  # a formatted template rendered inside another one
            source = self._resolve(source)
        placeholder = _PLACEHOLDER.format(len(self._jobs))
        self._jobs[placeholder] = self._pool.submit(format_source, source)
        return placeholder

    def fill(self, root: Path) -> None:
        """Replace the placeholders in the files under `root` with black's output."""
        mark = _MARK.encode()
        for directory, _, files in os.walk(root):
            for name in files:
                path = Path(directory, name)
                if path.is_symlink():
                    continue
                content = path.read_bytes()
                if mark in content:
                    path.write_bytes(self._resolve(content.decode()).encode())

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _resolve(self, text: str) -> str:
        for placeholder, job in self._jobs.items():
            if placeholder in text:
                text = text.replace(placeholder, job.result())
        return text


_formatter: ContextVar[ParallelFormatter | None] = ContextVar(
    "kgen_formatter", default=None
)


def format_or_defer(source: str) -> str:
    """`format_source`, or a placeholder while a `parallel_formatting` block is active."""
    formatter = _formatter.get()
    return format_source(source) if formatter is None else formatter.submit(source)


@contextmanager
def parallel_formatting(root: Path, workers: int = 2) -> Iterator[None]:
    """Format in `workers` processes while the block renders into `root`; fill at exit.

    The workers are forked, so this formats in-process instead when other threads run
    (one might hold a lock the children need), or when there is a single CPU.
    """
    if threading.active_count() > 1 or (os.cpu_count() or 1) < 2:
        yield
        return
    formatter = ParallelFormatter(workers)
    try:
        token = _formatter.set(formatter)
        try:
            yield
        finally:
            _formatter.reset(token)
        formatter.fill(root)
    finally:
        formatter.close()
