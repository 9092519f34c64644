"""What kgen can generate: architectures, tasks, training loops and data sources.

Plain dicts of frozen dataclasses, no imports beyond the standard library: the generator
must never import TensorFlow. Lookups raise `RegistryError` naming the valid keys.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from typing import TypeVar

# How a model wants its pixels. Exactly one of these is applied, in the data pipeline or
# inside the model, never both.
RESCALE = "rescale"  # the pipeline divides by 255: inputs in [0, 1]
BUILTIN = "builtin"  # the model rescales/normalises itself: feed raw 0-255 values
PREPROCESS_INPUT = (
    "preprocess_input"  # the pipeline calls the module's preprocess_input
)


class RegistryError(ValueError):
    """An unknown name was asked for; the message lists what is valid."""


@dataclass(frozen=True)
class Architecture:
    """One model family member that a generated project can build from scratch."""

    name: str
    description: str
    min_size: int  # smallest square input side the model accepts
    default_size: int  # the side the model was designed for
    preprocessing: str
    keras_class: str = ""  # keras.applications class; empty for kgen's own models
    keras_module: str = ""  # keras.applications submodule holding preprocess_input
    needs_rgb: bool = False  # the model requires 3 input channels
    backbone_params: int = 0  # parameters of the 3-channel backbone without its head
    features: int = 0  # width of the pooled feature vector the head sees
    family: str = ""  # the key of its training recipe; keras_module for applications
    batchnorm: bool = False  # has BatchNormalization layers (their momentum is tuned)

    @property
    def is_application(self) -> bool:
        return bool(self.keras_class)

    @property
    def quick_size(self) -> int:
        """The side for tests that must take seconds: the model's minimum, at least 32."""
        return max(self.min_size, 32)


def _app(
    name: str,
    keras_class: str,
    keras_module: str,
    preprocessing: str,
    backbone_params: int,
    features: int,
    *,
    default_size: int = 224,
    min_size: int = 32,
    batchnorm: bool = True,
    family: str = "",
) -> Architecture:
    """A keras.applications model: built with weights=None, include_top=False."""
    return Architecture(
        name=name,
        description=f"keras.applications.{keras_class}",
        min_size=min_size,
        default_size=default_size,
        preprocessing=preprocessing,
        keras_class=keras_class,
        keras_module=keras_module,
        needs_rgb=True,
        backbone_params=backbone_params,
        features=features,
        family=family or keras_module,
        batchnorm=batchnorm,
    )


