"""Write generator/reserved_names.txt: every name a generated package must not take.

A generated project's package must not shadow a module that its own dependencies install
(`absl`, `google`, `ml_dtypes`, ...: importing the project would then break TensorFlow),
nor share a distribution's name (`pip install -e .` would replace that distribution). The
dependencies are the generated project's, read from the template's pyproject.toml (every
extra, every optional dependency), and those of the environment it is usually installed
into: kgen's own (`kgen new kgen` then `pip install -e .` would uninstall kgen), and pip's
build tools. They are walked recursively through the installed distributions' metadata;
each one contributes the top-level import names it installs and its own name.

The versions are the ones constraints.txt pins, so the file is current for what CI and the
README's commands install; `make check-latest` finds a newer release that adds a name.

kgen must not import TensorFlow and must stay fast, so the names are computed here, in an
environment with the generated project's dependencies installed (kgen's `dev` extra), and
checked in; tests/test_reserved_names.py fails when the file is not current. The standard
library's names are not listed: kgen reads them from `sys.stdlib_module_names` at run time.

    python tools/reserved_names.py          # rewrite the file
    python tools/reserved_names.py --check  # exit 1 if it is not current
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
TEMPLATE_PYPROJECT = REPO / "templates" / "project" / "pyproject.toml.jinja"
KGEN_PYPROJECT = REPO / "pyproject.toml"
# Distributions of the environment a project is installed into, whether or not installed
# here (Python 3.12's venvs have no setuptools).
ENVIRONMENT = ("kgen", "pip", "setuptools", "wheel")
OUTPUT = REPO / "generator" / "reserved_names.txt"
IMPORTABLE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

HEADER = """\
# Package names a generated project must not take: every top-level module installed by its
# dependencies, and (as a package name) every such distribution's own name; one per line,
# lower-case, then the distribution it comes from. Written by tools/reserved_names.py from
# the installed dependencies of templates/project/pyproject.toml.jinja, of kgen itself and
# of pip's build tools, at the versions constraints.txt pins; do not edit.
"""


def root_requirements(pyproject: Path = TEMPLATE_PYPROJECT) -> list[Requirement]:
    """The generated project's dependencies and optional dependencies, from the template.

    The Jinja is removed first: `{% ... %}` lines go (so every conditional dependency
    counts) and `{{ ... }}` becomes a placeholder, which leaves plain TOML.
    """
    lines = [
        line
        for line in pyproject.read_text().splitlines()
        if not line.strip().startswith("{%")
    ]
    text = re.sub(r"\{\{.*?\}\}", "placeholder", "\n".join(lines))
    project = tomllib.loads(text)["project"]
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    return [Requirement(spec) for spec in specs]


def kgen_requirements(pyproject: Path = KGEN_PYPROJECT) -> list[Requirement]:
    """kgen's own run-time dependencies (not its extras: they are the project's)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def _wanted(requirement: Requirement, extras: set[str]) -> bool:
    """A dependency that applies: unconditional, on a requested extra, or on a platform or
    Python condition (then it counts wherever it is installed)."""
    marker = requirement.marker
    if marker is None or "extra" not in str(marker):
        return True
    return any(marker.evaluate({"extra": extra}) for extra in extras)


def distributions(roots: list[Requirement]) -> set[str]:
    """Canonical names of the installed distributions the roots need, recursively."""
    missing = [r.name for r in roots if not _installed(r.name)]
    if missing:
        raise SystemExit(
            f"not installed here: {', '.join(missing)}; install kgen's dev extra first"
        )
    found: set[str] = set()
    todo = [(r.name, set(r.extras)) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), frozenset(extras))
        if key in seen or not _installed(name):
            continue
        seen.add(key)
        found.add(key[0])
        for spec in metadata.distribution(name).requires or []:
            requirement = Requirement(spec)
            if _wanted(requirement, extras):
                todo.append((requirement.name, set(requirement.extras)))
    return found


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def reserved_names() -> dict[str, str]:
    """{lower-case name: distribution} for every importable top-level name and every
    distribution name (as a package name) of the dependencies."""
    roots = root_requirements() + kgen_requirements()
    installed = [Requirement(name) for name in ENVIRONMENT if _installed(name)]
    needed = distributions(roots + installed) | set(ENVIRONMENT)
    names: dict[str, str] = {}
    for module, owners in metadata.packages_distributions().items():
        for owner in sorted(owners, key=str.lower):
            if canonicalize_name(owner) in needed and IMPORTABLE.fullmatch(module):
                names.setdefault(module.lower(), canonicalize_name(owner))
    for distribution in needed:
        names.setdefault(re.sub(r"[-.]+", "_", distribution), distribution)
    return dict(sorted(names.items()))


def render(names: dict[str, str]) -> str:
    return HEADER + "".join(f"{name} {owner}\n" for name, owner in names.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the file")
    args = parser.parse_args()
    text = render(reserved_names())
    if args.check:
        if OUTPUT.read_text() != text:
            sys.exit(f"{OUTPUT} is not current: run python tools/reserved_names.py")
        return
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({text.count(chr(10)) - HEADER.count(chr(10))} names)")


if __name__ == "__main__":
    main()
