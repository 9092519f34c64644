"""Evaluation: validation metrics, the task's report, and training-curve plots."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import data
from .artifacts import check_same_outputs, load_trained_model, write_json
from .checkpoints import EVALUATED_AS_TRAINED, check_same_settings, read_history
from .config import Config
from .errors import ConfigError
from .report import write_report
from .task import make_loss, make_metrics


def evaluate(cfg: Config, workdir: Path) -> dict[str, float]:
    """Reload workdir/model.keras and write, next to it: metrics.json, training_curves.png
    (from history.csv) and the validation report (report.md and what it links)."""
    check_same_settings(workdir, cfg, only=EVALUATED_AS_TRAINED)
    model = load_trained_model(workdir)
    # Only the validation split is read: locally, even after a run on data.service.
    local = dataclasses.replace(cfg.data, service=None)
    datasets = data.build_datasets(local).cached()
    check_same_outputs(workdir, datasets.output_names)
    metrics = evaluate_model(model, datasets.val, cfg, prefix="val_")
    write_json(workdir / "metrics.json", metrics)
    if (workdir / "history.csv").is_file():
        try:
            rows = read_history(workdir / "history.csv")
        except ConfigError as error:
            print(f"warning: no training curves: {error}", file=sys.stderr)
        else:
            _plot_history(rows, workdir / "training_curves.png")
    write_report(
        model, datasets.val, datasets.output_names, workdir, "validation", metrics
    )
    return metrics


def evaluate_model(
    model: keras.Model, batches: tf.data.Dataset, cfg: Config, prefix: str
) -> dict[str, float]:
    """Loss and metrics over all of `batches`, with Keras names prefixed by `prefix`."""
    model.compile(loss=make_loss(cfg.train), metrics=make_metrics(cfg.data.num_outputs))
    results = model.evaluate(batches, return_dict=True, verbose=0)
    return {f"{prefix}{name}": float(value) for name, value in results.items()}


def _plot_history(rows: list[dict], path: Path) -> None:
    if not rows:
        return  # a header only: no epoch finished
    epochs = [row["epoch"] + 1 for row in rows]
    metrics = sorted({name.removeprefix("val_") for name in rows[0] if name != "epoch"})
    figure = Figure(figsize=(5 * len(metrics), 4), layout="constrained")
    for axes, name in zip(
        np.atleast_1d(figure.subplots(1, len(metrics))), metrics, strict=True
    ):
        for prefix, label in (("", "training"), ("val_", "validation")):
            if prefix + name in rows[0]:
                axes.plot(
                    epochs, [float(row[prefix + name]) for row in rows], label=label
                )
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(name)
        axes.legend()
    figure.savefig(path, dpi=100)