# Parameter counts and feature widths were measured with Keras 3.15.1 (include_top=False,
# weights=None, pooling="avg", 3 channels); the generated model test checks them for real.
_ARCHITECTURES = [
    Architecture(
        name="simple_cnn",
        description="Conv32-Pool-Conv64-Pool-Flatten-Dense, a fast baseline",
        min_size=10,
        default_size=28,
        preprocessing=RESCALE,
        family="simple_cnn",
    ),
    Architecture(
        name="mlp",
        description="Flatten-Dense128-Dense, the smallest baseline",
        min_size=1,
        default_size=28,
        preprocessing=RESCALE,
        family="mlp",
    ),
    _app(
        "convnext_tiny",
        "ConvNeXtTiny",
        "convnext",
        BUILTIN,
        27820128,
        768,
        batchnorm=False,
    ),
    _app(
        "convnext_small",
        "ConvNeXtSmall",
        "convnext",
        BUILTIN,
        49454688,
        768,
        batchnorm=False,
    ),
    _app(
        "convnext_base",
        "ConvNeXtBase",
        "convnext",
        BUILTIN,
        87566464,
        1024,
        batchnorm=False,
    ),
    _app(
        "convnext_large",
        "ConvNeXtLarge",
        "convnext",
        BUILTIN,
        196230336,
        1536,
        batchnorm=False,
    ),
    _app(
        "convnext_xlarge",
        "ConvNeXtXLarge",
        "convnext",
        BUILTIN,
        348147968,
        2048,
        batchnorm=False,
    ),
    _app("densenet121", "DenseNet121", "densenet", PREPROCESS_INPUT, 7037504, 1024),
    _app("densenet169", "DenseNet169", "densenet", PREPROCESS_INPUT, 12642880, 1664),
    _app("densenet201", "DenseNet201", "densenet", PREPROCESS_INPUT, 18321984, 1920),
    _app("efficientnet_b0", "EfficientNetB0", "efficientnet", BUILTIN, 4049571, 1280),
    _app(
        "efficientnet_b1",
        "EfficientNetB1",
        "efficientnet",
        BUILTIN,
        6575239,
        1280,
        default_size=240,
    ),
    _app(
        "efficientnet_b2",
        "EfficientNetB2",
        "efficientnet",
        BUILTIN,
        7768569,
        1408,
        default_size=260,
    ),
    _app(
        "efficientnet_b3",
        "EfficientNetB3",
        "efficientnet",
        BUILTIN,
        10783535,
        1536,
        default_size=300,
    ),
    _app(
        "efficientnet_b4",
        "EfficientNetB4",
        "efficientnet",
        BUILTIN,
        17673823,
        1792,
        default_size=380,
    ),
    _app(
        "efficientnet_b5",
        "EfficientNetB5",
        "efficientnet",
        BUILTIN,
        28513527,
        2048,
        default_size=456,
    ),
    _app(
        "efficientnet_b6",
        "EfficientNetB6",
        "efficientnet",
        BUILTIN,
        40960143,
        2304,
        default_size=528,
    ),
    _app(
        "efficientnet_b7",
        "EfficientNetB7",
        "efficientnet",
        BUILTIN,
        64097687,
        2560,
        default_size=600,
    ),
    _app(
        "efficientnet_v2_b0",
        "EfficientNetV2B0",
        "efficientnet_v2",
        BUILTIN,
        5919312,
        1280,
    ),
    _app(
        "efficientnet_v2_b1",
        "EfficientNetV2B1",
        "efficientnet_v2",
        BUILTIN,
        6931124,
        1280,
        default_size=240,
    ),
    _app(
        "efficientnet_v2_b2",
        "EfficientNetV2B2",
        "efficientnet_v2",
        BUILTIN,
        8769374,
        1408,
        default_size=260,
    ),
    _app(
        "efficientnet_v2_b3",
        "EfficientNetV2B3",
        "efficientnet_v2",
        BUILTIN,
        12930622,
        1536,
        default_size=300,
    ),
    _app(
        "efficientnet_v2_s",
        "EfficientNetV2S",
        "efficientnet_v2",
        BUILTIN,
        20331360,
        1280,
        default_size=384,
    ),
    _app(
        "efficientnet_v2_m",
        "EfficientNetV2M",
        "efficientnet_v2",
        BUILTIN,
        53150388,
        1280,
        default_size=480,
    ),
    _app(
        "efficientnet_v2_l",
        "EfficientNetV2L",
        "efficientnet_v2",
        BUILTIN,
        117746848,
        1280,
        default_size=480,
    ),
    _app(
        "inception_resnet_v2",
        "InceptionResNetV2",
        "inception_resnet_v2",
        PREPROCESS_INPUT,
        54336736,
        1536,
        default_size=299,
        min_size=75,
    ),
    _app(
        "inception_v3",
        "InceptionV3",
        "inception_v3",
        PREPROCESS_INPUT,
        21802784,
        2048,
        default_size=299,
        min_size=75,
    ),
    _app("mobilenet", "MobileNet", "mobilenet", PREPROCESS_INPUT, 3228864, 1024),
    _app(
        "mobilenet_v2", "MobileNetV2", "mobilenet_v2", PREPROCESS_INPUT, 2257984, 1280
    ),
    _app(
        "mobilenet_v3_small", "MobileNetV3Small", "mobilenet_v3", BUILTIN, 939120, 576
    ),
    _app(
        "mobilenet_v3_large", "MobileNetV3Large", "mobilenet_v3", BUILTIN, 2996352, 960
    ),
    _app(
        "nasnet_mobile",
        "NASNetMobile",
        "nasnet",
        PREPROCESS_INPUT,
        4269716,
        1056,
    ),
    _app(
        "nasnet_large",
        "NASNetLarge",
        "nasnet",
        PREPROCESS_INPUT,
        84916818,
        4032,
        default_size=331,
    ),
    _app("resnet50", "ResNet50", "resnet", PREPROCESS_INPUT, 23587712, 2048),
    _app("resnet101", "ResNet101", "resnet", PREPROCESS_INPUT, 42658176, 2048),
    _app("resnet152", "ResNet152", "resnet", PREPROCESS_INPUT, 58370944, 2048),
    _app("resnet50_v2", "ResNet50V2", "resnet_v2", PREPROCESS_INPUT, 23564800, 2048),
    _app("resnet101_v2", "ResNet101V2", "resnet_v2", PREPROCESS_INPUT, 42626560, 2048),
    _app("resnet152_v2", "ResNet152V2", "resnet_v2", PREPROCESS_INPUT, 58331648, 2048),
    _app(
        "vgg16",
        "VGG16",
        "vgg16",
        PREPROCESS_INPUT,
        14714688,
        512,
        batchnorm=False,
        family="vgg",
    ),
    _app(
        "vgg19",
        "VGG19",
        "vgg19",
        PREPROCESS_INPUT,
        20024384,
        512,
        batchnorm=False,
        family="vgg",
    ),
    _app(
        "xception",
        "Xception",
        "xception",
        PREPROCESS_INPUT,
        20861480,
        2048,
        default_size=299,
        min_size=71,
    ),
]
ARCHITECTURES: dict[str, Architecture] = {arch.name: arch for arch in _ARCHITECTURES}

