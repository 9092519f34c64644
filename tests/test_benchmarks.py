"""The benchmark scripts run end to end (tiny sizes) and write their JSON; no timings are
asserted here: the numbers are for reading, not for tests."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow  # runs the benchmark's timed rounds (13 s)
def test_kgen_new_benchmark(tmp_path):
    out = tmp_path / "new.json"
    result = run_benchmark("kgen_new.py", "--runs", "2", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(json.loads(out.read_text())) == {"defaults", "mobilenet_v2 custom tfds"}


@pytest.mark.slow
def test_train_speed_benchmark(tmp_path):
    out = tmp_path / "speed.json"
    result = run_benchmark(
        "train_speed.py", "--rounds", "1", "--steps", "10", "--json", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["ratios"]) == {
        "custom_vs_fit",
        "custom_vs_eager",
        "pipeline_vs_step",
    }
    assert "custom_vs_fit" in result.stdout


@pytest.mark.slow
def test_learning_benchmark_writes_json_and_table(tmp_path):
    out, table = tmp_path / "learning.json", tmp_path / "learning.md"
    result = run_benchmark(
        "learning.py",
        "--only",
        "mlp",
        "--epochs",
        "2",
        "--json",
        str(out),
        "--table",
        str(table),
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: a target missed
    (row,) = json.loads(out.read_text())["rows"]
    assert row["family"] == "mlp" and row["epochs"] == 2
    assert 0.0 <= row["final_val_accuracy"] <= 1.0
    assert "| mlp | mlp (28) | 2 |" in table.read_text()
