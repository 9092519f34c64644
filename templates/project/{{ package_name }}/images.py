"""Image files: every format TensorFlow decodes (PNG, JPEG, BMP, GIF), at 1 or 3 channels."""

from __future__ import annotations

import os

import tensorflow as tf

from .errors import DataError

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# In a data directory: which of its files decode, by size and modification time.
CHECKED_FILE = ".image-check.json"


def decode(contents: tf.Tensor, channels: int) -> tf.Tensor:
    """Encoded image bytes -> uint8 [height, width, channels] (the first frame of a GIF).

    TensorFlow decodes BMP, GIF and CMYK JPEG to RGB only (see _rgb_only), so those are
    converted to grayscale after decoding when one channel is wanted.
    """
    if channels == 3:
        return tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.cond(
        _rgb_only(contents),
        lambda: tf.image.rgb_to_grayscale(
            tf.io.decode_image(contents, channels=3, expand_animations=False)
        ),
        lambda: tf.io.decode_image(contents, channels=1, expand_animations=False),
    )


def _is_jpeg(contents: tf.Tensor) -> tf.Tensor:
    return tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff")


def _rgb_only(contents: tf.Tensor) -> tf.Tensor:
    """Whether TensorFlow decodes the image to RGB but not to grayscale: BMP, GIF, and
    JPEG of four components (CMYK), which libjpeg converts to RGB only."""
    return tf.cond(
        _is_jpeg(contents),
        lambda: tf.equal(tf.image.extract_jpeg_shape(contents)[2], 4),
        lambda: tf.logical_or(
            tf.equal(tf.strings.substr(contents, 0, 2), b"BM"),
            tf.equal(tf.strings.substr(contents, 0, 3), b"GIF"),
        ),
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
        shape = tf.image.extract_jpeg_shape(contents)
        window = crop_window(shape, area, seed)
        if channels == 3:
            return tf.image.decode_and_crop_jpeg(contents, window, channels=3)
        return tf.cond(  # CMYK: to RGB only, as decode says
            tf.equal(shape[2], 4),
            lambda: tf.image.rgb_to_grayscale(
                tf.image.decode_and_crop_jpeg(contents, window, channels=3)
            ),
            lambda: tf.image.decode_and_crop_jpeg(contents, window, channels=1),
        )

    return tf.cond(
        _is_jpeg(contents),
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
                _check_utf8(entry.path)
                found.append(entry.path)
    return found


def _check_utf8(path: str) -> None:
    """TensorFlow reads file names as UTF-8; Python holds other bytes as surrogates."""
    try:
        path.encode()
    except UnicodeEncodeError:
        shown = repr(os.fsencode(path))[1:]  # its bytes, quoted, escaped: one line
        raise DataError(
            f"the file name {shown} is not UTF-8, which TensorFlow cannot read; "
            "rename it"
        ) from None