# The learning rate is the peak for a global batch of REFERENCE_BATCH images; a project
# scales it by sqrt(batch / REFERENCE_BATCH) (adaptive optimizers; SGD scales linearly).
REFERENCE_BATCH = 256


@dataclass(frozen=True)
class Recipe:
    """How one family trains from scratch: the defaults `kgen new` writes into config.py.

    Every recipe uses a linear warmup then cosine decay, decoupled weight decay on weights
    only (never on biases or normalization parameters), and label smoothing for
    classification. The values start from the cited recipes and were checked on the
    bundled sample with benchmarks/learning.py.
    """

    optimizer: str
    learning_rate: float  # peak, per REFERENCE_BATCH images
    weight_decay: float
    warmup_epochs: float
    label_smoothing: float
    dropout: float  # before the head
    epochs: int  # the default run; enough to learn the bundled sample
    source: str  # where the values come from, written beside them in config.py
    # With --augment: zoom and contrast factors; rotation is half of it (of a full turn).
    augment_strength: float = 0.1


_ADAMW_SOURCE = (
    "AdamW, warmup + cosine, wd 0.05 on weights only, label smoothing 0.1: the timm / "
    "ConvNeXt from-scratch recipe (Liu et al. 2022), lr sized for short runs"
)
_ADAMW_RECIPE = Recipe(
    "adamw", 0.002, 0.05, 1.0, 0.1, 0.2, epochs=15, source=_ADAMW_SOURCE
)
# Per family: default epochs, the fewest that meet benchmarks/learning.py's targets on the
# bundled sample with a margin (slow starters such as EfficientNet need more), and any value
# the benchmark showed a better choice for the family.
_ADAMW_FAMILIES: dict[str, dict] = {
    "convnext": dict(epochs=5),
    "densenet": dict(epochs=8),
    "efficientnet": dict(epochs=15),
    "efficientnet_v2": dict(epochs=8),
    "inception_resnet_v2": dict(epochs=5),
    "inception_v3": dict(epochs=8),
    "mobilenet": dict(epochs=15, learning_rate=0.004),  # 0.914 at 0.002, 0.950 at 0.004
    "mobilenet_v2": dict(epochs=15),
    "mobilenet_v3": dict(epochs=8),
    "nasnet": dict(epochs=8),
    "resnet": dict(epochs=8),
    "resnet_v2": dict(epochs=8),
    "xception": dict(epochs=8),
}
RECIPES: dict[str, Recipe] = {
    **{
        family: replace(_ADAMW_RECIPE, **changes)
        for family, changes in _ADAMW_FAMILIES.items()
    },
    "simple_cnn": Recipe(
        "adam",
        0.008,
        0.0,
        0.0,
        0.0,
        0.2,
        epochs=25,
        source="Adam as in the keras-io MNIST convnet example, with cosine decay; "
        "lr and epochs from kgen's learning benchmark (0.989 on the sample)",
    ),
    "mlp": Recipe(
        "adam",
        0.002,
        0.0,
        0.0,
        0.0,
        0.2,
        epochs=15,
        source="Adam as in the keras-io MNIST examples, with cosine decay",
    ),
    "vgg": Recipe(
        "adamw",
        0.0002,
        0.0005,
        2.0,
        0.1,
        0.5,
        epochs=15,
        source="no normalization layers: a 10x lower peak lr and a longer warmup; "
        "dropout 0.5 and wd 5e-4 as in Simonyan & Zisserman 2015",
    ),
}


