"""Property-based tests (hypothesis) of the generated project's parsers of user input, run
in process: the config file (load_config), the npz source's data.npz (load) and the folder
source's labels.csv (scan_folder). Any input is either accepted, and then gives values in
range, or is refused with the project's own error (ConfigError, or DataError for data):
never another exception, which would be a traceback at the command line.

The inputs these properties found escaping are reproduced one by one at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
import json
import math
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import generate

# No example database in the checkout; no deadline (the first examples build TF graphs).
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# One project per data source (the config differs by source), and the folder source's
# labels.csv tasks; each package is named after its options, so all import side by side.
PROJECTS = {
    "prop_sample": dict(data="sample"),
    "prop_npz": dict(data="npz", num_classes=3),
    "prop_npz_regression": dict(data="npz", task="regression", num_classes=2),
    "prop_npz_multilabel": dict(data="npz", task="multilabel", num_classes=2),
    "prop_folder": dict(data="folder", num_classes=2),
    "prop_folder_regression": dict(data="folder", task="regression", num_classes=2),
    "prop_folder_multilabel": dict(data="folder", task="multilabel", num_classes=2),
    "prop_tfds": dict(data="tfds"),
    "prop_synthetic": dict(data="synthetic"),
    # Every training option and tune: its search space takes lists.
    "prop_options": dict(
        data="sample",
        augment=True,
        randaugment=True,
        class_weights=True,
        lr_schedule="plateau",
        ema=True,
        keep_best=True,
        tune=True,
    ),
}


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> Iterator[dict[str, types.SimpleNamespace]]:
    """Every project generated once, on sys.path, with its modules imported once."""
    parent = tmp_path_factory.mktemp("properties")
    loaded = {}
    for name, options in PROJECTS.items():
        project = generate(parent, name, **options)
        sys.path.insert(0, str(project))
        modules = {
            module: importlib.import_module(f"{name}.{module}")
            for module in ("config", "errors")
        }
        if options["data"] in ("npz", "folder"):
            modules["sources"] = importlib.import_module(f"{name}.sources")
        loaded[name] = types.SimpleNamespace(**modules)
    yield loaded
    for name in PROJECTS:
        for module in [m for m in sys.modules if m.split(".")[0] == name]:
            del sys.modules[module]
        sys.path[:] = [p for p in sys.path if not p.endswith(name)]


def rarely(draw, odds: int) -> bool:
    """True once in odds + 1 draws; shrinks to False (the ordinary case)."""
    return draw(st.sampled_from([False] * odds + [True]))


# --- (a) the config file -------------------------------------------------------------

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**32, 2**63, -(2**63) - 1, 10**30, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1e-300, 1e308, 1e39]),
    st.text(max_size=8),
    st.sampled_from(["float32", "mixed_float16", "mnist", "data", ""]),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
# Values of a field's own type, near and beyond its limits.
TYPED = {
    int: st.one_of(
        st.integers(-3, 300),
        st.sampled_from(
            [0, 1, 2, 3, 9, 10, 31, 32, 2**31, 2**32 - 1, 2**32, 2**63 - 1]
        ),
    ),
    float: st.one_of(
        st.floats(-2, 12),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, -0.0, 1e-300, 0.999999, 1.0, 1e308, 1e400]),
        st.integers(-2, 5),
    ),
    bool: st.booleans(),
    str: st.one_of(
        st.sampled_from(["float32", "mixed_float16", "mixed_bfloat16", "fp8", "mnist"]),
        st.text(max_size=8),
    ),
}


def field_values(hint: object) -> st.SearchStrategy:
    """Mostly values of the field's type (or None where allowed), sometimes any JSON."""
    kinds = [k for k in typing.get_args(hint) or (hint,) if k is not type(None)]
    typed = [TYPED[kind] for kind in kinds if kind in TYPED]
    if type(None) in typing.get_args(hint):
        typed.append(st.none())
    return st.one_of(*typed * 6, json_values)


