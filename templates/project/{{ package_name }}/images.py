"""Image files: every format TensorFlow decodes (PNG, JPEG, BMP, GIF), at 1 or 3 channels."""

from __future__ import annotations

import os

import tensorflow as tf

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# In a data directory: which of its files decode, by size and modification time.
CHECKED_FILE = ".image-check.json"


def decode(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """Encoded image bytes -> uint8 [height, width, channels] (the first frame of a GIF).

    TensorFlow decodes BMP and GIF to RGB only, so those are converted to grayscale
    after decoding when one channel is wanted.
    """
    if channels == 3:
        return tf.io.decode_image(contents, channels=3, expand_animations=False)
    rgb_only = tf.logical_or(
        tf.equal(tf.strings.substr(contents, 0, 2), b"BM"),
        tf.equal(tf.strings.substr(contents, 0, 3), b"GIF"),
    )
    return tf.cond(
        rgb_only,
        lambda: tf.image.rgb_to_grayscale(
            tf.io.decode_image(contents, channels=3, expand_animations=False)
        ),
        lambda: tf.io.decode_image(contents, channels=1, expand_animations=False),
    )


def image_files(folder: str) -> list[str]:
    """The image files in `folder` and its subfolders (not FIFOs, not hidden ones such
    as .ipynb_checkpoints; symbolic links to folders are not followed)."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                found += image_files(entry.path)
            elif entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                found.append(entry.path)
    return found
