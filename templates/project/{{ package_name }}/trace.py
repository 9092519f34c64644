"""The training trace: each compiled call's loss and the gradient's norm, for health."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .artifacts import unreadable, write_json
from .data import Datasets, batches

TRACE = "trace.json"
PROBE = 32  # training examples the probes measure the loss and gradient on


class TrainingTrace(keras.callbacks.Callback):
    """Writes trace.json after every epoch and when training stops: the mean loss of
    every compiled call (from the epoch's running mean, which both loops report), and
    the loss and global norm of its gradient on the same training batch ("probes")
    before training and after each epoch. A resumed run keeps the trace of the epochs
    it does not repeat. A non-finite number is written as null."""

    def __init__(
        self,
        path: Path,
        initial_epoch: int,
        batch: tuple[tf.Tensor, tf.Tensor],
        loss: keras.losses.Loss,
    ):
        super().__init__()
        self.path = path
        self.batch = batch
        self.loss = loss
        trace = read_trace(path)
        self.losses = [row for row in trace["losses"] if row[0] < initial_epoch]
        self.probes = [row for row in trace["probes"] if row[0] <= initial_epoch]
        self.epoch = initial_epoch
        self._calls = CallLosses()

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not self.probes or self.probes[-1][0] != self.epoch:
            self.probes.append([self.epoch, *self._probe()])

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch, self._calls = epoch, CallLosses()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = self._calls.loss(batch, logs)
        self.losses.append([self.epoch, batch, _finite(loss)])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.probes.append([epoch + 1, *self._probe()])
        self._write()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._write()

    def _probe(self) -> list[float | None]:
        return [_finite(value) for value in probe(self.model, self.loss, *self.batch)]

    def _write(self) -> None:
        write_json(self.path, {"losses": self.losses, "probes": self.probes})


class CallLosses:
    """The mean loss of each compiled call, from the running mean over the epoch's
    steps that both loops report after each call (logs["loss"] after step `batch`)."""

    def __init__(self) -> None:
        self._steps, self._total = 0, 0.0

    def loss(self, batch: int, logs: dict | None) -> float:
        steps = batch + 1
        total = float((logs or {}).get("loss", math.nan)) * steps
        loss = (total - self._total) / (steps - self._steps)
        self._steps, self._total = steps, total
        return loss


def probe(
    model: keras.Model, loss: keras.losses.Loss, images: tf.Tensor, labels: tf.Tensor
) -> tuple[float, float]:
    """The model's loss on one batch in training mode, and its gradient's global
    norm, leaving the model's state as it was."""
    with state_kept(model), tf.GradientTape() as tape:
        value = loss(labels, model(images, training=True))
    gradients = tape.gradient(value, model.trainable_variables)
    norm = tf.linalg.global_norm([g for g in gradients if g is not None])
    return float(value), float(norm)


@contextlib.contextmanager
def state_kept(model: keras.Model) -> Iterator[None]:
    """Calls of the model in training mode inside leave its other state (normalization
    statistics, random generators) as it was."""
    state = [variable.numpy() for variable in model.non_trainable_variables]
    try:
        yield
    finally:
        for variable, kept in zip(model.non_trainable_variables, state, strict=True):
            variable.assign(kept)


def training_examples(datasets: Datasets, count: int) -> tf.data.Dataset:
    """The first `count` training examples, unshuffled, at the model's size."""
    examples = datasets.train_examples.take(count)
    if datasets.read_train is not None:  # stored examples: each read as a crop
        read, seed = datasets.read_train, tf.constant([0, 0], tf.int64)
        examples = examples.map(lambda image, *rest: (read(image, seed), *rest))
    return examples


def probe_batch(datasets: Datasets) -> tuple[tf.Tensor, tf.Tensor]:
    """The batch the probes measure: the first PROBE training examples."""
    images, labels, *_ = next(iter(batches(training_examples(datasets, PROBE), PROBE)))
    return images, labels


def read_trace(path: Path) -> dict[str, list]:
    """trace.json's losses and probes; empty lists if it is missing or damaged (the
    trace informs the health report, it never stops a run)."""
    if unreadable(path):  # missing, or a pipe that would block the read
        return {"losses": [], "probes": []}
    try:
        trace = json.loads(path.read_text())
        rows = {key: list(trace[key]) for key in ("losses", "probes")}
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return {"losses": [], "probes": []}
    # [epoch, step, loss] and [epochs done, loss, gradient norm]
    integers = {"losses": 2, "probes": 1}
    if not all(
        _valid(row, integers[key]) for key, key_rows in rows.items() for row in key_rows
    ):
        return {"losses": [], "probes": []}
    return rows


def _valid(row: object, integers: int) -> bool:
    """A list of three: `integers` ints, then numbers or nulls."""
    return (
        isinstance(row, list)
        and len(row) == 3
        and all(type(value) is int for value in row[:integers])
        and all(
            value is None or type(value) in (int, float) for value in row[integers:]
        )
    )


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None
