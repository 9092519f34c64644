"""ProjectSpec: every option of a generated project, validated, and the answers copier records."""

from __future__ import annotations

import functools
import keyword
import math
import os
import re
import sys
import types
import typing
import zipfile
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from generator import pythons, registry

# Names a generated package must not take, besides the standard library's and those its
# dependencies install (reserved_names.txt): its own tests package, and kgen's.
_OWN_PACKAGES = {
    "tests": "the project's own tests package",
    "generator": "kgen's package",
}
# Compared in lower case, as package names are: on macOS and Windows `cprofile` is `cProfile`.
_STDLIB = {name.lower() for name in sys.stdlib_module_names}
_PROJECT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")

# Upper bounds of the numeric options: far beyond any sensible run, low enough that a
# typo (an extra zero or three) is caught before it is written into a project.
MAX_NAME_LENGTH = 100  # a file name may have 255 bytes; kgen adds a staging suffix
MAX_IMAGE_SIZE = 1024
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_OUTPUTS = 100_000  # classes, labels or regression targets
MAX_LEARNING_RATE = 10.0  # peak, per 256 images

SAMPLE_CHANNELS = 1  # the bundled digits
# A chosen optimizer other than the recipe's: SGD gets its own peak lr (per 256 images,
# Goyal et al. 2017) and weight decay; adaptive optimizers keep the recipe's values.
SGD_LEARNING_RATE = 0.1
SGD_WEIGHT_DECAY = 5e-4


class KgenError(Exception):
    """An input or environment failure, not a bug: kgen reports it as one line, exit 2."""


def describe_os_error(error: OSError) -> str:
    """An OSError on one line: its reason and the file(s) it names."""
    reason = (error.strerror or str(error) or type(error).__name__).lower()
    names = [repr(str(n)) for n in (error.filename, error.filename2) if n is not None]
    return f"{reason}: {' -> '.join(names)}" if names else reason


class SpecError(KgenError, ValueError):
    """An option value is invalid; the message is one line naming it and what is valid."""


def package_name(project_name: str) -> str:
    """Normalise a project name into an importable package name: my-digits -> my_digits."""
    return re.sub(r"[-.]+", "_", project_name).lower()