def recipe(arch: Architecture) -> Recipe:
    """The training recipe of an architecture's family."""
    return RECIPES[arch.family]


@dataclass(frozen=True)
class Choice:
    """A closed option (task, loop, data source) and the one line `kgen list` shows."""

    name: str
    description: str


@dataclass(frozen=True)
class TfdsDataset:
    """A tensorflow-datasets default for one task: where its labels are and how it splits."""

    name: str
    channels: int
    outputs: int  # classes, labels or targets
    train_split: str = "train"
    val_split: str = "test"
    labels: str = (
        ""  # multilabel: the labels feature; regression: comma-separated targets
    )


@dataclass(frozen=True)
class Task:
    """A task: its head, loss and metrics (`kgen list` shows the description) and the
    defaults it brings: outputs per data source, its tfds dataset, the losses it allows.
    """

    name: str
    description: str
    outputs_noun: str  # what --num-classes counts: classes, labels or targets
    sample_outputs: int  # what the bundled digits give for this task
    default_outputs: int  # for npz, folder and synthetic data
    tfds: TfdsDataset
    losses: tuple[str, ...]  # the first is the default
    # What the generated project says and checks about its outputs:
    outputs_rule: str  # config.py's check of data.num_outputs
    npz_y: str  # what y holds in an .npz file
    predict_verb: str  # `predict`'s help: "<verb> image files or folders"
    prediction: str  # what predictions.csv holds
    predict_noun: str  # the same, in a few words
    metrics: tuple[str, ...]  # Keras metric names (top5_accuracy: more than 5 classes)
    best_metric: str  # what --keep-best selects the best epoch by, by default
    sample_text: str  # how the bundled digits are labelled for this task (README)

    @property
    def val_metrics(self) -> tuple[str, ...]:
        """The names validation logs give the loss and metrics: val_loss, val_<metric>."""
        return ("val_loss", *(f"val_{name}" for name in self.metrics))


