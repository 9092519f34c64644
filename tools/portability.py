"""Portability pass: kgen and its generated projects on every other supported Python.

`make test` runs the whole suite on one Python. For each other version in
`generator.pythons.SUPPORTED` found on this machine (on PATH or under pyenv), this makes a
fresh venv, installs kgen from this checkout, generates the default project and a
keras.applications `mobilenet` one, installs them, and runs the default project's whole
test suite (its train, resume, evaluate, predict and export tests train it through its
command line) and the mobilenet project's model tests. The
Pythons run side by side (most of the time is single-threaded tracing and pip). A
supported Python missing here is reported, not silently skipped. The last line reads
"portability: N passed, N failed ..." (one check per step); the exit code is 1 on a
failure.

    .venv/bin/python tools/portability.py [--keep] [--jobs N] [VERSION ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's generator, whatever is installed

from generator.pythons import SUPPORTED, running  # noqa: E402

# name -> `kgen new` options; the name is the project directory, its package the same.
PROJECTS = {
    "port_default": [],
    "port_mobilenet": ["--arch", "mobilenet"],
}
# The tests each project runs: the default project its whole suite (it trains); the
# application one its model tests (the keras.applications model builds, has the registry's
# parameter count and the task's outputs). Its batch-learning test (35 s of the pass) trains
# as the default project's suite does.
SUITES = {
    "port_default": [],
    "port_mobilenet": ["tests/test_model.py"],
}
STEP_TIMEOUT = 1200  # seconds


@dataclass
class Result:
    version: str
    passed: int = 0
    failed: int = 0
    missing: bool = False


def find_python(version: str) -> str | None:
    """`pythonX.Y` on PATH, else the newest pyenv install of X.Y, if it really runs X.Y."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    installs = sorted(
        pyenv.glob(f"{version}.*/bin/python{version}"),
        key=lambda path: [int(p) for p in path.parts[-3].split(".") if p.isdigit()],
        reverse=True,
    )
    for candidate in [shutil.which(f"python{version}"), *map(str, installs)]:
        if candidate is None:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def environment(home: Path) -> dict[str, str]:
    """This environment without the calling venv, quiet TensorFlow, a private kgen store,
    and pip held to the versions CI passed on (constraints.txt)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env.update(
        TF_CPP_MIN_LOG_LEVEL="2",
        KGEN_HOME=str(home),
        PIP_CONSTRAINT=str(REPO / "constraints.txt"),
    )
    return env


def run_version(version: str, python: str, work: Path) -> Result:
    """Every step on one Python, stopping at the first failure; prints one line a step."""
    result = Result(version)
    root = work / version
    root.mkdir()
    venv = root / "venv"
    bin_ = venv / "bin"
    env = environment(root / "kgen-home")
    pip = [bin_ / "python", "-m", "pip", "install", "-q"]
    # (check, directory, commands run in turn)
    steps = [
        (
            "venv, pip install kgen",
            root,
            [
                [python, "-m", "venv", venv],
                [*pip, "-U", "pip", "setuptools"],
                [*pip, REPO],
            ],
        )
    ]
    for name, options in PROJECTS.items():
        new = [bin_ / "kgen", "new", root / name, "--defaults", *options]
        steps.append((" ".join(["kgen new", name, *options]), root, [new]))
    editable = [arg for name in PROJECTS for arg in ("-e", f"{root / name}[dev]")]
    steps.append(("pip install the projects", root, [[*pip, *editable]]))
    for name in PROJECTS:
        pytest = [bin_ / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command = " ".join(["pytest", *SUITES[name]])
        steps.append((f"{name}: {command}", root / name, [[*pytest, *SUITES[name]]]))

    log = root / "steps.log"
    started = time.perf_counter()
    for name, cwd, commands in steps:
        step_start = time.perf_counter()
        code = 0
        for command in commands:
            code = run_logged(list(map(str, command)), cwd, env, log)
            if code != 0:
                break
        elapsed = time.perf_counter() - step_start
        if code == 0:
            result.passed += 1
            detail = last_line(log) if ": pytest" in name else ""
            print(f"[{version}] ok    {name} ({elapsed:.0f} s) {detail}".rstrip())
            continue
        result.failed += 1
        tail = "\n".join(log.read_text().splitlines()[-30:])
        print(f"[{version}] FAIL  {name} (exit {code}); log {log}:\n{tail}")
        break
    print(f"[{version}] done in {time.perf_counter() - started:.0f} s", flush=True)
    return result


def run_logged(
    command: list[str], cwd: Path, env: dict[str, str], log: Path
) -> int | str:
    """Run `command`, appending its output to `log`; its exit code, or why it stopped."""
    with log.open("a") as out:
        out.write(f"\n$ cd {cwd} && {' '.join(command)}\n")
        out.flush()
        try:
            return subprocess.run(
                command,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=STEP_TIMEOUT,
            ).returncode
        except subprocess.TimeoutExpired:
            return f"timed out after {STEP_TIMEOUT} s"


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", help="default: the other supported ones")
    parser.add_argument("--keep", action="store_true", help="keep the venvs and logs")
    parser.add_argument("--jobs", type=int, default=2, help="Pythons run side by side")
    args = parser.parse_args(argv)
    current = ".".join(map(str, running()))
    versions = args.versions or [v for v in SUPPORTED if v != current]
    print(
        f"portability: supported Pythons {', '.join(SUPPORTED)}; {current} ran the "
        f"suite; now {', '.join(versions)}",
        flush=True,
    )

    results, found = [], {}
    for version in versions:
        python = find_python(version)
        if python is None:
            print(
                f"portability: Python {version} is supported but MISSING on this machine "
                f"(no python{version} on PATH or under pyenv): NOT TESTED"
            )
            results.append(Result(version, missing=True))
        else:
            found[version] = python
            print(f"portability: Python {version}: {python}")

    work = Path(tempfile.mkdtemp(prefix="kgen-portability-"))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [
            pool.submit(run_version, version, python, work)
            for version, python in found.items()
        ]
        results += [future.result() for future in futures]

    passed = sum(r.passed for r in results)
    failed = sum(r.failed for r in results)
    missing = [r.version for r in results if r.missing]
    if args.keep or failed:
        print(f"portability: venvs, projects and logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"portability: {passed} passed, {failed} failed "
        f"(Python {', '.join(found) or 'none'}; missing: {', '.join(missing) or 'none'}) "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