@dataclass(frozen=True)
class ProjectSpec:
    """The options of one generated project. `None` means "use the default for the rest"."""

    project_name: str
    arch: str = "simple_cnn"
    task: str = "multiclass"
    loop: str = "fit"
    data: str = "sample"
    image_size: int | None = None
    channels: int | None = None
    num_classes: int | None = None
    epochs: int | None = None
    batch_size: int = 64
    learning_rate: float | None = None  # None: the family's recipe
    tfds_name: str | None = None  # None: the task's default dataset
    strategy: str = "default"
    precision: str = "float32"
    jit_compile: bool = False
    optimizer: str | None = None  # None: the family's recipe
    lr_schedule: str = "cosine"
    augment: bool = False
    randaugment: bool = False  # Keras RandAugment on training images
    mix: str = "none"  # MixUp or CutMix of training batches (classification)
    class_weights: bool = False  # loss weighted by inverse class frequency
    keep_best: bool = False  # best.keras: the best epoch by a validation metric
    ema: bool = False  # a moving average of the weights for validation and export
    tune: bool = False  # a `tune` command: an Optuna search over settings
    tracking: str = "none"  # "mlflow": runs also logged to an MLflow store
    loss: str | None = None  # None: the task's default loss
    label_smoothing: float | None = None  # None: the recipe's (classification)
    weights: str = "none"  # "imagenet" or a weights file: a pretrained start

    @property
    def package_name(self) -> str:
        return package_name(self.project_name)

    @property
    def architecture(self) -> registry.Architecture:
        return registry.lookup("architecture", registry.ARCHITECTURES, self.arch)

    def default_image_size(self) -> int:
        """The sample digits are 8x8: upsample them only as far as the model needs."""
        arch = self.architecture
        if self.data == "sample":
            return max(arch.min_size, 32 if arch.is_application else arch.default_size)
        return arch.default_size

    @property
    def recipe(self) -> registry.Recipe:
        return registry.recipe(self.architecture)

    @property
    def task_info(self) -> registry.Task:
        return registry.lookup("task", registry.TASKS, self.task)

    def tfds_dataset(self) -> registry.TfdsDataset:
        """The task's default tfds dataset, or the named one with default splits."""
        return registry.tfds_dataset(self.task, self.tfds_name)

    def default_channels(self) -> int:
        if self.architecture.needs_rgb:
            return 3
        if self.data == "tfds":
            return self.tfds_dataset().channels
        return SAMPLE_CHANNELS if self.data == "sample" else 3  # folder: RGB

    def default_outputs(self) -> int:
        """Classes (multiclass, binary), labels (multilabel) or targets (regression)."""
        if self.data == "sample":
            return self.task_info.sample_outputs
        if self.data == "tfds":
            return self.tfds_dataset().outputs
        return self.task_info.default_outputs

    def resolve(self) -> ProjectSpec:
        """Validate every option and fill in the defaults; raise SpecError on bad input.

        `None` is the only "not given": zero, an empty string or false is a value, and is
        checked like any other.
        """
        _check_types(self)
        _check_project_name(self.project_name)
        arch = _lookup("architecture", registry.ARCHITECTURES, self.arch)
        task = _lookup("task", registry.TASKS, self.task)
        _lookup("loop", registry.LOOPS, self.loop)
        _lookup("data source", registry.DATA_SOURCES, self.data)
        _lookup("strategy", registry.STRATEGIES, self.strategy)
        _lookup("precision", registry.PRECISIONS, self.precision)
        recipe = self.recipe
        optimizer = _given(self.optimizer, recipe.optimizer)
        _lookup("optimizer", registry.OPTIMIZERS, optimizer)
        _lookup("learning-rate schedule", registry.LR_SCHEDULES, self.lr_schedule)
        _lookup("tracking", registry.TRACKING, self.tracking)
        _lookup("mix", registry.MIXES, self.mix)
        if self.tfds_name is not None and self.data != "tfds":
            raise SpecError(
                f"--tfds-name applies to --data tfds only, not --data {self.data}"
            )
        if self.strategy == "multiworker" and self.loop == "fit":
            raise SpecError(
                "--strategy multiworker needs --loop custom: Keras 3 model.fit fails "
                "under MultiWorkerMirroredStrategy (keras-team/keras#20585)"
            )

        loss = _given(self.loss, task.losses[0])
        if loss not in task.losses:
            _lookup("loss", registry.LOSSES, loss)
            raise SpecError(
                f"--loss {loss} is not valid for {task.name}: use {' or '.join(task.losses)}"
            )
        spec = replace(
            self,
            image_size=_given(self.image_size, self.default_image_size()),
            channels=_given(self.channels, self.default_channels()),
            num_classes=_given(self.num_classes, self.default_outputs()),
            tfds_name=self.tfds_dataset().name if self.data == "tfds" else None,
            loss=loss,
            epochs=_given(self.epochs, recipe.epochs),
            optimizer=optimizer,
            learning_rate=_given(
                self.learning_rate, self._default_learning_rate(optimizer)
            ),
            label_smoothing=_given(
                self.label_smoothing, self._default_label_smoothing()
            ),
        )
        _check_image_size(arch, spec.image_size)
        _check_channels(arch, spec.channels)
        spec = replace(spec, weights=_checked_weights(spec))
        _check_count("--epochs", spec.epochs, MAX_EPOCHS)
        _check_count("--batch-size", spec.batch_size, MAX_BATCH_SIZE)
        _check_learning_rate(spec.learning_rate)
        _check_outputs(spec.task, spec.num_classes)
        if spec.data == "sample" and spec.num_classes != task.sample_outputs:
            raise SpecError(
                f"--num-classes {spec.num_classes} does not match the sample data, which "
                f"has {task.sample_outputs} {task.outputs_noun} for {spec.task}; omit it "
                "or use --data tfds/synthetic"
            )
        if not (math.isfinite(spec.label_smoothing) and 0 <= spec.label_smoothing < 1):
            raise SpecError(
                f"--label-smoothing must be in [0, 1), got {spec.label_smoothing}"
            )
        if spec.label_smoothing and spec.task == "regression":
            raise SpecError(
                "--label-smoothing applies to classification tasks, not regression"
            )
        if spec.mix != "none" and spec.task == "regression":
            raise SpecError(
                f"--mix {spec.mix} applies to classification tasks, not regression"
            )
        if spec.class_weights and spec.task not in ("multiclass", "binary"):
            raise SpecError(
                f"--class-weights applies to multiclass and binary tasks, not {spec.task}"
            )
        if spec.data == "tfds" and not re.fullmatch(
            r"[a-z0-9_]+(/[\w.-]+)?(:[\w.*]+)?", spec.tfds_name
        ):
            raise SpecError(
                f"--tfds-name {spec.tfds_name!r} is not a tfds dataset name "
                "(e.g. mnist, cifar10, emnist/letters)"
            )
        return spec

    def _sgd_instead(self, optimizer: str) -> bool:
        """SGD was chosen over an adaptive recipe: it takes SGD's own lr and decay."""
        return optimizer == "sgd" != self.recipe.optimizer

    def _default_learning_rate(self, optimizer: str) -> float:
        if self._sgd_instead(optimizer):
            return SGD_LEARNING_RATE
        return self.recipe.learning_rate

    def _default_label_smoothing(self) -> float:
        return 0.0 if self.task == "regression" else self.recipe.label_smoothing

    def weight_decay(self) -> float:
        """The recipe's decoupled weight decay; SGD chosen instead gets its own."""
        assert self.optimizer  # resolved
        if self._sgd_instead(self.optimizer):
            return SGD_WEIGHT_DECAY
        return self.recipe.weight_decay

    def answers(self) -> dict[str, object]:
        """The copier answers: the user's options plus values derived from the registry.

        Derived values are recorded too, so that `copier update` re-renders the same project
        without needing kgen's registry.
        """
        spec = self.resolve()
        arch = spec.architecture
        answers = asdict(spec)
        if spec.data == "tfds":
            tfds = spec.tfds_dataset()
            answers.update(
                tfds_train_split=tfds.train_split, tfds_val_split=tfds.val_split
            )
            if spec.task in ("multilabel", "regression"):
                answers["tfds_labels"] = tfds.labels
        else:
            del answers["tfds_name"]
        answers.update(
            package_name=spec.package_name,
            requires_python=pythons.REQUIRES_PYTHON,
            keras_class=arch.keras_class,
            keras_module=arch.keras_module,
            preprocessing=arch.preprocessing,
            param_count=param_count(spec),
            # A pretrained backbone keeps its BatchNormalization frozen: nothing to size.
            batchnorm=arch.batchnorm and spec.weights == "none",
            weight_decay=spec.weight_decay(),
            warmup_epochs=spec.recipe.warmup_epochs,
            dropout=spec.recipe.dropout,
            augment_strength=spec.recipe.augment_strength,
            augmenter=spec.augment or spec.randaugment,
            best_metric=spec.task_info.best_metric,
            recipe_source=spec.recipe.source,
            reference_batch=registry.REFERENCE_BATCH,
        )
        return answers


