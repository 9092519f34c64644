"""One pinned black mode, applied in-process to every generated Python file."""

from __future__ import annotations

import black

MODE = black.Mode(target_versions={black.TargetVersion.PY310}, line_length=88)


def format_source(source: str) -> str:
    """Return `source` formatted with kgen's black mode."""
    return black.format_str(source, mode=MODE)
