"""What each training option does to learning: the default project (simple_cnn, fit, the
bundled digits sample, its recipe's epochs) without options, with each option alone and
with all of them, through the project's own CLI.

Prints a Markdown table and writes JSON: final and best validation accuracy, the final
train-minus-validation gap and wall time per row. One seed per row: differences of about
0.01 are noise.

    python benchmarks/options.py [--arch simple_cnn] [--loop fit|custom] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from learning import train_once

ALL = dict(
    randaugment=True,
    class_weights=True,
    lr_schedule="plateau",
    ema=True,
    keep_best=True,
)
OPTIONS = {
    "none": {},
    "--augment": dict(augment=True),
    "--randaugment": dict(randaugment=True),
    "--mix mixup": dict(mix="mixup"),
    "--mix cutmix": dict(mix="cutmix"),
    "--class-weights": dict(class_weights=True),
    "--lr-schedule plateau": dict(lr_schedule="plateau"),
    "--ema": dict(ema=True),
    "--keep-best": dict(keep_best=True),
    "--randaugment --class-weights --lr-schedule plateau --ema --keep-best": ALL,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="simple_cnn")
    parser.add_argument("--loop", default="fit", choices=["fit", "custom"])
    parser.add_argument("--json", type=Path, default=Path("options.json"))
    args = parser.parse_args()
    rows = []
    lines = [
        "| options | final val acc | best val acc | train - val | wall time |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="kgen-options-") as tmp:
        for name, options in OPTIONS.items():
            row = train_once(args.arch, args.loop, None, Path(tmp), **options)
            rows.append({"options": name, **row})
            print(f"{name}: {row}", flush=True)
            args.json.write_text(json.dumps(rows, indent=2) + "\n")  # after each row
            lines.append(
                f"| {name} | {row['final_val_accuracy']:.3f} "
                f"| {row['best_val_accuracy']:.3f} | {row['train_minus_val']:+.3f} "
                f"| {row['seconds']:.0f} s |"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
