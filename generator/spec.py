"""ProjectSpec: every option of a generated project, validated, and the answers copier records."""

from __future__ import annotations

import keyword
import os
import re
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from generator import pythons, registry

# Names a generated package must not take: importing it would shadow the real module.
_RESERVED_PACKAGES = set(sys.stdlib_module_names) | {
    "keras",
    "numpy",
    "tensorflow",
    "tensorflow_datasets",
    "tests",
    "generator",
}
_PROJECT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")

SAMPLE_CHANNELS = 1  # the bundled digits
# A chosen optimizer other than the recipe's: SGD gets its own peak lr (per 256 images,
# Goyal et al. 2017) and weight decay; adaptive optimizers keep the recipe's values.
SGD_LEARNING_RATE = 0.1
SGD_WEIGHT_DECAY = 5e-4


class SpecError(ValueError):
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
    loss: str | None = None  # None: the task's default loss
    label_smoothing: float | None = None  # None: the recipe's (classification)

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
        """Validate every option and fill in the defaults; raise SpecError on bad input."""
        _check_project_name(self.project_name)
        arch = _lookup("architecture", registry.ARCHITECTURES, self.arch)
        task = _lookup("task", registry.TASKS, self.task)
        _lookup("loop", registry.LOOPS, self.loop)
        _lookup("data source", registry.DATA_SOURCES, self.data)
        _lookup("strategy", registry.STRATEGIES, self.strategy)
        _lookup("precision", registry.PRECISIONS, self.precision)
        recipe = self.recipe
        optimizer = self.optimizer or recipe.optimizer
        _lookup("optimizer", registry.OPTIMIZERS, optimizer)
        _lookup("learning-rate schedule", registry.LR_SCHEDULES, self.lr_schedule)
        if self.tfds_name is not None and self.data != "tfds":
            raise SpecError(
                f"--tfds-name applies to --data tfds only, not --data {self.data}"
            )
        if self.strategy == "multiworker" and self.loop == "fit":
            raise SpecError(
                "--strategy multiworker needs --loop custom: Keras 3 model.fit fails "
                "under MultiWorkerMirroredStrategy (keras-team/keras#20585)"
            )

        loss = self.loss or task.losses[0]
        if loss not in task.losses:
            _lookup("loss", registry.LOSSES, loss)
            raise SpecError(
                f"--loss {loss} is not valid for {task.name}: use {' or '.join(task.losses)}"
            )
        spec = replace(
            self,
            image_size=self.image_size or self.default_image_size(),
            channels=self.channels or self.default_channels(),
            num_classes=self.num_classes or self.default_outputs(),
            tfds_name=self.tfds_dataset().name if self.data == "tfds" else None,
            loss=loss,
            epochs=self.epochs if self.epochs is not None else recipe.epochs,
            optimizer=optimizer,
            learning_rate=self.learning_rate or self._default_learning_rate(optimizer),
            label_smoothing=(
                self._default_label_smoothing()
                if self.label_smoothing is None
                else self.label_smoothing
            ),
        )
        _check_image_size(arch, spec.image_size)
        _check_channels(arch, spec.channels)
        _check_positive("--epochs", spec.epochs)
        _check_positive("--batch-size", spec.batch_size)
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise SpecError(f"--learning-rate must be > 0, got {self.learning_rate}")
        _check_outputs(spec.task, spec.num_classes)
        if spec.data == "sample" and spec.num_classes != task.sample_outputs:
            raise SpecError(
                f"--num-classes {spec.num_classes} does not match the sample data, which "
                f"has {task.sample_outputs} {task.outputs_noun} for {spec.task}; omit it "
                "or use --data tfds/synthetic"
            )
        if not 0 <= spec.label_smoothing < 1:
            raise SpecError(
                f"--label-smoothing must be in [0, 1), got {spec.label_smoothing}"
            )
        if spec.label_smoothing and spec.task == "regression":
            raise SpecError(
                "--label-smoothing applies to classification tasks, not regression"
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
            batchnorm=arch.batchnorm,
            weight_decay=spec.weight_decay(),
            warmup_epochs=spec.recipe.warmup_epochs,
            dropout=spec.recipe.dropout,
            augment_strength=spec.recipe.augment_strength,
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


def _lookup(kind: str, table: dict, name: str):
    try:
        return registry.lookup(kind, table, name)
    except registry.RegistryError as error:
        raise SpecError(str(error)) from None


def _check_project_name(name: str) -> None:
    if not _PROJECT_NAME.match(name):
        raise SpecError(
            f"project name {name!r} is not valid: start with a letter, then use letters, "
            "digits, '-', '_' or '.'"
        )
    package = package_name(name)
    if not package.isidentifier() or keyword.iskeyword(package):
        raise SpecError(
            f"project name {name!r} gives package {package!r}, not a valid Python name"
        )
    if package in _RESERVED_PACKAGES:
        raise SpecError(
            f"project name {name!r} gives package {package!r}, which would shadow the "
            "module of that name; choose another name"
        )


def _check_image_size(arch: registry.Architecture, size: int) -> None:
    if size < arch.min_size:
        raise SpecError(
            f"--image-size {size} is too small for {arch.name}: the minimum is {arch.min_size}"
        )
    if size > 1024:
        raise SpecError(f"--image-size {size} is too large: the maximum is 1024")


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


def _check_positive(option: str, value: int) -> None:
    if value < 1:
        raise SpecError(f"{option} must be a positive integer, got {value}")


def check_python(version: tuple[int, ...] | None = None) -> None:
    """Raise SpecError unless `version` (default: this interpreter's) can run the project."""
    major, minor = (version or pythons.running())[:2]
    if not pythons.OLDEST <= (major, minor) <= pythons.NEWEST:
        raise SpecError(
            f"Python {major}.{minor} is not supported: generated projects need "
            f"Python {pythons.REQUIRES_PYTHON} ({', '.join(pythons.SUPPORTED)}), what "
            "their TensorFlow and Keras run on; run kgen under one of those"
        )


def check_destination(path: Path) -> None:
    """Raise SpecError unless `path` can receive a new project (new or empty directory)."""
    if path.is_file():
        raise SpecError(
            f"destination {str(path)!r} is a file; give a new or empty directory"
        )
    if path.is_dir() and any(path.iterdir()):
        raise SpecError(
            f"destination {str(path)!r} exists and is not empty; give a new or empty directory"
        )
    parent = path.parent
    if not parent.is_dir():
        raise SpecError(
            f"parent directory {str(parent)!r} does not exist; create it first"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError(f"parent directory {str(parent)!r} is not writable")
