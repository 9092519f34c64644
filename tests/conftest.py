"""Shared helpers: render projects with kgen and inspect them."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from generator.render import create_project
from generator.spec import ProjectSpec

REPO = Path(__file__).resolve().parent.parent
# The learning benchmark's floors and helpers are the tests' too: `import learning`.
sys.path.insert(0, str(REPO / "benchmarks"))


def generate(parent: Path, name: str = "my-digits", **options: object) -> Path:
    """Render a project with kgen's real pipeline (copier, black, git) and return its
    path. A project already rendered in this process with the same name, options and
    template store is copied rather than rendered again (a render takes ~1 s; 37 of
    test_render's 264 repeated one)."""
    destination = parent / name
    key = (name, os.environ.get("KGEN_HOME"), repr(sorted(options.items())))
    if key not in _RENDERED:
        create_project(ProjectSpec(project_name=name, **options), destination)
        _RENDERED[key] = _render_cache() / str(len(_RENDERED)) / name
        shutil.copytree(destination, _RENDERED[key], symlinks=True)
    else:
        shutil.copytree(_RENDERED[key], destination, symlinks=True)
    return destination


# (name, template store, options) -> a pristine copy of that render.
_RENDERED: dict[tuple[str, str | None, str], Path] = {}


def _render_cache() -> Path:
    """This process's directory of pristine renders, removed as it exits."""
    if not _CACHE:
        _CACHE.append(Path(tempfile.mkdtemp(prefix="kgen-renders-")))
        atexit.register(shutil.rmtree, _CACHE[0], ignore_errors=True)
    return _CACHE[0]


_CACHE: list[Path] = []


def template_syntax(text: str) -> list[str]:
    """The Jinja markers left in a rendered file's text; GitHub Actions' expressions,
    ${{ ... }}, are the workflow's own syntax, not leftovers."""
    text = re.sub(r"\$\{\{[^}]*\}\}", "", text)
    return [marker for marker in ("{{", "{%", "%}", "{#") if marker in text]


def run_python(
    *args: str,
    cwd: Path,
    timeout: float = 900,
    package_root: Path | list[Path] | None = None,
) -> subprocess.CompletedProcess:
    """Run this interpreter in `cwd`, capturing output. The generated package imports
    from `cwd`, or from `package_root` (one project or several) when the command must
    run elsewhere."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)  # kgen's pytest options are not a project suite's
    if package_root is not None:
        roots = package_root if isinstance(package_root, list) else [package_root]
        env["PYTHONPATH"] = os.pathsep.join(map(str, roots))
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Generated packages' `main` run for many command lines in one process, each as
# `python -m PACKAGE ARGV` would run it in its working directory: its exit code
# (argparse's SystemExit included; an escaped exception prints its traceback and exits
# 1), what it printed, and the names in its working directory afterwards; all under
# tfds's mock data when asked. argv: the commands' JSON file, the results' JSON file.
COMMANDS = """
import contextlib, importlib, io, json, os, sys, traceback

with open(sys.argv[1]) as file:
    commands, mock_tfds = json.load(file)
mock = contextlib.nullcontext()
if mock_tfds:
    import tensorflow_datasets as tfds

    mock = tfds.testing.mock_data(
        num_examples=128, policy=tfds.testing.MockPolicy.USE_CODE
    )
results = []
with mock:
    for package, argv, cwd in commands:
        main = importlib.import_module(package + ".__main__").main
        os.chdir(cwd)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as stop:
                code = 0 if stop.code is None else stop.code
                if not isinstance(code, int):
                    print(code, file=sys.stderr)
                    code = 1
            except BaseException:
                traceback.print_exc()
                code = 1
        results.append([code, out.getvalue(), err.getvalue(), sorted(os.listdir(cwd))])
with open(sys.argv[2], "w") as file:
    json.dump(results, file)
"""


def run_commands(
    roots: Path | list[Path],
    commands: list[tuple[str, list[str], Path]],
    workdir: Path,
    mock_tfds: bool = False,
    timeout: float = 900,
) -> list[subprocess.CompletedProcess]:
    """Run each (package, argv, working directory) of `commands`, the packages found
    under `roots`, in one process: a command that reaches TensorFlow costs its 4-8 s
    import once, not once a command. Each result's `args` holds the names in its working
    directory after it."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "commands.json").write_text(
        json.dumps(
            [[[package, argv, str(cwd)] for package, argv, cwd in commands], mock_tfds]
        )
    )
    process = run_python(
        "-c",
        COMMANDS,
        str(workdir / "commands.json"),
        str(workdir / "results.json"),
        cwd=workdir,
        package_root=roots,
        timeout=timeout,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    return [
        subprocess.CompletedProcess(names, code, out, err)
        for code, out, err, names in json.loads((workdir / "results.json").read_text())
    ]


def assert_project_refused(result: subprocess.CompletedProcess, pattern: str) -> None:
    """Exit code 2, one "proj: error:" line matching `pattern`, no traceback."""
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "proj: error:" in line]
    assert len(errors) == 1 and re.search(pattern, errors[0]), result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def listing(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple | None]:
    """Every path under root, by lstat only (a pipe is never read): a file's mode, size
    and modification time; None for a directory (its times change when an entry is made
    and removed again). Names in `skip` are left out."""
    entries = {}
    for path in root.rglob("*"):
        if path.name in skip:
            continue
        info = path.lstat()
        entries[str(path.relative_to(root))] = (
            None
            if stat.S_ISDIR(info.st_mode)
            else (info.st_mode, info.st_size, info.st_mtime_ns)
        )
    return entries


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def train(project: Path, out: Path, *args: str, package: str = "proj"):
    """`python -m <package> train --output-dir out ARGS` in the project; it must succeed."""
    result = run_python(
        "-m", package, "train", "--output-dir", str(out), *args, cwd=project
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(autouse=True, scope="session")
def kgen_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template store of this test session's own, never the user's."""
    home = tmp_path_factory.mktemp("kgen-home")
    os.environ["KGEN_HOME"] = str(home)
    return home


@pytest.fixture
def project_factory(tmp_path: Path):
    def factory(name: str = "my-digits", **options: object) -> Path:
        return generate(tmp_path, name, **options)

    return factory


# Modules whose tests run for minutes each. Started first (longest first): with xdist's
# worksteal scheduling (the Makefile's), the workers then end the suite on short tests
# together rather than one finishing a long run alone.
LONGEST_FIRST = ("test_learning.py", "test_generated.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return (
            LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
        )

    items.sort(key=rank)


# Worker-seconds by test module (setup, call and teardown), for tests/README.md's table;
# under xdist the controller receives every worker's reports.
_MODULE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    module = report.nodeid.split("::")[0]
    _MODULE_SECONDS[module] = _MODULE_SECONDS.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _MODULE_SECONDS:
        return
    terminalreporter.section("worker-seconds by module")
    for module, seconds in sorted(_MODULE_SECONDS.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:9.1f} s  {module}")
    terminalreporter.write_line(f"{sum(_MODULE_SECONDS.values()):9.1f} s  in all")
