"""Prepared data: both splits, already resized, in TFRecord shards with a manifest.

`prepare --output DIR` writes them once from the configured source; with `data.prepared`
set to DIR, training streams the shards instead: no decoding, resizing or file checks on
start, and files that workers can divide between them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from .artifacts import MISSING, remove_dead_scratch, scratch_prefix, unreadable
from .config import DataConfig
from .errors import ConfigError, DataError
from .task import check_label_spec

MANIFEST = "manifest.json"
FORMAT = 1
# Files of 100 MB or more read best (tf.data performance guide).
SHARD_BYTES = 128 * 2**20


def write_prepared(
    splits: dict[str, tf.data.Dataset],
    output_names: list[str],
    cfg: DataConfig,
    output: Path,
    shard_bytes: int = SHARD_BYTES,
) -> dict[str, Any]:
    """Write each split's (uint8 image, label) examples as shards of about
    `shard_bytes` in the new directory `output`, then the manifest; returns the
    manifest. Nothing is left at `output` on failure: the shards are written beside
    it and moved into place at the end."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConfigError(
            f"--output {str(output)!r} exists and is not an empty directory; "
            "give a new directory"
        )
    remove_dead_scratch(output)
    scratch = output.with_name(f"{scratch_prefix(output)}tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        image_shape = [cfg.image_size, cfg.image_size, cfg.channels]
        label_spec = next(iter(splits.values())).element_spec[1]
        manifest = {
            "format": FORMAT,
            "image_shape": image_shape,
            "label_shape": label_spec.shape.as_list(),
            "label_dtype": label_spec.dtype.name,
            "output_names": output_names,
            "splits": {
                name: _write_split(
                    examples, name, scratch, shard_bytes // math.prod(image_shape)
                )
                for name, examples in splits.items()
            },
            "data": dataclasses.asdict(cfg),
        }
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if output.exists():
            output.rmdir()  # empty, checked above
        scratch.rename(output)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest


def _write_split(
    examples: tf.data.Dataset, name: str, directory: Path, per_shard: int
) -> dict[str, Any]:
    count = int(examples.cardinality())
    num_shards = max(1, math.ceil(count / max(1, per_shard)))
    # Equal shards but the last, which is at most num_shards - 1 examples short.
    per_shard = math.ceil(count / num_shards)
    shards = []
    batches = examples.batch(per_shard).prefetch(1).as_numpy_iterator()
    for index, (images, labels) in enumerate(batches):
        path = directory / f"{name}-{index:05d}-of-{num_shards:05d}.tfrecord"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for image, label in zip(images, labels, strict=True):
                writer.write(_serialize(image, label))
        shards.append(
            {
                "file": path.name,
                "count": len(images),
                "bytes": path.stat().st_size,
                "sha256": _sha256(path),
            }
        )
    return {"count": sum(shard["count"] for shard in shards), "shards": shards}


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _serialize(image: np.ndarray, label: np.ndarray) -> bytes:
    features = {
        "image": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[image.tobytes()])
        ),
        "label": tf.train.Feature(
            float_list=tf.train.FloatList(value=np.ravel(label).astype(np.float32))
        ),
    }
    example = tf.train.Example(features=tf.train.Features(feature=features))
    return example.SerializeToString()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of prepared data, checked against its shards (names and sizes)."""
    path = directory / MANIFEST
    problem = unreadable(path)
    if problem == MISSING:
        raise DataError(
            f"{str(directory)!r} holds no prepared data ({MANIFEST} is missing); "
            "the prepare command writes it (or prepared.write_prepared)"
        )
    if problem:
        raise DataError(f"{str(path)!r} {problem}; prepare the data again")
    try:
        manifest = json.loads(path.read_text())
        shards = [
            (split, shard["file"], shard["bytes"])
            for split in ("train", "val")
            for shard in manifest["splits"][split]["shards"]
        ]
        if manifest["format"] != FORMAT:
            raise ValueError(f"format {manifest['format']}, expected {FORMAT}")
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise DataError(
            f"cannot read {str(path)!r} ({error}); prepare the data again"
        ) from None
    for split, name, size in shards:
        shard = directory / name
        if not shard.is_file() or shard.stat().st_size != size:
            raise DataError(
                f"{split} shard {str(shard)!r} is missing or has changed since it was "
                "prepared; prepare the data again"
            )
    return manifest


def read_prepared(
    directory: Path, cfg: DataConfig, worker: int = 0, num_workers: int = 1
) -> tuple[tf.data.Dataset, tf.data.Dataset, list[str], int]:
    """This worker's part of the prepared training split, the validation split (both
    as (uint8 image, label) examples), the output names and the training split's size.

    Workers divide the training shards between them when each gets as many and their
    parts differ by a few examples at most (each reads only its own files), else every
    worker reads all files and keeps every num_workers-th example.
    """
    manifest = read_manifest(directory)
    image_shape = [cfg.image_size, cfg.image_size, cfg.channels]
    if manifest["image_shape"] != image_shape:
        size = "x".join(map(str, manifest["image_shape"]))
        raise DataError(
            f"the data in {str(directory)!r} was prepared at {size}, but the model takes "
            f"{'x'.join(map(str, image_shape))}; prepare it again with this config"
        )
    label_shape = manifest["label_shape"]
    check_label_spec(
        label_shape, str(manifest["label_dtype"]), cfg.num_outputs, repr(str(directory))
    )
    label_dtype = tf.as_dtype(manifest["label_dtype"])
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([math.prod(label_shape)], tf.float32),
    }

    def parse(record: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        example = tf.io.parse_single_example(record, spec)
        image = tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), image_shape)
        label = tf.reshape(tf.cast(example["label"], label_dtype), label_shape)
        return image, label

    def examples(shards: list[dict[str, Any]], part: slice) -> tf.data.Dataset:
        files = [str(directory / shard["file"]) for shard in shards]
        records = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(files), 4),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        count = len(range(sum(shard["count"] for shard in shards))[part])
        return (
            records.shard(part.step, part.start)
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
            .apply(tf.data.experimental.assert_cardinality(count))
        )

    train_shards = manifest["splits"]["train"]["shards"]
    parts = [train_shards[index::num_workers] for index in range(num_workers)]
    counts = [sum(shard["count"] for shard in part) for part in parts]
    if len(train_shards) % num_workers == 0 and (
        max(counts) - min(counts) <= len(train_shards)
    ):
        train = examples(parts[worker], slice(0, None, 1))
    else:
        train = examples(train_shards, slice(worker, None, num_workers))
    return (
        train,
        examples(manifest["splits"]["val"]["shards"], slice(0, None, 1)),
        manifest["output_names"],
        manifest["splits"]["train"]["count"],
    )
