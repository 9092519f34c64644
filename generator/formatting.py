"""One pinned black mode, applied in-process to every generated Python file."""

from __future__ import annotations

from pathlib import Path

import black

MODE = black.Mode(target_versions={black.TargetVersion.PY310}, line_length=88)


def format_source(source: str) -> str:
    """Return `source` formatted with kgen's black mode."""
    return black.format_str(source, mode=MODE)


def format_tree(root: Path) -> list[Path]:
    """Format every .py file under `root` in place; return the files that changed."""
    changed = []
    for path in sorted(root.rglob("*.py")):
        if ".git" in path.parts:
            continue
        source = path.read_text()
        formatted = format_source(source)
        if formatted != source:
            path.write_text(formatted)
            changed.append(path)
    return changed


def main() -> None:
    """`python -m generator.formatting [DIR]`: the copier task that formats a render."""
    import sys

    format_tree(Path(sys.argv[1] if len(sys.argv) > 1 else "."))


if __name__ == "__main__":
    main()
