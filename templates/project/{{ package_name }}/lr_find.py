"""The learning-rate range test (Smith 2017; fastai's lr_find): a rate to train at."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import keras
import numpy as np
from matplotlib.figure import Figure

from . import data
from .artifacts import write_json
from .config import Config
from .distribute import input_pipeline, make_strategy
from .errors import ConfigError
from .loop import range_test
from .optimization import batch_scale
from .report import save_figure

SMOOTHING = 0.98  # the loss's exponential moving average, bias-corrected (fastai)
DIVERGED = 4.0  # the sweep stops when the smoothed loss is this many times its minimum
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

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self._total = 0.0
        self._average = 0.0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        total = float((logs or {}).get("loss", math.nan)) * (batch + 1)
        loss, self._total = total - self._total, total
        self._average = SMOOTHING * self._average + (1 - SMOOTHING) * loss
        self.losses.append(loss)
        self.smoothed.append(self._average / (1 - SMOOTHING ** len(self.losses)))
        if not math.isfinite(self.smoothed[-1]) or self.smoothed[-1] > DIVERGED * min(
            self.smoothed
        ):
            self.model.stop_training = True


def lr_find(cfg: Config, outdir: Path, steps: int, low: float, high: float) -> dict:
    """Train a new model, as `train` would start it, for up to `steps` steps at rates
    rising from `low` to `high`; write lr_find.json and lr_find.png to outdir and
    return the suggestion. No run is read or written."""
    keras.utils.set_random_seed(cfg.train.seed)
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    strategy = make_strategy()
    datasets = data.build_datasets(cfg.data, *input_pipeline(strategy))
    train = dataclasses.replace(cfg.train, epochs=1, steps_per_execution=1)
    schedule, sweep = SweepRate(low, high, steps), Sweep()
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
    best = int(np.argmin(np.where(finite, smoothed, np.inf)))
    if best == 0:  # never fell (or diverged at once)
        raise ConfigError(
            f"the loss did not fall between learning rates {low:g} and "
            f"{rates[-1]:g}: widen the range (--min-lr, --max-lr) or check the data"
        )
    rate = float(rates[best] / 10)
    result = {
        # In train.learning_rate's terms: for a batch of REFERENCE_BATCH, 2 digits.
        "learning_rate": float(f"{rate / batch_scale(cfg.data.batch_size):.2g}"),
        "step_learning_rate": rate,
        "rule": RULE,
        "batch_size": cfg.data.batch_size,
        "steps": len(rates),
        "rates": rates.tolist(),
        "losses": [_number(value) for value in sweep.losses],
        "smoothed": [_number(value) for value in sweep.smoothed],
    }
    outdir.mkdir(parents=True, exist_ok=True)
    write_json(outdir / "lr_find.json", result)
    _plot(rates, np.array(sweep.losses), smoothed, rate, outdir / "lr_find.png")
    return result


def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _plot(
    rates: np.ndarray,
    losses: np.ndarray,
    smoothed: np.ndarray,
    suggested: float,
    path: Path,
) -> None:
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    axes.plot(rates, losses, alpha=0.3, label="loss")
    axes.plot(rates, smoothed, label="smoothed")
    axes.axvline(suggested, color="tab:red", linestyle="--", label="suggested")
    finite = smoothed[np.isfinite(smoothed)]
    axes.set_ylim(finite.min() * 0.9, min(finite.max(), finite[0] * 1.5) * 1.1)
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (per step, at this batch size)")
    axes.set_ylabel("training loss")
    axes.set_title(f"lr-find: {suggested:.3g}")
    axes.legend()
    save_figure(figure, path)
