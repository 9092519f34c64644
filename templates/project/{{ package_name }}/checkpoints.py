"""Crash-safe training state: resumable checkpoints and an atomically rewritten history."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import shutil
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams

from .artifacts import write_text
from .config import Config, TrainConfig, flat_settings, save_config
from .errors import ConfigError, TrainingDiverged, first_line
from .runs import holds_checkpoint, mark_latest

STARTED = time.monotonic()  # when the command loaded this package, before reading data


class TrainingState:
    """Model and optimizer variables and the epochs completed, as TF checkpoints.

    TensorFlow writes each checkpoint under a new name, then atomically replaces the
    `checkpoint` index that points at the latest: a crash never leaves a truncated latest.
    Model variables include the dropout RNG state, so a resumed run draws the same masks.
    """

    def __init__(self, directory: Path, model: keras.Model, keep: int = 2):
        self.directory = directory
        for leftover in directory.glob("*_temp"):  # an interrupted save's scratch files
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            # TensorFlow itself skips a garbled text index, not an empty or binary one.
            tf.train.get_checkpoint_state(directory)
        except ValueError:  # empty, or not text
            # Only a pointer to the newest checkpoint: restore() finds them by name.
            print(
                f"warning: removed the unreadable {str(directory / 'checkpoint')!r}",
                file=sys.stderr,
            )
            (directory / "checkpoint").unlink()
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        # The optimizer's slots must exist before a restore.
        model.optimizer.build(model.trainable_variables)
        # The learning rate comes from the config (a resumed run may change it).
        optimizer = [v for v in model.optimizer.variables if v.name != "learning_rate"]
        self._checkpoint = tf.train.Checkpoint(
            model=list(model.variables), optimizer=optimizer, epoch=self.epoch
        )
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, directory, max_to_keep=keep
        )

    def restore(self, epochs: int) -> int:
        """Load the newest checkpoint that verifies; return the epochs it completed.

        A checkpoint that cannot be read (a truncated file, a garbled `checkpoint` index)
        is skipped for the one before it, with a warning; if none can be read, the run
        refuses to start over silently and says how to.
        """
        found = self._checkpoints()
        if not found:
            return 0
        reasons = []
        for path in found:
            try:
                self._checkpoint.restore(path).assert_consumed()
            except (AssertionError, IndexError, ValueError, tf.errors.OpError) as error:
                reasons.append(f"{Path(path).name}: {first_line(error)}")
                continue
            if reasons:
                print(
                    f"warning: skipped unreadable {'; '.join(reasons)}", file=sys.stderr
                )
            done = int(self.epoch.numpy())
            if done > epochs:
                raise ConfigError(
                    f"the run in {str(self.directory.parent)!r} already holds {done} "
                    f"epochs; train.epochs must be at least {done} to continue it"
                )
            return done
        raise ConfigError(
            f"cannot resume from the checkpoints in {str(self.directory)!r}, which hold "
            f"another model or are damaged ({reasons[0]}); use a new --output-dir, or "
            "delete that directory to start this run over"
        )

    def _checkpoints(self) -> list[str]:
        """The prefixes of the checkpoints found in the directory, newest first."""
        numbers = set()
        for index in self.directory.glob("ckpt-*.index"):
            number = index.name.removeprefix("ckpt-").removesuffix(".index")
            if number.isdigit():
                numbers.add(int(number))
        return [
            str(self.directory / f"ckpt-{n}") for n in sorted(numbers, reverse=True)
        ]

    def save(self, epochs_done: int) -> None:
        self.epoch.assign(epochs_done)
        self._manager.save(checkpoint_number=epochs_done)


class FirstStepTime(keras.callbacks.Callback):
    """Prints how long the command took to finish its first training step: listing and
    checking the data, building the pipeline and tracing the step included."""

    def __init__(self) -> None:
        super().__init__()
        self.done = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if not self.done:
            self.done = True
            print(f"time to first step: {time.monotonic() - STARTED:.1f} s")


class SaveEachEpoch(keras.callbacks.Callback):
    """Checkpoint the training state after every epoch whose loss is finite; from the
    first, runs/latest names this run (if it is one under runs/)."""

    def __init__(self, state: TrainingState):
        super().__init__()
        self.state = state

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if math.isfinite((logs or {}).get("loss", math.nan)):
            self.state.save(epoch + 1)
            mark_latest(self.state.directory.parent)


class CSVHistory(keras.callbacks.Callback):
    """history.csv, rewritten atomically after each epoch; a resumed run keeps the rows
    of the epochs it does not repeat."""

    def __init__(self, path: Path, initial_epoch: int):
        super().__init__()
        self.path = path
        self.rows = read_history(path)[:initial_epoch] if path.is_file() else []
        if path.is_file() and len(self.rows) < initial_epoch:
            raise ConfigError(
                f"{str(path)!r} holds {len(self.rows)} epochs, the checkpoint "
                f"{initial_epoch}; delete it to start a new history from here"
            )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.rows.append(
            {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        )
        columns = ["epoch", *sorted({k for row in self.rows for k in row} - {"epoch"})]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, buffer.getvalue())


def read_history(path: Path) -> list[dict]:
    """history.csv's rows as numbers (epoch an int); ConfigError if it is damaged."""
    try:
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        return [
            {"epoch": int(row.pop("epoch")), **{k: float(v) for k, v in row.items()}}
            for row in rows
        ]
    except (UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"cannot read {str(path)!r} ({first_line(error)}); delete it to "
            "start a new history"
        ) from None


# Settings a resumed run may change: they do not change what is trained.
RESUMABLE = (
    "output_dir",
    "train.epochs",
    "train.progress",
    "data.cache",
    "data.cache_budget",
)


# The number of training and validation examples the run started with.
SPLIT_FILE = "split.json"


