"""TensorFlow without the lines its libraries print as they load.

Before TensorFlow sets up its logging, its C++ libraries print what they found (oneDNN,
no CUDA driver) whatever TF_CPP_MIN_LOG_LEVEL says, once per library that carries the
logger: twice. On a machine without a GPU, CUDA's probe then logs "failed call to
cuInit" as an error. TFLite's converter and interpreter print their settings likewise.
Each is run here with the standard error captured, and every other line it printed is
passed on.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\)"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers on your machine"
    r"|This TensorFlow binary is optimized to use"
    r"|^To enable the following instructions:"
)
NO_GPU = re.compile(r"failed call to cuInit")
TFLITE_NOISE = re.compile(
    r"^fully_quantize: |Created TensorFlow Lite XNNPACK delegate for CPU"
)


def import_tensorflow() -> None:
    """Import TensorFlow and list its devices (CUDA's probe), printing only what
    matters: a failed CUDA probe is noise unless the machine has an NVIDIA driver."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's own INFO lines
    noise = NOISE
    if not Path("/proc/driver/nvidia").exists():
        noise = re.compile(f"{NOISE.pattern}|{NO_GPU.pattern}")
    with stderr_without(noise):
        import tensorflow as tf

        tf.config.list_physical_devices()


@contextmanager
def stderr_without(noise: re.Pattern) -> Iterator[None]:
    """Run the block with the process's standard error (file descriptor 2, which C++
    writes to) captured; then print each line of it that `noise` does not match."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines()
            kept = [line for line in lines if not noise.search(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


def _not_retracing(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


@contextmanager
def retracing_expected() -> Iterator[None]:
    """Run the block without TensorFlow's warning that a function "triggered tf.function
    retracing", for a block that builds models one after another, each tracing its own
    functions, as it must: each checked export, each trial of a study."""
    logger = logging.getLogger("tensorflow")
    logger.addFilter(_not_retracing)
    try:
        yield
    finally:
        logger.removeFilter(_not_retracing)