TASKS: dict[str, Task] = {
    "multiclass": Task(
        "multiclass",
        "one label per image: softmax, sparse cross-entropy, accuracy, top-5 (> 5 classes)",
        outputs_noun="classes",
        sample_outputs=10,
        default_outputs=10,
        tfds=TfdsDataset("mnist", channels=1, outputs=10),  # labels: supervised_keys
        losses=("crossentropy",),
        outputs_rule="at_least(2, 100_000)",
        npz_y="class indices",
        predict_verb="classify",
        prediction="top classes and their probabilities",
        predict_noun="top classes",
        metrics=("accuracy", "top5_accuracy"),
        best_metric="val_accuracy",
        sample_text="",
    ),
    "binary": Task(
        "binary",
        "two classes: one sigmoid unit, binary cross-entropy, accuracy, AUC",
        outputs_noun="classes",
        sample_outputs=2,
        default_outputs=2,
        tfds=TfdsDataset("horses_or_humans", channels=3, outputs=2),
        losses=("crossentropy",),
        outputs_rule="one_of(2)",
        npz_y="class indices, 0 or 1",
        predict_verb="classify",
        prediction="classes, most probable first, and their probabilities",
        predict_noun="class probabilities",
        metrics=("accuracy", "auc"),
        best_metric="val_accuracy",
        sample_text=", as two classes: digits 0-4 and 5-9",
    ),
    "multilabel": Task(
        "multilabel",
        "any number of labels per image: sigmoid units, binary cross-entropy, binary "
        "accuracy, AUC; per-label F1 at evaluation",
        outputs_noun="labels",
        sample_outputs=4,
        default_outputs=4,
        tfds=TfdsDataset(
            "voc/2007", channels=3, outputs=20, val_split="validation", labels="labels"
        ),
        losses=("crossentropy",),
        outputs_rule="at_least(2, 100_000)",
        npz_y="0 or 1 per label",
        predict_verb="label",
        prediction="labels and each label's probability",
        predict_noun="label probabilities",
        metrics=("binary_accuracy", "auc"),
        best_metric="val_auc",
        sample_text=", each with four labels: even, above_4, prime and closed_loop "
        "(0, 6, 8, 9)",
    ),
    "regression": Task(
        "regression",
        "numeric targets: linear outputs, MSE or Huber loss, MAE, RMSE",
        outputs_noun="targets",
        sample_outputs=1,
        default_outputs=1,
        tfds=TfdsDataset(
            "shapes3d",
            channels=3,
            outputs=2,
            train_split="train[:90%]",
            val_split="train[90%:]",
            labels="value_scale,value_orientation",
        ),
        losses=("mse", "huber"),
        outputs_rule="at_least(1, 100_000)",
        npz_y="targets",
        predict_verb="predict the targets of",
        prediction="predicted targets",
        predict_noun="predicted targets",
        metrics=("mae", "rmse"),
        best_metric="val_loss",
        sample_text=", with the digit's value, 0-9, as the target",
    ),
}

LOSSES: dict[str, Choice] = {
    "crossentropy": Choice("crossentropy", "cross-entropy (classification tasks)"),
    "mse": Choice("mse", "mean squared error (regression)"),
    "huber": Choice("huber", "Huber loss, robust to outliers (regression)"),
}

LOOPS: dict[str, Choice] = {
    "fit": Choice("fit", "model.compile + model.fit with Keras callbacks"),
    "custom": Choice("custom", "tf.GradientTape train step compiled with tf.function"),
}

DATA_SOURCES: dict[str, Choice] = {
    "sample": Choice(
        "sample",
        "bundled UCI handwritten digits (1,797 real 8x8 images, 10 classes), offline",
    ),
    "tfds": Choice(
        "tfds", "any tensorflow-datasets image dataset (e.g. mnist, cifar10)"
    ),
    "npz": Choice(
        "npz",
        "your arrays: DATA_DIR/data.npz with x (images) and y (class indices; 0/1 per "
        "label for multilabel; targets for regression)",
    ),
    "folder": Choice(
        "folder",
        "your images: DATA_DIR/<class name>/*.png|jpg|..., or DATA_DIR/labels.csv for "
        "multilabel and regression (check-data lists bad files)",
    ),
    "synthetic": Choice(
        "synthetic", "learnable random images for smoke tests and benchmarks"
    ),
    "tfrecord": Choice(
        "tfrecord",
        "your data already sharded: DATA_DIR/manifest.json and TFRecord shards of "
        "resized images, as a kgen project's `prepare` command writes them",
    ),
}


@dataclass(frozen=True)
class Strategy:
    """A tf.distribute strategy: `kgen list`'s line and the generated README's."""

    name: str
    description: str
    readme: str


STRATEGIES: dict[str, Strategy] = {
    "default": Strategy(
        "default",
        "one device (tf.distribute default strategy)",
        "the default strategy (one device)",
    ),
    "mirrored": Strategy(
        "mirrored",
        "MirroredStrategy over all local GPUs/devices",
        "`MirroredStrategy` over all local GPUs, or all logical CPU devices when there "
        "is no GPU",
    ),
    "multiworker": Strategy(
        "multiworker",
        "MultiWorkerMirroredStrategy across machines, from TF_CONFIG (custom loop)",
        "`MultiWorkerMirroredStrategy` across the workers listed in `TF_CONFIG`",
    ),
    "tpu": Strategy(
        "tpu",
        "TPUStrategy via the TPU cluster resolver",
        "`TPUStrategy` on the TPU found by `TPUClusterResolver` (set `TPU_NAME` if "
        "needed)",
    ),
}

