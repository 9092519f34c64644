"""benchmarks/scale.py runs end to end at tiny sizes and writes its JSON; as in
test_benchmarks.py no timing is asserted, only that every figure was measured."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_scale_benchmark_measures_every_size(tmp_path):
    out = tmp_path / "scale.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "scale.py"),
            "--sizes",
            "200,400",
            "--work",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: a target missed
    report = json.loads(out.read_text())
    assert [row["n"] for row in report["sizes"]] == [200, 400]
    for row in report["sizes"]:
        assert row["files"] == row["n"]
        assert row["decode_images_per_second"] > 0
        assert row["decode_resize_images_per_second"] > 0
        assert row["train_wall_s"] > 0
        assert row["train_peak_rss_mib"] > 0
    assert set(report["checks"]) == {
        "pipeline_vs_decode_resize",
        "first_step_growth",
        "peak_rss_growth",
    }
    assert "peak_rss_growth" in result.stdout
