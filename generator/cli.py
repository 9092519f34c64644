"""kgen's command line. Typer only: options -> ProjectSpec, printing, errors -> exit 2.

Closed choices (--arch, --task, ...) are plain strings validated by the registry rather
than Click choices, so a bad value gets one line with a "did you mean" instead of a usage
panel; `--help` and `kgen list` still show every valid value.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from generator import __version__, registry
from generator.spec import (
    KgenError,
    ProjectSpec,
    SpecError,
    check_python,
    describe_os_error,
    project_name,
)


class OneLineErrors(TyperGroup):
    """kgen's error boundary for what Click parses: an unknown option, a value of the wrong
    type or a missing argument is one `kgen: error:` line and exit 2, like every other bad
    input, instead of Click's usage block."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):  # type: ignore[override]
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as error:
            # Usage errors exit with 2; a bare `kgen` (no arguments) shows the help.
            if error.exit_code != 2 or type(error).__name__ == "NoArgsIsHelpError":
                error.show()  # type: ignore[attr-defined]
                sys.exit(error.exit_code)
            context = getattr(error, "ctx", None)
            command = "kgen" if context is None else context.command_path
            message = " ".join(error.format_message().split()).rstrip(".")
            typer.echo(
                f"kgen: error: {message[:1].lower()}{message[1:]} "
                f"(see {command} --help)",
                err=True,
            )
            sys.exit(2)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: "[default: 15]" stays as written
    help="Generate TensorFlow/Keras projects that train models from scratch.",
)


def _names(table: dict) -> str:
    return ", ".join(table)


# Options shared by `new` and `update` (where they change a recorded answer).
Arch = Annotated[
    str | None, typer.Option(help=f"Architecture: {_names(registry.ARCHITECTURES)}.")
]
Task = Annotated[str | None, typer.Option(help=f"Task: {_names(registry.TASKS)}.")]
Loop = Annotated[
    str | None, typer.Option(help=f"Training loop: {_names(registry.LOOPS)}.")
]
Data = Annotated[
    str | None, typer.Option(help=f"Data source: {_names(registry.DATA_SOURCES)}.")
]
ImageSize = Annotated[
    int | None, typer.Option(help="Square input side in pixels [default: per arch].")
]
Channels = Annotated[
    int | None, typer.Option(help="Model input channels, 1 or 3 [default: per arch].")
]
NumClasses = Annotated[
    int | None,
    typer.Option(
        help="Classes (multiclass, binary), labels (multilabel) or targets (regression) "
        "[default: per task and data]."
    ),
]
Epochs = Annotated[
    int | None,
    typer.Option(help="Default training epochs [default: the family's recipe]."),
]
BatchSize = Annotated[
    int | None, typer.Option(help="Default global batch size [default: 64].")
]
LearningRate = Annotated[
    float | None,
    typer.Option(
        help="Peak learning rate for a batch of 256, scaled to the batch size "
        "[default: the family's recipe; sgd: 0.1]."
    ),
]
TfdsName = Annotated[
    str | None,
    typer.Option(
        help="tensorflow-datasets name, with --data tfds [default: per task: "
        + ", ".join(f"{t.name} {t.tfds.name}" for t in registry.TASKS.values())
        + "]."
    ),
]
Loss = Annotated[
    str | None,
    typer.Option(
        help="Loss: crossentropy (classification); mse or huber (regression) "
        "[default: crossentropy; regression: mse]."
    ),
]
LabelSmoothing = Annotated[
    float | None,
    typer.Option(
        help="Label smoothing of the classification loss [default: the recipe's]."
    ),
]

