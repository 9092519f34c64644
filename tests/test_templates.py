"""The templates stay readable: few Jinja control lines, no tables, plain Python modules.

A variant is a module (templates/variants/), not a branch: this test prints the control
lines (`{% ... %}`) of every Python template and fails above the budget.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from conftest import REPO

TEMPLATES = REPO / "templates"
# The total grew from 120 to 140 with the tfrecord source: a project without sources.py,
# a prepare command or data.prepared (14 lines in __main__, config, data and tests); to
# 255 with the training options (MixUp/CutMix, RandAugment, class weights, plateau,
# EMA, best checkpoint), `tune`, MLflow tracking and folder data's class count (137 ->
# 252): each option's code is a module or a variant of its own (mixing.py, best.py,
# plateau.py, class_weights.py, tune.py, tracking.py and their tests), and these lines
# choose and wire them (checkpoints' callbacks, the optimizer's averaging, the
# augmenter's layers, the loss and metrics of mixed labels, the tune command and config
# section, the tests' MLflow store). The evaluation reports took 13 more (268): a report
# module per task (binary's ROC and threshold, multilabel's curves) sharing the
# classes', curves' and core parts, and the generated tests/test_report.py per task.
# Serving, test sets and their tests: 285. The pretrained start (--weights): 318, the
# backbone built and named, its weights checked before a run writes, the phase callback
# in each loop, the rate schedule, the export's copy built without them, and the tests'
# stand-in weights, passed on to a subprocess in the tune test (fine_tuning.py and its
# test hold the rest). Run health and lr-find: 322 (the task's health functions, the
# normalization advice with and without the BatchNormalization momentum setting, the
# README section).
MAX_TOTAL, MAX_PER_FILE = 322, 20
_JINJA_TAG = re.compile(r"{%.*?%}|{{.*?}}")


def python_templates() -> list[Path]:
    """Every template that renders to Python, conditional file names included."""
    return sorted(
        path
        for path in TEMPLATES.rglob("*")
        if path.is_file()
        and _JINJA_TAG.sub("", path.name).endswith((".py", ".py.jinja"))
    )


def control_lines(path: Path) -> int:
    return sum("{%" in line for line in path.read_text().splitlines())


def test_control_lines_stay_within_budget(capsys):
    counts = {
        path.relative_to(TEMPLATES): control_lines(path) for path in python_templates()
    }
    with capsys.disabled():
        print(f"\nJinja control lines in {len(counts)} Python templates:")
        for path, count in sorted(counts.items(), key=lambda item: -item[1]):
            if count:
                print(f"  {count:>3}  {path}")
        print(f"  {sum(counts.values()):>3}  in total (budget {MAX_TOTAL})")
    too_many = {str(path): n for path, n in counts.items() if n > MAX_PER_FILE}
    assert not too_many, f"over {MAX_PER_FILE} control lines: {too_many}"
    assert sum(counts.values()) <= MAX_TOTAL


def test_no_tables_in_templates():
    """Vocabulary lives in generator/registry.py, not in `{% set %}` tables."""
    offenders = [
        str(path.relative_to(TEMPLATES))
        for path in TEMPLATES.rglob("*.jinja")
        if "{% set" in path.read_text()
    ]
    assert offenders == []


def test_package_imports_are_relative():
    """Inside the generated package, modules import each other relatively."""
    package = TEMPLATES / "project" / "{{ package_name }}"
    for path in package.rglob("*.py*"):
        assert "from {{ package_name }}" not in path.read_text(), path
    for path in (TEMPLATES / "variants").rglob("*.jinja"):
        if "tests" not in path.parts and "conftest" not in path.parts:
            assert "from {{ package_name }}" not in path.read_text(), path


def test_plain_modules_have_no_template_syntax():
    """Package modules without the .jinja suffix are copied as they are."""
    package = TEMPLATES / "project" / "{{ package_name }}"
    for path in package.glob("*.py"):
        assert not _JINJA_TAG.search(path.read_text()), path


def test_copier_yml_choices_come_from_the_registry():
    """`python tools/copier_yml.py` would change nothing: copier.yml has not drifted."""
    sys.path.insert(0, str(REPO / "tools"))
    import copier_yml

    assert copier_yml.with_choices(copier_yml.COPIER_YML.read_text()) == (
        copier_yml.COPIER_YML.read_text()
    )
    config = yaml.safe_load(copier_yml.COPIER_YML.read_text())
    for key, table in copier_yml.CHOICES.items():
        assert config[key]["choices"] == list(table), key
    defaults = [
        str(q.get("default", "")) for q in config.values() if isinstance(q, dict)
    ]
    assert not any("{'" in default for default in defaults)  # no tables in defaults


def test_root_readme_lists_every_generated_module(tmp_path):
    """The root README's layout of a generated project names each of its modules."""
    from conftest import generate

    project = generate(tmp_path, "my-digits", data="npz")
    readme = (REPO / "README.md").read_text()
    layout = readme[
        readme.index("my-digits/\n") : readme.index("```", readme.index("my-digits/\n"))
    ]
    for path in [
        *(project / "my_digits").glob("*.py"),
        *(project / "tests").glob("*.py"),
    ]:
        assert path.name in layout, path.name