def param_count(spec: ProjectSpec) -> int:
    """Parameters of the generated model, known without building it."""
    arch = spec.architecture
    size, channels = spec.image_size, spec.channels
    classes = 1 if spec.task == "binary" else spec.num_classes  # output units
    assert size and channels and classes  # resolved
    if arch.name == "simple_cnn":
        side = ((size - 2) // 2 - 2) // 2
        convs = (9 * channels + 1) * 32 + (9 * 32 + 1) * 64
        return convs + (side * side * 64 + 1) * classes
    if arch.name == "mlp":
        return (size * size * channels + 1) * 128 + (128 + 1) * classes
    return arch.backbone_params + (arch.features + 1) * classes


_T = typing.TypeVar("_T")


def _given(value: _T | None, default: _T) -> _T:
    """`value` unless it was not given (None); never `value or default`, zero is a value."""
    return default if value is None else value


# What each option's type is called in a message.
_TYPE_NOUNS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
}


def option_name(field: str) -> str:
    """The command-line spelling of a ProjectSpec field: image_size -> --image-size."""
    return "project name" if field == "project_name" else f"--{field.replace('_', '-')}"


@functools.cache
def _field_types() -> dict[str, tuple[type, ...]]:
    """Each ProjectSpec field's allowed types: `int | None` -> (int, NoneType)."""
    hints = typing.get_type_hints(ProjectSpec)
    return {
        name: typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        for name, hint in hints.items()
    }


def _check_types(spec: ProjectSpec) -> None:
    """Every field holds its declared type (or None where allowed): answers read back from
    a .copier-answers.yml, or passed from Python, may hold anything YAML can."""
    for field in fields(spec):
        value = getattr(spec, field.name)
        allowed = _field_types()[field.name]
        if value is None and type(None) in allowed:
            continue
        kind = next(k for k in allowed if k is not type(None))
        accepted = (int, float) if kind is float else (kind,)
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, accepted):
            raise SpecError(
                f"{option_name(field.name)} must be {_TYPE_NOUNS[kind]}, got {value!r}"
            )


