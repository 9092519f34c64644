"""Every keras.applications model is in the registry, and every architecture trains a step."""

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


# One eager training step at a small valid size: build, preprocess, forward, backward,
# update. Eager, because tracing the largest models costs minutes (see FACTS.md); the
# compiled path is covered by the generated suites of representative models.
STEP = """
import json, sys
import numpy as np, tensorflow as tf, keras
from proj.config import Config
from proj.data import input_shape, preprocess
from proj.model import model_for_run

# A fixed initialization: efficientnet_v2_l (batch 2 at 32 px) once gave a non-finite
# gradient in CI from an unlucky draw; 6 seeded draws were all finite.
keras.utils.set_random_seed(0)
cfg = Config()
cfg.train.epochs = 1
model = model_for_run(cfg, 10)  # as train builds it: BatchNormalization sized to 10 steps
momenta = sorted({layer.momentum for layer in model.layers
                  if isinstance(layer, keras.layers.BatchNormalization)})
images = np.random.default_rng(0).integers(0, 256, (2, cfg.data.image_size, cfg.data.image_size, 1))
inputs = preprocess(tf.constant(images, tf.uint8), cfg.data)
labels = tf.constant([0, 1])
optimizer = keras.optimizers.Adam(1e-3)
with tf.GradientTape() as tape:
    outputs = model(inputs, training=True)
    loss = keras.losses.SparseCategoricalCrossentropy()(labels, outputs)
grads = tape.gradient(loss, model.trainable_variables)
optimizer.apply_gradients(zip(grads, model.trainable_variables))
print(json.dumps({"shape": list(outputs.shape), "loss": float(loss), "momenta": momenta,
                  "params": model.count_params(), "finite_grads": all(
                      bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads if g is not None)}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("arch", registry.ARCHITECTURES)
def test_every_architecture_trains_a_step(tmp_path, arch):
    info = registry.ARCHITECTURES[arch]
    size = max(info.min_size, 32)
    project = generate(
        tmp_path, "proj", arch=arch, image_size=size, num_classes=3, data="synthetic"
    )
    result = run_python("-c", STEP, cwd=project)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [2, 3]
    assert report["loss"] == report["loss"] and report["loss"] < 1e3  # finite
    assert report["finite_grads"]
    # Every BatchNormalization layer got the momentum sized to the run (1e-6 ** (1 / 10)).
    assert report["momenta"] == (
        [pytest.approx(0.2512, abs=1e-4)] if info.batchnorm else []
    )
    answers = (project / ".copier-answers.yml").read_text()
    assert f"param_count: {report['params']}" in answers  # registry metadata is exact
