"""Training throughput: generated `fit` project vs generated `custom` project vs the seed's
eager GradientTape loop, plus input pipeline vs train step for the default config.

One process, same model (simple_cnn), same data (the bundled sample) and batch size; the
three loops run in interleaved rounds so machine noise hits all of them alike. Prints a
table and writes JSON. Targets: custom >= 1.0x fit, custom >= 4x eager, pipeline >= 3x step.

    python benchmarks/train_speed.py [--rounds 5] [--steps 150] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from generator.render import create_project  # noqa: E402
from generator.spec import ProjectSpec  # noqa: E402


def generate(parent: Path, name: str, loop: str):
    """Generate a default project with `loop` and import its package."""
    create_project(ProjectSpec(project_name=name, loop=loop), parent / name)
    sys.path.insert(0, str(parent / name))
    return importlib.import_module(name)


def eager_runner(package, cfg, dataset):
    """The seed's loop: a Python for loop, GradientTape, no tf.function, one batch per step."""
    import keras
    import tensorflow as tf

    model_module = importlib.import_module(f"{package.__name__}.model")
    data_module = importlib.import_module(f"{package.__name__}.data")
    model = model_module.build_model(
        cfg.model, data_module.input_shape(cfg.data), cfg.data.num_outputs
    )
    optimizer = keras.optimizers.Adam(cfg.train.learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    accuracy = keras.metrics.SparseCategoricalAccuracy()
    iterator = iter(dataset)

    def run(n: int) -> None:
        for _ in range(n):
            images, labels = next(iterator)
            with tf.GradientTape() as tape:
                predictions = model(images, training=True)
                loss = loss_fn(labels, predictions)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(
                zip(gradients, model.trainable_variables, strict=True)
            )
            accuracy.update_state(labels, predictions)
        float(loss)

    return run


def timed(run, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument(
        "--json", type=Path, default=Path("build/bench/train_speed.json")
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        packages = {
            loop: generate(Path(tmp), f"bench_{loop}", loop)
            for loop in ("fit", "custom")
        }
        runners, cfg = {}, None
        for loop, package in packages.items():
            config = importlib.import_module(f"{package.__name__}.config")
            data = importlib.import_module(f"{package.__name__}.data")
            bench = importlib.import_module(f"{package.__name__}.benchmark")
            loop_module = importlib.import_module(f"{package.__name__}.loop")
            distribute = importlib.import_module(f"{package.__name__}.distribute")
            cfg = config.Config()
            datasets = data.build_datasets(cfg.data)
            strategy = distribute.make_strategy()
            runners[loop] = loop_module.step_runner(
                cfg, strategy, datasets.train(), args.steps
            )
            if loop == "fit":
                runners["eager (seed)"] = eager_runner(package, cfg, datasets.train())
                default_cfg, default_bench, default_data = cfg, bench, datasets
                default_loop = loop_module
        for run in runners.values():
            run(args.steps)  # warm up: tracing, caches

        rates: dict[str, list[float]] = {name: [] for name in runners}
        for round_index in range(args.rounds):
            names = list(runners)
            if round_index % 2:
                names.reverse()
            for name in names:
                seconds = timed(runners[name], args.steps)
                rates[name].append(args.steps * cfg.data.batch_size / seconds)

        one_batch = default_data.train().take(1).cache().repeat()
        batch = default_cfg.data.batch_size
        pipeline = default_bench.images_per_second(
            default_bench.pipeline_runner(default_data.train()), args.steps, batch
        )
        step = default_bench.images_per_second(
            default_loop.step_runner(
                default_cfg, distribute.make_strategy(), one_batch, args.steps
            ),
            args.steps,
            batch,
        )

    medians = {name: statistics.median(values) for name, values in rates.items()}
    fit, custom, eager = medians["fit"], medians["custom"], medians["eager (seed)"]
    print(
        f"simple_cnn on the bundled sample, batch {batch}, {args.rounds} interleaved rounds"
    )
    print(f"{'loop':<16}{'images/s (median)':>20}{'vs fit':>10}")
    for name, value in medians.items():
        print(f"{name:<16}{value:>20,.0f}{value / fit:>10.2f}")
    checks = {
        "custom_vs_fit": (custom / fit, 1.0),
        "custom_vs_eager": (custom / eager, 4.0),
        "pipeline_vs_step": (pipeline / step, 3.0),
    }
    print(f"\n{'input pipeline alone':<24}{pipeline:>12,.0f} images/s")
    print(f"{'train step alone':<24}{step:>12,.0f} images/s")
    print(f"\n{'ratio':<20}{'measured':>10}{'target':>10}")
    for name, (value, target) in checks.items():
        print(
            f"{name:<20}{value:>10.2f}{'>= ' + str(target):>10}  "
            f"{'ok' if value >= target else 'MISSED'}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "images_per_second": rates,
                "medians": medians,
                "pipeline_images_per_second": pipeline,
                "train_step_images_per_second": step,
                "ratios": {name: value for name, (value, _) in checks.items()},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