def _check_outputs(task: str, outputs: int) -> None:
    if task == "binary" and outputs != 2:
        raise SpecError(f"--num-classes {outputs} is not valid for binary: it is 2")
    if task == "multiclass" and outputs < 2:
        raise SpecError(
            f"--num-classes must be at least 2 for multiclass, got {outputs}"
        )
    if task == "multilabel" and outputs < 2:
        raise SpecError(
            f"--num-classes must be at least 2 labels for multilabel, got {outputs} "
            "(one label is --task binary)"
        )
    if outputs < 1:
        raise SpecError(f"--num-classes must be at least 1 target, got {outputs}")
    if outputs > MAX_OUTPUTS:
        raise SpecError(
            f"--num-classes {outputs} is too large: the maximum is {MAX_OUTPUTS}"
        )


def _lookup(kind: str, table: dict, name: str):
    try:
        return registry.lookup(kind, table, name)
    except registry.RegistryError as error:
        raise SpecError(str(error)) from None


def _check_project_name(name: str) -> None:
    if len(name) > MAX_NAME_LENGTH:
        raise SpecError(
            f"project name {name[:20]!r}... is {len(name)} characters long: the maximum "
            f"is {MAX_NAME_LENGTH}"
        )
    if not _PROJECT_NAME.fullmatch(name):
        raise SpecError(
            f"project name {name!r} is not valid: start with a letter, then use letters, "
            "digits, '-', '_' or '.'"
        )
    package = package_name(name)
    if not package.isidentifier() or keyword.iskeyword(package):
        raise SpecError(
            f"project name {name!r} gives package {package!r}, not a valid Python name"
        )
    if package in _STDLIB:
        raise SpecError(
            f"project name {name!r} gives package {package!r}, which would shadow the "
            "module of that name; choose another name"
        )
    if package in _OWN_PACKAGES:
        raise SpecError(
            f"project name {name!r} gives package {package!r}, the name of "
            f"{_OWN_PACKAGES[package]}; choose another name"
        )
    owner = reserved_names().get(package)
    if owner is not None:
        raise SpecError(
            f"project name {name!r} gives package {package!r}, which would shadow the "
            f"module or distribution of that name ({owner}); choose another name"
        )


@functools.cache
def reserved_names() -> dict[str, str]:
    """{package name: distribution} that generated projects' dependencies install, from
    reserved_names.txt (written by tools/reserved_names.py; kgen must not import them).
    """
    text = (Path(__file__).with_name("reserved_names.txt")).read_text()
    return dict(
        line.split(" ", 1) for line in text.splitlines() if not line.startswith("#")
    )


def _check_image_size(arch: registry.Architecture, size: int) -> None:
    if size < arch.min_size:
        raise SpecError(
            f"--image-size {size} is too small for {arch.name}: the minimum is {arch.min_size}"
        )
    if size > MAX_IMAGE_SIZE:
        raise SpecError(
            f"--image-size {size} is too large: the maximum is {MAX_IMAGE_SIZE}"
        )


# What keras.Model.load_weights reads: Keras 3 weights files, legacy HDF5, .keras archives.
WEIGHTS_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")
# Their first bytes: .h5 files are HDF5, .keras files zip archives.
HDF5_SIGNATURE, ZIP_SIGNATURE = b"\x89HDF\r\n\x1a\n", b"PK\x03\x04"


def _checked_weights(spec: ProjectSpec) -> str:
    """none, imagenet, or a weights file's absolute path; only where they can load."""
    weights, arch = spec.weights, spec.architecture
    if weights == "none":
        return weights
    if not arch.is_application:
        raise SpecError(
            f"--weights {weights} needs a keras.applications architecture; {arch.name} "
            "has no pretrained weights (use --weights none)"
        )
    if spec.lr_schedule == "plateau":
        raise SpecError(
            "--weights fine-tunes at a lower rate after the head's epochs, which "
            "--lr-schedule plateau would also change: use constant or cosine"
        )
    if weights == "imagenet":
        if arch.keras_module == "nasnet" and spec.image_size != arch.default_size:
            raise SpecError(
                f"--weights imagenet: {arch.name}'s ImageNet weights take "
                f"{arch.default_size}x{arch.default_size} images only (--image-size "
                f"{arch.default_size}), not {spec.image_size}"
            )
        return weights
    path = Path(weights)
    if weights.startswith("~"):
        try:
            path = path.expanduser()
        except RuntimeError:  # ~user of no user: not a file
            pass
    if not path.name.endswith(WEIGHTS_SUFFIXES) or not path.is_file():
        raise SpecError(
            f"--weights {weights!r} is not none, imagenet or a weights file "
            f"({', '.join(WEIGHTS_SUFFIXES)}) saved from the same {arch.name} backbone"
        )
    with path.open("rb") as file:
        signature = file.read(8)
    if not signature.startswith((HDF5_SIGNATURE, ZIP_SIGNATURE)):
        kind = "a zip archive" if path.suffix == ".keras" else "an HDF5 file"
        raise SpecError(f"--weights {weights!r} is not {kind}: is it a weights file?")
    if path.suffix == ".keras" and not _holds_keras_weights(path):
        raise SpecError(
            f"--weights {weights!r} is not a Keras model archive (a zip holding "
            f"{KERAS_WEIGHTS_ENTRY}, an HDF5 file): save it with model.save"
        )
    return str(path.resolve())


