"""Export the trained model: .keras, TensorFlow SavedModel, or TensorFlow Lite."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from .artifacts import load_trained_model
from .config import Config
from .data import input_shape
from .model import build_model


def export(cfg: Config, workdir: Path, fmt: str) -> Path:
    """Write workdir/exports/model.keras, saved_model/ or model.tflite; return its path."""
    model = load_trained_model(workdir)
    exports = workdir / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    if fmt == "keras":
        target = exports / "model.keras"
        model.save(target)
    elif fmt == "saved_model":
        target = exports / "saved_model"
        shutil.rmtree(target, ignore_errors=True)
        # A `serve` signature: float32 images -> the model's outputs.
        model.export(target)
    else:
        target = exports / "model.tflite"
        with tempfile.TemporaryDirectory() as scratch:
            float32_copy(model, cfg).export(scratch)  # TFLite converts float32 graphs
            converter = tf.lite.TFLiteConverter.from_saved_model(scratch)
            target.write_bytes(converter.convert())
    return target


def float32_copy(model: keras.Model, cfg: Config) -> keras.Model:
    """The same architecture and weights computing in float32 (variables already are)."""
    keras.mixed_precision.set_global_policy("float32")
    copy = build_model(cfg.model, input_shape(cfg.data), cfg.data.num_outputs)
    copy.set_weights(model.get_weights())
    return copy
