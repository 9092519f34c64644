"""Wall time of `kgen new` (target: under 1 s). Prints a table and writes JSON.

Runs the installed `kgen` console script end to end (interpreter start-up, copier render,
black, git init and commit) several times and reports the median and the worst run.

    python benchmarks/kgen_new.py [--runs 7] [--json build/bench/kgen_new.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "defaults": ["--defaults"],
    "mobilenet_v2 custom tfds": [
        "--arch",
        "mobilenet_v2",
        "--loop",
        "custom",
        "--data",
        "tfds",
        "--defaults",
    ],
}


def kgen_command() -> list[str]:
    script = Path(sys.executable).parent / "kgen"
    return [str(script)] if script.exists() else [sys.executable, "-m", "generator"]


def time_case(options: list[str], runs: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(runs):
            destination = Path(tmp) / f"project-{index}"
            start = time.perf_counter()
            subprocess.run(
                [*kgen_command(), "new", str(destination), *options],
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - start)
            shutil.rmtree(destination)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, default=Path("build/bench/kgen_new.json"))
    args = parser.parse_args()

    time_case(["--defaults"], 1)  # warm the file cache once
    results = {}
    print(f"{'case':<28}{'median s':>10}{'max s':>10}  target < 1 s")
    for name, options in CASES.items():
        times = time_case(options, args.runs)
        median = statistics.median(times)
        results[name] = {"median_s": median, "max_s": max(times), "runs": times}
        verdict = "ok" if median < 1.0 else "SLOW"
        print(f"{name:<28}{median:>10.3f}{max(times):>10.3f}  {verdict}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