@st.composite
def config_documents(draw, config: types.ModuleType) -> object:
    """Config-shaped objects (the project's own sections and keys, mostly values of the
    right type, sometimes an unknown key), else any JSON."""
    if rarely(draw, 4):
        return draw(json_values)
    document: dict[str, object] = {}
    hints = typing.get_type_hints(config.Config)
    for section in dataclasses.fields(config.Config):
        if not dataclasses.is_dataclass(hints[section.name]):
            if rarely(draw, 4):
                document[section.name] = draw(field_values(hints[section.name]))
            continue
        if not draw(st.booleans()):
            continue
        types_ = typing.get_type_hints(hints[section.name])
        chosen = draw(
            st.lists(st.sampled_from(sorted(types_)), max_size=4, unique=True)
        )
        document[section.name] = {
            key: draw(field_values(types_[key])) for key in chosen
        }
        if rarely(draw, 9):
            document[section.name][draw(st.text(max_size=6))] = draw(json_values)
    if rarely(draw, 9):
        document[draw(st.text(max_size=6))] = draw(json_values)
    return document


@st.composite
def config_files(draw, config: types.ModuleType) -> bytes:
    """A config document as JSON text (NaN, Infinity, huge integers and all), sometimes
    nested very deep, re-encoded, cut short or replaced by random bytes."""
    text = json.dumps(draw(config_documents(config)), allow_nan=True)
    if rarely(draw, 9):
        depth = draw(st.sampled_from([1, 50, 1000, 100_000]))
        text = "[" * depth + text + "]" * depth
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "latin-1"]))
    data = text.encode(encoding, errors="replace")
    damage = draw(st.sampled_from(["none"] * 18 + ["cut", "random"]))
    if damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "random":
        data = draw(st.binary(max_size=40))
    return data


def _check_accepted(cfg: object, config: types.ModuleType) -> None:
    """An accepted config validates, and its numbers are finite and of their field's type."""
    config.validate(cfg)
    for section in (cfg.data, cfg.model, cfg.train, getattr(cfg, "tune", None)):
        for spec in dataclasses.fields(section) if section else ():
            value = getattr(section, spec.name)
            for item in value if isinstance(value, list) else [value]:
                assert not isinstance(item, float) or math.isfinite(item), spec.name


@PROPERTY
@given(data=st.data())
@pytest.mark.parametrize("package", [name for name in PROJECTS if "_" not in name[5:]])
def test_any_config_file_is_loaded_in_range_or_refused(
    packages, tmp_path, package, data
):
    """Every data source's config (sample, npz, folder, tfds, synthetic)."""
    config, errors = packages[package].config, packages[package].errors
    path = tmp_path / "c.json"
    path.write_bytes(data.draw(config_files(config), label="c.json"))
    _accepted_or_refused(lambda: config.load_config(path), config, errors)


def _accepted_or_refused(load, config: types.ModuleType, errors: types.ModuleType):
    """The config load() gives, checked valid and in range; None if it was refused with
    the project's one-line error (any other exception fails the test)."""
    try:
        cfg = load()
    except errors.ConfigError as error:
        assert str(error) and "\n" not in str(error)
        event("refused")
        return None
    event("accepted")
    _check_accepted(cfg, config)
    return cfg


def _setting_keys(config: types.ModuleType) -> list[str]:
    """Every dotted setting of the project's config ("train.epochs", ...)."""
    flat = config.flat_settings(dataclasses.asdict(config.Config()))
    return sorted(flat) + ["data", "train"]


@st.composite
def command_lines(draw, config: types.ModuleType) -> list[str]:
    """KEY=VALUE settings as typed at a shell: mostly the project's own keys with JSON
    or bare values, sometimes unknown keys, no "=", dots and "=" in odd places."""
    items = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(_setting_keys(config)))
        if rarely(draw, 6):
            key = draw(st.sampled_from([key + ".x", "." + key, key.upper(), ""]))
        value = draw(
            st.one_of(
                json_leaves.map(lambda v: json.dumps(v, allow_nan=True)),
                st.text(max_size=8),
                st.sampled_from(
                    ["null", "1e999", "-0", "0x10", "[1]", "{}", "=", "a=b"]
                ),
            )
        )
        items.append(draw(st.sampled_from([f"{key}={value}"] * 9 + [key, value])))
    return items


