"""Slow: every architecture family learns the bundled sample from scratch and generalizes.

Each case is one row of benchmarks/learning.py: the family's representative, generated
with its default recipe, trained through the project's own CLI; the floors are the
benchmark's (final validation accuracy, train-minus-validation gap, and inference-mode
accuracy on training batches at most 0.05 below training-mode accuracy: stale
normalization statistics make it far lower).
"""

from __future__ import annotations

import json
import subprocess
import sys

import learning
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

# simple_cnn, the default, is test_generated's default-project learning test (both loops).
# mobilenet_v2's floor is asserted in the custom loop (below); the fit loop trains every
# other family with BatchNormalization to its floor. Every other family's representative
# is here, the largest too: each on its shortest measured passing run (TEST_EPOCHS).
NOT_IN_CI = ("simple_cnn", "mobilenet_v2")
CASES = [
    pytest.param(family, arch, "fit", id=f"{arch}-fit")
    for family, arch in learning.REPRESENTATIVES.items()
    if arch not in NOT_IN_CI
]
# The custom loop: one family, mobilenet_v2's floor (resnet50's custom case was dropped
# for CI time; the custom loop's own suites and test_health's custom-loop mobilenet_v2
# cover the rest).
CASES += [
    pytest.param("mobilenet_v2", "mobilenet_v2", "custom", id="mobilenet_v2-custom")
]
# Families tested with a shorter run than their default (the whole cosine schedule, fewer
# epochs) against the same floors; the benchmark measures their default runs. Each
# shorter run was measured first (benchmarks/learning.py --epochs N): efficientnet_b0
# 8 epochs 0.953, efficientnet_v2_b0 5 epochs 0.936, mobilenet 6 epochs 0.939 (gap
# 0.058; 8 epochs: 0.953), densenet121 2 epochs 0.964 (3: 0.978), nasnet_mobile 5 (4
# gave 0.916 and efficientnet_b0 6 gave 0.916: too near the floor to keep), resnet50 5
# epochs 0.944 (3 gave 0.852, 4 gave 0.930: kept at 5). Measured on 2026-12-07, the
# largest on one epoch fewer than before: vgg16 3 epochs 0.967 (4: 0.983), xception 1
# epoch 0.981 (2: 0.989), convnext_tiny 1 epoch 0.936 (2: 0.964), inception_v3 3
# epochs 0.955, resnet50_v2 3 epochs 0.964. mobilenet_v2 keeps its 15 (10 gave 0.911,
# gap 0.085). Measured on 2026-12-07 (session 22): densenet121 1 epoch 0.967, vgg16 2
# epochs 0.933, mobilenet_v3_small 4 epochs 0.975 (its default is 8). Not kept:
# resnet50_v2 2 epochs 0.922 (too near the floor); at 1 epoch most families are far
# below it (resnet50 0.524, efficientnet_b0 0.487, mobilenet 0.504, nasnet_mobile 0.680).
TEST_EPOCHS = {
    "convnext": 1,
    "densenet": 1,
    "efficientnet": 8,
    "efficientnet_v2": 5,
    "inception_resnet_v2": 2,
    "inception_v3": 3,
    "mobilenet": 6,
    "mobilenet_v3": 4,
    "nasnet": 5,
    "resnet": 5,
    "resnet_v2": 3,
    "vgg": 2,
    "xception": 1,
}


@pytest.mark.parametrize("family, arch, loop", CASES)
def test_family_learns_and_generalizes(tmp_path, family, arch, loop):
    row = learning.train_once(arch, loop, TEST_EPOCHS.get(family), tmp_path)
    assert row["final_val_accuracy"] >= learning.FLOOR, row
    assert row["train_minus_val"] <= learning.MAX_GAP, row
    assert row["inference_minus_training_mode"] >= -learning.MAX_MODE_GAP, row


def test_a_pretrained_start_beats_training_from_scratch(tmp_path):
    """benchmarks/fine_tuning.py: MobileNetV2 trained on digits 0-4 starts, with
    --weights PATH, a project on digits 5-9 with ~36 training images per class; with
    the fine-tuning defaults it must beat the same project from scratch by 0.10. On 10
    epochs rather than the recipe's 15 (144 s against ~250 s): 0.834 against 0.642,
    pretraining 0.950 (15 epochs: 0.852 against 0.690)."""
    out = tmp_path / "fine_tuning.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "fine_tuning.py"),
            "--epochs",
            "10",
            "--json",
            str(out),
            "--no-cautious",  # keras-io's values are the benchmark's comparison only
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pretrain, scratch, tuned = (
        row["val_accuracy"] for row in json.loads(out.read_text())[:3]
    )
    assert pretrain >= 0.90, pretrain
    assert tuned >= scratch + 0.10, (tuned, scratch)
