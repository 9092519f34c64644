"""Write the registry's choices into templates/copier.yml; `--check` fails if they drifted.

generator/registry.py is the one vocabulary: copier.yml's `choices:` lines are generated
from it (its defaults read it through the KgenValues Jinja extension).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from generator import registry

COPIER_YML = Path(__file__).resolve().parent.parent / "templates" / "copier.yml"
CHOICES = registry.CHOICES


def with_choices(text: str) -> str:
    """copier.yml's text with each question's `choices:` line set from the registry."""
    for key, table in CHOICES.items():
        block = re.search(rf"^{key}:\n(?:  .*\n)+", text, flags=re.MULTILINE)
        if block is None:
            raise SystemExit(f"copier.yml has no question {key!r}")
        lines = [
            line
            for line in block.group().splitlines()
            if not line.startswith("  choices:")
        ]
        at = next(i for i, line in enumerate(lines) if line.startswith("  help:")) + 1
        lines.insert(at, f"  choices: [{', '.join(table)}]")
        text = text[: block.start()] + "\n".join(lines) + "\n" + text[block.end() :]
    return text


def main() -> int:
    text = COPIER_YML.read_text()
    expected = with_choices(text)
    if "--check" in sys.argv[1:]:
        if expected != text:
            print(
                "templates/copier.yml's choices differ from the registry; run "
                "python tools/copier_yml.py",
                file=sys.stderr,
            )
            return 1
        return 0
    COPIER_YML.write_text(expected)
    return 0


if __name__ == "__main__":
    sys.exit(main())