Strategy = Annotated[
    str | None,
    typer.Option(
        help=f"tf.distribute strategy: {_names(registry.STRATEGIES)} [default: default]."
    ),
]
Mix = Annotated[
    str | None,
    typer.Option(
        help=f"Mix training images and labels in pairs: {_names(registry.MIXES)} "
        "(classification) [default: none]."
    ),
]
Tracking = Annotated[
    str | None,
    typer.Option(
        help=f"Experiment tracking besides TensorBoard: {_names(registry.TRACKING)} "
        "[default: none]."
    ),
]
Precision = Annotated[
    str | None,
    typer.Option(
        help=f"Precision policy: {_names(registry.PRECISIONS)} [default: float32]."
    ),
]
Optimizer = Annotated[
    str | None,
    typer.Option(
        help=f"Optimizer: {_names(registry.OPTIMIZERS)} [default: the family's recipe]."
    ),
]
LrSchedule = Annotated[
    str | None,
    typer.Option(
        help=f"Learning-rate schedule: {_names(registry.LR_SCHEDULES)} [default: cosine]."
    ),
]
Augment = Annotated[
    bool | None,
    typer.Option(
        "--augment/--no-augment",
        help="Random flip/rotation/zoom/contrast on training images [default: off].",
    ),
]
RandAugment = Annotated[
    bool | None,
    typer.Option(
        "--randaugment/--no-randaugment",
        help="Keras RandAugment on training images (with or without --augment) "
        "[default: off].",
    ),
]
ClassWeights = Annotated[
    bool | None,
    typer.Option(
        "--class-weights/--no-class-weights",
        help="Weight the loss by inverse class frequency of the training split "
        "(multiclass, binary) [default: off].",
    ),
]
KeepBest = Annotated[
    bool | None,
    typer.Option(
        "--keep-best/--no-keep-best",
        help="Save best.keras, the best epoch by a validation metric [default: off].",
    ),
]
Ema = Annotated[
    bool | None,
    typer.Option(
        "--ema/--no-ema",
        help="Validate and export a moving average of the weights [default: off].",
    ),
]
Tune = Annotated[
    bool | None,
    typer.Option(
        "--tune/--no-tune",
        help="A `tune` command: an Optuna search over the learning rate, weight decay, "
        "dropout, batch size and augmentation [default: off].",
    ),
]
Weights = Annotated[
    str | None,
    typer.Option(
        help="The backbone's initial weights: none (from scratch), imagenet (downloaded "
        "by Keras on the first train), or the path of a weights file saved from the same "
        "keras.applications backbone; pretrained backbones are fine-tuned in two phases "
        "[default: none].",
    ),
]
JitCompile = Annotated[
    bool | None,
    typer.Option(
        "--jit-compile/--no-jit-compile",
        help="XLA-compile the train step [default: off].",
    ),
]


_SPEC_OPTIONS = {f.name for f in fields(ProjectSpec)} - {"project_name"}


def _fail(message: str) -> typer.Exit:
    typer.echo(f"kgen: error: {message}", err=True)
    return typer.Exit(code=2)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """kgen's error boundary: bad input and environment failures (files, permissions,
    disk, git) become one `kgen: error:` line and exit 2; only bugs keep a traceback."""
    try:
        yield
    except KgenError as error:
        raise _fail(" ".join(str(error).split())) from None
    except OSError as error:
        raise _fail(describe_os_error(error)) from None


def _interactive(defaults: bool) -> bool:
    """Prompt only on a terminal, and never with --defaults."""
    return not defaults and sys.stdin.isatty()


def _answer_options(options: dict[str, object]) -> dict[str, object]:
    """The ProjectSpec options among a command's parameters that were given."""
    return {
        name: value
        for name, value in options.items()
        if name in _SPEC_OPTIONS and value is not None
    }


def _changed(spec: ProjectSpec, **changes: object) -> ProjectSpec:
    """Apply changes and validate them, keeping unresolved defaults for later."""
    spec = replace(spec, **changes)
    spec.resolve()
    return spec


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kgen {__version__}")
        raise typer.Exit()


@app.callback()
def kgen(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print kgen's version and exit.",
        ),
    ] = False,
) -> None:
    """Generate TensorFlow/Keras projects that train models from scratch."""


