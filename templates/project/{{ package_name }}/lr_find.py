"""The learning-rate range test (Smith 2017; fastai's lr_find): a rate to train at."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np
from matplotlib.figure import Figure

from . import data
from .artifacts import SWEEP_FIGURE, SWEEP_RESULT, write_json
from .config import Config
from .distribute import input_pipeline, make_strategy
from .errors import ConfigError
from .loop import range_test
from .optimization import batch_scale
from .report import save_figure
from .trace import CallLosses

# The loss's exponential moving average (bias-corrected) gives each new step a weight
# of SMOOTHING_STEPS / steps: 0.98 for the last at the default 100 steps (fastai's).
SMOOTHING_STEPS = 2
DIVERGED = 4.0  # the sweep stops when the smoothed loss is this many times its minimum
FELL = 0.95  # a smoothed minimum above this fraction of the start: an uncertain one
RULE = "a tenth of the rate at the smoothed loss's minimum (Smith 2017, fastai)"


class SweepRate(keras.optimizers.schedules.LearningRateSchedule):
    """From `low` at the first step up to `high` at step `steps`, exponentially."""

    def __init__(self, low: float, high: float, steps: int):
        self.low, self.high, self.steps = low, high, steps

    def __call__(self, step):
        fraction = keras.ops.cast(step, "float32") / max(1, self.steps - 1)
        return self.low * (self.high / self.low) ** fraction

    def rates(self, count: int) -> np.ndarray:
        """The rates of the first `count` steps."""
        return self.low * (self.high / self.low) ** (
            np.arange(count) / max(1, self.steps - 1)
        )

    def get_config(self) -> dict:
        return {"low": self.low, "high": self.high, "steps": self.steps}


class Sweep(keras.callbacks.Callback):
    """Each step's loss, recovered from the running mean the loops report, smoothed;
    stops training once the smoothed loss diverges."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.smoothing = 1 - SMOOTHING_STEPS / steps
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self._calls = CallLosses()  # a step per call
        self._average = 0.0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = self._calls.loss(batch, logs)
        self._average = self.smoothing * self._average + (1 - self.smoothing) * loss
        self.losses.append(loss)
        correction = 1 - self.smoothing ** len(self.losses)
        self.smoothed.append(self._average / correction)
        if not math.isfinite(self.smoothed[-1]) or self.smoothed[-1] > DIVERGED * min(
            self.smoothed
        ):
            self.model.stop_training = True


def lr_find(cfg: Config, outdir: Path, steps: int, low: float, high: float) -> dict:
    """Train a new model, as `train` would start it, for up to `steps` steps at rates
    rising from `low` to `high`; write lr_find.json and lr_find.png to outdir and
    return the suggestion. No run is read or written."""
    data.set_seed(cfg.train.seed)
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    strategy = make_strategy()
    datasets = data.build_datasets(cfg.data, *input_pipeline(strategy))
    train = dataclasses.replace(cfg.train, epochs=1, steps_per_execution=1)
    schedule, sweep = SweepRate(low, high, steps), Sweep(steps)
    range_test(
        dataclasses.replace(cfg, data=datasets.cfg, train=train),
        strategy,
        datasets,
        schedule,
        sweep,
        steps,
    )
    rates = schedule.rates(len(sweep.losses))
    smoothed = np.array(sweep.smoothed)
    finite = np.isfinite(smoothed)
    # The first tenth of the sweep is its start, to fall below (one noisy batch alone
    # would not do: fastai's plot also leaves out its first points).
    skip = max(1, steps // 10)
    start = float(np.mean(sweep.losses[:skip]))
    later = np.where(finite, smoothed, np.inf)[skip:]
    best = skip + int(np.argmin(later)) if len(later) else len(smoothed)
    warning = _check_sweep(smoothed, best, start, steps, rates, high)
    rate = float(rates[best] / 10)
    result = {
        # In train.learning_rate's terms: for a batch of REFERENCE_BATCH, 2 digits.
        "learning_rate": float(f"{rate / batch_scale(cfg.data.batch_size):.2g}"),
        "step_learning_rate": rate,
        "rule": RULE,
        "warning": warning,
        "batch_size": cfg.data.batch_size,
        "steps": len(rates),
        "rates": rates.tolist(),
        "losses": [_number(value) for value in sweep.losses],
        "smoothed": [_number(value) for value in sweep.smoothed],
    }
    outdir.mkdir(parents=True, exist_ok=True)
    try:
        write_json(outdir / SWEEP_RESULT, result)
        _plot(rates, np.array(sweep.losses), smoothed, result, outdir / SWEEP_FIGURE)
    except BaseException:  # a full disk, say: no result without its figure
        (outdir / SWEEP_RESULT).unlink(missing_ok=True)
        raise
    return result


def _check_sweep(
    smoothed: np.ndarray,
    best: int,
    start: float,
    steps: int,
    rates: np.ndarray,
    high: float,
) -> str | None:
    """ConfigError if the smoothed loss never fell below `start`; a warning if it fell
    little or did not turn up again within the range."""
    fell = best < len(smoothed) and smoothed[best] < start
    if not fell and len(smoothed) < steps:
        raise ConfigError(
            f"the loss diverged at learning rate {rates[-1]:g} without falling below "
            "its first steps' loss: lower --min-lr, or check the data"
        )
    if not fell:
        raise ConfigError(
            f"the loss did not fall between learning rates {rates[0]:g} and {high:g}: "
            "widen the range (--min-lr, --max-lr) or check the data"
        )
    if smoothed[best] > FELL * start:
        return (
            f"the smoothed loss fell only {100 * (1 - smoothed[best] / start):.1f}%, so "
            "the suggestion is uncertain: more --steps, or another range"
        )
    if len(smoothed) == steps and best >= steps - max(2, steps // 20):
        return (
            f"the loss was still falling at learning rate {high:g}, the end of the "
            "sweep, so the suggestion may be too high: raise --max-lr to see where "
            "it turns"
        )
    return None


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _plot(
    rates: np.ndarray,
    losses: np.ndarray,
    smoothed: np.ndarray,
    result: dict,
    path: Path,
) -> None:
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    axes.plot(rates, losses, alpha=0.3, label="loss")
    axes.plot(rates, smoothed, label="smoothed")
    suggested = result["step_learning_rate"]
    axes.axvline(suggested, color="tab:red", linestyle="--", label="suggested")
    finite = smoothed[np.isfinite(smoothed)]
    lowest = min(finite.min(), np.nanmin(np.where(np.isfinite(losses), losses, np.nan)))
    axes.set_ylim(lowest * 0.9, min(finite.max(), finite[0] * 1.5) * 1.1)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate per step, at this batch size")
    axes.set_ylabel("training loss")
    axes.set_title(
        f"suggested: {suggested:.3g} per step, "
        f"train.learning_rate={result['learning_rate']:g}"
    )
    axes.legend()
    save_figure(figure, path)