@PROPERTY
@given(data=st.data())
@pytest.mark.parametrize("package", ["prop_sample", "prop_folder", "prop_options"])
def test_any_command_line_settings_are_loaded_in_range_or_refused(
    packages, package, data
):
    config, errors = packages[package].config, packages[package].errors
    items = data.draw(command_lines(config), label="settings")
    cfg = _accepted_or_refused(
        lambda: config.load_config(overrides=config.parse_settings(items)),
        config,
        errors,
    )
    if (
        cfg is not None and items
    ):  # a setting that takes text keeps what was typed (the last one wins)
        key, _, text = items[-1].partition("=")
        value = cfg
        for name in key.split("."):  # None where a later setting nulled a parent
            value = getattr(value, name, None)
        assert not isinstance(value, str) or text == "null" or value == text


# --- (b) data.npz ----------------------------------------------------------------------

DTYPES = [
    "uint8",
    "uint16",
    "uint64",
    "int8",
    "int64",
    "bool",
    "float16",
    "float32",
    "float64",
    "complex64",
    "<U2",
    "S2",
    "M8[s]",
    "V2",
    "object",
]
shapes = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
    st.sampled_from([(4, 8, 8), (4, 6, 6, 1), (4, 6, 6, 3), (4,), (4, 2), (1, 3, 3)]),
)


@st.composite
def arrays(draw) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(shapes)
    if dtype == "object":
        return np.full(shape, draw(st.integers(0, 3)), dtype=object)
    if dtype in ("M8[s]", "V2"):
        return np.zeros(shape, dtype)
    elements = None
    if dtype.startswith(("float", "complex")):
        elements = st.floats(allow_nan=True, allow_infinity=True, width=16)
    return draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))


@st.composite
def plausible_arrays(draw, task: str) -> tuple[np.ndarray, np.ndarray]:
    """x [N, H, W(, C)] and y as the task wants them, each rarely out of shape or range."""
    n, h, w = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    channels = draw(st.sampled_from([(), (1,), (3,)]))
    if rarely(draw, 9):
        channels = draw(st.sampled_from([(2,), (4,), (0,)]))
    kinds = ["uint8", "uint16", "int64", "float16", "float32", "float64"]
    x_dtype = np.dtype(draw(st.sampled_from(kinds)))
    # One element strategy per array: mostly in range, rarely beyond it or non-finite.
    if x_dtype.kind == "f":
        x_elements = draw(
            st.sampled_from([st.floats(0, 1, width=16), st.floats(0, 255, width=16)])
        )
        if rarely(draw, 9):
            x_elements = st.floats(allow_nan=True, allow_infinity=True, width=16)
    else:
        x_elements = st.integers(0, 255)
        if rarely(draw, 9) and x_dtype != np.uint8:
            x_elements = st.integers(0, 300)
    x = draw(hnp.arrays(x_dtype, (n, h, w, *channels), elements=x_elements))
    y_shape = {"multiclass": (n,), "multilabel": (n, 2)}.get(task, (n, 2))
    if task == "regression":
        y_shape = draw(st.sampled_from([(n,), (n, 2)]))
    if rarely(draw, 9):
        y_shape = draw(st.sampled_from([(n + 1,), (n, 1), (n, 2, 1), ()]))
    if task == "regression":
        y_dtype = np.dtype(draw(st.sampled_from(["float16", "float32", "float64"])))
        y_elements = st.floats(-1e4, 1e4, width=16)
        if rarely(draw, 9):
            y_elements = st.floats(allow_nan=True, allow_infinity=True, width=16)
        if rarely(draw, 9) and y_dtype == np.float64:
            y_elements = st.sampled_from([0.0, 1e39, -1e300])
    else:
        y_dtype = np.dtype(draw(st.sampled_from(["int64", "int8", "float32"])))
        y_elements = st.integers(0, 2 if task == "multiclass" else 1)
        if rarely(draw, 9):
            y_elements = st.integers(-1, 3)
    y = draw(hnp.arrays(y_dtype, y_shape, elements=y_elements))
    return x, y


