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


def crop_window(shape: tf.Tensor, area: float, seed: tf.Tensor) -> tf.Tensor:
    """[offset_y, offset_x, height, width] of a random box over an image of `shape`
    ([height, width, channels]) covering at least `area` of it, with an aspect ratio
    from 3/4 to 4/3 (Inception's random-resized crop); the same seed, the same box."""
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(area, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], size[0], size[1]])


def random_crop(image: tf.Tensor, area: float, seed: tf.Tensor) -> tf.Tensor:
    """A random box of a decoded image (see crop_window)."""
    offset_y, offset_x, height, width = tf.unstack(
        crop_window(tf.shape(image), area, seed)
    )
    return image[offset_y : offset_y + height, offset_x : offset_x + width]


def decode_random_crop(
    contents: tf.Tensor, channels: int, area: float, seed: tf.Tensor
) -> tf.Tensor:
    """Encoded image bytes -> a random box of the image (see crop_window), decoded.

    JPEGs are decoded only within the box (tf.image.decode_and_crop_jpeg, as the TF Model
    Garden's ImageNet input does); other formats are decoded whole, then cropped. Both
    draw the same box for the same seed.
    """

    def jpeg() -> tf.Tensor:
        window = crop_window(tf.image.extract_jpeg_shape(contents), area, seed)
        return tf.image.decode_and_crop_jpeg(contents, window, channels=channels)

    return tf.cond(
        tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff"),
        jpeg,
        lambda: random_crop(decode(contents, channels), area, seed),
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
