"""Every keras.applications model is in the registry and builds as its project builds it;
each family trains a step."""

from __future__ import annotations

import inspect
import json

import pytest

from conftest import generate, run_python
from generator import registry


def test_registry_covers_every_keras_application():
    import keras  # imported here: the other tests need no TensorFlow in this process

    exported = {
        name
        for name, obj in vars(keras.applications).items()
        if inspect.isfunction(obj) and name[0].isupper()
    }
    covered = {
        arch.keras_class for arch in registry.ARCHITECTURES.values() if arch.keras_class
    }
    assert (
        exported - covered == set()
    ), "keras.applications models missing from the registry"
    assert covered - exported == set(), "registry names models keras.applications lacks"


# Every member of a family is built as its project builds it (preprocessing, head,
# BatchNormalization momentum) and run forward in training mode; the first, the family's
# smallest, also takes one eager training step: forward, backward, update. Members differ
# only in depth and width, which keras.applications builds; the backward pass and the
# optimizer's slots for the largest (ConvNeXtXLarge: 30 s a step here, 4 s to build and
# run forward) cost most of this test and exercise no code of the project's. Eager,
# because tracing the largest models costs minutes (see FACTS.md); the compiled path is
# covered by the generated suites and the learning floors. One process per group of
# families (GROUPS): its members share TensorFlow's import. argv: JSON [[package,
# whether it takes the step], ...].
STEP = """
import importlib, json, sys
import numpy as np, tensorflow as tf, keras

for package, stepped in json.loads(sys.argv[1]):
    Config = importlib.import_module(package + ".config").Config
    preprocess = importlib.import_module(package + ".data").preprocess
    model_for_run = importlib.import_module(package + ".model").model_for_run
    keras.backend.clear_session()
    # A fixed initialization: efficientnet_v2_l (batch 2 at 32 px) once gave a
    # non-finite gradient in CI from an unlucky draw; 6 seeded draws were all finite.
    keras.utils.set_random_seed(0)
    cfg = Config()
    cfg.train.epochs = 1
    model = model_for_run(cfg, 10)  # as train builds it: BatchNormalization sized to 10 steps
    momenta = sorted({layer.momentum for layer in model.layers
                      if isinstance(layer, keras.layers.BatchNormalization)})
    size = cfg.data.image_size
    images = np.random.default_rng(0).integers(0, 256, (2, size, size, 1))
    inputs = preprocess(tf.constant(images, tf.uint8), cfg.data)
    labels = tf.constant([0, 1])
    with tf.GradientTape() as tape:
        outputs = model(inputs, training=True)
        loss = keras.losses.SparseCategoricalCrossentropy()(labels, outputs)
    finite = None
    if stepped:
        grads = tape.gradient(loss, model.trainable_variables)
        keras.optimizers.Adam(1e-3).apply_gradients(zip(grads, model.trainable_variables))
        finite = all(bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads if g is not None)
    print(json.dumps({"package": package, "shape": list(outputs.shape),
                      "loss": float(loss), "momenta": momenta, "stepped": stepped,
                      "params": model.count_params(), "finite_grads": finite}), flush=True)
"""
# Every architecture, grouped by family (the registry names one for each).
FAMILIES: dict[str, list[str]] = {}
for _name, _info in registry.ARCHITECTURES.items():
    FAMILIES.setdefault(_info.family, []).append(_name)
# The families each process builds: the two EfficientNets alone (their 15 members take
# most of the time), the rest in two groups. A process per family cost 16 more
# imports of TensorFlow, ~6 s each.
GROUPS = [
    ("efficientnet",),
    ("efficientnet_v2",),
    ("nasnet", "convnext", "resnet", "resnet_v2", "densenet"),
    (
        "inception_resnet_v2",
        "mobilenet_v3",
        "inception_v3",
        "xception",
        "vgg",
        "mobilenet",
        "mobilenet_v2",
        "simple_cnn",
        "mlp",
    ),
]


def test_the_groups_hold_every_family_once():
    grouped = [family for group in GROUPS for family in group]
    assert sorted(grouped) == sorted(FAMILIES)


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS, ids=["-".join(group) for group in GROUPS])
def test_every_architecture_builds_and_its_family_trains_a_step(tmp_path, group):
    members = [arch for family in group for arch in FAMILIES[family]]
    firsts = {FAMILIES[family][0] for family in group}  # each family's smallest
    projects = [
        generate(
            tmp_path,
            f"proj_{arch}",
            arch=arch,
            image_size=registry.ARCHITECTURES[arch].quick_size,
            num_classes=3,
            data="synthetic",
        )
        for arch in members
    ]
    packages = [f"proj_{arch}" for arch in members]
    plan = json.dumps([[f"proj_{arch}", arch in firsts] for arch in members])
    result = run_python("-c", STEP, plan, cwd=tmp_path, package_root=projects)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    reports = [
        json.loads(line) for line in result.stdout.strip().splitlines()[-len(members) :]
    ]
    assert [report["package"] for report in reports] == packages
    for arch, project, report in zip(members, projects, reports, strict=True):
        info = registry.ARCHITECTURES[arch]
        assert report["shape"] == [2, 3], arch
        assert report["loss"] == report["loss"] and report["loss"] < 1e3, arch  # finite
        assert report["stepped"] is (arch in firsts), arch
        assert report["finite_grads"] is (True if report["stepped"] else None), arch
        # Every BatchNormalization layer got the momentum sized to the run (1e-6 ** (1 / 10)).
        assert report["momenta"] == (
            [pytest.approx(0.2512, abs=1e-4)] if info.batchnorm else []
        ), arch
        # The registry's metadata is exact.
        answers = (project / ".copier-answers.yml").read_text()
        assert f"param_count: {report['params']}" in answers, arch