@st.composite
def npz_files(draw, task: str) -> tuple[bytes, dict]:
    """data.npz: mostly plausible x and y, else arrays of any dtype and shape (sometimes
    missing), sometimes output_names; or not an .npz at all."""
    contents = {}
    if not rarely(draw, 2):
        contents["x"], contents["y"] = draw(plausible_arrays(task))
    else:
        for key in ("x", "y"):
            if not rarely(draw, 9):
                contents[key] = draw(arrays())
    if rarely(draw, 4):
        contents["output_names"] = draw(
            st.one_of(arrays(), st.lists(st.text(max_size=4), max_size=4).map(np.array))
        )
    buffer = io.BytesIO()
    np.savez(buffer, **contents)
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none"] * 17 + ["cut", "random", "npy"]))
    if damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "random":
        data = draw(st.binary(max_size=64))
    elif damage == "npy":
        buffer = io.BytesIO()
        np.save(buffer, draw(arrays()))
        data = buffer.getvalue()  # a .npy file under the .npz name
    return data, contents


NPZ_TASKS = {
    "prop_npz": "multiclass",
    "prop_npz_regression": "regression",
    "prop_npz_multilabel": "multilabel",
}


@PROPERTY
@given(data=st.data())
@pytest.mark.parametrize("package", NPZ_TASKS)
def test_any_npz_file_loads_or_is_refused(packages, tmp_path, package, data):
    """Accepted data: every image in one split, uint8 pixels at 1 or 3 channels, finite
    labels of the task's dtype."""
    task = NPZ_TASKS[package]
    npz, contents = data.draw(npz_files(task), label="data.npz")
    modules = packages[package]
    (tmp_path / "data.npz").write_bytes(npz)
    cfg = modules.config.DataConfig(
        data_dir=str(tmp_path), num_outputs=3 if task == "multiclass" else 2
    )
    try:
        train, val, names = modules.sources.load(cfg)
    except modules.errors.DataError as error:
        assert str(error) and "\n" not in str(error)
        event("refused")
        return
    event("accepted")
    assert int(train.cardinality()) + int(val.cardinality()) == len(contents["x"])
    assert all(isinstance(name, str) for name in names)
    image, label = next(iter(val))
    assert image.dtype.name == "uint8" and image.shape[-1] in (1, 3)
    assert label.dtype.name == ("int32" if task == "multiclass" else "float32")
    assert np.isfinite(label.numpy()).all()


# --- (c) labels.csv ----------------------------------------------------------------------