PRECISIONS: dict[str, Choice] = {
    "float32": Choice("float32", "full precision"),
    "mixed_float16": Choice(
        "mixed_float16", "float16 compute, float32 variables, loss scaling (GPU)"
    ),
    "mixed_bfloat16": Choice(
        "mixed_bfloat16", "bfloat16 compute, float32 variables (TPU, recent CPUs)"
    ),
}

OPTIMIZERS: dict[str, Choice] = {
    "adam": Choice("adam", "Adam"),
    "adamw": Choice("adamw", "AdamW (decoupled weight decay)"),
    "sgd": Choice("sgd", "SGD with momentum (Nesterov by default)"),
    "rmsprop": Choice("rmsprop", "RMSprop with momentum"),
}

LR_SCHEDULES: dict[str, Choice] = {
    "constant": Choice("constant", "the same learning rate throughout"),
    "cosine": Choice("cosine", "linear warmup, then cosine decay to zero"),
    "plateau": Choice(
        "plateau", "constant, divided when the validation loss stops improving"
    ),
}

_T = TypeVar("_T")


def lookup(kind: str, table: dict[str, _T], name: str) -> _T:
    """Return `table[name]` or raise a one-line error with a suggestion and the valid names."""
    if name in table:
        return table[name]
    message = f"unknown {kind} {name!r}"
    close = difflib.get_close_matches(name.lower(), list(table), n=1, cutoff=0.6)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    raise RegistryError(f"{message}; valid: {', '.join(table)}")


def data_dir_help(data: str, task: str) -> str:
    """The generated project's --data-dir help for a data source and task."""
    if data == "folder":
        if TASKS[task].outputs_noun == "classes":
            return "one subfolder of images per class"
        return "images and labels.csv"
    return {
        "sample": "directory holding digits.npz",
        "tfds": "tfds data directory",
        "npz": "directory holding data.npz",
        "tfrecord": "manifest.json and TFRecord shards",
    }[data]


def metric_names(task: str, outputs: int) -> list[str]:
    """The Keras names of the generated model's metrics (history.csv, metrics.json)."""
    names = list(TASKS[task].metrics)
    if task == "multiclass" and outputs <= 5:
        names.remove("top5_accuracy")  # top-5 of 5 or fewer classes is always right
    return names


def source_module(data: str, task: str) -> str:
    """The template variant of sources.py: folders and synthetic images of labels or
    targets work differently from those of classes."""
    if TASKS[task].outputs_noun == "classes" or data not in ("folder", "synthetic"):
        return data
    return {"folder": "folder_csv", "synthetic": "synthetic_patterns"}[data]


def tfds_dataset(task: str, name: str | None = None) -> TfdsDataset:
    """The task's default tfds dataset, or the dataset `name` with default splits."""
    default = TASKS[task].tfds
    if name in (None, default.name):
        return default
    outputs = TASKS[task].default_outputs
    return TfdsDataset(name, channels=1, outputs=outputs, labels=default.labels)


MIXES: dict[str, Choice] = {
    "none": Choice("none", "each training image keeps its own label"),
    "mixup": Choice(
        "mixup", "MixUp: training images and their labels blended in pairs"
    ),
    "cutmix": Choice(
        "cutmix", "CutMix: a box of another training image pasted in, labels by area"
    ),
}

TRACKING: dict[str, Choice] = {
    "none": Choice("none", "TensorBoard only (scalars and the HParams dashboard)"),
    "mlflow": Choice(
        "mlflow",
        "also MLflow: settings, per-epoch metrics and status in an MLflow store",
    ),
}

# The closed options and their tables: copier.yml's `choices:` are written from these.
CHOICES: dict[str, dict] = {
    "arch": ARCHITECTURES,
    "task": TASKS,
    "loop": LOOPS,
    "data": DATA_SOURCES,
    "strategy": STRATEGIES,
    "precision": PRECISIONS,
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
    "loss": LOSSES,
    "tracking": TRACKING,
    "mix": MIXES,
}
