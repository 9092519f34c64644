"""Throughput of the input pipeline alone and of the train step alone: which one limits you?"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import keras
import tensorflow as tf

from . import data
from .config import Config
from .distribute import make_strategy
from .loop import step_runner


def benchmark(cfg: Config, steps: int = 100) -> dict[str, float]:
    """Images per second of the pipeline (no model) and the train step (one cached batch)."""
    data.set_seed(cfg.train.seed)
    keras.mixed_precision.set_global_policy(cfg.train.precision)
    strategy = make_strategy()
    datasets = data.build_datasets(cfg.data).cached()
    cfg = dataclasses.replace(cfg, data=datasets.cfg)  # as the data settled it
    one_batch = datasets.train().take(1).cache().repeat()
    pipeline = images_per_second(
        pipeline_runner(datasets.train()), steps, cfg.data.batch_size
    )
    step = images_per_second(
        step_runner(cfg, strategy, one_batch, steps), steps, cfg.data.batch_size
    )
    return {
        "pipeline_images_per_second": pipeline,
        "train_step_images_per_second": step,
        "pipeline_to_step_ratio": pipeline / step,
    }


def pipeline_runner(dataset: tf.data.Dataset) -> Callable[[int], None]:
    """A function that pulls n batches through the input pipeline."""
    iterator = iter(dataset)

    def run(n: int) -> None:
        for _ in range(n):
            next(iterator)

    return run


def images_per_second(run: Callable[[int], None], steps: int, batch_size: int) -> float:
    """Steady-state rate: the time of 3n steps minus that of n cancels fixed costs."""
    run(steps)  # warm up: tracing, caches
    start = time.perf_counter()
    run(steps)
    middle = time.perf_counter()
    run(3 * steps)
    end = time.perf_counter()
    extra = (end - middle) - (middle - start)
    if extra <= 0:  # too few steps for the difference to rise above the noise
        return 3 * steps * batch_size / (end - middle)
    return 2 * steps * batch_size / extra