@app.command()
def new(
    path: Annotated[
        Path, typer.Argument(help="Project directory; its name names the project.")
    ],
    arch: Arch = None,
    task: Task = None,
    loop: Loop = None,
    data: Data = None,
    image_size: ImageSize = None,
    channels: Channels = None,
    num_classes: NumClasses = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    learning_rate: LearningRate = None,
    tfds_name: TfdsName = None,
    strategy: Strategy = None,
    precision: Precision = None,
    jit_compile: JitCompile = None,
    optimizer: Optimizer = None,
    lr_schedule: LrSchedule = None,
    augment: Augment = None,
    randaugment: RandAugment = None,
    mix: Mix = None,
    class_weights: ClassWeights = None,
    keep_best: KeepBest = None,
    ema: Ema = None,
    tune: Tune = None,
    tracking: Tracking = None,
    loss: Loss = None,
    label_smoothing: LabelSmoothing = None,
    weights: Weights = None,
    defaults: Annotated[
        bool,
        typer.Option(
            "--defaults", help="Use defaults for missing options, never prompt."
        ),
    ] = False,
) -> None:
    """Generate a new project at PATH."""
    given = _answer_options(locals())
    with _one_line_errors():
        check_python()  # refuse a Python the generated TensorFlow/Keras cannot run on
        spec = _changed(ProjectSpec(project_name=project_name(path)), **given)
        if _interactive(defaults):
            spec = _prompt_missing(spec, given)
        from generator.render import create_project  # copier loads only when needed

        gc.freeze()  # copier's and black's modules live until exit: spare them GC passes
        create_project(spec.resolve(), path)
    typer.echo(
        f"Created {spec.project_name} ({spec.arch}, {spec.task}, {spec.loop} loop, "
        f"{spec.data} data) in {path}"
    )
    typer.echo(
        f"Next: cd {path} && pip install -e '.[dev]' && python -m {spec.package_name} train"
    )


def _prompt_missing(spec: ProjectSpec, given: dict[str, object]) -> ProjectSpec:
    """Ask for the main options not given on the command line, defaults shown; only
    questions the earlier answers leave open."""
    for field, table in (
        ("arch", registry.ARCHITECTURES),
        ("task", registry.TASKS),
        ("loop", registry.LOOPS),
        ("data", registry.DATA_SOURCES),
    ):
        if field not in given:
            label = f"{field} ({_names(table)})"
            spec = _ask(spec, field, label, getattr(spec, field), str)
    if spec.data == "tfds" and "tfds_name" not in given:
        spec = _ask(spec, "tfds_name", "tfds dataset", spec.tfds_dataset().name, str)
    if "image_size" not in given:
        spec = _ask(spec, "image_size", "image size", spec.default_image_size(), int)
    # The sample digits and tfds datasets fix channels and classes; RGB models take 3.
    fixed_by_data = spec.data in ("sample", "tfds")
    if (
        "channels" not in given
        and not fixed_by_data
        and not spec.architecture.needs_rgb
    ):
        spec = _ask(spec, "channels", "channels (1 or 3)", spec.default_channels(), int)
    # Folder data: the project counts its class folders (labels.csv's columns) itself.
    counted = fixed_by_data or spec.data == "folder"
    if "num_classes" not in given and not counted and spec.task != "binary":
        label = f"number of {spec.task_info.outputs_noun}"
        spec = _ask(spec, "num_classes", label, spec.resolve().num_classes, int)
    return spec


def _ask(
    spec: ProjectSpec, field: str, label: str, default: object, kind: type
) -> ProjectSpec:
    """Prompt for one option until the answer is valid, saying why one is not."""
    while True:
        value = typer.prompt(label, default=default, type=kind)
        try:
            return _changed(spec, **{field: value})
        except KgenError as error:
            typer.echo(f"  {' '.join(str(error).split())}; try again", err=True)