KERAS_WEIGHTS_ENTRY = "model.weights.h5"  # what load_weights reads from a .keras file


def _holds_keras_weights(path: Path) -> bool:
    """Whether the zip at `path` holds the HDF5 file that load_weights reads."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(KERAS_WEIGHTS_ENTRY) as h5:
            return h5.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def _check_channels(arch: registry.Architecture, channels: int) -> None:
    if channels not in (1, 3):
        raise SpecError(
            f"--channels {channels} is not valid: use 1 (grayscale) or 3 (RGB)"
        )
    if arch.needs_rgb and channels != 3:
        raise SpecError(
            f"--channels {channels} is not valid for {arch.name}: it needs 3; grayscale "
            "data is converted to RGB in the pipeline"
        )


def _check_count(option: str, value: int, maximum: int) -> None:
    if value < 1:
        raise SpecError(f"{option} must be a positive integer, got {value}")
    if value > maximum:
        raise SpecError(f"{option} {value} is too large: the maximum is {maximum}")


def _check_learning_rate(value: float) -> None:
    if not math.isfinite(value):
        raise SpecError(f"--learning-rate must be a finite number, got {value}")
    if not value > 0:
        raise SpecError(f"--learning-rate must be > 0, got {value}")
    if value > MAX_LEARNING_RATE:
        raise SpecError(
            f"--learning-rate {value} is too large: the maximum is {MAX_LEARNING_RATE} "
            "(the peak for a batch of 256)"
        )


def check_python(version: tuple[int, ...] | None = None) -> None:
    """Raise SpecError unless `version` (default: this interpreter's) can run the project."""
    major, minor = (pythons.running() if version is None else version)[:2]
    if not pythons.OLDEST <= (major, minor) <= pythons.NEWEST:
        raise SpecError(
            f"Python {major}.{minor} is not supported: generated projects need "
            f"Python {pythons.REQUIRES_PYTHON} ({', '.join(pythons.SUPPORTED)}), what "
            "their TensorFlow and Keras run on; run kgen under one of those"
        )


def project_name(destination: Path) -> str:
    """The project's name: the last component of the absolute, normalised destination."""
    name = Path(os.path.abspath(destination)).name
    if name == "":
        raise SpecError(
            f"destination {str(destination)!r} has no name to give the project; give a "
            "directory such as ./my-project"
        )
    return name


def check_destination(path: Path) -> None:
    """Raise SpecError unless `path` can receive a new project (new or empty directory)."""
    if path.is_symlink() and not path.exists():
        raise SpecError(
            f"destination {str(path)!r} is a symbolic link to nothing; give a new or "
            "empty directory"
        )
    if path.exists() and not path.is_dir():
        kind = "a file" if path.is_file() else "not a directory"
        raise SpecError(
            f"destination {str(path)!r} is {kind}; give a new or empty directory"
        )
    if path.is_dir():
        if any(path.iterdir()):
            raise SpecError(
                f"destination {str(path)!r} exists and is not empty; give a new or empty "
                "directory"
            )
        _check_writable(path, "destination")
        return
    parent = path.parent
    ancestor = parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise SpecError(
            f"{str(ancestor)!r} is a file, so {str(path)!r} cannot be created under it"
        )
    if not parent.is_dir():
        raise SpecError(
            f"parent directory {str(parent)!r} does not exist; create it first"
        )
    _check_writable(parent, "parent directory")


def _check_writable(directory: Path, role: str) -> None:
    if not os.access(directory, os.W_OK | os.X_OK):
        raise SpecError(f"{role} {str(directory)!r} is not writable")
