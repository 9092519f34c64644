"""kgen installed from a wheel (no git checkout) generates and updates projects."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_wheel_carries_the_template_and_works_without_the_checkout(tmp_path):
    wheels = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("kgen-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "generator/templates/copier.yml" in names
    assert "generator/reserved_names.txt" in names  # read by spec at run time
    assert any(name.endswith("/digits.npz") for name in names)

    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(site), "KGEN_HOME": str(tmp_path / "home")}

    def kgen(*args: str, cwd=tmp_path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "generator", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import generator.render as r; print(r.template_dir())"],
        env=env,
        cwd=tmp_path,  # not the checkout: its generator/ must not shadow the wheel's
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(site)), where

    assert kgen("new", "proj", "--defaults").returncode == 0
    assert (tmp_path / "proj" / "proj" / "train.py").is_file()
    updated = kgen("update", "--loop", "custom", cwd=tmp_path / "proj")
    assert updated.returncode == 0, updated.stderr
    assert "tf.GradientTape()" in (tmp_path / "proj" / "proj" / "loop.py").read_text()