@app.command()
def update(
    path: Annotated[Path, typer.Argument(help="Project to update.")] = Path("."),
    to: Annotated[
        str | None,
        typer.Option(
            help="Template version (tag such as v0.1.0) [default: installed kgen]."
        ),
    ] = None,
    arch: Arch = None,
    task: Task = None,
    loop: Loop = None,
    data: Data = None,
    image_size: ImageSize = None,
    channels: Channels = None,
    num_classes: NumClasses = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    learning_rate: LearningRate = None,
    tfds_name: TfdsName = None,
    strategy: Strategy = None,
    precision: Precision = None,
    jit_compile: JitCompile = None,
    optimizer: Optimizer = None,
    lr_schedule: LrSchedule = None,
    augment: Augment = None,
    randaugment: RandAugment = None,
    mix: Mix = None,
    class_weights: ClassWeights = None,
    keep_best: KeepBest = None,
    ema: Ema = None,
    tune: Tune = None,
    tracking: Tracking = None,
    loss: Loss = None,
    label_smoothing: LabelSmoothing = None,
    weights: Weights = None,
) -> None:
    """Merge template improvements (and changed answers) into the project at PATH.

    A 3-way merge: your edits are kept where they don't collide with the template's;
    collisions are left as inline conflict markers, listed, and the exit code is 1.
    Changing --arch, --data or --task re-derives image size and channels (and --data or
    --task the number of outputs; --task the loss and tfds dataset) unless you give them.
    """
    changes = _answer_options(locals())
    with _one_line_errors():
        from generator.render import ANSWERS_FILE, recorded_answers, update_project

        answers = recorded_answers(path)
        known = _SPEC_OPTIONS | {"project_name"}
        recorded = ProjectSpec(**{k: v for k, v in answers.items() if k in known})
        spec = recorded
        if changes.keys() & {"arch", "data", "task"}:
            rederived = {"image_size": None, "channels": None}
            if changes.keys() & {"data", "task"}:
                rederived.update(num_classes=None, tfds_name=None)
            if "task" in changes:
                rederived["loss"] = None
            changes = {**rederived, **changes}
        try:
            spec = _changed(spec, **changes)
        except SpecError:
            _check_recorded(recorded, path / ANSWERS_FILE)  # the file's fault, or ...
            raise  # ... the change's
        conflicts = update_project(path, spec, to=to)
    if conflicts:
        typer.echo("kgen: update left conflicts to resolve (inline markers):", err=True)
        for name in conflicts:
            typer.echo(f"  {name}", err=True)
        raise typer.Exit(code=1)
    typer.echo(
        f"Updated {path} to template {'of the installed kgen' if to is None else to}; "
        "review with git diff"
    )


def _check_recorded(spec: ProjectSpec, answers_file: Path) -> None:
    """Raise SpecError naming `answers_file` if its own answers are invalid."""
    try:
        spec.resolve()
    except SpecError as error:
        raise SpecError(
            f"{str(answers_file)!r} records an answer kgen cannot use: {error}; restore "
            f"it with `git checkout -- {answers_file.name}`"
        ) from None


@app.command("list")
def list_choices() -> None:
    """List the architectures, tasks, loops and data sources kgen can generate."""
    typer.echo(
        "Architectures (input sizes in pixels; recipe: optimizer, peak lr per 256):"
    )
    typer.echo(
        f"  {'name':<22}{'min':>5}{'default':>9}  {'pixels':<18}{'recipe':<16}description"
    )
    pixels = {
        registry.RESCALE: "rescaled to [0,1]",
        registry.BUILTIN: "0-255 (in model)",
        registry.PREPROCESS_INPUT: "preprocess_input",
    }
    for arch in registry.ARCHITECTURES.values():
        recipe = registry.recipe(arch)
        trains = f"{recipe.optimizer} {recipe.learning_rate:g}"
        typer.echo(
            f"  {arch.name:<22}{arch.min_size:>5}{arch.default_size:>9}  "
            f"{pixels[arch.preprocessing]:<18}{trains:<16}{arch.description}"
        )
    typer.echo("\nTasks (with the tfds dataset each uses by default):")
    for task in registry.TASKS.values():
        typer.echo(f"  {task.name:<12}{task.description} [tfds: {task.tfds.name}]")
    for title, table in (
        ("Loops", registry.LOOPS),
        ("Data sources", registry.DATA_SOURCES),
    ):
        typer.echo(f"\n{title}:")
        for choice in table.values():
            typer.echo(f"  {choice.name:<12}{choice.description}")


def _stopped(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT: undo the work in progress, then exit 128 + signal number.

    Cleaning up here rather than raising keeps it certain: an exception raised in a
    signal handler can land in a finalizer or import callback, where Python ignores it.
    """
    # Imported lazily: maybe not yet, or halfway (then there is no work to undo yet).
    abandon = getattr(sys.modules.get("generator.render"), "abandon", None)
    if abandon is not None:
        abandon()
    sys.stderr.write(
        f"kgen: stopped by {signal.Signals(signum).name}; nothing was left half-written\n"
    )
    sys.stderr.flush()
    os._exit(128 + signum)


def main() -> None:
    stops = (signal.SIGTERM, signal.SIGINT)
    for signum in stops:
        signal.signal(signum, _stopped)
    try:
        app()
    finally:
        # The command's work is done or undone. Python gives the signals back to their
        # default action while it shuts down, so a signal from here on would kill the
        # process with an exit status saying the work was stopped: hold it back.
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