IMAGES = ["a.png", "b.png"]
# One cell strategy per table: mostly valid numbers, else anything.
VALID_CELLS = st.sampled_from(["0", "1", "0.0", "1.0", " 1 "])
CELLS = [
    VALID_CELLS,
    VALID_CELLS,
    VALID_CELLS,
    st.floats(-1e6, 1e6).map(repr),
    st.sampled_from(["2", "-1", "nan", "inf", "-inf", "1e39", "1e400", "1_0", "0x1"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
    st.text(max_size=6),
]
filenames = st.one_of(
    st.sampled_from(IMAGES),
    st.sampled_from(
        ["A.PNG", "missing.png", "", ".", "..", "sub/../a.png", "labels.csv"]
    ),
    st.text(max_size=12),
)


@st.composite
def labels_csv(draw) -> bytes:
    """labels.csv: a header (mostly filename first), rows of filenames and cells, written
    by csv or as raw text, in one of several encodings."""
    width = draw(st.integers(2, 4))
    header = ["filename" if not rarely(draw, 9) else draw(st.text(max_size=8))]
    header += draw(
        st.lists(st.text(max_size=5), min_size=width - 1, max_size=width - 1)
    )
    rows = [header]
    cells = draw(st.sampled_from(CELLS))
    for _ in range(draw(st.integers(1, 4))):
        size = width if not rarely(draw, 5) else draw(st.sampled_from([1, width + 1]))
        rows.append(
            [
                draw(filenames) if rarely(draw, 5) else draw(st.sampled_from(IMAGES)),
                *draw(st.lists(cells, min_size=size - 1, max_size=size - 1)),
            ]
        )
    if rarely(draw, 5):
        rows.insert(draw(st.integers(0, len(rows))), [])  # a blank line
    if rarely(draw, 5):
        text = draw(st.text(max_size=60))
    else:
        buffer = io.StringIO()
        terminator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        csv.writer(buffer, lineterminator=terminator).writerows(rows)
        text = buffer.getvalue()
    encoding = draw(
        st.sampled_from(["utf-8"] * 5 + ["utf-8-sig", "utf-16", "latin-1", "cp1252"])
    )
    return text.encode(encoding, errors="replace")


@PROPERTY
@given(table=labels_csv())
@pytest.mark.parametrize(
    "package", ["prop_folder_regression", "prop_folder_multilabel"]
)
def test_any_labels_csv_is_read_in_range_or_refused(packages, tmp_path, package, table):
    modules = packages[package]
    for image in IMAGES:
        (tmp_path / image).write_bytes(b"")  # scan_folder only lists; nothing decodes
    (tmp_path / "labels.csv").write_bytes(table)
    cfg = modules.config.DataConfig(data_dir=str(tmp_path))
    try:
        paths, values, names = modules.sources.scan_folder(cfg)
    except modules.errors.DataError as error:
        assert str(error) and "\n" not in str(error)
        event("refused")
        return
    event("accepted")
    assert values.dtype == np.float32 and values.shape == (len(paths), len(names))
    assert len(paths) >= 1 and all(Path(path).is_file() for path in paths)
    assert np.isfinite(values).all()
    if package == "prop_folder_multilabel":
        assert set(np.unique(values)) <= {0.0, 1.0}


# --- bugs this file found, each reproduced: now refused with one line ---------------


def test_bug1_config_integer_beyond_int64_is_refused(packages, tmp_path):
    config, errors = packages["prop_npz"].config, packages["prop_npz"].errors
    path = tmp_path / "c.json"
    path.write_text('{"data": {"batch_size": 1' + "0" * 400 + "}}")
    with pytest.raises(errors.ConfigError):
        config.load_config(path)


def test_bug1b_config_integer_of_5000_digits_is_refused(packages, tmp_path):
    config, errors = packages["prop_npz"].config, packages["prop_npz"].errors
    path = tmp_path / "c.json"
    path.write_text('{"train": {"epochs": 1' + "0" * 5000 + "}}")
    with pytest.raises(errors.ConfigError):
        config.load_config(path)


def _load_npz(packages, tmp_path, package="prop_npz", **arrays):
    modules = packages[package]
    path = tmp_path / "data.npz"
    if "npy" in arrays:
        np.save(path.open("wb"), arrays["npy"])
    else:
        np.savez(path, **arrays)
    with pytest.raises(modules.errors.DataError):
        modules.sources.load(
            modules.config.DataConfig(data_dir=str(tmp_path), num_outputs=3)
        )


def test_bug2_npy_file_named_npz_is_refused(packages, tmp_path):
    _load_npz(packages, tmp_path, npy=np.zeros(3))


def test_bug3_string_class_indices_are_refused(packages, tmp_path):
    _load_npz(
        packages,
        tmp_path,
        x=np.zeros((4, 8, 8), np.uint8),
        y=np.array(["a", "b", "c", "a"]),
    )


def test_bug4_images_of_height_zero_are_refused(packages, tmp_path):
    _load_npz(
        packages, tmp_path, x=np.zeros((4, 0, 8), np.uint8), y=np.array([0, 1, 2, 0])
    )


def test_bug5_scalar_output_names_are_refused(packages, tmp_path):
    _load_npz(
        packages,
        tmp_path,
        x=np.zeros((4, 8, 8), np.uint8),
        y=np.array([0, 1, 2, 0]),
        output_names=np.array("a"),
    )


def test_bug6_labels_csv_filename_too_long_is_refused(packages, tmp_path):
    modules = packages["prop_folder_regression"]
    (tmp_path / "labels.csv").write_text("filename,size\n" + "a" * 300 + ".png,1\n")
    with pytest.raises(modules.errors.DataError):
        modules.sources.scan_folder(modules.config.DataConfig(data_dir=str(tmp_path)))