def check_same_settings(
    outdir: Path, cfg: Config, only: tuple[str, ...] | None = None
) -> None:
    """A run goes on as it started: the settings saved in its config.json may differ
    only in RESUMABLE ones (more epochs, say). Another split seed would mix validation
    images into training; another learning rate would make a run no single config
    describes. `only`: compare just these (evaluate's EVALUATED_AS_TRAINED)."""
    if not holds_checkpoint(outdir):
        return  # a new run, or one that never finished an epoch
    try:
        saved = flat_settings(json.loads((outdir / "config.json").read_text()))
    except (OSError, ValueError, AttributeError):
        return  # no readable record of the earlier settings: nothing to compare
    now = flat_settings(json.loads(json.dumps(dataclasses.asdict(cfg))))
    changed = [
        f"{key} = {saved[key]!r} (now {value!r})"
        for key, value in now.items()
        if key in saved
        and (key in only if only else key not in RESUMABLE)
        and saved[key] != value
    ]
    if not changed:
        return
    advice = (
        "evaluate takes the model's input and the split as they were trained"
        if only
        else "a resumed run keeps its settings but train.epochs (train --resume RUN "
        "reads them); to change them, start a new run"
    )
    raise ConfigError(
        f"the run in {str(outdir)!r} was trained with {', '.join(changed)}; {advice}"
    )


# What evaluate may not change: the model's input and outputs, and the split that kept
# the validation images out of training.
EVALUATED_AS_TRAINED = (
    "data.image_size",
    "data.channels",
    "data.num_outputs",
    "data.seed",
    "data.validation_split",
)


def check_same_split(outdir: Path, sizes: dict[str, int]) -> None:
    """A resumed run must split the same data as before: else validation images of the
    first epochs would be trained on in the next ones, silently."""
    try:
        before = json.loads((outdir / SPLIT_FILE).read_text())
    except (OSError, ValueError):
        return
    known = isinstance(before, dict) and all(
        isinstance(before.get(key), int) for key in sizes
    )
    if known and {key: before[key] for key in sizes} != sizes:
        raise ConfigError(
            f"the data has changed since the run in {str(outdir)!r} started (train "
            f"{before.get('train')} and val {before.get('val')} examples then, "
            f"{sizes['train']} and {sizes['val']} now); resuming would mix validation "
            "images into training (restore the data, or use a new --output-dir)"
        )


def check_finite(logs: dict[str, float], state: TrainingState) -> None:
    """Raise TrainingDiverged if the last training loss is NaN or infinite."""
    loss = logs.get("loss", 0.0)  # no logs: nothing was trained
    if math.isfinite(loss):
        return
    if not holds_checkpoint(state.directory.parent):
        raise TrainingDiverged(
            f"training stopped: the loss became {loss} in the first epoch, before any "
            "checkpoint (lower train.learning_rate and start a new run)"
        )
    raise TrainingDiverged(
        f"training stopped: the loss became {loss}; the last good checkpoint is kept "
        f"in {str(state.directory)!r} (lower train.learning_rate and run again)"
    )


def resume(
    state: TrainingState, cfg: Config, outdir: Path, sizes: dict[str, int]
) -> tuple[int, list[keras.callbacks.Callback]]:
    """Restore the run in outdir and check it may go on (same split of the same number
    of examples, `sizes`), then save this run's config and sizes: the epochs already
    done and the callbacks of those to come. Nothing is written before the checks, so
    a foreign, finished or damaged run stays untouched."""
    initial_epoch, epochs = state.restore(cfg.train.epochs), cfg.train.epochs
    if initial_epoch:
        check_same_split(outdir, sizes)
        if initial_epoch < epochs:
            print(
                f"resuming {cfg.output_dir} from epoch {initial_epoch + 1} of {epochs}"
            )
        else:
            print(f"{cfg.output_dir} has trained all {epochs} epochs: evaluating it")
    callbacks = make_callbacks(outdir, state, initial_epoch, cfg.train)  # reads history
    save_config(cfg, outdir / "config.json")
    if not initial_epoch:
        log_hparams(outdir / "logs", cfg)
    write_text(outdir / SPLIT_FILE, json.dumps(sizes))
    return initial_epoch, callbacks


def log_hparams(logdir: Path, cfg: Config) -> None:
    """The run's settings for TensorBoard's HParams dashboard, which shows runs side by
    side with their validation metrics (`tensorboard --logdir runs`)."""
    settings = {
        key: value
        for key, value in flat_settings(dataclasses.asdict(cfg)).items()
        if isinstance(value, (bool, int, float, str)) and key != "output_dir"
    }
    with tf.summary.create_file_writer(str(logdir)).as_default():
        hparams.hparams(settings, trial_id=logdir.parent.name)


def verbosity(progress: str) -> int:
    """Keras's verbose for train.progress: 1 a progress bar, 2 a line per epoch, 0 none."""
    if progress == "auto":
        return 1 if sys.stdout.isatty() else 2
    return {"bar": 1, "epoch": 2, "none": 0}[progress]


def make_callbacks(
    outdir: Path, state: TrainingState, initial_epoch: int, cfg: TrainConfig
) -> list[keras.callbacks.Callback]:
    """Stop on NaN, history.csv, checkpoint each good epoch, TensorBoard, early stop."""
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        # The epoch's history row before its checkpoint: a kill between the two leaves a
        # row more than the checkpoint, which the resumed run drops, never one less.
        CSVHistory(outdir / "history.csv", initial_epoch),
        SaveEachEpoch(state),
        keras.callbacks.TensorBoard(outdir / "logs"),
    ]
    if cfg.progress != "none":
        callbacks.append(FirstStepTime())
    if cfg.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=cfg.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    return callbacks
