"""One pinned black mode, applied in-process to every generated Python file."""

from __future__ import annotations

import functools

import black

MODE = black.Mode(target_versions={black.TargetVersion.PY310}, line_length=88)


@functools.lru_cache(maxsize=1024)
def format_source(source: str) -> str:
    """Return `source` formatted with kgen's black mode. Remembered by content: `kgen
    update` renders the old and the new template, most of whose files are the same."""
    return black.format_str(source, mode=MODE)
